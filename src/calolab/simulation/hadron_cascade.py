"""The hadronic part of a pion shower: its longitudinal and radial profiles and its clustered deposits.

The non-EM energy follows the Grindhammer-Rudowicz-Peters longitudinal profile (a Gamma
function in lambda_I after the first interaction, :func:`hadronic_profile`,
:func:`layer_fractions`) and a radial profile ``2 r R^2 / (r^2 + R^2)^2`` that widens with
depth (:func:`hadronic_positions`). Its charged tracks come in clusters, the secondaries of
one nuclear interaction, so its sampling fluctuations are larger than electromagnetic ones
(:func:`hadronic_part`).

Lengths in mm, energies in MeV; formulas marked GeV take E in GeV.
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammainc

from calolab.geometry import Detector
from calolab.simulation.deposits import Deposits
from calolab.simulation.sampling import crossing_signal, equivalent_crossings_per_mev

# ---- hadronic longitudinal profile: GRP sets blended between these energies (GeV)
PROFILE_BLEND_GEV = (7.0, 10.0)
# ---- hadronic radial profile: R(l) = lambda_eff (R0 + R1 l), l in lambda_I after l0:
# with the narrow pi0 cores, ~95% of the shower energy lies within ~1 lambda_I of the axis
# (Wigmans ch. 2); the hadronic part alone has 93% (10 GeV) to 87% (80 GeV) there.
HADRON_RADIUS = (0.15, 0.10)
# Hadronic sampling: the charged tracks of the non-EM part come in clusters (the
# secondaries of one nuclear interaction), so their number fluctuates more than
# Poisson: clusters are Poisson, crossings per cluster geometric with this mean, each
# crossing a MIP-like deposit spread laterally by about one layer thickness (isotropic
# emission). Four crossings per cluster make hadronic sampling fluctuations about twice the
# electromagnetic ones, as Wigmans (ch. 4) finds.
HADRON_CLUSTER_CROSSINGS = 4.0
# Homogeneous calorimeters: hadronic spots carry about this much visible energy each.
HADRON_MAX_SPOTS = 4000  # homogeneous detectors: spots per hadronic part are capped
HOMOGENEOUS_SPOT_MEV = 20.0


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


def layer_fractions(detector: Detector, lam0: np.ndarray, cos_axis: np.ndarray, a_h: np.ndarray,
                     b_h: np.ndarray) -> np.ndarray:
    """Share of the hadronic profile in each layer, (m, layers); the rest leaks out."""
    path = np.clip((detector.lambda_bounds[None, :] - lam0[:, None]) / cos_axis[:, None], 0.0, None)
    return np.diff(gammainc(a_h[:, None], b_h[:, None] * path), axis=1)


def hadronic_part(detector: Detector, event: np.ndarray, e_vis: np.ndarray, frac: np.ndarray, lam0: np.ndarray,
                   z0: np.ndarray, vertex: np.ndarray, slope: np.ndarray, cos_axis: np.ndarray,
                   rng: np.random.Generator) -> Deposits:
    """Deposits of the hadronic part carrying ``e_vis`` EM-equivalent visible MeV spread over layers as
    ``frac`` (m, layers), arrays (m,)."""
    m, n_layers = len(e_vis), detector.n_layers
    if detector.homogeneous:
        n_spots = np.clip(np.ceil(e_vis / HOMOGENEOUS_SPOT_MEV), 1, HADRON_MAX_SPOTS).astype(np.int64)
        pvals = np.concatenate([frac, np.clip(1 - frac.sum(1, keepdims=True), 0, 1)], axis=1)
        counts = rng.multinomial(n_spots, pvals / pvals.sum(1, keepdims=True))[:, :-1]
    else:
        per_cluster = HADRON_CLUSTER_CROSSINGS / equivalent_crossings_per_mev(detector)  # EM-equivalent MeV per cluster
        counts = rng.poisson(e_vis[:, None] * frac / per_cluster[None, :])
    owner = np.repeat(np.repeat(np.arange(m), n_layers), counts.ravel())
    layer = np.repeat(np.tile(np.arange(n_layers), m), counts.ravel())
    x, y = hadronic_positions(detector, owner, layer, lam0, z0, vertex, slope, cos_axis, rng)
    if detector.homogeneous:
        return Deposits(event[owner], layer, x, y, (e_vis / n_spots)[owner])
    size = rng.geometric(1.0 / HADRON_CLUSTER_CROSSINGS, len(layer))  # crossings per cluster
    spread = np.mean([la.thickness for la in detector.layers])
    cluster = np.repeat(np.arange(len(layer)), size)
    layer = layer[cluster]
    x = x[cluster] + spread * rng.standard_normal(len(cluster))
    y = y[cluster] + spread * rng.standard_normal(len(cluster))
    return Deposits(event[owner[cluster]], layer, x, y, crossing_signal(detector, layer, rng))


def hadronic_positions(detector: Detector, owner: np.ndarray, layer: np.ndarray, lam0: np.ndarray, z0: np.ndarray,
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
