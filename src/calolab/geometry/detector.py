"""Detector geometry: an ordered stack of sampling layers over a grid of cells.

A layer is an absorber slab (possibly none, for homogeneous calorimeters) followed by an
active slab that is read out. Cells are indexed ``(layer, x, y)``; the grid is centred on
the beam axis, ``z`` runs along the layers. Lengths in mm, energies in MeV.

>>> det = Detector.from_dict({
...     "name": "toy", "cells": {"nx": 4, "ny": 4, "pitch": 10.0},
...     "layers": [{"absorber": "Fe", "absorber_thickness": 20, "active": "Scintillator",
...                 "active_thickness": 5, "repeat": 3}]})
>>> det.shape, det.n_cells
((3, 4, 4), 48)
>>> round(float(det.x0_bounds[-1]), 2)  # depth in radiation lengths
3.45
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from calolab.config import check_fields
from calolab.errors import CalolabError
from calolab.geometry.materials import Material, get_material

ES = 21.2  # MeV, scale energy of multiple scattering (Moliere radius = X0 Es / Ec)


@dataclass(frozen=True)
class Layer:
    """One sampling layer: ``absorber`` (material name or ``None``) then ``active``; mm."""

    active: str
    active_thickness: float
    absorber: str | None = None
    absorber_thickness: float = 0.0

    @property
    def thickness(self) -> float:
        return self.absorber_thickness + self.active_thickness

    @property
    def active_material(self) -> Material:
        return get_material(self.active)

    @property
    def absorber_material(self) -> Material | None:
        return get_material(self.absorber) if self.absorber else None

    def _slabs(self) -> list[tuple[Material, float]]:
        slabs = [(self.active_material, self.active_thickness)]
        if self.absorber_material is not None and self.absorber_thickness > 0:
            slabs.insert(0, (self.absorber_material, self.absorber_thickness))
        return slabs

    @property
    def x0_depth(self) -> float:
        """Thickness in radiation lengths."""
        return sum(d / m.x0 for m, d in self._slabs())

    @property
    def lambda_depth(self) -> float:
        """Thickness in nuclear interaction lengths."""
        return sum(d / m.lambda_int for m, d in self._slabs())

    @property
    def lambda_pi_depth(self) -> float:
        """Thickness in pion interaction lengths."""
        return sum(d / m.lambda_pi for m, d in self._slabs())

    @property
    def mip_loss(self) -> float:
        """Mean energy in MeV a MIP loses crossing the whole layer (absorber and active)."""
        return sum(m.mip_mean(d) for m, d in self._slabs())


@dataclass(frozen=True)
class Detector:
    """A calorimeter: ``layers`` front to back over an ``nx`` x ``ny`` grid of cells.

    Parameters
    ----------
    pitch_x, pitch_y
        Cell size in mm; the grid is centred on x = y = 0.
    field_tesla
        Magnetic field along +y in T (bends charged tracks in x).
    photoelectrons_per_mev
        Light yield of a homogeneous crystal; ``None`` for no photostatistics.
    excess_noise_factor
        Excess noise factor F of the photodetector's gain (1 for none; about 2 for the
        avalanche photodiodes of PbWO4 crystals): the signal of N photoelectrons has variance F N.
    """

    name: str
    layers: tuple[Layer, ...]
    nx: int
    ny: int
    pitch_x: float
    pitch_y: float
    field_tesla: float = 0.0
    photoelectrons_per_mev: float | None = None
    excess_noise_factor: float = 1.0
    description: str = ""
    _source: str = field(default="", compare=False, repr=False)

    # ----------------------------------------------------------------- shape
    @property
    def shape(self) -> tuple[int, int, int]:
        """Grid shape ``(layers, nx, ny)``."""
        return (len(self.layers), self.nx, self.ny)

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def n_cells(self) -> int:
        return len(self.layers) * self.nx * self.ny

    @property
    def homogeneous(self) -> bool:
        return all(layer.absorber is None or layer.absorber_thickness == 0 for layer in self.layers)

    @cached_property
    def x_edges(self) -> np.ndarray:
        """Cell edges in x, mm, shape ``(nx + 1,)``."""
        return (np.arange(self.nx + 1) - self.nx / 2) * self.pitch_x

    @cached_property
    def y_edges(self) -> np.ndarray:
        return (np.arange(self.ny + 1) - self.ny / 2) * self.pitch_y

    @cached_property
    def z_bounds(self) -> np.ndarray:
        """Layer front faces and the back face in mm, shape ``(layers + 1,)``."""
        return np.concatenate([[0.0], np.cumsum([layer.thickness for layer in self.layers])])

    @cached_property
    def z_active(self) -> np.ndarray:
        """Depth of the middle of each active slab in mm, shape ``(layers,)``."""
        return self.z_bounds[1:] - 0.5 * np.array([la.active_thickness for la in self.layers])

    @cached_property
    def x0_bounds(self) -> np.ndarray:
        """Layer boundaries in radiation lengths, shape ``(layers + 1,)``."""
        return np.concatenate([[0.0], np.cumsum([layer.x0_depth for layer in self.layers])])

    @cached_property
    def lambda_bounds(self) -> np.ndarray:
        """Layer boundaries in nuclear interaction lengths, shape ``(layers + 1,)``."""
        return np.concatenate([[0.0], np.cumsum([layer.lambda_depth for layer in self.layers])])

    @cached_property
    def lambda_pi_bounds(self) -> np.ndarray:
        """Layer boundaries in pion interaction lengths, shape ``(layers + 1,)``."""
        return np.concatenate([[0.0], np.cumsum([layer.lambda_pi_depth for layer in self.layers])])

    # ------------------------------------------------------------- MIP scale
    @cached_property
    def mip_mpv(self) -> np.ndarray:
        """Most probable MIP signal of each active layer in MeV, shape ``(layers,)``."""
        return np.array([la.active_material.mip_mpv(la.active_thickness) for la in self.layers])

    @cached_property
    def mip_mean(self) -> np.ndarray:
        """Mean MIP signal of each active layer in MeV, shape ``(layers,)``."""
        return np.array([la.active_material.mip_mean(la.active_thickness) for la in self.layers])

    @cached_property
    def landau_xi(self) -> np.ndarray:
        """Landau width of each active layer in MeV, shape ``(layers,)``."""
        return np.array([la.active_material.landau_xi(la.active_thickness) for la in self.layers])

    @cached_property
    def mip_loss(self) -> np.ndarray:
        """MeV a MIP loses in each whole layer (the sampling cell), shape ``(layers,)``."""
        return np.array([layer.mip_loss for layer in self.layers])

    @cached_property
    def mip_sampling_fraction(self) -> np.ndarray:
        """Fraction of a MIP's loss that is seen in each active layer, shape ``(layers,)``."""
        return self.mip_mean / self.mip_loss

    # ------------------------------------------------- effective medium (GFLASH)
    @cached_property
    def _effective(self) -> dict[str, float]:
        slabs = [s for layer in self.layers for s in layer._slabs()]
        thick = np.array([d for _, d in slabs])
        mass = np.array([m.density * d for m, d in slabs])
        z_eff = float(np.sum(mass * [m.z for m, _ in slabs]) / mass.sum())
        a_eff = float(np.sum(mass * [m.a for m, _ in slabs]) / mass.sum())
        x0 = float(thick.sum() / np.sum([d / m.x0 for m, d in slabs]))
        rho = float(mass.sum() / thick.sum())
        if self.homogeneous:
            mat = self.layers[0].active_material
            ec, rm = mat.critical_energy, mat.moliere_radius
        else:
            ec = 2.66 * (x0 / 10 * rho * z_eff / a_eff) ** 1.1
            rm = x0 * ES / ec
        absorbers = [la.absorber_material for la in self.layers if la.absorber_material]
        actives = [la.active_material for la in self.layers]
        if absorbers:
            z_pas = float(np.mean([m.z for m in absorbers]))
            z_act = float(np.mean([m.z for m in actives]))
            e_hat = 1.0 / (1.0 + 0.007 * (z_pas - z_act))
            f_s = x0 / float(np.mean([la.thickness for la in self.layers]))
        else:
            e_hat, f_s = 1.0, math.inf
        lam = float(thick.sum() / np.sum([d / m.lambda_int for m, d in slabs]))
        return dict(z=z_eff, a=a_eff, x0=x0, rho=rho, ec=ec, rm=rm, e_hat=e_hat, f_s=f_s, lam=lam)

    @property
    def z_eff(self) -> float:
        return self._effective["z"]

    @property
    def x0_eff(self) -> float:
        """Effective radiation length in mm (thickness-weighted mean of 1/X0)."""
        return self._effective["x0"]

    @property
    def critical_energy(self) -> float:
        """Effective critical energy in MeV."""
        return self._effective["ec"]

    @property
    def moliere_radius(self) -> float:
        """Effective Moliere radius in mm."""
        return self._effective["rm"]

    @property
    def lambda_eff(self) -> float:
        """Effective nuclear interaction length in mm."""
        return self._effective["lam"]

    @property
    def e_hat(self) -> float:
        """GFLASH e/mip ratio of the sampling structure (1 for homogeneous detectors)."""
        return self._effective["e_hat"]

    @property
    def sampling_frequency(self) -> float:
        """GFLASH F_S = X0_eff / layer thickness (infinite for homogeneous detectors)."""
        return self._effective["f_s"]

    # ------------------------------------------------------------------ I/O
    def to_dict(self) -> dict[str, Any]:
        """A plain dict (YAML/JSON-able) that :meth:`from_dict` turns back into this detector."""
        groups: list[dict[str, Any]] = []
        for layer in self.layers:
            entry = {
                "absorber": layer.absorber,
                "absorber_thickness": layer.absorber_thickness,
                "active": layer.active,
                "active_thickness": layer.active_thickness,
            }
            if groups and {k: v for k, v in groups[-1].items() if k != "repeat"} == entry:
                groups[-1]["repeat"] += 1
            else:
                groups.append({**entry, "repeat": 1})
        out: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "cells": {"nx": self.nx, "ny": self.ny, "pitch_x": self.pitch_x, "pitch_y": self.pitch_y},
            "field_tesla": self.field_tesla,
            "layers": groups,
        }
        if self.photoelectrons_per_mev is not None:
            out["photoelectrons_per_mev"] = self.photoelectrons_per_mev
        if self.excess_noise_factor != 1.0:
            out["excess_noise_factor"] = self.excess_noise_factor
        return out

    @classmethod
    def from_dict(cls, spec: dict[str, Any], source: str = "<dict>") -> Detector:
        """Build a detector from a dict; any problem raises a one-line :class:`CalolabError`."""
        return _parse(spec, source)

    @classmethod
    def from_yaml(cls, path: str | Path) -> Detector:
        from calolab.yamlfile import read_yaml

        return _parse(read_yaml(path, "detector"), str(path))

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def summary(self) -> str:
        """A few lines a physicist reads to check the detector."""
        return (
            f"{self.name}: {self.n_layers} layers x {self.nx} x {self.ny} cells of "
            f"{self.pitch_x:g} x {self.pitch_y:g} mm, depth {self.z_bounds[-1]:.0f} mm = "
            f"{self.x0_bounds[-1]:.1f} X0 = {self.lambda_bounds[-1]:.2f} lambda_I, "
            f"R_M {self.moliere_radius:.1f} mm, MIP MPV {self.mip_mpv.mean() * 1e3:.0f} keV"
            + (f", B = {self.field_tesla:g} T" if self.field_tesla else "")
        )


