"""Detector geometry: an ordered stack of sampling layers over a grid of cells.

A layer (:class:`~calolab.geometry.layer.Layer`) is a stack of slabs, one of them active and
read out; a homogeneous calorimeter's layers are all active material. Cells are indexed
``(layer, x, y)``; the grid is centred on the beam axis, ``z`` runs along the layers.
A cylindrical detector (``cells: {kind: cylindrical, r_edges, n_alpha}``,
:mod:`calolab.geometry.cylinder`) stores ``(layer, alpha, r)`` bins in those three axes.
Lengths in mm, energies in MeV.

In YAML (or a dict) a layer group is either the shorthand ``{absorber, absorber_thickness,
active, active_thickness, repeat}`` or a stack ``{slabs: [{material, thickness, active}],
readout, repeat}``. ``materials:`` defines compounds by composition
(:func:`~calolab.geometry.compounds.materials_from_spec`); ``readout:`` is every layer's
default readout (:class:`~calolab.geometry.layer.Readout`), which a group's ``readout:``
refines field by field.

>>> det = Detector.from_dict({
...     "name": "toy", "cells": {"nx": 4, "ny": 4, "pitch": 10.0},
...     "materials": {"CuZn37": {"density": 8.44, "composition": {"Cu": 0.63, "Zn": 0.37}}},
...     "readout": {"photoelectrons_per_mip": 15, "sipm_pixels": 1156},
...     "layers": [{"slabs": [{"material": "CuZn37", "thickness": 2}, {"material": "Fe", "thickness": 16},
...                           {"material": "Scintillator", "thickness": 5, "active": True},
...                           {"material": "G10", "thickness": 1}], "repeat": 3}]})
>>> det.shape, det.n_cells, det.layers[0].absorber
((3, 4, 4), 48, 'Fe')
>>> round(float(det.x0_bounds[-1]), 2)  # depth in radiation lengths
3.18
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from calolab.errors import CalolabError
from calolab.geometry.cylinder import CylindricalGrid
from calolab.geometry.cylinder_layers import LayeredCylinder
from calolab.geometry.layer import Layer, Readout
from calolab.geometry.tiling import Tiles, tile_map

ES = 21.2  # MeV, scale energy of multiple scattering (Moliere radius = X0 Es / Ec)


@dataclass(frozen=True)
class Detector:
    """A calorimeter: ``layers`` front to back over an ``nx`` x ``ny`` grid of cells.

    Parameters
    ----------
    _pitch_x, _pitch_y
        Cell size in mm (read as ``pitch_x``, ``pitch_y``); the grid is centred on x = y = 0.
    cylinder
        For a cylindrical detector its (alpha, r) bins (``nx = n_alpha``, ``ny = n_r``; the
        pitches are 0 and reading them raises :class:`CalolabError`), a
        :class:`~calolab.geometry.cylinder_layers.LayeredCylinder` when the layers' bins
        differ (``nx``, ``ny`` the largest); ``None`` for a grid.
    field_tesla
        Magnetic field along +y in T (bends charged tracks in x).
    materials
        The YAML definitions of the materials not built in (name -> density, composition),
        kept so that :meth:`to_dict` writes them back.
    """

    name: str
    layers: tuple[Layer, ...]
    nx: int
    ny: int
    _pitch_x: float
    _pitch_y: float
    field_tesla: float = 0.0
    cylinder: CylindricalGrid | LayeredCylinder | None = None
    description: str = ""
    materials: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    _source: str = field(default="", compare=False, repr=False)

    # ----------------------------------------------------------------- shape
    def _cartesian(self, what: str) -> None:
        if self.cylinder is not None:
            raise CalolabError(f"detector {self.name!r} has cylindrical (alpha, r) cells: {what} does not apply")

    @property
    def pitch_x(self) -> float:
        """Cell size along x in mm (a Cartesian grid's only)."""
        self._cartesian("pitch_x")
        return self._pitch_x

    @property
    def pitch_y(self) -> float:
        self._cartesian("pitch_y")
        return self._pitch_y

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
        return not any(layer.passive for layer in self.layers)

    @property
    def readout(self) -> Readout | None:
        """The readout every layer shares, or ``None`` if the layers differ."""
        first = self.layers[0].readout
        return first if all(layer.readout == first for layer in self.layers) else None

    def with_readout(self, readout: Readout) -> Detector:
        """This detector with ``readout`` on every layer (``Readout()``: the deposited energy as it is)."""
        import dataclasses

        return dataclasses.replace(self, layers=tuple(dataclasses.replace(la, readout=readout) for la in self.layers))

    def with_absorber_thickness(self, thickness: Any) -> Detector:
        """This detector with the main absorber slab of each layer ``thickness[i]`` mm thick."""
        import dataclasses

        thickness = np.broadcast_to(np.asarray(thickness, float), (self.n_layers,))
        layers = tuple(la.with_absorber_thickness(float(t)) for la, t in zip(self.layers, thickness, strict=True))
        return dataclasses.replace(self, layers=layers)

    @cached_property
    def gang(self) -> np.ndarray:
        """Grid cells per innermost readout cell along x and y of each layer, int ``(layers, 2)``."""
        return np.array([layer.gang for layer in self.layers], np.int64).reshape(self.n_layers, 2)

    @property
    def uniform(self) -> bool:
        """True if every layer is read out in the grid's own cells."""
        return not any(layer.tiles for layer in self.layers)

    @cached_property
    def tile_anchor(self) -> np.ndarray:
        """Flat in-layer index ``ix * ny + iy`` of each grid cell's readout cell, int64 ``(layers, nx, ny)``."""
        return np.stack([tile_map(la.tiles, self.nx, self.ny)[0] for la in self.layers])

    @cached_property
    def tile_size(self) -> np.ndarray:
        """Grid cells ``(gx, gy)`` of each grid cell's readout cell, int64 ``(layers, nx, ny, 2)``."""
        return np.stack([tile_map(la.tiles, self.nx, self.ny)[1] for la in self.layers])

    @cached_property
    def readout_cells(self) -> tuple[np.ndarray, np.ndarray]:
        """The readout cells of each layer: ``offsets`` (layers + 1,) into ``cells``, their flat cell indices.

        A grid's readout cell is stored at its first grid cell (the one that is its own anchor); a
        cylinder's are its bins (where the layers' bins differ, the padded cells are none).
        """
        if self.cylinder is not None:
            real = self.cylinder.mask(self.n_layers).reshape(self.n_layers, -1)
        else:
            anchor = self.tile_anchor.reshape(self.n_layers, -1)
            real = anchor == np.arange(anchor.shape[1])
        return np.concatenate([[0], np.cumsum(real.sum(axis=1))]), np.flatnonzero(real)

    def cell_centres(self, layer: np.ndarray, ix: np.ndarray, iy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Centres (x, y) in mm of the readout cells whose first grid cell is ``(layer, ix, iy)``.

        A layer whose cells gang ``gx`` x ``gy`` grid cells stores each readout cell at its first
        (lowest-index) grid cell; its centre lies ``(gx - 1) / 2`` grid cells beyond.
        """
        layer, ix, iy = (np.asarray(v) for v in (layer, ix, iy))
        if self.cylinder is not None:  # (ix, iy) are (alpha, r) bins
            return self.cylinder.centres(ix, iy, layer)
        size = self.tile_size[layer, ix, iy]
        gx, gy = size[..., 0], size[..., 1]
        return (self.x_edges[0] + (ix + 0.5 * gx) * self.pitch_x, self.y_edges[0] + (iy + 0.5 * gy) * self.pitch_y)

    @cached_property
    def x_edges(self) -> np.ndarray:
        """Cell edges in x, mm, shape ``(nx + 1,)``."""
        self._cartesian("x_edges")
        return (np.arange(self.nx + 1) - self.nx / 2) * self.pitch_x

    @cached_property
    def y_edges(self) -> np.ndarray:
        self._cartesian("y_edges")
        return (np.arange(self.ny + 1) - self.ny / 2) * self.pitch_y

    # ---------------------------------------------------- lateral acceptance
    @property
    def half_width(self) -> tuple[float, float]:
        """Lateral half-extent ``(x, y)`` of the cells in mm: half a grid's width and height, a cylinder's r_max."""
        if self.cylinder is not None:
            return (self.cylinder.r_max, self.cylinder.r_max)
        return (self.nx * self.pitch_x / 2, self.ny * self.pitch_y / 2)

    def contains(self, x: np.ndarray, y: np.ndarray, layer: np.ndarray | None = None) -> np.ndarray:
        """Whether points ``(x, y)`` mm fall on a readout cell, bool of their broadcast shape.

        A grid's cells span ``[x_edges[0], x_edges[-1])`` x ``[y_edges[0], y_edges[-1])``; a
        cylinder's ``r_edges[0] <= r < r_edges[-1]`` (its inner hole, if any, has no cells).
        Where a cylinder's layers have bins of their own, ``layer`` picks each point's layer;
        without it a point on a bin of any layer counts.

        >>> from calolab.geometry import load_detector
        >>> ds2 = load_detector("calochallenge-ds2")  # r < 41.85 mm
        >>> ds2.contains(np.array([0.0, 30.0, 40.0]), np.array([0.0, 30.0, 0.0])).tolist()
        [True, False, True]
        """
        x, y = np.asarray(x, float), np.asarray(y, float)
        if self.cylinder is not None:
            return self.cylinder.contains(x, y, layer)
        xe, ye = self.x_edges, self.y_edges
        return (x >= xe[0]) & (x < xe[-1]) & (y >= ye[0]) & (y < ye[-1])

    def beyond_side(self, x: np.ndarray, y: np.ndarray, layer: np.ndarray | None = None) -> np.ndarray:
        """Whether points ``(x, y)`` mm lie beyond the detector's side, bool: a track there has left it.

        Past the half width ``|x| > half_width[0]`` or ``|y| > half_width[1]`` of a grid, past the
        outer radius ``r > r_max`` of a cylinder (whose inner hole, if any, is inside the detector):
        of each point's ``layer`` where the layers' bins differ, else of the widest layer.
        """
        x, y = np.asarray(x, float), np.asarray(y, float)
        if self.cylinder is not None:
            return np.hypot(x, y) > (self.cylinder.r_max if layer is None else self.cylinder.outer_radius(layer))
        half_x, half_y = self.half_width
        return (np.abs(x) > half_x) | (np.abs(y) > half_y)

    @cached_property
    def z_bounds(self) -> np.ndarray:
        """Layer front faces and the back face in mm, shape ``(layers + 1,)``."""
        return np.concatenate([[0.0], np.cumsum([layer.thickness for layer in self.layers])])

    @cached_property
    def z_active(self) -> np.ndarray:
        """Depth of the middle of each active slab in mm, shape ``(layers,)``."""
        behind = np.array([sum(s.thickness for s in la.slabs[la.active_index + 1:]) for la in self.layers], float)
        return self.z_bounds[1:] - behind - 0.5 * np.array([la.active_thickness for la in self.layers])

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
        slabs = [(s.material, s.thickness) for layer in self.layers for s in layer.slabs if s.thickness > 0]
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
        passive_z = [la.passive_z for la in self.layers if la.passive]
        actives = [la.active_material for la in self.layers]
        if passive_z:
            z_pas = float(np.mean(passive_z))
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
        """A plain dict (YAML/JSON-able) that :meth:`from_dict` turns back into this detector.

        Layers are written as slab stacks, consecutive equal layers as one group with ``repeat``;
        a readout all layers share is written once, at the top.
        """
        shared = self.readout
        groups: list[dict[str, Any]] = []
        for k, layer in enumerate(self.layers):
            entry = layer.to_dict()
            if shared is not None:
                entry.pop("readout", None)
            if layer.tiles:
                entry["cells"] = _tiles_spec(layer.tiles, self.pitch_x, self.pitch_y)
            elif self.cylinder is not None and (bins := self.cylinder.layer_cells(k)) is not None:
                entry["cells"] = bins  # this layer's own (alpha, r) bins
            if groups and {k: v for k, v in groups[-1].items() if k != "repeat"} == entry:
                groups[-1]["repeat"] += 1
            else:
                groups.append({**entry, "repeat": 1})
        out: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "cells": self.cylinder.to_dict() if self.cylinder else {"nx": self.nx, "ny": self.ny,
                                                                    "pitch_x": self.pitch_x, "pitch_y": self.pitch_y},
            "field_tesla": self.field_tesla,
        }
        if self.materials:
            out["materials"] = self.materials
        if shared is not None and not shared.is_ideal:
            out["readout"] = shared.to_dict()
        out["layers"] = groups
        return out

    @classmethod
    def from_dict(cls, spec: dict[str, Any], source: str = "<dict>") -> Detector:
        """Build a detector from a dict; any problem raises a one-line :class:`CalolabError`."""
        from calolab.geometry.spec import parse_detector

        return parse_detector(spec, source)

    @classmethod
    def from_yaml(cls, path: str | Path) -> Detector:
        from calolab.geometry.spec import parse_detector
        from calolab.yamlfile import read_yaml

        return parse_detector(read_yaml(path, "detector"), str(path))

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def summary(self) -> str:
        """A few lines a physicist reads to check the detector."""
        cells = self.cylinder.describe() if self.cylinder else (
            f"{self.nx} x {self.ny} cells of {self.pitch_x:g} x {self.pitch_y:g} mm")
        return (
            f"{self.name}: {self.n_layers} layers x {cells}, depth {self.z_bounds[-1]:.0f} mm = "
            f"{self.x0_bounds[-1]:.1f} X0 = {self.lambda_bounds[-1]:.2f} lambda_I, "
            f"R_M {self.moliere_radius:.1f} mm, MIP MPV {self.mip_mpv.mean() * 1e3:.0f} keV"
            + (f", B = {self.field_tesla:g} T" if self.field_tesla else "")
            + ("" if self.uniform else f", coarser readout cells in {sum(bool(la.tiles) for la in self.layers)} layers")
            + _readout_words(self.readout, self.layers)
        )


def _tiles_spec(tiles: tuple[Tiles, ...], pitch_x: float, pitch_y: float) -> dict[str, Any] | list[dict[str, Any]]:
    """The YAML ``cells:`` of a layer's tiles (the inverse of :func:`calolab.geometry.spec.parse_detector`'s)."""
    regions = []
    for t in tiles:
        entry: dict[str, Any] = {"pitch_x": t.gang[0] * pitch_x, "pitch_y": t.gang[1] * pitch_y}
        if t.within is not None:
            entry |= {"within_x": t.within[0] * pitch_x, "within_y": t.within[1] * pitch_y}
        regions.append(entry)
    return regions[0] if len(regions) == 1 and tiles[0].within is None else regions


def _readout_words(shared: Readout | None, layers: tuple[Layer, ...]) -> str:
    """The readout in a few words for :meth:`Detector.summary` (nothing for an ideal one)."""
    if shared is None:
        return f", readout per layer ({len({la.readout for la in layers})} kinds)"
    if shared.is_ideal:
        return ""
    words = {"photoelectrons_per_mip": "{:g} pe/MIP", "photoelectrons_per_mev": "{:g} pe/MeV",
             "excess_noise_factor": "F = {:g}", "sipm_pixels": "{} SiPM pixels", "noise_mip": "noise {:g} MIP",
             "threshold_mip": "threshold {:g} MIP"}
    return ", readout " + ", ".join(words[k].format(v) for k, v in shared.to_dict().items())
