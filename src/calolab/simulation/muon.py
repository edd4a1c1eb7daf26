"""Muons: ionisation with Landau fluctuations and knock-on electrons, radiative losses, bending in B.

The mean loss is -dE/dx = a(E) + b(E) E (physics.md section 4; PDG muon tables). The track
is stepped layer by layer (and slab by slab in sampling calorimeters) with its current
energy and direction; everything else is vectorised over events.

Ionisation a(E)
    Bethe on the Fermi plateau grows like ln T_max; a(E) = a_100 + s ln(T_max(E) / T_max(100 GeV))
    goes through the PbWO4 values of physics.md (1.96 MeV cm2/g at 100 GeV, 2.16 at 1 TeV) and
    gives 1.72 at 10 GeV, 1.38 at 1 GeV (floored at the minimum 1.229). Other materials scale by
    the ratio of Bethe's formula on the Fermi plateau at the same energy,
    K/2 <Z/A> [ln(2 m_e c^2 T_max / (hbar omega_p)^2) - 1 + T_max^2 / (4 E^2)], which needs only
    <Z/A> and the density (iron: 2.25 MeV cm2/g at 150 GeV), and are floored at their own minimum.
    Per slab the restricted part is a Landau (Moyal) loss of the Bichsel most probable value
    (:func:`calolab.simulation.sampling.landau_loss`), so the MIP peak sits at ``mip_mpv``. The
    rest of the mean, a rho dx - <Moyal>, comes from knock-on electrons drawn one by one from
    dN/dT = C / T^2 on [DELTA_CUT, T_max], with C set so that their mean is that rest
    (C is 0.80, 0.98, 1.04, 1.07 times Bethe's K/2 <Z/A> rho dx at 10 GeV, 150 GeV, 1 TeV, 4 TeV in a 40.64 mm
    PbWO4 layer; it depends a little on the slab thickness through the Moyal mean). They shower from
    where they are made, along the muon (see Showers below).

Radiative losses b(E) = b_brems + b_pair + b_nucl
    PUMAS tables of physics.md at 100 GeV, 1 TeV, 10 TeV, linear in ln E between them and
    extrapolated linearly in ln E outside (clipped at zero). Pb, W and PbWO4 use their own rows;
    other materials scale the PbWO4 brems row by Z^2 ln(183 Z^-1/3) / A, take b_pair from the
    Kelner-Kokoulin-Petrukhin cross section, and keep b_nucl per g/cm2 (iron at 150 GeV: b = 2.32
    + 3.33 + 0.32 = 5.97e-6 cm2/g; a(E) = b(E) E at 354 GeV, PDG 347 GeV).
    Spectra in v = eps / E, each normalised so that E int v dN/dv dv = b_k E rho dx:
    bremsstrahlung dN/dv ~ (4/3 (1 - v) + v^2) / v on (0, 1]; pair production from the
    Kelner-Kokoulin-Petrukhin cross section on [4 m_e / E, 1] (:mod:`calolab.simulation.muon_pair`;
    at 4 TeV a tenth of the pair loss lies below v = 5e-4, half below 6e-3); photonuclear
    dN/dv ~ 1 / v. Losses above RADIATIVE_CUT (20 MeV) are drawn one by one (Poisson per slab,
    at a uniform depth in it) and shower: pairs and photonuclear losses at the emission point,
    bremsstrahlung photons after an exponential conversion depth (9/7 X0).
    Photonuclear losses are treated as electromagnetic showers (b_nucl is 2% of b; their lower
    hadronic response is ignored). Below the cut the loss is continuous and deposited on the track.

Showers
    Knock-ons and radiative losses above GFLASH_MIN_ENERGY (1 GeV) are GFLASH showers
    (:func:`calolab.simulation.em.em_showers`) along the muon's direction; smaller ones, where
    GFLASH does not hold, are a few spots at Gamma-distributed depths and GFLASH radii.

Visible energy
    Homogeneous detectors see every deposit. Sampling detectors see the Landau signal of the
    active slab (as :func:`calolab.simulation.sampling.mip_signal`), the showers through the
    charged-track crossing model of ``em_showers``, and the continuous radiative loss (small
    showers) times the electromagnetic sampling fraction ``e_hat * mip_sampling_fraction``.

Field and scattering
    The field along +y bends the track in x-z with curvature 0.3 q B / p (mu- to +x, mu+ to -x),
    so a straight-through muon has the sagitta 0.3 B L^2 / (8 p). Multiple scattering follows
    Highland's formula per layer (with the log term of the whole depth), angle and displacement
    correlated as in the PDG review. A muon that leaves the block sideways, curls back or stops
    loses no more energy; stopping muons deposit their kinetic energy (no decay is simulated).

Energies are total energies in MeV, lengths in mm.

>>> from calolab.geometry import load_detector
>>> det = load_detector("pbwo4")
>>> n = 3
>>> dep, truth = simulate_muons(det, np.full(n, 1e5), np.zeros((n, 2)), np.tile([0.0, 0.0, 1.0], (n, 1)), 13,
...                             np.random.default_rng(1))
>>> sorted(truth)[:3]
['exit_energy', 'exit_x', 'exit_y']
>>> bool(np.all(truth["exit_energy"] < 1e5)), set(np.unique(dep.event).tolist()) == {0, 1, 2}
(True, True)
>>> round(float(ionisation_a(det.layers[0].active_material, 1e6)), 2)  # MeV cm2/g at 1 TeV
2.16
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np

from calolab.geometry import Detector, Layer, Material
from calolab.geometry.materials import ELECTRON_MASS, K_BETHE, get_material
from calolab.simulation import muon_pair
from calolab.simulation.deposits import Deposits
from calolab.simulation.em import em_showers, radial_radius
from calolab.simulation.muon_pair import MUON_MASS
from calolab.simulation.sampling import crossing_signal, equivalent_crossings_per_mev, landau_loss, mean_landau_loss

# Ionisation a(E) of PbWO4 (physics.md section 4), MeV cm2/g, and its dE/dx minimum.
A_ENERGIES = (1e5, 1e6)  # MeV
A_PBWO4 = (1.96, 2.16)
DEDX_MIN_PBWO4 = 1.229
# Radiative b(E) (physics.md section 4, PUMAS), 1e-6 cm2/g; rows brems, pair, photonuclear.
B_ENERGIES = np.array([1e5, 1e6, 1e7])  # MeV
B_TABLES = {
    "Pb": np.array([[5.37, 6.86, 7.53], [7.91, 10.15, 10.83], [0.31, 0.31, 0.36]]) * 1e-6,
    "W": np.array([[4.97, 6.36, 6.99], [7.30, 9.39, 10.03], [0.31, 0.31, 0.37]]) * 1e-6,
    "PbWO4": np.array([[4.57, 5.85, 6.43], [6.71, 8.64, 9.23], [0.32, 0.32, 0.38]]) * 1e-6,
}

DELTA_CUT = 10.0  # MeV: knock-on electrons above this are drawn one by one (about 5 xi in a PbWO4 layer)
RADIATIVE_CUT = 20.0  # MeV: radiative losses above this are drawn one by one and shower
# Showers below this many MeV are drawn as a few spots: GFLASH's fluctuations need y = E/Ec > 20, and its
# radial profile, evaluated at layer centres, puts 10% of a 200 MeV shower beyond 3 R_M in 4.6 X0 layers.
GFLASH_MIN_ENERGY = 1000.0
FAR_MM = 1e6  # GFLASH spots are clipped to this distance (mm) from the axis (outside any grid)
SMALL_SPOT_MEV = 10.0
SMALL_MAX_SPOTS = 20
PHOTON_CONVERSION_X0 = 9.0 / 7.0
HIGHLAND = 13.6  # MeV
MIN_COS = 0.05  # a muon turned this far from the z axis has left the stack
C_LIGHT_FIELD = 0.299792458  # curvature in 1/mm = C_LIGHT_FIELD * q * B[T] / p[MeV]


# --------------------------------------------------------------------------- mean losses
def t_max(energy: np.ndarray) -> np.ndarray:
    """Largest energy (MeV) a muon of total energy ``energy`` (MeV) gives a free electron."""
    p2 = np.maximum(energy**2 - MUON_MASS**2, 0.0)
    return 2 * ELECTRON_MASS * p2 / (MUON_MASS**2 + ELECTRON_MASS**2 + 2 * ELECTRON_MASS * energy)


_LN_TMAX = np.log(t_max(np.array(A_ENERGIES)))
_A_SLOPE = (A_PBWO4[1] - A_PBWO4[0]) / (_LN_TMAX[1] - _LN_TMAX[0])


def ionisation_a(material: Material, energy: np.ndarray | float) -> np.ndarray:
    """Mean ionisation loss a(E) in MeV cm2/g of a muon of total energy ``energy`` (MeV), shape of ``energy``."""
    energy = np.asarray(energy, float)
    tm = np.maximum(t_max(energy), 1e-3)
    a = np.maximum(A_PBWO4[0] + _A_SLOPE * (np.log(tm) - _LN_TMAX[0]), DEDX_MIN_PBWO4)
    ratio = _plateau_bethe(material, energy, tm) / _plateau_bethe(get_material("PbWO4"), energy, tm)
    return np.maximum(a * ratio, material.dedx_min)


def _plateau_bethe(material: Material, energy: np.ndarray, tm: np.ndarray) -> np.ndarray:
    """Bethe's mean loss (MeV cm2/g) on the Fermi plateau for muons of ``energy`` MeV (T_max ``tm`` MeV).

    With the density effect at its high-energy limit, I and beta gamma drop out and the
    plasma energy takes their place.
    """
    log = np.log(2 * ELECTRON_MASS * np.maximum(tm, 1e-3) / material.plasma_energy**2)
    return 0.5 * K_BETHE * material.z_over_a * (log - 1 + tm**2 / (4 * np.maximum(energy, MUON_MASS) ** 2))


def _log_linear(energy: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Rows of ``table`` (k, 3) at B_ENERGIES, linear in ln E, extrapolated linearly; (k, n)."""
    lx, le = np.log(B_ENERGIES), np.log(energy)[None, :]
    lo = table[:, :1] + (table[:, 1:2] - table[:, :1]) / (lx[1] - lx[0]) * (le - lx[0])
    hi = table[:, 1:2] + (table[:, 2:3] - table[:, 1:2]) / (lx[2] - lx[1]) * (le - lx[1])
    return np.maximum(np.where(le < lx[1], lo, hi), 0.0)


