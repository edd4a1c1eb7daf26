"""Electromagnetic test-beam predictions on lead and copper absorbers, with scintillator and liquid argon.

Four prototypes, each a preset, none of whose measurements set a simulator constant (every
check here is a prediction). References and where their numbers were read:

- ``atlas-emb`` (Pb/LAr): Aharrouche et al. (ATLAS EM barrel), "Energy linearity and resolution
  of the ATLAS electromagnetic barrel calorimeter in an electron test-beam", NIM A568 (2006)
  601, abstract: electrons of 10-245 GeV at eta = 0.687, sampling term "about 10%", local
  constant term "about 0.2%", and the measured energy over the beam energy within 0.1% from
  15 to 180 GeV. The abstract gives the terms to one digit and no error, so their error here
  is half a unit of that digit (0.5% and 0.05%). The preset is a planar approximation of the
  accordion (Geant4's atlasECAL.g4 use case).
- ``alice-emcal`` (Pb/scintillator shashlik): Allen et al., "Performance of prototypes for the
  ALICE electromagnetic calorimeter", NIM A615 (2010) 6, abstract: a 4 x 4 array of final
  modules, "about 11%/sqrt(E) (+) 1.7%", linear from 10 to 100 GeV; the same half-digit errors
  (0.5%, 0.05%). The abstract ties the 10-100 GeV range to the linearity; the resolution scan
  here spans it too.
- ``atlas-hec`` (Cu/LAr): ATLAS HEC test beams 2000/2001 (ATL-LARG-PUB-2022-001), electrons of
  20-147.8 GeV: sigma/E sqrt(E) per beam energy, :data:`HEC_POINTS`, as tabulated (value and
  upper edge) in the Geant4 validation code lopezzot/ATLHECTB, analysis/v2.6/emanalysis.h. The
  reference is their inverse-variance mean with the PDG scale factor sqrt(chi2/ndf) on its error
  (the points scatter more than their errors); the simulation is averaged the same way.
- ``pbsci-compensating`` (Pb/scintillator, 10 mm / 2.5 mm): NIM A262 (1987) 229 as quoted in
  Geant4's StatAccepTest use case wigmans1.g4: electrons of 3-75 GeV, A = (23.5 +- 0.2)% and
  B = (1.2 +- 0.2)% in A/sqrt(E) (+) B, and e/mip = 0.67 +- 0.032 (muons in its electromagnetic
  section). e/mip is measured as in :func:`calolab.validation.hadron_tilecal.e_over_mip`.

Energies are the sampling-weighted sums with the rear-leakage estimate
(:func:`calolab.validation.em.energy_scan`); resolutions are Gaussian-core widths over
Gaussian-core means. Tolerances are two standard deviations of the published and simulated
errors in quadrature (:func:`calolab.validation.core.tolerance`).

>>> det = load_detector("atlas-hec")
>>> det.n_layers, round(float(det.x0_bounds[-1]), 1)
(24, 42.2)
>>> round(hec_reference()[0], 4)
0.2166
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from calolab.geometry import Detector, load_detector
from calolab.io.atomic import atomic_path
from calolab.reconstruction.metrics import fit_resolution, resolution_model
from calolab.validation.core import Check, resolution_checks, tolerance
from calolab.validation.em import energy_scan
from calolab.validation.hadron_tilecal import e_over_mip

ATLAS_EMB = "Aharrouche et al. (ATLAS EM barrel), NIM A568 (2006) 601, abstract"
ALICE_EMCAL = "Allen et al. (ALICE EMCal prototypes), NIM A615 (2010) 6, abstract"
ATLAS_HEC = ("ATLAS HEC test beams 2000/2001, ATL-LARG-PUB-2022-001, points as tabulated in "
             "lopezzot/ATLHECTB analysis/v2.6/emanalysis.h")
PBSCI = "NIM A262 (1987) 229 as quoted in Geant4 StatAccepTest wigmans1.g4"
HALF_DIGIT = "abstract quotes one digit, no error: half a unit of it"

EMB_ENERGIES_GEV = (15.0, 20.0, 35.0, 50.0, 100.0, 180.0)  # the linearity range of the abstract, 15-180 GeV
EMB_STOCHASTIC = (0.10, 0.005)
EMB_CONSTANT = (0.002, 0.0005)
EMB_LINEARITY = 0.001  # |E_measured / E_beam - 1| within 0.1%: a bound, not an error
ALICE_ENERGIES_GEV = (10.0, 20.0, 40.0, 60.0, 80.0, 100.0)
ALICE_STOCHASTIC = (0.11, 0.005)
ALICE_CONSTANT = (0.017, 0.0005)
# beam energy (GeV), sigma/E sqrt(E) (% sqrt(GeV)), upper edge of its error bar (%)
HEC_POINTS = ((20.0, 22.2, 22.57), (40.0, 21.6, 21.89), (50.0, 21.5, 21.78), (80.0, 22.30, 22.6),
              (100.0, 22.0, 22.32), (119.1, 21.2, 21.46), (147.8, 21.3, 21.57))
PBSCI_ENERGIES_GEV = (3.0, 5.0, 7.0, 10.0, 20.0, 30.0, 50.0, 75.0)
PBSCI_STOCHASTIC = (0.235, 0.002)
PBSCI_CONSTANT = (0.012, 0.002)
PBSCI_E_OVER_MIP = (0.67, 0.032)
PBSCI_E_OVER_MIP_GEV = 10.0


def weighted_mean(values: np.ndarray, errors: np.ndarray, scale_factor: bool = True) -> tuple[float, float]:
    """Inverse-variance mean of ``values`` and its error, times the PDG scale factor
    ``max(1, sqrt(chi2 / (n - 1)))`` when ``scale_factor`` and the values scatter beyond their errors.

    >>> [round(v, 3) for v in weighted_mean(np.array([1.0, 3.0]), np.array([1.0, 1.0]))]
    [2.0, 1.0]
    """
    values, errors = np.asarray(values, float), np.asarray(errors, float)
    w = 1.0 / errors**2
    mean = float(np.sum(w * values) / w.sum())
    error = float(1.0 / math.sqrt(w.sum()))
    if scale_factor and len(values) > 1:
        chi2 = float(np.sum(w * (values - mean) ** 2))
        error *= max(1.0, math.sqrt(chi2 / (len(values) - 1)))
    return mean, error


def hec_reference() -> tuple[float, float]:
    """Mean HEC electron stochastic term sigma/E sqrt(E) (fraction, sqrt(GeV)) of :data:`HEC_POINTS` and its error."""
    points = np.array(HEC_POINTS)
    return weighted_mean(points[:, 1] / 100.0, (points[:, 2] - points[:, 1]) / 100.0)


def electron_scan(detector: Detector, energies_gev, n_events: int, seed: int) -> dict[str, np.ndarray]:
    """Electron response and resolution per beam energy (GeV), arrays over energies.

    ``response`` (mean MIP-scale weighted sum / E, MeV per MeV) with ``response_err``; ``rel`` (Gaussian-core
    sigma / core mean) with ``rel_err``; ``n_events`` electrons per energy, seeds from ``seed``.

    >>> scan = electron_scan(load_detector("atlas-hec"), [50.0], 200, seed=3)
    >>> 0.7 < float(scan["response"][0]) < 1.3 and 0.01 < float(scan["rel"][0]) < 0.1
    True
    """
    e = np.asarray(energies_gev, float)
    rows = energy_scan(detector, list(e), n_events, seed)  # core mean, core sigma, errors, mean, mean error
    return {"energy": e, "response": rows[:, 4] / (e * 1e3), "response_err": rows[:, 5] / (e * 1e3),
            "rel": rows[:, 1] / rows[:, 0], "rel_err": rows[:, 3] / rows[:, 0]}


def linearity(scan: dict[str, np.ndarray]) -> tuple[float, float]:
    """Largest |E / E_beam - 1| after one calibration factor (the inverse-variance mean response),
    and the statistical error of that point's deviation.

    >>> scan = {"response": np.array([0.5, 0.505]), "response_err": np.array([0.001, 0.001])}
    >>> [round(v, 4) for v in linearity(scan)]
    [0.005, 0.002]
    """
    scale, _ = weighted_mean(scan["response"], scan["response_err"], scale_factor=False)
    deviation = scan["response"] / scale - 1.0
    worst = int(np.argmax(np.abs(deviation)))
    return float(abs(deviation[worst])), float(scan["response_err"][worst] / scale)


def _resolution_checks(label: str, scan: dict, stochastic: tuple[float, float], constant: tuple[float, float],
                       source: str) -> tuple[list[Check], tuple[float, float]]:
    fit = fit_resolution(scan["energy"], scan["rel"], scan["rel_err"], terms="ac")
    span = f"{scan['energy'][0]:g}-{scan['energy'][-1]:g} GeV"
    checks = resolution_checks(f"{label} e- {{term}} term, {span}", (fit.a, fit.c), (fit.a_err, fit.c_err),
                               stochastic, constant, source)
    return checks, (fit.a, fit.c)


def checks(scale: float = 1.0, seed: int = 1) -> tuple[list[Check], dict]:
    """The predictions with ``max(2000 scale, 50)`` electrons per point, and the scans behind them
    (``{preset: (scan, (a, c))}``) for plotting."""
    n = max(int(2000 * scale), 50)
    found: list[Check] = []
    scans: dict[str, tuple[dict, tuple[float, float]]] = {}

    emb = electron_scan(load_detector("atlas-emb"), EMB_ENERGIES_GEV, n, seed + 600)
    res, terms = _resolution_checks("atlas-emb", emb, EMB_STOCHASTIC, EMB_CONSTANT,
                                    f"{ATLAS_EMB}: about 10% and 0.2%; {HALF_DIGIT}; planar accordion")
    found += res
    scans["atlas-emb"] = (emb, terms)
    dev, dev_err = linearity(emb)
    found.append(Check(f"atlas-emb e- linearity, max |E/E_beam - 1| {EMB_ENERGIES_GEV[0]:g}-{EMB_ENERGIES_GEV[-1]:g}"
                       " GeV", dev, 0.0, math.hypot(EMB_LINEARITY, 2.0 * dev_err), "",
                       f"{ATLAS_EMB}: within 0.1%; tol. that bound (+) 2 stat.", dev_err))

    emcal = electron_scan(load_detector("alice-emcal"), ALICE_ENERGIES_GEV, n, seed + 620)
    res, terms = _resolution_checks("alice-emcal", emcal, ALICE_STOCHASTIC, ALICE_CONSTANT,
                                    f"{ALICE_EMCAL}: about 11% (+) 1.7%; {HALF_DIGIT}")
    found += res
    scans["alice-emcal"] = (emcal, terms)

    points = np.array(HEC_POINTS)
    hec = electron_scan(load_detector("atlas-hec"), points[:, 0], n, seed + 640)
    a_i = hec["rel"] * np.sqrt(hec["energy"])
    a_sim, a_sim_err = weighted_mean(a_i, hec["rel_err"] * np.sqrt(hec["energy"]))
    a_ref, a_ref_err = hec_reference()
    found.append(Check(f"atlas-hec e- mean sigma/E sqrt(E), {points[0, 0]:g}-{points[-1, 0]:g} GeV", a_sim, a_ref,
                       tolerance(a_ref_err, a_sim_err), "",
                       f"{ATLAS_HEC}: their inverse-variance mean (PDG scale factor on its error)", a_sim_err))
    scans["atlas-hec"] = (hec, (a_sim, math.nan))  # a mean over energies, no constant term

    pbsci = load_detector("pbsci-compensating")
    scan = electron_scan(pbsci, PBSCI_ENERGIES_GEV, n, seed + 660)
    res, terms = _resolution_checks("pbsci-compensating", scan, PBSCI_STOCHASTIC, PBSCI_CONSTANT,
                                    f"{PBSCI}: (23.5 +- 0.2)% (+) (1.2 +- 0.2)%")
    found += res
    scans["pbsci-compensating"] = (scan, terms)
    e_mip, e_mip_err = e_over_mip(pbsci, PBSCI_E_OVER_MIP_GEV, n, seed + 680)
    found.append(Check(f"pbsci-compensating e/mip, {PBSCI_E_OVER_MIP_GEV:g} GeV e-", e_mip, PBSCI_E_OVER_MIP[0],
                       tolerance(PBSCI_E_OVER_MIP[1], e_mip_err), "", f"{PBSCI}: 0.67 +- 0.032", e_mip_err))
    return found, scans


REFERENCE_TERMS = {"atlas-emb": (EMB_STOCHASTIC[0], EMB_CONSTANT[0]), "alice-emcal": (ALICE_STOCHASTIC[0],
                   ALICE_CONSTANT[0]), "pbsci-compensating": (PBSCI_STOCHASTIC[0], PBSCI_CONSTANT[0])}


def plot_resolution(scans: dict, ax):
    """sigma/E sqrt(E) against E for each prototype: simulation (points and fit) and the published curve (dashed)."""
    for i, (name, (scan, (a, c))) in enumerate(scans.items()):
        e = scan["energy"]
        grid = np.geomspace(e.min(), e.max(), 100)
        terms = f"mean {100 * a:.1f}%/√E" if math.isnan(c) else f"{100 * a:.1f}%/√E ⊕ {100 * c:.2f}%"
        ax.errorbar(e, scan["rel"] * np.sqrt(e), scan["rel_err"] * np.sqrt(e), fmt="o", color=f"C{i}",
                    label=f"{name}: {terms}")
        ax.plot(grid, resolution_model(grid, a, 0.0, 0.0 if math.isnan(c) else c) * np.sqrt(grid), lw=1, color=f"C{i}")
        if name in REFERENCE_TERMS:
            a_ref, c_ref = REFERENCE_TERMS[name]
            ax.plot(grid, resolution_model(grid, a_ref, 0.0, c_ref) * np.sqrt(grid), "--", color=f"C{i}")
    points = np.array(HEC_POINTS)
    hec_color = f"C{list(scans).index('atlas-hec')}" if "atlas-hec" in scans else "k"
    ax.errorbar(points[:, 0], points[:, 1] / 100.0, (points[:, 2] - points[:, 1]) / 100.0, fmt="s", mfc="none",
                color=hec_color, label="ATLAS HEC data")
    ax.set(xscale="log", xlabel="E [GeV]", ylabel="σ/E · √E [√GeV]",
           title="electrons on Pb and Cu: simulated (points), published (dashed, open)")
    ax.legend(fontsize=7)
    return ax


def run(out_dir: Path, scale: float = 1.0, seed: int = 1) -> list[Check]:
    """Run the Pb and Cu test-beam predictions and write ``em_testbeams_validation.png`` into ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    found, scans = checks(scale, seed)
    fig, ax = plt.subplots(figsize=(7, 5))
    plot_resolution(scans, ax)
    fig.tight_layout()
    with atomic_path(Path(out_dir) / "em_testbeams_validation.png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return found
