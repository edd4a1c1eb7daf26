"""Muon validation in the ``pbwo4`` block: mean energy deposit, MIP peak and sagitta in 2 T.

References (physics.md section 4): -dE/dx = a(E) + b(E) E with a = 1.96 MeV cm2/g at
100 GeV and 2.16 at 1 TeV (PbWO4) and b from the PUMAS table (11.6, 14.8, 16.0 x 1e-6 cm2/g at
0.1, 1, 10 TeV), both taken linear in ln E (and extrapolated so); the mean deposit of a muon
crossing L = 203.2 cm of rho = 8.30 g/cm3 is then (a + b E) rho L. The most probable loss
in one 40.64 mm layer is Bichsel's Delta_p (PDG review, Passage of particles through matter);
physics.md's 10.2 MeV/cm is the mean loss at minimum ionisation, 6% below it. The sagitta of a
track of momentum p over L in B is 0.3 B L^2 / (8 p).

The mean of a heavy-tailed distribution converges slowly: most of the bremsstrahlung loss
comes from the 2% of events with a loss above E / 10, and the sample standard error of a few
hundred events underestimates the true one. The checks therefore quote the standard error
expected from the loss spectra (:func:`expected_sigma`). The visible deposit also misses what
leaks out of the block (2-8%, growing with E); the muon's energy loss (truth) does not.

Two measurements in iron check the loss spectra themselves:

- Berger et al., "A measurement of the energy loss spectrum of 150 GeV muons in iron" (ATLAS
  hadron calorimeter prototype, CERN SPS H8): the probability per radiation length of a loss
  0.01 < v = Delta E / E < 0.95, bremsstrahlung, pairs and knock-on electrons together, is
  (1.610 +- 0.015 stat +- 0.105 syst) 1e-3 (theory 1.556 and 1.619e-3). calolab draws the losses
  with the simulator's own samplers in periods of 14 mm iron and 3 mm scintillator.
- ATLAS TileCal, Eur. Phys. J. C 28 (2003) 297: photonuclear (N_A / A) int_0.1^1 v dsigma/dv dv
  = (0.26 +- 0.03 stat +- 0.03 syst) 1e-6 cm2/g for 180 GeV muons in iron (theory 0.267).

and one in lead tungstate the muon critical energy, where the radiative loss equals the
ionisation loss: CMS, "Measurement of the muon stopping power in lead tungstate" (cosmic
muons in the ECAL), JINST 5 (2010), abstract: 160 +5/-6 (stat) +- 8 (syst) GeV. calolab's is
found with the simulator's samplers (:func:`critical_energy`).

The mean deposit, the energy loss and the MIP peak are compared with the very numbers the
simulator's constants were set on (a(E) and b(E) tables, Bichsel's Delta_p): their checks
are calibrations, agreement by construction; the others are predictions.

>>> round(reference_deposit(1e6) / 1e3, 1)  # GeV, 1 TeV muon through 203.2 cm of PbWO4
28.6
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from calolab.geometry import Detector, Readout, get_material, load_detector
from calolab.geometry.materials import K_BETHE
from calolab.simulation import Beam, muon_pair, simulate
from calolab.simulation.muon import knock_ons, radiative_b, radiative_losses, spectrum_below
from calolab.simulation.sampling import LANDAU_TO_MOYAL, mean_landau_loss
from calolab.validation.core import Check

PHYSICS_MD = "physics.md section 4 (PDG a(E), PUMAS b(E))"
DENSITY, LENGTH_CM = 8.30, 203.2
A_TABLE = ((1e5, 1.96), (1e6, 2.16))  # MeV, MeV cm2/g
B_ENERGIES = (1e5, 1e6, 1e7)  # MeV
B_ROWS = {"brems": (4.57e-6, 5.85e-6, 6.43e-6), "pair": (6.71e-6, 8.64e-6, 9.23e-6),
          "nucl": (0.32e-6, 0.32e-6, 0.38e-6)}  # cm2/g, PbWO4
B_TABLE = tuple(zip(B_ENERGIES, np.sum(list(B_ROWS.values()), axis=0).tolist(), strict=True))
# <v^2> / <v> of the loss spectra of calolab.simulation.muon (brems (4/3 (1-v) + v^2) / v, photonuclear 1/v,
# pair production from its Kelner-Kokoulin-Petrukhin table): the radiative loss variance is sum_k b_k rho L E^2 M2_k.
M2 = {"brems": lambda energy: 2 / 3 - 4 / 9 + 1 / 4, "nucl": lambda energy: 0.5, "pair": muon_pair.second_moment}
XI_PER_G = 0.5 * K_BETHE * get_material("PbWO4").z_over_a  # MeV cm2/g, Bethe's knock-on spectrum d N / dT = xi / T^2
ENERGIES_GEV = (50, 100, 500, 1000, 2000, 4000, 8000)
MEAN_TOLERANCE = 0.10  # relative, in quadrature with 3 expected standard errors of the mean
MIP_ENERGY_GEV = 10.0
MIP_LAYERS = 25  # a 10 GeV muon bends out of the 120 mm block after about 1.4 m in 2 T
MIP_TOLERANCE = 0.03
SAGITTA_ENERGY_GEV = 100.0
SAGITTA_TOLERANCE = 0.10
IRON_PERIOD = (("Fe", 14.0), ("Scintillator", 3.0))  # mm: the steel / scintillator ratio of the ATLAS tile calorimeter
LOSS_SPECTRUM_ENERGY_GEV, LOSS_SPECTRUM_V = 150.0, (0.01, 0.95)
LOSS_SPECTRUM_REF, LOSS_SPECTRUM_ERR = 1.610e-3, math.hypot(0.015e-3, 0.105e-3)
BERGER = "Berger et al., 150 GeV muons in iron (ATLAS tile calorimeter prototype)"
PHOTONUCLEAR_ENERGY_GEV, PHOTONUCLEAR_V = 180.0, 0.1
PHOTONUCLEAR_REF, PHOTONUCLEAR_ERR = 0.26e-6, math.hypot(0.03e-6, 0.03e-6)
CMS_CRITICAL = "CMS, muon stopping power in PbWO4, JINST 5 (2010), abstract"
CRITICAL_REF_GEV, CRITICAL_ERR_GEV = 160.0, ((6.0, 8.0), (5.0, 8.0))  # (stat, syst) below and above
CRITICAL_ENERGIES_GEV = (100.0, 160.0, 250.0)
CRITICAL_SLAB = 100.0  # g/cm2 of PbWO4 crossed per muon (12 cm): the energy changes by under 1%


def _log_linear(energy: float, table: tuple[tuple[float, float], ...]) -> float:
    """Piecewise linear in ln E through ``table``, extrapolated with the end slopes."""
    xs, ys = np.log([t[0] for t in table]), [t[1] for t in table]
    i = int(np.clip(np.searchsorted(xs, math.log(energy)) - 1, 0, len(xs) - 2))
    return ys[i] + (ys[i + 1] - ys[i]) / (xs[i + 1] - xs[i]) * (math.log(energy) - xs[i])


def reference_deposit(energy: float) -> float:
    """(a + b E) rho L in MeV for a muon of ``energy`` MeV crossing the pbwo4 block."""
    return float((_log_linear(energy, A_TABLE) + _log_linear(energy, B_TABLE) * energy) * DENSITY * LENGTH_CM)


def expected_sigma(energy: float) -> float:
    """Expected event-to-event standard deviation (MeV) of the muon's energy loss in the block.

    The sample standard deviation of a few hundred events underestimates it: most of the
    bremsstrahlung loss comes from the 2% of events with a loss above E / 10.
    """
    mass = DENSITY * LENGTH_CM
    radiative = sum(_log_linear(energy, tuple(zip(B_ENERGIES, B_ROWS[k], strict=True))) * M2[k](energy) for k in B_ROWS)
    t_max = energy**2 / (energy + 105.658**2 / (2 * 0.511))
    return math.sqrt(mass * (radiative * energy**2 + XI_PER_G * t_max))


def peak_position(values: np.ndarray, guess: float, width: float) -> tuple[float, float]:
    """Most probable value of ``values`` and its statistical error: a parabola through the log of the
    counts within 0.6 ``width`` of the highest bin (bins of 0.1 ``width``, searched from
    ``guess - 3 width`` to ``guess + 6 width``). For a Landau, ``width`` is its scale (about xi);
    on Moyal samples the estimate is unbiased to 0.3%.
    """
    bin_width = 0.1 * width
    counts, edges = np.histogram(values, bins=np.arange(guess - 3 * width, guess + 6 * width, bin_width))
    centres = 0.5 * (edges[1:] + edges[:-1])
    smooth = np.convolve(counts, np.ones(5) / 5, mode="same")
    peak = centres[np.argmax(smooth)]
    for _ in range(3):  # centre the window on the fitted peak
        top = peak
        sel = (np.abs(centres - top) <= 0.6 * width) & (counts > 0)
        coef, cov = np.polyfit((centres[sel] - top) / width, np.log(counts[sel]), 2, w=np.sqrt(counts[sel]),
                               cov="unscaled")
        shift = -coef[1] / (2 * coef[0]) if coef[0] < 0 else 0.0
        peak = top + float(np.clip(shift, -0.6, 0.6)) * width
    grad = np.array([coef[1] / (2 * coef[0] ** 2), -1 / (2 * coef[0]), 0.0])
    return float(peak), float(np.sqrt(grad @ cov @ grad) * width)


def loss_probability_per_x0(energy: float, v_range: tuple[float, float], n_muons: int,
                            seed: int) -> tuple[float, float]:
    """Probability per radiation length of one loss with v = Delta E / E in ``v_range``, and its error.

    Muons of ``energy`` MeV cross one IRON_PERIOD each; knock-on electrons and radiative losses are
    drawn with the simulator's samplers (:func:`knock_ons`, :func:`radiative_losses`).
    """
    rng = np.random.default_rng(seed)
    e = np.full(n_muons, float(energy))
    count, x0 = 0, 0.0
    for name, thickness in IRON_PERIOD:
        material = get_material(name)
        mass = np.full(n_muons, material.density * thickness / 10)
        restricted = np.full(n_muons, mean_landau_loss(material.mip_mpv(thickness), material.landau_xi(thickness)))
        kinetic = knock_ons(material, e, mass, restricted, rng)[2]
        radiated = radiative_losses(material, e, mass, rng)[2]
        v = np.concatenate([kinetic, radiated]) / energy
        count += int(np.count_nonzero((v > v_range[0]) & (v < v_range[1])))
        x0 += thickness / material.x0
    return count / (n_muons * x0), math.sqrt(max(count, 1)) / (n_muons * x0)


def photonuclear_above(energy: float, v_cut: float) -> float:
    """(N_A / A) int_v_cut^1 v dsigma/dv dv in iron (cm2/g) from the simulator's b_nucl and 1/v spectrum."""
    b_nucl = radiative_b(get_material("Fe"), energy)[2, 0]
    return float(b_nucl * (1 - spectrum_below(2, np.array([v_cut]), np.array([energy]))[0]))


