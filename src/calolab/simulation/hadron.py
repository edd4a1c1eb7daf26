"""Charged-pion showers: a MIP track, a first interaction, then pi0 sub-showers and a hadronic part.

A pion crosses the calorimeter as a minimum-ionising track until its first inelastic
interaction, at a depth ``l0 = -ln(u) lambda_I`` along its path (pions that get through
stay pure MIPs). There the energy left splits, event by event, into

* an electromagnetic fraction ``f_em`` (Wigmans, Gabriel: ``<f_em> = 1 - (E/E0)^(k-1)``,
  Beta-distributed around that mean), carried by a few pi0 sub-showers that start at
  ``l0`` and where secondary hadrons interact further on, simulated with
  :func:`~calolab.simulation.em.em_showers` so that their dense cores appear in the cells
  as they do in data;
* a hadronic part with the Grindhammer-Rudowicz-Peters longitudinal profile (a Gamma
  function in lambda_I after ``l0``), a radial profile ``2 r R^2 / (r^2 + R^2)^2`` that
  widens with depth, a visible response lower than the electromagnetic one by ``h/e``,
  and sampling fluctuations larger than electromagnetic ones because its charged tracks
  come in clusters, the secondaries of one nuclear interaction: fewer, larger units of
  energy than the independent tracks of an electromagnetic shower, spread over
  neighbouring cells. A share of it, fluctuating from event to event, breaks up nuclei and
  is invisible; the evaporation neutrons that go with it leave isolated, sub-MIP hits
  around the shower in hydrogenous (scintillator) active layers, and in active layers
  without hydrogen (silicon) the spallation protons released with it leave dense hits of
  several MIPs. Those hits, and the dense pi0 cores, are what software compensation reads
  from the cells.

On a sampling calorimeter an EM-equivalent MeV of the hadronic part gives, on average,
``h/e`` times the visible energy of an MeV of electromagnetic shower (same
:func:`~calolab.simulation.sampling.crossings_per_mev` and crossing signal); energy that
leaks out at the back or off the grid is lost. The calorimeter is non-compensating
(``e/h > 1``), so the pion response is below the electron one and rises with energy.

Lengths in mm, energies in MeV; formulas marked GeV take E in GeV.

>>> import numpy as np
>>> from calolab.geometry import load_detector
>>> det = load_detector("ahcal")
>>> round(e_over_h(det), 2), round(float(mean_em_fraction(det, np.array([10e3]))[0]), 3)
(1.35, 0.38)
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np
from scipy.special import gammainc

from calolab.geometry import Detector
from calolab.geometry.materials import ELECTRON_MASS
from calolab.simulation.deposits import Deposits
from calolab.simulation.em import MAX_SPOTS, em_showers
from calolab.simulation.sampling import (
    crossing_signal,
    crossings_per_mev,
    mean_crossing_signal,
    mip_signal,
    visible_per_mev,
)

PION_MASS = 139.57  # MeV
# ---- electromagnetic fraction (Wigmans, Calorimetry (2017) ch. 2; Gabriel et al., NIM A338 (1994) 336)
EM_FRACTION_K = 0.82  # exponent k of <f_em> = 1 - (E/E0)^(k-1)
# E0 (MeV), linear in Z between Cu and Pb and held constant outside (physics.md, section 3),
# so Fe (Z = 26) gets 0.7 GeV; Groom's E0 = 1 GeV fit for Fe would lower <f_em> by 0.04 and
# pi/e by 0.01 at 10 GeV.
EM_FRACTION_E0 = ((29.0, 700.0), (82.0, 1300.0))
# Width of the event-by-event f_em: Beta distribution of concentration nu = C ln(E/E0), so
# sigma(f_em) = sqrt(<f>(1-<f>)/(nu+1)) ~ 0.12 at 10 GeV and ~ 0.09 at 100 GeV in Fe, the
# spread and slow decrease with E that Groom (NIM A572 (2007) 633) finds in FLUKA/CALOR.
EM_FRACTION_CONCENTRATION = 5.8
# ---- e/h of the absorber (Wigmans ch. 4), for plastic-scintillator sampling:
# Fe/scintillator 1.3-1.4 (physics.md, CALICE AHCAL); Cu similar; Pb and W lower because
# their many spallation neutrons give signal in hydrogenous active layers; PbWO4 crystals
# ~2.4 (no sampling: the value usually quoted for the CMS ECAL, CMS combined test beam,
# EPJC 60 (2009) 359).
E_OVER_H = {"Fe": 1.35, "Cu": 1.30, "W": 1.20, "Pb": 1.20, "PbWO4": 2.4}
E_OVER_H_DEFAULT = 1.3
# An active medium without hydrogen (silicon, liquid argon) does not see the MeV neutrons
# that carry much of the hadronic energy, so e/h rises: lead/liquid argon measures
# 1.74 +- 0.04 (ATLAS barrel EM prototype, Kulchitsky et al., hep-ex/9911033), against
# ~1.2 for lead/scintillator. Lighter absorbers, with a higher e/mip than lead, cannot have
# less; the lead value is used for all of them (a lower bound for Cu/Si and Fe/Si).
E_OVER_H_WITHOUT_HYDROGEN = 1.74
HYDROGENOUS_ACTIVE = frozenset({"Scintillator"})
# ---- pi0 sub-showers: n = 1 + Poisson(PI0_PER_LOG * ln(1 + E_em / 1 GeV)); the pi0
# multiplicity of hadron-nucleus collisions grows logarithmically with energy. Energies
# are a flat Dirichlet split of E_em above a floor of PI0_MIN_ENERGY each (fewer
# sub-showers if E_em is small); the largest starts at l0 (leading pi0s of the first
# interaction), the others where secondary hadrons interact, one exponential interaction
# length further on average. Each sub-shower points from the vertex at an angle p_T / E,
# p_T per component Gaussian of width PI0_PT (MeV): mean p_T ~ 0.35 GeV/c of secondaries.
PI0_PER_LOG = 1.0
PI0_PT = 280.0
MAX_PI0_SLOPE = 0.5
# Sub-showers carry at least this much: the GFLASH radial profile of em_showers holds for
# showers of a GeV and more, below that it puts a growing share of crossings metres off axis
# (11% beyond 1 m at 300 MeV in ahcal, 2.7% at 1 GeV).
PI0_MIN_ENERGY = 1000.0
# ---- hadronic longitudinal profile: GRP sets blended between these energies (GeV)
PROFILE_BLEND_GEV = (7.0, 10.0)
# ---- hadronic radial profile: R(l) = lambda_eff (R0 + R1 l), l in lambda_I after l0:
# with the narrow pi0 cores, ~95% of the shower energy lies within ~1 lambda_I of the axis
# (Wigmans ch. 2); the hadronic part alone has 93% (10 GeV) to 87% (80 GeV) there.
HADRON_RADIUS = (0.15, 0.10)
# ---- hadronic visible energy
# Nuclear share: of the non-EM energy a fraction q is spent breaking up nuclei (binding
# energy, recoils) and gives no signal; it fluctuates from event to event, and these
# fluctuations of invisible energy, not sampling, dominate the hadronic resolution of
# non-compensating calorimeters (Wigmans ch. 4). q is Beta-distributed with mean
# NUCLEAR_SHARE and width NUCLEAR_SHARE_SIGMA / sqrt(E_h / GeV).
# The tuned constant of the hadronic model: NUCLEAR_SHARE_SIGMA is set so that the ``ahcal``
# preset gives the CALICE AHCAL 58%/sqrt(E) for 10-80 GeV pions (JINST 7 P09017); the gain
# of software compensation there (CALICE: 58% -> 45%) is then a prediction, as are cusi and
# the other detectors.
NUCLEAR_SHARE = 0.3
NUCLEAR_SHARE_SIGMA = 0.75
# Evaporation neutrons: their number, and so their kinetic energy, goes with the binding
# energy lost (the correlation that compensating calorimeters exploit; Wigmans ch. 4). In a
# hydrogenous active medium they scatter elastically on protons and leave isolated,
# sub-MIP hits around the shower: on average this share of the hadronic signal, in
# proportion to q. Active media without hydrogen hardly see them.
# The software-compensation gain depends on it: at 0.2 the sum falls with q and the neutron
# hits tell by how much; at NEUTRON_SIGNAL_SHARE = NUCLEAR_SHARE the neutrons would make
# up for the lost energy on their own (hardware compensation of q) and leave nothing to
# weight (ahcal gain 2-5% instead of 20%).
NEUTRON_SIGNAL_SHARE = 0.2
NEUTRON_HIT_MIP = 0.5  # mean visible energy of a neutron hit (recoil protons are quenched), in MIP MPVs
NEUTRON_PATH_MM = 100.0  # mean distance of a neutron hit from its production point, mm
# Spallation protons: the nucleons released in nuclear break-up carry kinetic energy in
# proportion to the binding energy lost, and most of it goes to protons that ionise densely
# before they stop. Wigmans' composition of the non-EM energy (Calorimetry ch. 2) gives, in
# lead, ionising protons 37% against 44% that silicon does not see (binding 32%, recoils 2%,
# evaporation neutrons 10%); in iron about 53% against 26%. So the protons' energy is
# r q of the non-EM energy, r = PROTON_PER_INVISIBLE (linear in Z between Fe and Pb, held
# outside), and the pions' ionisation 1 - q - r q: the sum still falls with q as (1 - q),
# and the proton hits tell how large q was. In scintillator the tuned neutron hits stand for
# all the signal that goes with q (recoil and spallation protons, quenched alike), so
# protons are simulated separately only in active media without hydrogen.
PROTON_PER_INVISIBLE = ((26.0, 2.0), (82.0, 0.85))
# A proton is seen where it crosses an active layer: its kinetic energy there is T0 u^(1/p),
# uniform along its range R ~ T^p (Bragg-Kleeman, p = 1.75), with T0 exponential of mean
# PROTON_ENERGY (cascade protons, of order 100 MeV). It deposits dE/dx(T) / dE/dx_min times a
# MIP crossing signal (Bethe, I = 16 Z^0.9 eV), at most T: a proton of ~100 MeV stops within
# a few cm of copper, so each is one dense hit in one cell.
PROTON_ENERGY = 100.0
PROTON_RANGE_POWER = 1.75
PROTON_MIN_ENERGY = 1.0  # MeV: below this, the Bethe formula does not hold; the stop is capped at T anyway
PROTON_MASS = 938.272
# Hadronic sampling: the charged tracks of the non-EM part come in clusters (the
# secondaries of one nuclear interaction), so their number fluctuates more than
# Poisson: clusters are Poisson, crossings per cluster geometric with this mean, each
# crossing a MIP-like deposit spread laterally by about one layer thickness (isotropic
# emission). Four crossings per cluster make hadronic sampling fluctuations about twice the
# electromagnetic ones, as Wigmans (ch. 4) finds.
HADRON_CLUSTER_CROSSINGS = 4.0
# Homogeneous calorimeters: hadronic spots carry about this much visible energy each.
HOMOGENEOUS_SPOT_MEV = 20.0


def _absorber_mix(detector: Detector) -> dict[str, float]:
    """Mass of each absorber material (the active material if homogeneous), g/cm2."""
    mass: dict[str, float] = {}
    for layer in detector.layers:
        mat, d = layer.absorber_material, layer.absorber_thickness
        if mat is None or d == 0:
            mat, d = layer.active_material, layer.active_thickness
        mass[mat.name] = mass.get(mat.name, 0.0) + mat.density * d
    return mass


def e_over_h(detector: Detector) -> float:
    """e/h of the detector: the mass-weighted mean of :data:`E_OVER_H` over its absorbers, or
    :data:`E_OVER_H_WITHOUT_HYDROGEN` for a sampling calorimeter whose active layers have no hydrogen
    (a detector that mixes both gets the first; :func:`nuclear_responses` tells its layers apart)."""
    if not detector.homogeneous and not any(la.active_material.name in HYDROGENOUS_ACTIVE for la in detector.layers):
        return E_OVER_H_WITHOUT_HYDROGEN
    return _absorber_e_over_h(detector)


def _absorber_e_over_h(detector: Detector) -> float:
    mass = _absorber_mix(detector)
    total = sum(mass.values())
    return sum(m * E_OVER_H.get(name, E_OVER_H_DEFAULT) for name, m in mass.items()) / total


def em_fraction_scale(detector: Detector) -> float:
    """Wigmans' E0 in MeV for the detector's effective Z (Cu 0.7 GeV to Pb 1.3 GeV)."""
    (z_lo, e_lo), (z_hi, e_hi) = EM_FRACTION_E0
    return float(np.interp(detector.z_eff, [z_lo, z_hi], [e_lo, e_hi]))


def mean_em_fraction(detector: Detector, energy: np.ndarray) -> np.ndarray:
    """Mean electromagnetic fraction ``1 - (E/E0)^(k-1)`` of pion showers of ``energy`` MeV, (n,)."""
    ratio = np.maximum(np.asarray(energy, float) / em_fraction_scale(detector), 1.0)
    return 1.0 - ratio ** (EM_FRACTION_K - 1.0)


def pion_to_electron(detector: Detector, energy: np.ndarray) -> np.ndarray:
    """Wigmans' pi/e = f_em + (1 - f_em) h/e for pions of ``energy`` MeV, (n,)."""
    f_em = mean_em_fraction(detector, energy)
    return f_em + (1.0 - f_em) / e_over_h(detector)