def radiative_b(material: Material, energy: np.ndarray | float) -> np.ndarray:
    """b_brems, b_pair, b_nucl in cm2/g at total energies ``energy`` (MeV); shape (3, n).

    >>> from calolab.geometry import get_material
    >>> [round(float(b) * 1e6, 2) for b in radiative_b(get_material("PbWO4"), 1e6)[:, 0]]
    [5.85, 8.64, 0.32]
    """
    return _log_linear(np.atleast_1d(np.asarray(energy, float)), _b_table(material))


def _brems_strength(z: float, a: float) -> float:
    """Z^2 ln(183 Z^-1/3) / A: how bremsstrahlung in complete screening scales from element to element."""
    return z**2 * math.log(183 * z ** (-1 / 3)) / a


# PbWO4 by mass: Pb 0.455, W 0.404, O 0.141
BREMS_STRENGTH_PBWO4 = sum(w * _brems_strength(z, a) for w, z, a in
                           ((0.455, 82, 207.2), (0.404, 74, 183.84), (0.141, 8, 15.999)))


@cache
def _b_table(material: Material) -> np.ndarray:
    """The (3, 3) b table of ``material`` at B_ENERGIES.

    Pb, W and PbWO4 have their PUMAS rows. Other materials take the PbWO4 brems row scaled by
    Z^2 ln(183 Z^-1/3) / A (this scaling gives the PUMAS Pb/PbWO4 ratio, 1.177 against 1.175),
    b_pair from the Kelner-Kokoulin-Petrukhin cross section (:func:`muon_pair.b_pair`, within 0.3%
    of PUMAS for Pb and W) and the PbWO4 photonuclear row per g/cm2.
    """
    if material.name in B_TABLES:
        return B_TABLES[material.name]
    brems = B_TABLES["PbWO4"][0] * _brems_strength(material.z, material.a) / BREMS_STRENGTH_PBWO4
    pair = np.array([muon_pair.b_pair(float(e), material.z, material.a) for e in B_ENERGIES])
    return np.stack([brems, pair, B_TABLES["PbWO4"][2]])