def critical_energy(material_name: str, n_muons: int, seed: int) -> tuple[float, float]:
    """Muon critical energy (GeV) of a material, where the mean radiative loss equals the ionisation loss, and
    its statistical error.

    Muons of :data:`CRITICAL_ENERGIES_GEV` cross :data:`CRITICAL_SLAB` g/cm2 each; their radiative
    losses are drawn with the simulator's sampler (:func:`radiative_losses`: continuous below the
    cut, discrete above), their mean ionisation loss is a(E) rho dx, which :func:`knock_ons`
    reproduces on average. ln(radiative / ionisation) is fitted linear in ln E and solved for 0.

    >>> e_c, err = critical_energy("PbWO4", 20_000, seed=1)
    >>> 130 < e_c < 200 and err < 20
    True
    """
    from calolab.simulation.muon import ionisation_a

    material = get_material(material_name)
    rng = np.random.default_rng(seed)
    log_e, log_r, err = [], [], []
    for e_gev in CRITICAL_ENERGIES_GEV:
        e = np.full(n_muons, e_gev * 1e3)
        mass = np.full(n_muons, CRITICAL_SLAB)
        continuous, event, energy, _ = radiative_losses(material, e, mass, rng)
        radiated = continuous + np.bincount(event, weights=energy, minlength=n_muons)
        ionisation = float(ionisation_a(material, e_gev * 1e3)) * CRITICAL_SLAB
        log_e.append(math.log(e_gev))
        log_r.append(math.log(radiated.mean() / ionisation))
        err.append(radiated.std(ddof=1) / math.sqrt(n_muons) / radiated.mean())
    (slope, offset), cov = np.polyfit(log_e, log_r, 1, w=1 / np.array(err), cov="unscaled")
    log_ec = -offset / slope
    grad = np.array([offset / slope**2, -1 / slope])  # d(log_ec) / d(slope, offset)
    e_c = math.exp(log_ec)
    return e_c, e_c * float(np.sqrt(grad @ cov @ grad))


