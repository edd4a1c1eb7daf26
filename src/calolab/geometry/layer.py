"""A sampling layer: an ordered stack of slabs, one of them read out, and its readout.

A :class:`Layer` is any number of :class:`Slab` s front to back (absorber plates, cassette
steel, PCB, air gaps, the sensor), exactly one of them active. Its :class:`Readout` says how
the energy deposited in the active slab becomes a signal: photostatistics with an excess
noise factor, SiPM pixel saturation, Gaussian electronic noise and a threshold in MIP.
Lengths in mm, energies in MeV.

>>> from calolab.geometry.materials import get_material
>>> layer = Layer((Slab(get_material("Pb"), 2.1), Slab(get_material("CuW"), 1.2),
...                Slab(get_material("Si"), 0.3, active=True)))
>>> layer.active, layer.absorber, round(layer.thickness, 2), round(layer.x0_depth, 3)
('Si', 'Pb', 3.6, 0.604)
>>> Layer.simple("Si", 0.5, "W", 3.5) == Layer((Slab(get_material("W"), 3.5), Slab(get_material("Si"), 0.5, True)))
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any

from calolab.errors import CalolabError
from calolab.geometry.materials import Material, get_material
from calolab.geometry.tiling import Tiles


@dataclass(frozen=True)
class Readout:
    """How an active slab's deposited energy becomes the cell signal (all optional).

    Parameters
    ----------
    photoelectrons_per_mip
        Mean photoelectrons of the most probable MIP signal of the layer (Poisson statistics);
        ``None`` for none.
    photoelectrons_per_mev
        The same per MeV deposited (the light yield of a crystal); give one of the two.
    excess_noise_factor
        F >= 1 of the photodetector's gain: N photoelectrons give a signal of variance F N.
    sipm_pixels
        Pixels of a SiPM: N photoelectrons fire N_pix (1 - exp(-N / N_pix)) of them; ``None``
        for a linear photodetector.
    noise_mip
        Gaussian electronic noise per cell, in units of the layer's MIP MPV.
    threshold_mip
        Cells below this signal (MIP MPV units) are dropped; with noise it must be at least
        twice the noise, so that only the Gaussian tail of empty cells passes.
    """

    photoelectrons_per_mip: float | None = None
    photoelectrons_per_mev: float | None = None
    excess_noise_factor: float = 1.0
    sipm_pixels: int | None = None
    noise_mip: float = 0.0
    threshold_mip: float = 0.0

    def __post_init__(self) -> None:
        if self.photoelectrons_per_mip is not None and self.photoelectrons_per_mev is not None:
            raise CalolabError("give photoelectrons_per_mip or photoelectrons_per_mev, not both")
        if self.sipm_pixels is not None and self.pe_per_mev(1.0) == 0:
            raise CalolabError("sipm_pixels: a SiPM needs photoelectrons_per_mip (or _per_mev)")
        if self.noise_mip > 0 and self.threshold_mip < 2 * self.noise_mip:
            raise CalolabError(f"threshold_mip ({self.threshold_mip:g}) must be at least twice noise_mip "
                               f"({self.noise_mip:g}), or every empty cell would carry noise")

    @property
    def is_ideal(self) -> bool:
        """True if the readout adds nothing (the signal is the deposited energy)."""
        return self == Readout()

    def pe_per_mev(self, mip_mpv: float) -> float:
        """Photoelectrons per MeV for a layer whose MIP MPV is ``mip_mpv`` MeV (0 for no photostatistics)."""
        if self.photoelectrons_per_mev is not None:
            return self.photoelectrons_per_mev
        return self.photoelectrons_per_mip / mip_mpv if self.photoelectrons_per_mip else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The fields that differ from an ideal readout."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) != f.default}

    @classmethod
    def from_dict(cls, spec: Any, where: str, base: Readout | None = None) -> Readout:
        """``base`` (default ideal) with the fields of ``spec`` replaced; bad values raise a one-line error."""
        from calolab.config import check_fields

        base = base or cls()
        if spec is None:
            return base
        if not isinstance(spec, dict):
            raise CalolabError(f"{where}: expected a mapping with some of {', '.join(f.name for f in fields(cls))}")
        check_fields(spec, [f.name for f in fields(cls)], where)
        values: dict[str, Any] = {}
        for key, value in spec.items():
            if value is None and key in ("photoelectrons_per_mip", "photoelectrons_per_mev", "sipm_pixels"):
                values[key] = None
                continue
            if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
                raise CalolabError(f"{where}.{key}: expected a number, got {value!r}")
            if key == "sipm_pixels":
                if value != int(value) or value < 1:
                    raise CalolabError(f"{where}.sipm_pixels: must be an integer >= 1, got {value!r}")
                value = int(value)
            elif key == "excess_noise_factor":
                if value < 1:
                    raise CalolabError(f"{where}.excess_noise_factor: must be >= 1, got {value!r}")
            elif key.startswith("photoelectrons") and value <= 0:
                raise CalolabError(f"{where}.{key}: must be positive, got {value!r}")
            elif value < 0:
                raise CalolabError(f"{where}.{key}: must be >= 0, got {value!r}")
            values[key] = float(value) if key != "sipm_pixels" else value
        if "photoelectrons_per_mip" in values and values["photoelectrons_per_mip"] is not None:
            values.setdefault("photoelectrons_per_mev", None)
        elif "photoelectrons_per_mev" in values and values["photoelectrons_per_mev"] is not None:
            values.setdefault("photoelectrons_per_mip", None)
        try:
            return replace(base, **values)
        except CalolabError as err:  # the combination is wrong: say where
            raise CalolabError(f"{where}: {err}") from None


@dataclass(frozen=True)
class Slab:
    """A slab of ``material``, ``thickness`` mm thick; ``active`` if it is the layer's sensor."""

    material: Material
    thickness: float
    active: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"material": self.material.name, "thickness": self.thickness}
        return out | ({"active": True} if self.active else {})