# ------------------------------------------------------------------ radiative spectra
# Each spectrum g(v) is normalised to int v g dv = 1 over its full range: the number of losses
# above v_c in a slab is b rho dx * number(v_c) and the continuous loss below is b rho dx E * below(v_c).
def spectrum_number(branch: int, v_cut: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """Losses above ``v_cut`` per unit of b rho dx for ``branch`` 0 brems, 1 pair, 2 photonuclear.

    ``energy`` (MeV) is the muon's total energy; only the pair spectrum depends on it.
    """
    if branch == 0:
        return -4 / 3 * np.log(v_cut) - 4 / 3 * (1 - v_cut) + (1 - v_cut**2) / 2
    if branch == 1:
        return muon_pair.number_above(v_cut, energy)
    return -np.log(v_cut)


def spectrum_below(branch: int, v_cut: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """Fraction of the mean loss of ``branch`` carried by losses below ``v_cut`` (muons of ``energy`` MeV)."""
    if branch == 0:
        return 4 / 3 * v_cut - 2 / 3 * v_cut**2 + v_cut**3 / 3
    if branch == 1:
        return muon_pair.fraction_below(v_cut, energy)
    return v_cut.copy()


def sample_v(branch: int, v_cut: np.ndarray, energy: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw v in [v_cut, 1] from the spectrum of ``branch``, one per element of ``v_cut`` (muon ``energy`` MeV)."""
    n = len(v_cut)
    if branch == 1:
        return muon_pair.sample(v_cut, energy, rng)
    v = v_cut ** (1 - rng.random(n))  # 1/v on [v_cut, 1]
    if branch == 0:  # reject to (4/3 (1 - v) + v^2) / (4/3) >= 2/3
        todo = np.flatnonzero(rng.random(n) > 1 - v + 0.75 * v * v)
        while len(todo):
            v[todo] = v_cut[todo] ** (1 - rng.random(len(todo)))
            todo = todo[rng.random(len(todo)) > 1 - v[todo] + 0.75 * v[todo] ** 2]
    return v


# ---------------------------------------------------------------------- the stepper
def _slabs(layer: Layer) -> list[tuple[Material, float, float, bool]]:
    """(material, thickness mm, offset from the layer front mm, visible) for each slab of a layer."""
    offsets = np.concatenate([[0.0], np.cumsum([s.thickness for s in layer.slabs])[:-1]])
    return [(s.material, s.thickness, float(o), s.active) for s, o in zip(layer.slabs, offsets, strict=True)]


def knock_ons(material: Material, e: np.ndarray, mass: np.ndarray, restricted_mean: np.ndarray,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Knock-on electrons above DELTA_CUT carrying the mean a(E) rho dx - <restricted loss>.

    ``e`` (n,) total muon energies in MeV, ``mass`` (n,) g/cm2 crossed, ``restricted_mean`` (n,)
    mean of the Landau part in MeV. Returns the part left continuous (MeV, (n,); non-zero only
    where T_max leaves no room above the cut), and the event index and kinetic energy (MeV) of
    every knock-on drawn.
    """
    rest = np.maximum(ionisation_a(material, e) * mass - restricted_mean, 0.0)
    tm = t_max(e)
    room = tm > 1.01 * DELTA_CUT
    tm = np.where(room, tm, 1.01 * DELTA_CUT)
    strength = np.where(room, rest / np.log(tm / DELTA_CUT), 0.0)  # C of dN/dT = C / T^2
    event = np.repeat(np.arange(len(e)), rng.poisson(strength * (1 / DELTA_CUT - 1 / tm)))
    kinetic = 1 / (1 / DELTA_CUT - rng.random(len(event)) * (1 / DELTA_CUT - 1 / tm[event]))
    return np.where(room, 0.0, rest), event, kinetic


def radiative_losses(material: Material, e: np.ndarray, mass: np.ndarray,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Radiative losses of muons of total energy ``e`` (MeV, (n,)) over ``mass`` g/cm2 ((n,)).

    Returns the continuous loss below RADIATIVE_CUT (MeV, (n,)), and the event index, energy (MeV)
    and branch (0 brems, 1 pair, 2 photonuclear) of every discrete loss above it.
    """
    b = radiative_b(material, e) * mass  # (3, n): b_k rho dx
    v_cut = np.minimum(RADIATIVE_CUT / e, 1.0)
    number = np.stack([b[k] * spectrum_number(k, v_cut, e) for k in range(3)])
    continuous = sum(b[k] * spectrum_below(k, v_cut, e) for k in range(3)) * e
    total = number.sum(0)
    event = np.repeat(np.arange(len(e)), rng.poisson(total))
    cum = np.cumsum(number, 0) / np.where(total > 0, total, 1.0)
    branch = np.minimum((rng.random(len(event))[None, :] > cum[:, event]).sum(0), 2)
    v = np.zeros(len(event))
    for k in range(3):
        sel = np.flatnonzero(branch == k)
        v[sel] = sample_v(k, v_cut[event[sel]], e[event[sel]], rng)
    return continuous, event, v * e[event], branch


def simulate_muons(detector: Detector, energy: np.ndarray, entry: np.ndarray, direction: np.ndarray, pdg: int,
                   rng: np.random.Generator) -> tuple[Deposits, dict[str, np.ndarray]]:
    """Simulate muons (pdg 13 mu-, -13 mu+) and return their visible deposits and per-event truth.

    Parameters
    ----------
    energy : (n,)
        Total energy in MeV.
    entry : (n, 2)
        Entry point (x, y) on the front face in mm.
    direction : (n, 3)
        Unit direction at entry.

    Returns
    -------
    deposits
        Visible deposits, ``event`` in [0, n).
    truth
        (n,) arrays: ``exit_energy`` (MeV, 0 if the muon stopped), ``exit_x``, ``exit_y`` (mm, where it
        left the back face or the side of the block), ``ionisation_energy`` (MeV lost to ionisation,
        knock-ons included), ``radiated_energy`` (MeV, discrete and continuous radiative losses) and
        ``n_radiative`` (discrete radiative losses above RADIATIVE_CUT).
    """
    n = len(energy)
    charge = 1.0 if pdg < 0 else -1.0  # pdg 13 is mu-
    e = np.asarray(energy, float).copy()
    x, y = (np.asarray(entry, float)[:, k].copy() for k in (0, 1))
    ux, uy, uz = (np.asarray(direction, float) / np.linalg.norm(direction, axis=1, keepdims=True)).T.copy()
    live = (uz > MIN_COS) & (e > MUON_MASS)
    exit_energy, exit_x, exit_y = np.where(live, 0.0, e), x.copy(), y.copy()
    ionised, radiated, n_radiative = np.zeros(n), np.zeros(n), np.zeros(n, np.int64)
    shower_visible = detector.e_hat * detector.mip_sampling_fraction  # (layers,) for small showers
    ms_log = 1 + 0.038 * math.log(max(detector.x0_bounds[-1], 1.0))
    track: list[tuple[np.ndarray, ...]] = []  # per layer: live, x, y, visible (n,) each
    losses: list[tuple[np.ndarray, ...]] = []  # knock-ons and radiative losses to shower

    for i, layer in enumerate(detector.layers):
        leaving = live & (detector.beyond_side(x, y) | (uz < MIN_COS))
        exit_energy[leaving], exit_x[leaving], exit_y[leaving] = e[leaving], x[leaving], y[leaving]
        live &= ~leaving
        if not live.any():
            break
        on = live.astype(float)
        uz = np.where(live, uz, 1.0)  # stopped or departed muons keep a harmless state
        tx, ty, path_factor = ux / uz, uy / uz, 1.0 / uz
        z_front = detector.z_bounds[i]
        ion, rad, continuous, visible = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
        for material, d, offset, active in _slabs(layer):
            mass = material.density * d / 10 * path_factor * on  # g/cm2 along the track
            mpv, xi = material.mip_mpv(d) * path_factor, material.landau_xi(d) * path_factor
            restricted_mean = mean_landau_loss(mpv, xi) * on
            restricted = landau_loss(rng, mpv, xi) * on if active else restricted_mean
            soft, ev_k, t_k = knock_ons(material, e, mass, restricted_mean, rng)
            cont, ev_r, eps, branch = radiative_losses(material, e, mass, rng)
            if active:
                visible += restricted + soft
            for ev, en, photon in ((ev_k, t_k, np.zeros(len(ev_k), bool)), (ev_r, eps, branch == 0)):
                z = z_front + offset + d * rng.random(len(ev))
                losses.append((ev, en, x[ev] + tx[ev] * (z - z_front), y[ev] + ty[ev] * (z - z_front), z,
                               tx[ev], ty[ev], photon))
            ion += restricted + soft + np.bincount(ev_k, t_k, minlength=n)
            rad += cont + np.bincount(ev_r, eps, minlength=n)
            continuous += cont
            n_radiative += np.bincount(ev_r, minlength=n)
        visible += continuous * shower_visible[i]
        # a muon that stops here gives up its kinetic energy (its knock-ons and radiative losses are kept)
        kinetic = e - MUON_MASS
        stop = live & (ion + rad >= kinetic)
        share = np.where(stop, kinetic / np.maximum(ion + rad, 1e-300), 1.0)
        ion, rad, visible = ion * share, rad * share, np.minimum(visible, np.where(stop, kinetic, np.inf))
        ionised, radiated = ionised + ion, radiated + rad
        e = e - ion - rad
        z_mid = detector.z_active[i] - z_front  # the track deposit sits in the middle of the active slab
        track.append((live.copy(), x + tx * z_mid, y + ty * z_mid, visible))
        x, y, ux, uy, uz = _transport(detector, layer, x, y, ux, uy, uz, e, charge, ms_log, live & ~stop, rng)
        exit_energy[stop], exit_x[stop], exit_y[stop] = 0.0, x[stop], y[stop]
        live &= ~stop
    exit_energy[live], exit_x[live], exit_y[live] = e[live], x[live], y[live]

    ev, eps, sx, sy, sz, stx, sty, photon = (np.concatenate(col) for col in zip(*losses, strict=True)) if losses \
        else (np.zeros(0, np.int64), *[np.zeros(0)] * 6, np.zeros(0, bool))
    deposits = [_track_deposits(track), *_shower_losses(detector, ev, eps, sx, sy, sz, stx, sty, photon, rng)]
    truth = {"exit_energy": exit_energy, "exit_x": exit_x, "exit_y": exit_y, "ionisation_energy": ionised,
             "radiated_energy": radiated, "n_radiative": n_radiative}
    return Deposits.join(deposits), truth


def _transport(detector: Detector, layer: Layer, x, y, ux, uy, uz, e, charge: float, ms_log: float,
               live: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Move the tracks through ``layer``: helix step in the field (leapfrog), Highland scattering."""
    thick = layer.thickness
    p = np.sqrt(np.maximum(e**2 - MUON_MASS**2, 1.0))
    nx, ny, nz = ux, uy, uz
    if detector.field_tesla:
        half = 0.5 * C_LIGHT_FIELD * charge * detector.field_tesla / p * thick / uz
        cos, sin = np.cos(half), np.sin(half)
        nx, nz = nx * cos - nz * sin, nz * cos + nx * sin
    nz = np.maximum(nz, 0.01)
    step = thick / nz
    nxx, nyy = x + nx * step, y + ny * step
    if detector.field_tesla:
        nx, nz = nx * cos - nz * sin, nz * cos + nx * sin
    theta0 = HIGHLAND / p * np.sqrt(layer.x0_depth * step / thick) * ms_log
    z1, z2 = rng.standard_normal((2, 2, len(x)))
    nxx = nxx + step * theta0 * (z1[0] / math.sqrt(12) + z2[0] / 2)
    nyy = nyy + step * theta0 * (z1[1] / math.sqrt(12) + z2[1] / 2)
    nx, ny = nx + theta0 * z2[0], ny + theta0 * z2[1]
    norm = np.sqrt(nx**2 + ny**2 + nz**2)
    return tuple(np.where(live, new, old) for new, old in
                 ((nxx, x), (nyy, y), (nx / norm, ux), (ny / norm, uy), (nz / norm, uz)))


def _track_deposits(track: list[tuple[np.ndarray, ...]]) -> Deposits:
    """The ionisation (and continuous) deposits on the track, one per layer crossed."""
    if not track:
        return Deposits.empty()
    live, x, y, vis = (np.stack(col) for col in zip(*track, strict=True))  # (layers, n) each
    layer, event = np.nonzero(live & (vis > 0))
    return Deposits(event, layer, x[layer, event], y[layer, event], vis[layer, event])


def _shower_losses(detector: Detector, event, energy, x, y, z, tx, ty, photon, rng) -> list[Deposits]:
    """Shower the knock-on electrons and radiative losses; photons first travel a conversion depth.

    Showers above GFLASH_MIN_ENERGY use GFLASH (:func:`em_showers`); smaller ones are :func:`_small_showers`.
    """
    if not len(event):
        return []
    cos_axis = 1 / np.sqrt(1 + tx**2 + ty**2)
    t_emit = np.interp(z, detector.z_bounds, detector.x0_bounds)
    t_conv = np.where(photon, rng.exponential(PHOTON_CONVERSION_X0, len(event)), 0.0) * cos_axis
    z_start = np.interp(t_emit + t_conv, detector.x0_bounds, detector.z_bounds, right=np.inf)
    inside = np.isfinite(z_start)
    z_start = np.where(inside, z_start, z)
    x, y = x + tx * (z_start - z), y + ty * (z_start - z)
    big = inside & (energy >= GFLASH_MIN_ENERGY)
    small = inside & ~big
    origin = np.column_stack([x, y, z_start])[big]
    gflash = em_showers(detector, event[big], energy[big], origin, np.column_stack([tx, ty])[big], rng)
    # GFLASH's tail radius grows like exp(k4 tau): spots deep behind a short shower can land at 1e20 mm.
    # They are outside the grid either way; clip them to a finite distance so that binning stays exact.
    np.clip(gflash.x, -FAR_MM, FAR_MM, out=gflash.x)
    np.clip(gflash.y, -FAR_MM, FAR_MM, out=gflash.y)
    return [gflash, _small_showers(detector, event[small], energy[small], x[small], y[small], z_start[small],
                                   tx[small], ty[small], rng)]


def _small_showers(detector: Detector, event, energy, x, y, z, tx, ty, rng) -> Deposits:
    """Showers of a few critical energies: a few spots along the axis, visible as in ``em_showers``.

    Each shower is split into ``ceil(E / SMALL_SPOT_MEV)`` spots (at most SMALL_MAX_SPOTS) at depths
    drawn from a Gamma(2) of mean max(ln(E / Ec) + 1, 1) X0 and at GFLASH radii at the shower maximum.
    Homogeneous detectors see the spot energy; sampling detectors see Poisson charged-track crossings.
    """
    if not len(event):
        return Deposits.empty()
    k = np.clip(np.ceil(energy / SMALL_SPOT_MEV), 1, SMALL_MAX_SPOTS).astype(np.int64)
    shower = np.repeat(np.arange(len(event)), k)
    mean_depth = np.maximum(np.log(energy / detector.critical_energy) + 1, 1.0)[shower]
    cos_axis = 1 / np.sqrt(1 + tx**2 + ty**2)
    t = np.interp(z, detector.z_bounds, detector.x0_bounds)[shower] + rng.gamma(2.0, mean_depth / 2) * cos_axis[shower]
    z_spot = np.interp(t, detector.x0_bounds, detector.z_bounds, right=np.inf)
    keep = np.isfinite(z_spot)
    shower, z_spot = shower[keep], z_spot[keep]
    layer = np.clip(np.searchsorted(detector.z_bounds, z_spot, side="right") - 1, 0, detector.n_layers - 1)
    spot_energy = (energy / k)[shower]
    if not detector.homogeneous:
        crossings = rng.poisson(spot_energy * equivalent_crossings_per_mev(detector)[layer])
        shower, layer = np.repeat(shower, crossings), np.repeat(layer, crossings)
        spot_energy = crossing_signal(detector, layer, rng)
    dz = detector.z_active[layer] - z[shower]
    radius = radial_radius(detector, energy / 1e3, np.ones(len(energy)), rng, shower)
    phi = rng.uniform(0, 2 * np.pi, len(shower))
    return Deposits(event[shower], layer, x[shower] + tx[shower] * dz + radius * np.cos(phi),
                    y[shower] + ty[shower] * dz + radius * np.sin(phi), spot_energy)
