"""The nuclear hits of a pion shower: evaporation neutrons and spallation protons.

The energy that nuclear break-up takes from the hadronic part shows in the cells through
the particles released with it (see :func:`~calolab.simulation.hadron_composition.hadronic_signal`):
isolated, sub-MIP neutron hits around the shower in hydrogenous (scintillator) active layers
(:func:`neutron_hits`), dense proton hits of several MIPs in active layers without hydrogen
(:func:`proton_hits`, their dE/dx from Bethe).

Lengths in mm, energies in MeV.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from calolab.geometry import Detector
from calolab.geometry.materials import ELECTRON_MASS
from calolab.simulation.deposits import Deposits
from calolab.simulation.hadron_cascade import hadronic_positions
from calolab.simulation.sampling import crossing_signal, mean_crossing_signal, visible_per_mev

NEUTRON_HIT_MIP = 0.5  # mean visible energy of a neutron hit (recoil protons are quenched), in MIP MPVs
NEUTRON_PATH_MM = 100.0  # mean distance of a neutron hit from its production point, mm
# A proton is seen where it crosses an active layer: its kinetic energy there is T0 u^(1/p),
# uniform along its range R ~ T^p (Bragg-Kleeman, p = 1.75), with T0 exponential of mean
# PROTON_ENERGY (cascade protons, of order 100 MeV). It deposits dE/dx(T) / dE/dx_min times a
# MIP crossing signal (Bethe, I = 16 Z^0.9 eV), at most T: a proton of ~100 MeV stops within
# a few cm of copper, so each is one dense hit in one cell.
PROTON_ENERGY = 100.0
PROTON_RANGE_POWER = 1.75
PROTON_MIN_ENERGY = 1.0  # MeV: below this, the Bethe formula does not hold; the stop is capped at T anyway
PROTON_MASS = 938.272


def neutron_hits(detector: Detector, event: np.ndarray, e_vis: np.ndarray, frac: np.ndarray, lam0: np.ndarray,
                  z0: np.ndarray, vertex: np.ndarray, slope: np.ndarray, cos_axis: np.ndarray,
                  rng: np.random.Generator, seen: np.ndarray | None = None) -> Deposits:
    """Isolated neutron hits carrying ``e_vis`` EM-equivalent visible MeV, arrays (m,).

    Neutrons are made where the hadronic part deposits energy (the layer shares ``frac`` and
    the same radial profile) and give one hit each at an isotropic, exponential distance of mean
    :data:`NEUTRON_PATH_MM`; a hit's visible energy is exponential with mean
    :data:`NEUTRON_HIT_MIP` MIP MPVs. Hits that fall outside the stack, or in a layer whose
    active medium does not see neutrons (``seen``, bool per layer; ``None``: all see them), are lost.
    """
    if not np.any(e_vis > 0):
        return Deposits.empty()
    m, n_layers = len(e_vis), detector.n_layers
    hit_mev = NEUTRON_HIT_MIP * detector.mip_mpv  # visible MeV per hit, per layer
    counts = rng.poisson(e_vis[:, None] * frac * (visible_per_mev(detector) / hit_mev)[None, :])
    owner = np.repeat(np.repeat(np.arange(m), n_layers), counts.ravel())
    layer = np.repeat(np.tile(np.arange(n_layers), m), counts.ravel())
    x, y = hadronic_positions(detector, owner, layer, lam0, z0, vertex, slope, cos_axis, rng)
    distance = NEUTRON_PATH_MM * rng.standard_exponential(len(layer))
    cos_t = rng.uniform(-1.0, 1.0, len(layer))
    phi = rng.uniform(0.0, 2.0 * np.pi, len(layer))
    sin_t = np.sqrt(1.0 - cos_t**2)
    z = detector.z_active[layer] + distance * cos_t
    layer = np.searchsorted(detector.z_bounds, z, side="right") - 1
    inside = (layer >= 0) & (layer < n_layers)
    if seen is not None:
        inside[inside] = seen[layer[inside]]
    layer = layer[inside]
    x = (x + distance * sin_t * np.cos(phi))[inside]
    y = (y + distance * sin_t * np.sin(phi))[inside]
    energy = hit_mev[layer] * rng.standard_exponential(len(layer))
    return Deposits(event[owner[inside]], layer, x, y, energy)


def _ionisation_ratio(kinetic: np.ndarray, z: np.ndarray | float) -> np.ndarray:
    """dE/dx of protons of ``kinetic`` MeV over the minimum, in a material of atomic number ``z`` (Bethe,
    no density effect), at least 1."""
    gamma = 1.0 + kinetic / PROTON_MASS
    beta2 = 1.0 - 1.0 / gamma**2
    two_mc2_over_i = 2.0 * ELECTRON_MASS / (16e-6 * np.asarray(z, float) ** 0.9)  # I = 16 Z^0.9 eV
    bethe = (np.log(two_mc2_over_i * beta2 * gamma**2) - beta2) / beta2
    bg2_min = 3.5**2  # minimum ionisation at beta gamma ~ 3.5
    beta2_min = bg2_min / (1.0 + bg2_min)
    return np.maximum(bethe / ((np.log(two_mc2_over_i * bg2_min) - beta2_min) / beta2_min), 1.0)


def _proton_dedx(kinetic: np.ndarray, z: np.ndarray | float, crossing: np.ndarray | float) -> np.ndarray:
    """Signal of a proton of ``kinetic`` MeV crossing an active layer of atomic number ``z`` whose mean
    MIP-crossing signal is ``crossing`` MeV, in those crossing signals: its dE/dx ratio, capped where the
    proton stops in the layer."""
    return np.minimum(_ionisation_ratio(kinetic, z), kinetic / crossing)


def _proton_kinetic(v: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Kinetic energies (MeV) of protons where they cross an active layer, from uniforms ``v`` and ``u``:
    ``T0 u^(1/p)`` with ``T0 = -PROTON_ENERGY ln v`` exponential."""
    t0 = -PROTON_ENERGY * np.log(np.maximum(v, 1e-300))
    return np.maximum(t0 * u ** (1.0 / PROTON_RANGE_POWER), PROTON_MIN_ENERGY)


