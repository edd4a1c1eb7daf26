"""Electromagnetic showers: the Grindhammer-Peters (GFLASH) parametrisation.

Each shower draws its own longitudinal profile (correlated log-normal fluctuations of
the depth of maximum T and of the shape alpha), integrates it over the layers, and
turns the energy of each layer into charged-track crossings of the active layer
(sampling calorimeters, see :mod:`calolab.simulation.sampling`) or into spots
(homogeneous calorimeters). Every crossing or spot is placed at a radius drawn from the
two-component (core + tail) radial profile at its depth.

Homogeneous calorimeters follow GFLASH's spot model: a shower has N = 93 ln(Z) E^0.876
spots (E in GeV), spread over the layers by their own Gamma profile (T_spot = T (0.698 +
0.00212 Z), alpha_spot = alpha (0.639 + 0.00334 Z)); the spots of a layer share its
energy equally, so each layer holds exactly its share of the longitudinal profile. The
radial profile is evaluated at tau = (t / <t>) (<t> / T)_avg: the depth over the shower's
own centre of gravity <t> = T alpha / (alpha - 1), times that ratio for the average
shower (alpha = exp<ln alpha>), which then has tau = t / T. Sampling calorimeters use
tau = t / T.

Lengths in mm, energies in MeV; GFLASH formulas take E in GeV and depths in X0.
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammainc

from calolab.geometry import Detector
from calolab.simulation.deposits import Deposits
from calolab.simulation.sampling import (
    crossing_signal,
    crossings_per_mev,
    local_signal,
    mean_crossing_signal,
    sampling_model,
)

# Sampling calorimeters: a layer without crossings gets a spot for its local deposits when
# their expected energy is at least this many mean crossing signals.
LOCAL_SPOT_CROSSINGS = 0.1
# Homogeneous calorimeters: spots per shower are capped (the spots of a layer share its energy).
MAX_SPOTS = 20000
# GFLASH's spot profile relative to the energy profile of the same shower, homogeneous media:
# T_spot = T (a + b Z), alpha_spot = alpha (a + b Z).
SPOT_T = (0.698, 0.00212)
SPOT_ALPHA = (0.639, 0.00334)
# The radial parametrisation is fitted up to a few times the depth of maximum; beyond, keep
# it at its value at MAX_TAU, and cut the r^-3 tail of the radial draw at its 1 - 1e-6 quantile.
MAX_TAU = 4.0
MAX_TAIL_QUANTILE = 1.0 - 1e-6
# Below this y = E/Ec the fluctuation formulas diverge: use the average profile.
MIN_LNY_FLUCT = np.log(20.0)


def longitudinal_parameters(detector: Detector, energy: np.ndarray, rng: np.random.Generator,
                            fluctuate: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Per-shower depth of maximum ``T`` (X0) and shape ``alpha`` for energies in MeV, (n,) each."""
    lny = np.log(np.maximum(energy / detector.critical_energy, 2.0))
    z = detector.z_eff
    inv_fs, one_e = 1.0 / detector.sampling_frequency, 1.0 - detector.e_hat
    mean_ln_t = np.log(np.maximum(lny - 0.812 - 0.55 * inv_fs - 0.69 * one_e, 0.15))
    mean_ln_a = np.log(np.maximum(0.81 + (0.458 + 2.26 / z) * lny - 0.476 * inv_fs, 1.05))
    if not fluctuate:
        return np.exp(mean_ln_t), np.exp(mean_ln_a)
    lny_s = np.maximum(lny, MIN_LNY_FLUCT)
    if detector.homogeneous:
        s_t, s_a, rho = 1 / (-1.4 + 1.26 * lny_s), 1 / (-0.58 + 0.86 * lny_s), 0.705 - 0.023 * lny_s
    else:
        s_t, s_a, rho = 1 / (-2.5 + 1.25 * lny_s), 1 / (-0.82 + 0.79 * lny_s), 0.784 - 0.023 * lny_s
    z1, z2 = rng.standard_normal((2, len(energy)))
    plus, minus = np.sqrt((1 + rho) / 2), np.sqrt((1 - rho) / 2)
    t_max = np.exp(mean_ln_t + s_t * (plus * z1 + minus * z2))
    alpha = np.exp(mean_ln_a + s_a * (plus * z1 - minus * z2))
    alpha = np.maximum(alpha, 1.05)
    return t_max, alpha


