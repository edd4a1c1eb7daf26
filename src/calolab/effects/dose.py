"""Dose map: the ionising dose each cell received, from the energy a run of showers deposited.

The dose of a cell is the energy deposited in its active volume divided by the mass of
that volume (1 Gy = 1 J/kg, 1 krad = 10 Gy)::

    D[krad] = exposure * E_cum[MeV] * 1.602e-13 J/MeV / m_active[kg] / 10

with ``E_cum`` the visible energy summed over all events of the run (calolab energies are
what the active slab sees), ``m_active = density * pitch_x * pitch_y * active_thickness``
(on a cylindrical detector the bin's area, ``pi (r_out^2 - r_in^2) / n_alpha``, in place of
``pitch_x * pitch_y``) and ``exposure`` the number of such runs the detector has seen (the integrated exposure
in units of the simulated sample). A run of a few thousand showers gives nanorad-scale
doses, so realistic damage needs ``exposure`` of 1e9 or more; alternatively ``peak_dose``
rescales the map so that its hottest cell receives that dose (the shape of the map is the
same either way).

>>> import numpy as np
>>> from calolab.geometry import Detector
>>> from calolab.showers import Showers
>>> det = Detector.from_dict({"name": "toy", "cells": {"nx": 2, "ny": 2, "pitch": 10.0},
...     "layers": [{"absorber": "Fe", "absorber_thickness": 20, "active": "Scintillator",
...                 "active_thickness": 5, "repeat": 2}]})
>>> dense = np.zeros((3, *det.shape), np.float32); dense[:, 0, 0, 0] = 2.0; dense[0, 1, 1, 1] = 1.5
>>> s = Showers.from_dense(det, dense, particle=11, incident_energy=[1e4] * 3)
>>> cumulative_energy(s)[:, 0, 0].tolist(), cumulative_energy(s)[1, 1, 1].item()
([6.0, 0.0], 1.5)
>>> dose_map(s, DoseConfig(peak_dose=100.0))[1, 1, 1].item()  # krad, hottest cell gets 100
25.0
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calolab.effects.config import check_range
from calolab.errors import CalolabError
from calolab.geometry import Detector
from calolab.showers import Showers

JOULE_PER_MEV = 1.602176634e-13
GRAY_PER_KRAD = 10.0


@dataclass(frozen=True)
class DoseConfig:
    """How deposited energy becomes dose.

    Parameters
    ----------
    exposure
        Number of runs like the input one that the detector has integrated (dimensionless).
    peak_dose
        If given, dose in krad of the hottest cell; the map is scaled to it and ``exposure``
        is ignored.
    """

    exposure: float = 1.0
    peak_dose: float | None = None

    def __post_init__(self) -> None:
        check_range("dose exposure", self.exposure, 0.0)
        if self.peak_dose is not None:
            check_range("peak dose (krad)", self.peak_dose, 0.0)


def cumulative_energy(showers: Showers) -> np.ndarray:
    """Visible energy summed over all events, per cell, MeV, float64 ``(layers, nx, ny)``."""
    total = np.bincount(showers.cell, weights=showers.energy, minlength=showers.detector.n_cells)
    return total.reshape(showers.detector.shape)


def active_mass(detector: Detector) -> np.ndarray:
    """Mass of the active volume of one readout cell in each layer of a Cartesian grid, kg, ``(layers,)``.

    A cylindrical detector's bins differ in area from one r bin to the next: :func:`cell_mass`.
    """
    if detector.cylinder is not None:
        raise CalolabError(f"active_mass: detector {detector.name!r} has cylindrical (alpha, r) bins of unequal "
                           "area; use cell_mass for the mass of each bin")
    area_cm2 = detector.pitch_x * detector.pitch_y / 100.0
    if any(len(la.tiles) > 1 for la in detector.layers):
        raise CalolabError(f"active_mass: detector {detector.name!r} has layers with tiles of several sizes; "
                           "use cell_mass for the mass of each cell")
    grams = [la.active_material.density * area_cm2 * la.gang[0] * la.gang[1] * la.active_thickness / 10.0
             for la in detector.layers]
    return np.asarray(grams) / 1000.0


def cell_mass(detector: Detector) -> np.ndarray:
    """Mass of the active volume of every cell, kg, ``(layers, nx, ny)``.

    A grid's cells share their layer's :func:`active_mass`; a cylindrical detector's
    ``(alpha, r)`` bin has the area ``pi (r_out^2 - r_in^2) / n_alpha`` of its layer's
    bins; where the layers have bins of their own, the padded cells beyond them have mass 0.

    >>> from calolab.geometry import load_detector
    >>> m = cell_mass(load_detector("calochallenge-ds2"))  # 0.6 mm Si, r bins 4.65 mm wide
    >>> m.shape, round(float(m[0, 0, 1] / m[0, 0, 0]), 6)  # the second ring has 3x the first's area
    ((45, 16, 9), 3.0)
    """
    if detector.cylinder is None:  # each readout cell's tiles: gx x gy grid cells
        area_cm2 = detector.pitch_x * detector.pitch_y / 100.0 * detector.tile_size.prod(axis=-1)  # (L, nx, ny)
        grams = np.array([la.active_material.density * la.active_thickness / 10.0 for la in detector.layers])
        return grams[:, None, None] * area_cm2 / 1000.0
    area_cm2 = detector.cylinder.areas / 100.0  # (n_alpha, n_r), or (layers, nx, ny) for per-layer bins
    grams = np.array([la.active_material.density * la.active_thickness / 10.0 for la in detector.layers])
    return grams[:, None, None] * area_cm2.reshape(-1, detector.nx, detector.ny) / 1000.0


def energy_to_dose(detector: Detector, energy: np.ndarray) -> np.ndarray:
    """Dose in krad of per-cell energies ``energy`` (MeV, ``(layers, nx, ny)``) deposited in the active volumes."""
    energy = np.asarray(energy, np.float64).reshape(detector.shape)
    mass = cell_mass(detector)
    gray = np.divide(energy * JOULE_PER_MEV, mass, out=np.zeros_like(energy), where=mass > 0)  # padded bins: none
    return gray / GRAY_PER_KRAD


def dose_map(showers: Showers, config: DoseConfig = DoseConfig()) -> np.ndarray:
    """Dose per cell in krad, float64 ``(layers, nx, ny)``, from the energy ``showers`` deposited."""
    energy = cumulative_energy(showers)
    if np.any(energy < 0):
        raise CalolabError("dose map: cumulative cell energies must be >= 0 (negative hit energies in the input)")
    dose = energy_to_dose(showers.detector, energy)
    if config.peak_dose is None:
        return config.exposure * dose
    peak = dose.max(initial=0.0)
    if peak == 0:
        raise CalolabError("dose map: the showers deposit no energy, cannot scale to a peak dose")
    return dose * (config.peak_dose / peak)