def hadronic_profile(energy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Grindhammer-Rudowicz-Peters shape ``a_h`` and rate ``b_h`` (per lambda_I) for ``energy`` MeV, (n,) each.

    The 2-10 GeV set applies up to 7 GeV and the >= 10 GeV set from 10 GeV (physics.md,
    section 3); the two jump at 10 GeV (mean depth 1.75 -> 1.04 lambda_I), so in between
    the parameters are blended linearly in ln E to keep the profile continuous in energy.

    >>> a, b = hadronic_profile(np.array([5e3, 20e3]))
    >>> np.round(a / b, 2).tolist()  # mean depth after the first interaction, lambda_I
    [0.94, 1.36]
    """
    e_gev = np.maximum(np.asarray(energy, float) / 1e3, 1.0)
    big = np.log((0.35 + 0.09 * np.log(e_gev)) * e_gev)
    w_high = np.clip(np.log(e_gev / PROFILE_BLEND_GEV[0]) / np.log(PROFILE_BLEND_GEV[1] / PROFILE_BLEND_GEV[0]), 0, 1)
    a_h = w_high * (0.38 + 0.23 * big) + (1 - w_high) * (1.17 + 0.21 * big)
    b_h = w_high * (0.83 - 0.049 * big) + (1 - w_high) * (2.10 - 0.72 * big)
    return a_h, b_h


def _track_x(entry: np.ndarray, slope: np.ndarray, curvature: np.ndarray, z: np.ndarray) -> np.ndarray:
    """(x, y) in mm of the pion track at depth ``z``, bending in x in the field, (n, 2)."""
    x = entry[:, 0] + slope[:, 0] * z + 0.5 * curvature * z * z
    return np.column_stack([x, entry[:, 1] + slope[:, 1] * z])


def _mip_track(detector: Detector, entry: np.ndarray, slope: np.ndarray, curvature: np.ndarray,
               z_stop: np.ndarray, path: np.ndarray, rng: np.random.Generator) -> Deposits:
    """One Landau deposit per active layer crossed before ``z_stop`` (mm), (n,) events."""
    n_cross = np.searchsorted(detector.z_active, z_stop, side="left")  # active layers before z_stop
    event = np.repeat(np.arange(len(z_stop)), n_cross)
    start = np.concatenate([[0], np.cumsum(n_cross)[:-1]])
    layer = np.arange(len(event)) - np.repeat(start, n_cross)
    xy = _track_x(entry[event], slope[event], curvature[event], detector.z_active[layer])
    return Deposits(event, layer, xy[:, 0], xy[:, 1], mip_signal(detector, layer, path[event], rng))


def _pi0_showers(detector: Detector, event: np.ndarray, e_em: np.ndarray, lam0: np.ndarray, z0: np.ndarray,
                 vertex: np.ndarray, slope: np.ndarray, cos_axis: np.ndarray,
                 rng: np.random.Generator) -> tuple[Deposits, np.ndarray]:
    """pi0 sub-showers of interacting events (arrays (m,)); returns deposits and sub-showers per event."""
    m = len(e_em)
    n_max = np.maximum(np.floor(e_em / PI0_MIN_ENERGY), 1).astype(np.int64)
    n_sub = np.minimum(1 + rng.poisson(PI0_PER_LOG * np.log1p(e_em / 1e3)), n_max)
    owner = np.repeat(np.arange(m), n_sub)
    first = np.concatenate([[0], np.cumsum(n_sub)[:-1]])
    weight = rng.standard_exponential(len(owner))  # flat Dirichlet split above the floor
    floor = np.minimum(PI0_MIN_ENERGY, e_em / n_sub)
    share = weight / np.bincount(owner, weights=weight, minlength=m)[owner]
    energy = floor[owner] + (e_em - n_sub * floor)[owner] * share
    energy = energy[np.lexsort((-energy, owner))]  # largest first in each event
    # production depth along the path, lambda_I after l0: 0 for the leading one
    dl = rng.standard_exponential(len(owner))
    dl[first] = 0.0
    z_start = np.interp(lam0[owner] + dl * cos_axis[owner], detector.lambda_bounds, detector.z_bounds, right=np.inf)
    kick = rng.standard_normal((len(owner), 2)) * (PI0_PT / np.maximum(energy, PI0_PT))[:, None]
    inside = np.isfinite(z_start)
    owner, energy, z_start, kick = owner[inside], energy[inside], z_start[inside], kick[inside]
    sub_slope = slope[owner] + np.clip(kick, -MAX_PI0_SLOPE, MAX_PI0_SLOPE)
    origin = np.column_stack([vertex[owner] + sub_slope * (z_start - z0[owner])[:, None], z_start])
    return em_showers(detector, event[owner], energy, origin, sub_slope, rng), n_sub


def nuclear_share(e_had: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Share of ``e_had`` MeV of non-EM energy lost to nuclear break-up, Beta-distributed, (m,)."""
    sigma = NUCLEAR_SHARE_SIGMA / np.sqrt(np.maximum(e_had / 1e3, 1e-3))
    var_max = NUCLEAR_SHARE * (1.0 - NUCLEAR_SHARE)
    concentration = np.maximum(var_max / np.minimum(sigma**2, 0.5 * var_max) - 1.0, 1e-3)
    return rng.beta(NUCLEAR_SHARE * concentration, (1.0 - NUCLEAR_SHARE) * concentration)


class NuclearResponse(NamedTuple):
    """How a group of active layers sees the non-EM part of a shower.

    ``layers``: bool mask of the group's layers (``None``: all); ``e_over_h``; ``protons``: r of
    :data:`PROTON_PER_INVISIBLE` (active media without hydrogen, 0 otherwise); ``neutrons``:
    :data:`NEUTRON_SIGNAL_SHARE` (hydrogenous active media, 0 otherwise).
    """

    layers: np.ndarray | None
    e_over_h: float
    protons: float
    neutrons: float


def nuclear_responses(detector: Detector) -> list[NuclearResponse]:
    """One :class:`NuclearResponse` for a detector whose active layers are alike (or homogeneous), one
    per kind of active layer for a detector that mixes hydrogenous (scintillator) layers with layers
    without hydrogen (silicon): the former see neutron hits, the latter proton hits.

    >>> from calolab.geometry import load_detector
    >>> def show(name):
    ...     return [(r.layers, round(r.e_over_h, 2), round(r.protons, 2), r.neutrons)
    ...             for r in nuclear_responses(load_detector(name))]
    >>> show("ahcal"), show("cusi")
    ([(None, 1.35, 0.0, 0.2)], [(None, 1.74, 1.94, 0.0)])
    """
    hydrogenous = np.array([la.active_material.name in HYDROGENOUS_ACTIVE for la in detector.layers])
    if detector.homogeneous:
        return [NuclearResponse(None, e_over_h(detector), 0.0, 0.0)]
    if hydrogenous.all():
        return [NuclearResponse(None, e_over_h(detector), 0.0, NEUTRON_SIGNAL_SHARE)]
    if not hydrogenous.any():
        return [NuclearResponse(None, e_over_h(detector), _proton_ratio(detector), 0.0)]
    return [NuclearResponse(hydrogenous, _absorber_e_over_h(detector), 0.0, NEUTRON_SIGNAL_SHARE),
            NuclearResponse(~hydrogenous, E_OVER_H_WITHOUT_HYDROGEN, _proton_ratio(detector), 0.0)]


def _proton_ratio(detector: Detector) -> float:
    """Proton kinetic energy per MeV of invisible energy at the detector's effective Z."""
    (z_lo, r_lo), (z_hi, r_hi) = PROTON_PER_INVISIBLE
    return float(np.interp(detector.z_eff, [z_lo, z_hi], [r_lo, r_hi]))


def hadronic_signal(response: NuclearResponse, e_had: np.ndarray, share: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """EM-equivalent visible MeV of the charged tracks and of the nuclear hits (neutrons or protons) of
    the non-EM part in layers of ``response`` (as if every layer were of that kind), (m,) each.

    Their sum is ``e_had h/e`` on average. With neutron hits (scintillator) the charged part
    falls and the neutron part rises with the nuclear ``share`` q; with proton hits (active
    media without hydrogen) the visible energy falls as ``1 - q``, of which the protons carry
    ``r q`` and the pions the rest.

    >>> from calolab.geometry import load_detector
    >>> (ahcal,) = nuclear_responses(load_detector("ahcal"))
    >>> c, n = hadronic_signal(ahcal, np.array([1e4]), np.array([NUCLEAR_SHARE]))
    >>> round(float((c + n)[0] * ahcal.e_over_h))
    10000
    >>> (cusi,) = nuclear_responses(load_detector("cusi"))
    >>> c, p = hadronic_signal(cusi, np.array([1e4, 1e4]), np.array([0.2, 0.3]))
    >>> np.round(p / (c + p), 2).tolist()  # proton share of the visible hadronic energy
    [0.49, 0.83]
    """
    mean = e_had / response.e_over_h
    r = response.protons
    if r > 0:
        visible = mean * (1.0 - share) / (1.0 - NUCLEAR_SHARE)
        protons = mean * np.minimum(r * share, 1.0 - share) / (1.0 - NUCLEAR_SHARE)
        return visible - protons, protons
    eta = response.neutrons
    return mean * (1.0 - eta) * (1.0 - share) / (1.0 - NUCLEAR_SHARE), mean * eta * share / NUCLEAR_SHARE


def _layer_fractions(detector: Detector, lam0: np.ndarray, cos_axis: np.ndarray, a_h: np.ndarray,
                     b_h: np.ndarray) -> np.ndarray:
    """Share of the hadronic profile in each layer, (m, layers); the rest leaks out."""
    path = np.clip((detector.lambda_bounds[None, :] - lam0[:, None]) / cos_axis[:, None], 0.0, None)
    return np.diff(gammainc(a_h[:, None], b_h[:, None] * path), axis=1)


def _hadronic_part(detector: Detector, event: np.ndarray, e_vis: np.ndarray, frac: np.ndarray, lam0: np.ndarray,
                   z0: np.ndarray, vertex: np.ndarray, slope: np.ndarray, cos_axis: np.ndarray,
                   rng: np.random.Generator) -> Deposits:
    """Deposits of the hadronic part carrying ``e_vis`` EM-equivalent visible MeV spread over layers as
    ``frac`` (m, layers), arrays (m,)."""
    m, n_layers = len(e_vis), detector.n_layers
    if detector.homogeneous:
        n_spots = np.clip(np.ceil(e_vis / HOMOGENEOUS_SPOT_MEV), 1, MAX_SPOTS).astype(np.int64)
        pvals = np.concatenate([frac, np.clip(1 - frac.sum(1, keepdims=True), 0, 1)], axis=1)
        counts = rng.multinomial(n_spots, pvals / pvals.sum(1, keepdims=True))[:, :-1]
    else:
        per_cluster = HADRON_CLUSTER_CROSSINGS / crossings_per_mev(detector)  # EM-equivalent MeV per cluster
        counts = rng.poisson(e_vis[:, None] * frac / per_cluster[None, :])
    owner = np.repeat(np.repeat(np.arange(m), n_layers), counts.ravel())
    layer = np.repeat(np.tile(np.arange(n_layers), m), counts.ravel())
    x, y = _hadronic_positions(detector, owner, layer, lam0, z0, vertex, slope, cos_axis, rng)
    if detector.homogeneous:
        return Deposits(event[owner], layer, x, y, (e_vis / n_spots)[owner])
    size = rng.geometric(1.0 / HADRON_CLUSTER_CROSSINGS, len(layer))  # crossings per cluster
    spread = np.mean([la.thickness for la in detector.layers])
    cluster = np.repeat(np.arange(len(layer)), size)
    layer = layer[cluster]
    x = x[cluster] + spread * rng.standard_normal(len(cluster))
    y = y[cluster] + spread * rng.standard_normal(len(cluster))
    return Deposits(event[owner[cluster]], layer, x, y, crossing_signal(detector, layer, rng))


def _neutron_hits(detector: Detector, event: np.ndarray, e_vis: np.ndarray, frac: np.ndarray, lam0: np.ndarray,
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
    x, y = _hadronic_positions(detector, owner, layer, lam0, z0, vertex, slope, cos_axis, rng)
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
    5.6
    """
    return np.array([_mean_proton_dedx(float(la.active_material.z), float(c))
                     for la, c in zip(detector.layers, mean_crossing_signal(detector), strict=True)])


def _proton_hits(detector: Detector, event: np.ndarray, e_vis: np.ndarray, frac: np.ndarray, lam0: np.ndarray,
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
    x, y = _hadronic_positions(detector, owner, layer, lam0, z0, vertex, slope, cos_axis, rng)
    kinetic = _proton_kinetic(rng.random(len(layer)), rng.random(len(layer)))
    z = np.array([la.active_material.z for la in detector.layers], float)
    energy = _proton_dedx(kinetic, z[layer], crossing[layer]) * crossing_signal(detector, layer, rng)
    return Deposits(event[owner], layer, x, y, energy)


def _hadronic_positions(detector: Detector, owner: np.ndarray, layer: np.ndarray, lam0: np.ndarray, z0: np.ndarray,
                        vertex: np.ndarray, slope: np.ndarray, cos_axis: np.ndarray,
                        rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) in mm of hadronic deposits in ``layer`` of shower ``owner``: radius from 2rR^2/(r^2+R^2)^2."""
    lam_active = np.interp(detector.z_active, detector.z_bounds, detector.lambda_bounds)
    depth = np.maximum(lam_active[layer] - lam0[owner], 0.0) / cos_axis[owner]
    radius = detector.lambda_eff * (HADRON_RADIUS[0] + HADRON_RADIUS[1] * depth)
    u = rng.random(len(layer))
    radius *= np.sqrt(u / (1.0 - u))
    phi = rng.uniform(0.0, 2.0 * np.pi, len(layer))
    xy = vertex[owner] + slope[owner] * (detector.z_active[layer] - z0[owner])[:, None]
    return xy[:, 0] + radius * np.cos(phi), xy[:, 1] + radius * np.sin(phi)


def simulate_hadrons(detector: Detector, energy: np.ndarray, entry: np.ndarray, direction: np.ndarray, pdg: int,
                     rng: np.random.Generator) -> tuple[Deposits, dict[str, np.ndarray]]:
    """Simulate charged-pion showers and return their visible deposits and per-event truth.

    Parameters
    ----------
    energy : (n,)
        Incident energy in MeV.
    entry : (n, 2)
        Entry point (x, y) on the front face in mm.
    direction : (n, 3)
        Unit direction at entry.
    pdg
        PDG code (211 or -211): its sign sets the bending in the detector's field.

    Returns
    -------
    deposits
        Visible deposits with ``event`` in ``[0, n)``.
    truth
        ``first_interaction_mm`` (depth z of the first inelastic interaction, ``inf`` if
        none), ``first_interaction_layer`` (``layers`` if none), ``em_fraction`` (f_em of
        the energy at the interaction, 0 if none), ``n_subshowers`` (pi0 sub-showers),
        ``nuclear_share`` (share of the non-EM energy lost to nuclear break-up, 0 if none),
        ``em_visible_mev`` and ``nuclear_visible_mev`` (visible MeV that the pi0 sub-showers and
        the nuclear hits, protons or neutrons, leave in the cells, before any readout effect:
        what a perfect classification of the cells' energy would read); (n,) each.

    >>> from calolab.geometry import load_detector
    >>> det = load_detector("ahcal")
    >>> e = np.full(4, 2e4); entry = np.zeros((4, 2)); direction = np.tile([0.0, 0.0, 1.0], (4, 1))
    >>> deposits, truth = simulate_hadrons(det, e, entry, direction, 211, np.random.default_rng(1))
    >>> sorted(truth)[:4]
    ['em_fraction', 'em_visible_mev', 'first_interaction_layer', 'first_interaction_mm']
    >>> sorted(truth)[4:]
    ['n_subshowers', 'nuclear_share', 'nuclear_visible_mev']
    >>> bool(np.all(deposits.energy > 0))
    True
    """
    energy = np.asarray(energy, float)
    n = len(energy)
    slope = direction[:, :2] / direction[:, 2:3]
    cos_axis = direction[:, 2]
    # bending in the field B along +y: x'' = -q 0.3 B / p (1/m, p in GeV/c), here in 1/mm
    momentum = np.sqrt(np.maximum(energy**2 - PION_MASS**2, 1.0))
    curvature = -np.sign(pdg) * 0.3 * detector.field_tesla / (momentum / 1e3) * 1e-3
    # first inelastic interaction: exponential in path length, in lambda_I; a pion that
    # crosses the detector, or loses all its energy by ionisation first, stays a MIP track
    lam0 = rng.standard_exponential(n) * cos_axis  # depth along z, in lambda_I
    z0 = np.interp(lam0, detector.lambda_bounds, detector.z_bounds, right=np.inf)
    mip_cumulative = np.concatenate([[0.0], np.cumsum(detector.mip_loss)])  # MeV lost by a MIP up to z_bounds
    z_range = np.interp(energy * cos_axis, mip_cumulative, detector.z_bounds, right=np.inf)
    z0[z_range <= z0] = np.inf
    mip = _mip_track(detector, entry, slope, curvature, np.minimum(z0, z_range), 1.0 / cos_axis, rng)
    interacts = np.isfinite(z0)
    # energy at the interaction: the incident energy less the MIP loss on the way
    e_int = np.maximum(energy - np.interp(z0, detector.z_bounds, mip_cumulative) / cos_axis, 1.0)

    idx = np.flatnonzero(interacts)
    e_i, z_i, lam_i = e_int[idx], z0[idx], lam0[idx]
    vertex = _track_x(entry[idx], slope[idx], curvature[idx], z_i)
    axis = slope[idx].copy()
    axis[:, 0] += curvature[idx] * z_i  # the shower follows the track's tangent at the vertex
    cos_i = 1.0 / np.sqrt(1.0 + np.sum(axis**2, axis=1))
    f_mean = np.clip(mean_em_fraction(detector, e_i), 0.01, 0.99)
    nu = EM_FRACTION_CONCENTRATION * np.maximum(np.log(e_i / em_fraction_scale(detector)), 0.5)
    f_em = rng.beta(f_mean * nu, (1.0 - f_mean) * nu)
    a_h, b_h = hadronic_profile(e_i)
    em, n_sub = _pi0_showers(detector, idx, f_em * e_i, lam_i, z_i, vertex, axis, cos_i, rng)
    e_had = (1.0 - f_em) * e_i
    share = nuclear_share(e_had, rng)
    frac = _layer_fractions(detector, lam_i, cos_i, a_h, b_h)
    had, hits = [], []  # per kind of active layer: a detector mixing silicon and scintillator has two
    for response in nuclear_responses(detector):
        e_charged, e_nuclear = hadronic_signal(response, e_had, share)
        shares = frac if response.layers is None else frac * response.layers
        had.append(_hadronic_part(detector, idx, e_charged, shares, lam_i, z_i, vertex, axis, cos_i, rng))
        if response.protons > 0:
            hits.append(_proton_hits(detector, idx, e_nuclear, shares, lam_i, z_i, vertex, axis, cos_i, rng))
        else:
            hits.append(_neutron_hits(detector, idx, e_nuclear, shares, lam_i, z_i, vertex, axis, cos_i, rng,
                                      response.layers))
    had, hits = Deposits.join(had), Deposits.join(hits)

    em_fraction = np.zeros(n)
    em_fraction[idx] = f_em
    subshowers = np.zeros(n, np.int64)
    subshowers[idx] = n_sub
    nuclear = np.zeros(n)
    nuclear[idx] = share
    layer0 = np.clip(np.searchsorted(detector.z_bounds, z0, side="right") - 1, 0, detector.n_layers)
    parts = [mip, em, had, hits]
    deposits = Deposits.join(parts)
    keep = (deposits.energy > 0) & ((deposits.x >= detector.x_edges[0]) & (deposits.x < detector.x_edges[-1])
            & (deposits.y >= detector.y_edges[0]) & (deposits.y < detector.y_edges[-1]))
    # visible MeV on the cells per event of each part (join keeps the parts in order)
    ends = np.cumsum([len(p) for p in parts])
    on_cells = np.where(keep, deposits.energy, 0.0)
    em_on, hits_on = (slice(ends[i - 1], ends[i]) for i in (1, 3))
    truth = {"first_interaction_mm": z0, "first_interaction_layer": layer0, "em_fraction": em_fraction,
             "n_subshowers": subshowers, "nuclear_share": nuclear,
             "em_visible_mev": np.bincount(deposits.event[em_on], weights=on_cells[em_on], minlength=n),
             "nuclear_visible_mev": np.bincount(deposits.event[hits_on], weights=on_cells[hits_on], minlength=n)}
    return Deposits(*(getattr(deposits, k)[keep] for k in ("event", "layer", "x", "y", "energy"))), truth