def layer_fractions(detector: Detector, t_max: np.ndarray, alpha: np.ndarray, z_origin: np.ndarray,
                    cos_axis: np.ndarray) -> np.ndarray:
    """Fraction of each shower's energy deposited in each layer, (n, layers); the rest leaks out."""
    beta = (alpha - 1.0) / t_max
    t_origin = np.interp(z_origin, detector.z_bounds, detector.x0_bounds)
    t = np.clip((detector.x0_bounds[None, :] - t_origin[:, None]) / cos_axis[:, None], 0.0, None)
    cdf = gammainc(alpha[:, None], beta[:, None] * t)
    return np.diff(cdf, axis=1)


def radial_radius(detector: Detector, energy_gev: np.ndarray, tau: np.ndarray, rng: np.random.Generator,
                  group: np.ndarray | None = None) -> np.ndarray:
    """Radii in mm drawn from the GFLASH core + tail radial profile at relative depth ``tau``.

    ``energy_gev`` and ``tau`` are given per spot, or, with ``group`` (one index per spot into
    them), once per group of spots that share them, such as a shower's spots in one layer; the
    profile is then evaluated once per group. Both give the same radii for the same draws.
    """
    z, lne = detector.z_eff, np.log(np.maximum(energy_gev, 1e-3))
    tau = np.minimum(tau, MAX_TAU)
    inv_fs, one_e = 1.0 / detector.sampling_frequency, 1.0 - detector.e_hat
    r_core = 0.0251 + 0.00319 * lne + (0.1162 - 0.000381 * z) * tau
    r_tail = (0.659 - 0.00309 * z) * (np.exp(-2.59 * (tau - 0.645)) + np.exp((0.3585 + 0.0421 * lne) * (tau - 0.645)))
    p3 = np.maximum(1.313 - 0.0686 * lne, 0.2)
    arg = ((0.401 + 0.00187 * z) - tau) / p3
    p_core = (2.632 - 0.00094 * z) * np.exp(arg - np.exp(arg))
    r_core += -0.0203 * one_e + 0.0397 * inv_fs * np.exp(-tau)
    r_tail += -0.14 * one_e - 0.495 * inv_fs * np.exp(-tau)
    p_core += one_e * (0.348 - 0.642 * inv_fs * np.exp(-((tau - 1) ** 2)))
    p_core = np.clip(p_core, 0, 1)
    if group is not None:
        r_core, r_tail, p_core = r_core[group], r_tail[group], p_core[group]
    radius = np.where(rng.random(len(p_core)) < p_core, r_core, r_tail)
    u = np.minimum(rng.random(len(p_core)), MAX_TAIL_QUANTILE)
    return np.maximum(radius, 0.01) * np.sqrt(u / (1 - u)) * detector.moliere_radius