def mean_deposits(detector: Detector, n_events: int, seed: int) -> list[dict]:
    """Mean visible deposit and mean muon energy loss (MeV) with their standard errors, per energy."""
    rows = []
    for i, e_gev in enumerate(ENERGIES_GEV):
        energy = e_gev * 1e3
        showers = simulate(detector, Beam("mu-", energy=energy), n_events, seed=seed + i)
        deposit = showers.energy_sum().astype(np.float64)
        loss = energy - showers.extras["exit_energy"]
        rows.append({"energy_gev": e_gev, "reference": reference_deposit(energy),
                     "deposit": deposit.mean(), "deposit_se": deposit.std(ddof=1) / math.sqrt(n_events),
                     "loss": loss.mean(), "loss_se": loss.std(ddof=1) / math.sqrt(n_events),
                     "radiated": float(showers.extras["radiated_energy"].mean()),
                     "hits": showers.n_hits / n_events, "values": deposit})
    return rows


def layer_deposits(detector: Detector, energy_gev: float, n_events: int, seed: int) -> np.ndarray:
    """Energy (MeV) in each of the first MIP_LAYERS layers, all events together, (n_events * MIP_LAYERS,)."""
    showers = simulate(detector, Beam("mu-", energy=energy_gev * 1e3), n_events, seed=seed)
    return showers.layer_sums()[:, :MIP_LAYERS].ravel()