def _require(spec: dict, key: str, where: str, kind: type | tuple = (int, float)) -> Any:
    if not isinstance(spec, dict) or key not in spec:
        raise CalolabError(f"{where}: missing field {key!r}")
    value = spec[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise CalolabError(f"{where}.{key}: expected {getattr(kind, '__name__', 'a number')}, got {value!r}")
    return value


def _positive(spec: dict, key: str, where: str, allow_zero: bool = False) -> float:
    value = float(_require(spec, key, where))
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise CalolabError(f"{where}.{key}: must be {'>= 0' if allow_zero else 'positive'}, got {value!r}")
    return value


def _material(spec: dict, key: str, where: str) -> str:
    name = _require(spec, key, where, str)
    try:
        get_material(name)
    except CalolabError as exc:
        raise CalolabError(f"{where}.{key}: {exc}") from None
    return name


def _parse(spec: Any, source: str) -> Detector:
    if not isinstance(spec, dict):
        raise CalolabError(f"{source}: expected a mapping with name, cells and layers")
    name = _require(spec, "name", source, str)
    cells = _require(spec, "cells", source, dict)
    where = f"{source}: cells"
    nx, ny = (_require(cells, k, where, int) for k in ("nx", "ny"))
    if nx < 1 or ny < 1:
        raise CalolabError(f"{where}: nx and ny must be >= 1, got {nx} x {ny}")
    if "pitch" in cells:
        pitch_x = pitch_y = _positive(cells, "pitch", where)
    else:
        pitch_x, pitch_y = _positive(cells, "pitch_x", where), _positive(cells, "pitch_y", where)
    groups = _require(spec, "layers", source, list)
    if not groups:
        raise CalolabError(f"{source}: layers must list at least one layer")
    layers: list[Layer] = []
    for i, group in enumerate(groups):
        where = f"{source}: layers[{i}]"
        if not isinstance(group, dict):
            raise CalolabError(f"{where}: expected a mapping")
        check_fields(group, ("absorber", "absorber_thickness", "active", "active_thickness", "repeat"), where)
        absorber = group.get("absorber")
        if absorber is not None:
            absorber = _material(group, "absorber", where)
            absorber_thickness = _positive(group, "absorber_thickness", where, allow_zero=True)
        else:
            absorber_thickness = 0.0
        layer = Layer(
            active=_material(group, "active", where),
            active_thickness=_positive(group, "active_thickness", where),
            absorber=absorber,
            absorber_thickness=absorber_thickness,
        )
        repeat = group.get("repeat", 1)
        if not isinstance(repeat, int) or isinstance(repeat, bool) or repeat < 1:
            raise CalolabError(f"{where}.repeat: must be an integer >= 1, got {repeat!r}")
        layers.extend([layer] * repeat)
    field_tesla = float(spec.get("field_tesla", 0.0) or 0.0)
    pe = spec.get("photoelectrons_per_mev")
    if pe is not None:
        pe = _positive(spec, "photoelectrons_per_mev", source)
    enf = float(spec.get("excess_noise_factor", 1.0))
    if not enf >= 1.0:
        raise CalolabError(f"{source}.excess_noise_factor: must be >= 1, got {spec.get('excess_noise_factor')!r}")
    return Detector(
        name=name,
        layers=tuple(layers),
        nx=nx,
        ny=ny,
        pitch_x=pitch_x,
        pitch_y=pitch_y,
        field_tesla=field_tesla,
        photoelectrons_per_mev=pe,
        excess_noise_factor=enf,
        description=str(spec.get("description", "")),
        _source=source,
    )