@lru_cache(maxsize=64)
def _mean_proton_dedx(z: float, crossing: float) -> float:
    """Mean of :func:`_proton_dedx` over the protons' kinetic energies (midpoint quadrature in v, u)."""
    n = 256
    mid = (np.arange(n) + 0.5) / n
    v, u = (g.ravel() for g in np.meshgrid(mid, mid))
    return float(_proton_dedx(_proton_kinetic(v, u), z, crossing).mean())


def mean_proton_signal(detector: Detector) -> np.ndarray:
    """Mean signal of one proton hit in each active layer, in mean MIP-crossing signals, (layers,).

    >>> from calolab.geometry import load_detector
    >>> round(float(mean_proton_signal(load_detector("cusi"))[0]), 1)
    5.3
    """
    return np.array([_mean_proton_dedx(float(la.active_material.z), float(c))
                     for la, c in zip(detector.layers, mean_crossing_signal(detector), strict=True)])


def proton_hits(detector: Detector, event: np.ndarray, e_vis: np.ndarray, frac: np.ndarray, lam0: np.ndarray,
                 z0: np.ndarray, vertex: np.ndarray, slope: np.ndarray, cos_axis: np.ndarray,
                 rng: np.random.Generator) -> Deposits:
    """Dense hits of spallation protons carrying ``e_vis`` EM-equivalent visible MeV, arrays (m,).

    Protons are made where the hadronic part deposits energy (the layer shares ``frac`` and
    the same radial profile); each gives one hit, a MIP crossing signal times its dE/dx ratio
    (:func:`_proton_dedx`), so their number is the visible energy over the mean hit.
    """
    if not np.any(e_vis > 0):
        return Deposits.empty()
    m, n_layers = len(e_vis), detector.n_layers
    crossing = mean_crossing_signal(detector)
    hit_mev = mean_proton_signal(detector) * crossing
    counts = rng.poisson(e_vis[:, None] * frac * (visible_per_mev(detector) / hit_mev)[None, :])
    owner = np.repeat(np.repeat(np.arange(m), n_layers), counts.ravel())
    layer = np.repeat(np.tile(np.arange(n_layers), m), counts.ravel())
    x, y = hadronic_positions(detector, owner, layer, lam0, z0, vertex, slope, cos_axis, rng)
    kinetic = _proton_kinetic(rng.random(len(layer)), rng.random(len(layer)))
    z = np.array([la.active_material.z for la in detector.layers], float)
    energy = _proton_dedx(kinetic, z[layer], crossing[layer]) * crossing_signal(detector, layer, rng)
    return Deposits(event[owner], layer, x, y, energy)