def sagitta(detector: Detector, particle: str, energy_gev: float, n_events: int, seed: int) -> tuple[float, float]:
    """Sagitta (mm) over the block of the mean track, from the hottest cell of each layer.

    Each event's hottest cell per layer, minus its entry point, is averaged over events (a 10 mm
    beam spot spreads the entries over the 3.75 mm cells); a parabola through the means gives
    x = c0 + c1 z + c2 z^2 and the sagitta c2 L^2 / 4, with its error from the fit.
    """
    beam = Beam(particle, energy=energy_gev * 1e3, spot_sigma=10.0)
    showers = simulate(detector, beam, n_events, seed=seed)
    layer, ix, _ = showers.cell_coordinates()
    event = showers.event_index
    order = np.lexsort((showers.energy, layer, event))
    key = (event * detector.n_layers + layer)[order]
    last = np.flatnonzero(np.r_[key[1:] != key[:-1], True])
    hot = order[last]
    dx = detector.x_edges[0] + (ix[hot] + 0.5) * detector.pitch_x - showers.entry[event[hot], 0]
    counts = np.bincount(layer[hot], minlength=detector.n_layers)
    mean = np.bincount(layer[hot], dx, minlength=detector.n_layers) / np.maximum(counts, 1)
    spread = np.sqrt(np.maximum(np.bincount(layer[hot], dx**2, minlength=detector.n_layers)
                                / np.maximum(counts, 1) - mean**2, 1e-6))
    good = counts > 10
    z = detector.z_active[good]
    coef, cov = np.polyfit(z, mean[good], 2, w=np.sqrt(counts[good]) / spread[good], cov="unscaled")
    length = detector.z_bounds[-1]
    return float(coef[0] * length**2 / 4), float(np.sqrt(cov[0, 0]) * length**2 / 4)