@dataclass(frozen=True)
class Layer:
    """One sampling layer: ``slabs`` front to back, exactly one active, and its ``readout``.

    ``tiles``: the layer's readout cells as blocks of grid cells, by region
    (:mod:`calolab.geometry.tiling`; empty: the grid's own cells). One region without bounds
    is a uniform tile size, e.g. strips: ``(1, n)`` is a strip long in y.
    """

    slabs: tuple[Slab, ...]
    readout: Readout = field(default_factory=Readout)
    tiles: tuple[Tiles, ...] = ()

    def __post_init__(self) -> None:
        n_active = sum(s.active for s in self.slabs)
        if n_active != 1:
            raise CalolabError(f"a layer needs exactly one active slab, got {n_active}")
        if any(min(t.gang) < 1 for t in self.tiles):
            raise CalolabError(f"a layer's cells gang whole numbers of grid cells, got {self.tiles}")

    @property
    def gang(self) -> tuple[int, int]:
        """Grid cells ``(gx, gy)`` of the layer's innermost readout cells ((1, 1) for the grid's own)."""
        return self.tiles[0].gang if self.tiles else (1, 1)

    @classmethod
    def simple(cls, active: str, active_thickness: float, absorber: str | None = None,
               absorber_thickness: float = 0.0, readout: Readout | None = None) -> Layer:
        """An absorber slab (if any, and thicker than 0) followed by an active slab; material names."""
        slabs = [Slab(get_material(active), active_thickness, active=True)]
        if absorber is not None and absorber_thickness > 0:
            slabs.insert(0, Slab(get_material(absorber), absorber_thickness))
        return cls(tuple(slabs), readout or Readout())

    # ---------------------------------------------------------------- slabs
    @property
    def active_index(self) -> int:
        return next(i for i, s in enumerate(self.slabs) if s.active)

    @property
    def active_slab(self) -> Slab:
        return self.slabs[self.active_index]

    @property
    def passive(self) -> tuple[Slab, ...]:
        """The slabs that are not read out (absorber, support, gaps), front to back."""
        return tuple(s for s in self.slabs if not s.active and s.thickness > 0)

    @property
    def active_offset(self) -> float:
        """Depth of the active slab's front face from the layer's front face, mm."""
        return sum(s.thickness for s in self.slabs[: self.active_index])

    @property
    def active(self) -> str:
        """Name of the active material."""
        return self.active_slab.material.name

    @property
    def active_material(self) -> Material:
        return self.active_slab.material

    @property
    def active_thickness(self) -> float:
        return self.active_slab.thickness

    @property
    def main_absorber(self) -> Slab | None:
        """The passive slab with the most radiation lengths (``None`` for a homogeneous layer)."""
        passive = self.passive
        return max(passive, key=lambda s: s.thickness / s.material.x0) if passive else None

    @property
    def absorber(self) -> str | None:
        """Name of the main absorber's material (see :attr:`main_absorber`)."""
        slab = self.main_absorber
        return slab.material.name if slab else None

    @property
    def absorber_material(self) -> Material | None:
        slab = self.main_absorber
        return slab.material if slab else None

    @property
    def absorber_thickness(self) -> float:
        """Thickness of the main absorber slab in mm (0 for a homogeneous layer)."""
        slab = self.main_absorber
        return slab.thickness if slab else 0.0

    @property
    def passive_z(self) -> float | None:
        """Atomic number of the passive slabs, weighted by their radiation lengths."""
        passive = self.passive
        if not passive:
            return None
        if len(passive) == 1:
            return passive[0].material.z
        weight = [s.thickness / s.material.x0 for s in passive]
        return sum(w * s.material.z for w, s in zip(weight, passive, strict=True)) / sum(weight)

    def with_absorber_thickness(self, thickness: float) -> Layer:
        """This layer with its main absorber slab ``thickness`` mm thick."""
        slab = self.main_absorber
        if slab is None:
            raise CalolabError("a homogeneous layer has no absorber to change")
        i = self.slabs.index(slab)
        return replace(self, slabs=(*self.slabs[:i], replace(slab, thickness=float(thickness)), *self.slabs[i + 1:]))

    # ---------------------------------------------------------------- depth
    @property
    def thickness(self) -> float:
        return sum(s.thickness for s in self.slabs)

    @property
    def x0_depth(self) -> float:
        """Thickness in radiation lengths."""
        return sum(s.thickness / s.material.x0 for s in self.slabs)

    @property
    def lambda_depth(self) -> float:
        """Thickness in nuclear interaction lengths."""
        return sum(s.thickness / s.material.lambda_int for s in self.slabs)

    @property
    def lambda_pi_depth(self) -> float:
        """Thickness in pion interaction lengths."""
        return sum(s.thickness / s.material.lambda_pi for s in self.slabs)

    @property
    def mip_loss(self) -> float:
        """Mean energy in MeV a MIP loses crossing the whole layer (every slab)."""
        return sum(s.material.mip_mean(s.thickness) for s in self.slabs)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"slabs": [s.to_dict() for s in self.slabs]}
        return out | ({"readout": self.readout.to_dict()} if not self.readout.is_ideal else {})
