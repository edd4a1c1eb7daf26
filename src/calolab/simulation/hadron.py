"""Charged-pion showers: a MIP track, a first interaction, then pi0 sub-showers and a hadronic part.

A pion crosses the calorimeter as a minimum-ionising track until its first inelastic
interaction, at a depth ``l0 = -ln(u) lambda`` along its path in its own interaction length
(the PDG pion interaction length ``lambda_pi``, about 20% longer than the nuclear ``lambda_I``
in iron; see :func:`interaction_bounds`); pions that get through stay pure MIPs. The shower
after it is parametrised in ``lambda_I`` from that point on. There the energy left splits,
event by event, into

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

The model is split by concept:

============================================  ====================================================
module                                        concept
============================================  ====================================================
:mod:`calolab.simulation.hadron`              the track, the first interaction, pi0 sub-showers
:mod:`calolab.simulation.hadron_composition`  f_em, nuclear share, e/h, the signal of each part
:mod:`calolab.simulation.hadron_cascade`      profiles and clustered deposits of the hadronic part
:mod:`calolab.simulation.hadron_nuclear`      evaporation-neutron and spallation-proton hits
============================================  ====================================================
"""

from __future__ import annotations

import numpy as np

from calolab.errors import CalolabError
from calolab.geometry import Detector
from calolab.simulation.deposits import Deposits
from calolab.simulation.em import em_showers
from calolab.simulation.hadron_cascade import hadronic_part, hadronic_profile, layer_fractions
from calolab.simulation.hadron_composition import (
    EM_FRACTION_CONCENTRATION,
    em_fraction_scale,
    hadronic_signal,
    mean_em_fraction,
    nuclear_responses,
    nuclear_share,
)
from calolab.simulation.hadron_nuclear import neutron_hits, proton_hits
from calolab.simulation.sampling import mip_signal

PION_MASS = 139.57  # MeV
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
# The first inelastic interaction of a hadron follows its own interaction length: charged
# pions the PDG pion interaction length (Material.lambda_pi), protons and neutrons the nuclear
# one (Material.lambda_int); PDG code -> Detector attribute of the cumulative depth in it.
# calolab.simulation.simulate routes only charged pions here.
INTERACTION_BOUNDS = {211: "lambda_pi_bounds", -211: "lambda_pi_bounds", 2212: "lambda_bounds",
                      -2212: "lambda_bounds", 2112: "lambda_bounds", -2112: "lambda_bounds"}
# Sub-showers carry at least this much: the GFLASH radial profile of em_showers holds for
# showers of a GeV and more, below that it puts a growing share of crossings metres off axis
# (11% beyond 1 m at 300 MeV in ahcal, 2.7% at 1 GeV).
PI0_MIN_ENERGY = 1000.0


def interaction_bounds(detector: Detector, pdg: int) -> np.ndarray:
    """Depth of each layer boundary in the interaction length of hadron ``pdg``, (layers + 1,).

    >>> from calolab.geometry import load_detector
    >>> det = load_detector("ahcal")
    >>> [round(float(interaction_bounds(det, pdg)[-1]), 2) for pdg in (211, 2212)]  # ahcal in lambda_pi, lambda_I
    [4.1, 5.03]
    """
    if pdg not in INTERACTION_BOUNDS:
        raise CalolabError(f"no interaction length for particle {pdg}: expected one of {sorted(INTERACTION_BOUNDS)}")
    return getattr(detector, INTERACTION_BOUNDS[pdg])


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
        PDG code (211 or -211): it sets the interaction length of the first interaction
        (:func:`interaction_bounds`) and its sign the bending in the detector's field.

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
    # first inelastic interaction: exponential in path length, in the pion's own interaction
    # length; a pion that crosses the detector, or loses all its energy by ionisation first,
    # stays a MIP track
    depth = rng.standard_exponential(n) * cos_axis  # depth along z, in lambda_pi
    z0 = np.interp(depth, interaction_bounds(detector, pdg), detector.z_bounds, right=np.inf)
    mip_cumulative = np.concatenate([[0.0], np.cumsum(detector.mip_loss)])  # MeV lost by a MIP up to z_bounds
    z_range = np.interp(energy * cos_axis, mip_cumulative, detector.z_bounds, right=np.inf)
    z0[z_range <= z0] = np.inf
    # the same point in lambda_I, in which the shower after it is parametrised (inf: past the back)
    lam0 = np.interp(z0, detector.z_bounds, detector.lambda_bounds)
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
    frac = layer_fractions(detector, lam_i, cos_i, a_h, b_h)
    had, hits = [], []  # per kind of active layer: a detector mixing silicon and scintillator has two
    for response in nuclear_responses(detector):
        e_charged, e_nuclear = hadronic_signal(response, e_had, share)
        shares = frac if response.layers is None else frac * response.layers
        had.append(hadronic_part(detector, idx, e_charged, shares, lam_i, z_i, vertex, axis, cos_i, rng))
        if response.protons > 0:
            hits.append(proton_hits(detector, idx, e_nuclear, shares, lam_i, z_i, vertex, axis, cos_i, rng))
        else:
            hits.append(neutron_hits(detector, idx, e_nuclear, shares, lam_i, z_i, vertex, axis, cos_i, rng,
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
    keep = (deposits.energy > 0) & detector.contains(deposits.x, deposits.y)
    # visible MeV on the cells per event of each part (join keeps the parts in order)
    ends = np.cumsum([len(p) for p in parts])
    on_cells = np.where(keep, deposits.energy, 0.0)
    em_on, hits_on = (slice(ends[i - 1], ends[i]) for i in (1, 3))
    truth = {"first_interaction_mm": z0, "first_interaction_layer": layer0, "em_fraction": em_fraction,
             "n_subshowers": subshowers, "nuclear_share": nuclear,
             "em_visible_mev": np.bincount(deposits.event[em_on], weights=on_cells[em_on], minlength=n),
             "nuclear_visible_mev": np.bincount(deposits.event[hits_on], weights=on_cells[hits_on], minlength=n)}
    return Deposits(*(getattr(deposits, k)[keep] for k in ("event", "layer", "x", "y", "energy"))), truth