def run(out_dir: Path, scale: float = 1.0, seed: int = 1) -> list[Check]:
    """Mean deposit vs (a + b E) rho L from 50 GeV to 8 TeV, MIP peak and sagitta in ``pbwo4``; writes plots."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    detector = load_detector("pbwo4")
    n_events = max(int(2000 * scale), 50)
    checks: list[Check] = []

    rows = mean_deposits(detector, n_events, seed)
    for row in rows:
        ref = row["reference"]
        row["expected_se"] = expected_sigma(row["energy_gev"] * 1e3) / math.sqrt(n_events)
        checks.append(Check(
            f"muon mean deposit {row['energy_gev']:g} GeV (pbwo4, {n_events} ev)", row["deposit"], ref,
            math.hypot(MEAN_TOLERANCE * ref, 3 * row["expected_se"]), "MeV",
            f"{PHYSICS_MD}; tol. 10% (+) 3 s.e. (s.e. expected from the loss spectra)", row["expected_se"],
            kind="calibration"))
    loss = np.array([r["loss"] for r in rows])
    ref = np.array([r["reference"] for r in rows])
    se = np.array([r["expected_se"] for r in rows])
    ratio = float(np.sum(loss / se**2 * ref) / np.sum(ref**2 / se**2))  # weighted mean of loss / reference
    ratio_se = float(1 / np.sqrt(np.sum(ref**2 / se**2)))
    checks.append(Check("muon energy loss / (a + bE) rho L, 50 GeV-8 TeV", ratio, 1.0,
                        math.hypot(0.05, 3 * ratio_se), "", f"{PHYSICS_MD}; tol. 5% (+) 3 s.e.", ratio_se,
                        kind="calibration"))

    # MIP peak: the deposit itself (photostatistics off), then as read out
    bare = detector.with_readout(Readout())
    n_mip = max(int(1000 * scale), 100)
    mip = layer_deposits(bare, MIP_ENERGY_GEV, n_mip, seed + 100)
    mip_read = layer_deposits(detector, MIP_ENERGY_GEV, n_mip, seed + 100)
    mpv_ref = float(detector.mip_mpv[0])
    width = float(detector.landau_xi[0] * LANDAU_TO_MOYAL)
    mpv, mpv_err = peak_position(mip, mpv_ref, width)
    checks.append(Check(f"muon MIP peak per 40.64 mm PbWO4 layer ({MIP_ENERGY_GEV:g} GeV)", mpv, mpv_ref,
                        MIP_TOLERANCE * mpv_ref, "MeV", "Bichsel Delta_p (PDG); tol. 3%", mpv_err,
                        kind="calibration"))

    n_sag = max(int(1000 * scale), 100)
    s_minus, e_minus = sagitta(detector, "mu-", SAGITTA_ENERGY_GEV, n_sag, seed + 200)
    s_plus, e_plus = sagitta(detector, "mu+", SAGITTA_ENERGY_GEV, n_sag, seed + 201)
    length_m = detector.z_bounds[-1] / 1e3
    s_ref = 0.3 * detector.field_tesla * length_m**2 / (8 * SAGITTA_ENERGY_GEV) * 1e3
    s_meas, s_err = 0.5 * (s_minus - s_plus), 0.5 * math.hypot(e_minus, e_plus)
    checks.append(Check(f"muon sagitta {SAGITTA_ENERGY_GEV:g} GeV, {detector.field_tesla:g} T, (mu- - mu+)/2",
                        s_meas, s_ref, SAGITTA_TOLERANCE * s_ref, "mm", "0.3 B L^2 / (8 p); tol. 10%", s_err))
    checks.append(Check("muon sagitta sign: mu- bends to +x, mu+ to -x", float(s_minus > 0 > s_plus), 1.0, 0.0, "",
                        "v x B with B along +y"))

    n_iron = max(int(2_000_000 * scale), 100_000)
    lo, hi = LOSS_SPECTRUM_V
    prob, prob_err = loss_probability_per_x0(LOSS_SPECTRUM_ENERGY_GEV * 1e3, LOSS_SPECTRUM_V, n_iron, seed + 300)
    checks.append(Check(f"muon losses {lo:g} < v < {hi:g} per X0, {LOSS_SPECTRUM_ENERGY_GEV:g} GeV, Fe/scint 14/3 mm",
                        prob, LOSS_SPECTRUM_REF, math.hypot(LOSS_SPECTRUM_ERR, 2 * prob_err), "",
                        f"{BERGER}; tol. its stat (+) syst (+) 2 s.e.", prob_err))
    checks.append(Check(f"muon photonuclear int_{PHOTONUCLEAR_V:g}^1 v dsigma/dv, {PHOTONUCLEAR_ENERGY_GEV:g} GeV Fe",
                        photonuclear_above(PHOTONUCLEAR_ENERGY_GEV * 1e3, PHOTONUCLEAR_V), PHOTONUCLEAR_REF,
                        PHOTONUCLEAR_ERR, "cm2/g", "ATLAS TileCal, EPJC 28 (2003) 297; tol. its stat (+) syst"))
    e_c, e_c_err = critical_energy("PbWO4", max(int(2_000_000 * scale), 20_000), seed + 400)
    ref_err = math.hypot(*CRITICAL_ERR_GEV[e_c > CRITICAL_REF_GEV])
    checks.append(Check("muon critical energy in PbWO4 (radiative = ionisation loss)", e_c, CRITICAL_REF_GEV,
                        math.hypot(ref_err, e_c_err), "GeV",
                        f"{CMS_CRITICAL}: 160 +5/-6 (stat) +- 8 (syst) GeV; tol. its error (+) stat.", e_c_err))

    _plot(out_dir, rows, mip, mip_read, mpv, mpv_ref, float(detector.layers[0].readout.pe_per_mev(mpv)))
    return checks


def _plot(out_dir: Path, rows: list[dict], mip: np.ndarray, mip_read: np.ndarray, mpv: float, mpv_ref: float,
          photoelectrons_per_mev: float | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    e = np.array([r["energy_gev"] for r in rows], float)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    grid = np.geomspace(e[0] / 1.5, e[-1] * 1.5, 200)
    ax.plot(grid, [reference_deposit(x * 1e3) / 1e3 for x in grid], "k-", label="(a + bE) rho L, physics.md")
    ax.errorbar(e, [r["deposit"] / 1e3 for r in rows], [r["deposit_se"] / 1e3 for r in rows], fmt="o",
                label="calolab: visible deposit")
    ax.errorbar(e * 1.05, [r["loss"] / 1e3 for r in rows], [r["loss_se"] / 1e3 for r in rows], fmt="s", mfc="none",
                label="calolab: muon energy loss")
    ax.set(xscale="log", yscale="log", xlabel="muon energy [GeV]", ylabel="mean energy in 2 m PbWO4 [GeV]")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "muon_mean_deposit.png", dpi=120)
    plt.close(fig)

    row = next(r for r in rows if r["energy_gev"] == 1000)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    values = row["values"] / 1e3
    ax.hist(values, bins=np.geomspace(max(values.min(), 1.0), values.max() * 1.1, 60), histtype="step")
    ax.axvline(row["reference"] / 1e3, color="k", ls="--", label="(a + bE) rho L")
    ax.axvline(values.mean(), color="C1", label="mean")
    ax.set(xscale="log", yscale="log", xlabel="visible energy [GeV]", ylabel="events", title="1 TeV muons, pbwo4")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "muon_deposit_1tev.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4.5))
    quantum = 1 / photoelectrons_per_mev if photoelectrons_per_mev else 0.25  # MeV per photoelectron
    bins = (np.arange(0, 4 * mpv_ref / quantum, 4) + 0.5) * quantum  # 4 photoelectrons per bin, edges between
    ax.hist(mip, bins=bins, histtype="step", label="deposit")
    ax.hist(mip_read, bins=bins, histtype="step", label="with photostatistics")
    ax.axvline(mpv_ref, color="k", ls="--", label=f"Bichsel MPV {mpv_ref:.1f} MeV")
    ax.axvline(mpv, color="C0", ls=":", label=f"fitted peak {mpv:.1f} MeV")
    ax.set(xlabel="energy in one 40.64 mm layer [MeV]", ylabel="layers", title=f"{MIP_ENERGY_GEV:g} GeV muons")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "muon_mip_layer.png", dpi=120)
    plt.close(fig)