def em_showers(detector: Detector, event: np.ndarray, energy: np.ndarray, origin: np.ndarray,
               slope: np.ndarray, rng: np.random.Generator) -> Deposits:
    """Simulate electromagnetic showers and return their visible deposits.

    Parameters
    ----------
    event : int (n,)
        Event each shower belongs to (several showers may share an event).
    energy : (n,)
        Shower energy in MeV.
    origin : (n, 3)
        Start point (x, y, z) in mm; z = 0 is the front face.
    slope : (n, 2)
        Direction of the shower axis as dx/dz, dy/dz.

    Examples
    --------
    >>> from calolab.geometry import load_detector
    >>> det = load_detector("cms-ecal-tb")
    >>> dep = em_showers(det, np.zeros(1, int), np.array([5e4]), np.zeros((1, 3)), np.zeros((1, 2)),
    ...                  np.random.default_rng(1))
    >>> bool(0.97 < dep.energy.sum() / 5e4 < 1.0)  # the rest leaks out of the back
    True
    """
    n = len(energy)
    if n == 0:
        return Deposits.empty()
    cos_axis = 1.0 / np.sqrt(1.0 + np.sum(slope**2, axis=1))
    t_max, alpha = longitudinal_parameters(detector, energy, rng)
    frac = layer_fractions(detector, t_max, alpha, origin[:, 2], cos_axis)  # (n, L)
    if detector.homogeneous:
        n_spots = np.minimum(93.0 * np.log(detector.z_eff) * (energy / 1e3) ** 0.876, MAX_SPOTS)
        t_spot = t_max * (SPOT_T[0] + SPOT_T[1] * detector.z_eff)
        a_spot = np.maximum(alpha * (SPOT_ALPHA[0] + SPOT_ALPHA[1] * detector.z_eff), 1.05)
        spot_frac = layer_fractions(detector, t_spot, a_spot, origin[:, 2], cos_axis)
        # spots per layer from the spot profile, at least one in every layer that gets energy
        counts = np.where(frac > 0, np.maximum(np.rint(n_spots[:, None] * spot_frac), 1), 0).astype(np.int64)
    else:
        crossings = rng.poisson(energy[:, None] * frac * crossings_per_mev(detector)[None, :])
        local_mean = energy[:, None] * frac * sampling_model(detector).local[None, :]
        # local deposits ride on the crossings of their layer; a layer with none gets one spot
        # if its local energy is worth a tenth of a crossing (below that it is dropped)
        significant = local_mean > LOCAL_SPOT_CROSSINGS * mean_crossing_signal(detector)[None, :]
        counts = np.where(crossings > 0, crossings, significant.astype(np.int64))
    # spots come in groups that share a shower and a layer (row-major order of ``counts``)
    pair_shower, pair_layer = np.nonzero(counts)
    group = np.repeat(np.arange(len(pair_shower)), counts[pair_shower, pair_layer])
    shower, layer = pair_shower[group], pair_layer[group]
    # depth of the layer along the axis, relative to the depth of maximum (sampling) or to the
    # shower's centre of gravity in units of the average shower's T (homogeneous, as GFLASH)
    t_origin = np.interp(origin[:, 2], detector.z_bounds, detector.x0_bounds)
    t_layer = np.interp(detector.z_active, detector.z_bounds, detector.x0_bounds)
    depth_scale = t_max
    if detector.homogeneous:
        _, mean_alpha = longitudinal_parameters(detector, energy, rng, fluctuate=False)
        depth_scale = t_max * alpha / (alpha - 1) * (mean_alpha - 1) / mean_alpha
    depth = np.maximum(t_layer[pair_layer] - t_origin[pair_shower], 0.0) / cos_axis[pair_shower]
    tau = depth / depth_scale[pair_shower]
    radius = radial_radius(detector, energy[pair_shower] / 1e3, tau, rng, group)
    phi = rng.uniform(0, 2 * np.pi, len(layer))
    dz = detector.z_active[pair_layer] - origin[pair_shower, 2]
    x = (origin[pair_shower, 0] + slope[pair_shower, 0] * dz)[group] + radius * np.cos(phi)
    y = (origin[pair_shower, 1] + slope[pair_shower, 1] * dz)[group] + radius * np.sin(phi)
    if detector.homogeneous:
        visible = (energy[pair_shower] * frac[pair_shower, pair_layer] / counts[pair_shower, pair_layer])[group]
    else:
        n_cross = crossings[pair_shower, pair_layer]
        first = np.concatenate([[0], np.cumsum(counts[pair_shower, pair_layer])[:-1]])
        is_crossing = (np.arange(len(group)) - first[group]) < n_cross[group]
        visible = np.where(is_crossing, crossing_signal(detector, layer, rng), 0.0)
        pair_energy = energy[pair_shower] * frac[pair_shower, pair_layer]
        local = local_signal(detector, pair_energy, pair_layer, rng)
        visible += (local / counts[pair_shower, pair_layer])[group]
    return Deposits(event[shower], layer, x, y, visible)
