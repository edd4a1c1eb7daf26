"""The ageing study (papers 000/001): recover per-cell ageing coefficients of a damaged ``ahcal``.

Reference and damaged runs of the same beam (independent events), a dose map from a
separate long run, linear ageing scaled to a mean |1 - c| of 0.018 over hit cells as in
the papers, and a second scenario (exponential ageing, 5% cell-to-cell spread, 1% dead
cells). Every run is read out above half a MIP, as the AHCAL is (``threshold_mip``).
Every calibrator is scored on the same events; the ``mip`` method gets muon runs
of the same size through the same damaged detector. The WGAN uses the papers'
convolutional critic for the comparison and, to keep the default run short, a linear
critic for the MAE-versus-events scan (stated in every output).

Outputs, in the run folder: ``config.yaml`` and ``provenance.json``; ``metrics.json`` (per
method and scenario the MAE and RMSE of the coefficients over hit cells, the repeats' mean,
median and worst MAE, timings in s); ``table.md``; the figures ``energy_sums.png``,
``mae_vs_events.png``, ``predicted_vs_true.png``, ``pulls.png`` (and
``wgan_mae_vs_epoch.png``). ``calolab report runs/ageing`` renders them.

>>> AgeingStudyConfig.quick().events < AgeingStudyConfig().events
True
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from calolab.calibration import CalibrationResult, apply_calibration, calibrate, energy_scale, hit_cells, score
from calolab.effects import (
    AgeingConfig,
    DoseConfig,
    age,
    dose_map,
    exponential_response,
    linear_response,
    zero_suppress,
)
from calolab.effects.ageing import mae_scale
from calolab.geometry import Detector, load_detector
from calolab.io.rundir import save_figure, write_config, write_json
from calolab.plotting import styled
from calolab.showers import Showers
from calolab.simulation import Beam, simulate

# Each scenario: the ageing config, and its response c(dose) used to scale the dose map so
# that the mean |1 - c| over the hit cells of the reference is the papers' 0.018.
SCENARIOS = {
    "linear": ({"model": "linear", "slope": 1.0}, lambda d: linear_response(d, 1.0)),
    "exponential-spread-dead": ({"model": "exponential", "critical_dose": 1.0, "spread": 0.05, "dead_fraction": 0.01},
                                lambda d: exponential_response(d, 1.0)),
}
TARGET_MAE = 0.018


@dataclass(frozen=True)
class AgeingStudyConfig:
    """What the study simulates and compares; written as ``config.yaml`` in the run folder."""

    detector: str = "ahcal"
    particle: str = "pi+"
    energy_gev: float = 10.0
    events: int = 5000
    scan_events: tuple[int, ...] = (100, 300, 1000, 3000, 5000, 10000)
    dose_events: int = 10000
    muon_energy_gev: float = 10.0
    methods: tuple[str, ...] = ("moments", "quantile", "mip", "hierarchical", "wgan")
    scenarios: tuple[str, ...] = ("linear", "exponential-spread-dead")
    wgan_critic: str = "conv"
    wgan_epochs: int | None = None
    wgan_scan_critic: str = "linear"
    wgan_scan_epochs: int | None = None
    repeats: int = 3
    # zero suppression of every run, in MIP MPVs (the AHCAL reads out above half a MIP; the
    # calibrators that model a threshold are told it); 0 keeps every hit
    threshold_mip: float = 0.5
    seed: int = 1

    @classmethod
    def quick(cls) -> AgeingStudyConfig:
        """A small version for tests: 1000 events, a short scan, two WGAN epochs."""
        return cls(events=1000, scan_events=(100, 300, 1000), dose_events=2000, wgan_epochs=2, wgan_scan_epochs=1,
                   repeats=2)


def scale_cells(showers: Showers, coefficients: np.ndarray) -> Showers:
    """``showers`` with every hit multiplied by its cell's coefficient (hits that become 0 dropped)."""
    energy = showers.energy * coefficients.ravel()[showers.cell].astype(np.float32)
    keep = energy > 0
    event = showers.event_index[keep]
    offsets = np.concatenate([[0], np.cumsum(np.bincount(event, minlength=len(showers)))])
    return Showers(showers.detector, offsets, showers.cell[keep], energy[keep], showers.particle,
                   showers.incident_energy, showers.entry, showers.direction, dict(showers.extras), dict(showers.meta))


THRESHOLD_AWARE = frozenset({"quantile", "mip", "hierarchical"})  # calibrators with a ``threshold`` option


def readout_threshold(detector: Detector, config: AgeingStudyConfig) -> float:
    """Zero-suppression threshold of the study's runs, MeV (``threshold_mip`` times the median MIP MPV)."""
    return config.threshold_mip * float(np.median(detector.mip_mpv))


def read_out(showers: Showers, threshold: float) -> Showers:
    """``showers`` zero-suppressed at ``threshold`` MeV (unchanged if it is 0)."""
    return zero_suppress(showers, threshold) if threshold > 0 else showers


def _run_method(method: str, data: dict[str, Showers], n: int, truth: np.ndarray, config: AgeingStudyConfig,
                scan: bool) -> tuple[CalibrationResult, float]:
    threshold = readout_threshold(data["reference"].detector, config)
    if method == "mip":
        ref, dam = data["muon_reference"][:n], data["muon_damaged"][:n]
    else:
        ref, dam = data["reference"][:n], data["damaged"][:n]
    options: dict[str, Any] = {"threshold": threshold} if threshold > 0 and method in THRESHOLD_AWARE else {}
    if method == "wgan":
        epochs = config.wgan_scan_epochs if scan else config.wgan_epochs
        critic = config.wgan_scan_critic if scan else config.wgan_critic
        options = {"seed": config.seed, "truth": truth, "critic": critic} | ({"epochs": epochs} if epochs else {})
    start = time.perf_counter()
    result = calibrate(ref, dam, method, **options)
    return result, time.perf_counter() - start


def run_ageing_study(out_dir: str | Path, config: AgeingStudyConfig = AgeingStudyConfig(),
                     echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Simulate, age, calibrate with every method, and write the run folder; returns the metrics."""
    from scipy.stats import wasserstein_distance

    from calolab.calibration import METHODS

    missing = [m for m in config.methods if m not in METHODS]
    if missing:
        echo(f"not available in this installation, left out: {', '.join(missing)}")
        config = replace(config, methods=tuple(m for m in config.methods if m in METHODS))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_config(out, asdict(config))
    det = load_detector(config.detector)
    beam = Beam(config.particle, energy=config.energy_gev * 1e3)
    muon_beam = Beam("mu-", energy=config.muon_energy_gev * 1e3, spot_sigma=0.3 * det.nx * det.pitch_x)
    n_max = max(config.events, *config.scan_events)
    seeds = np.random.SeedSequence(config.seed).generate_state(8)
    echo(f"simulating {n_max} reference + {n_max} damaged {config.particle} and {config.dose_events} for the dose")
    dose = dose_map(simulate(det, beam, config.dose_events, seed=int(seeds[0])), DoseConfig())
    threshold = readout_threshold(det, config)
    reference = read_out(simulate(det, beam, n_max, seed=int(seeds[1])), threshold)
    clean = simulate(det, beam, n_max, seed=int(seeds[2]))
    muon_reference = read_out(simulate(det, muon_beam, n_max, seed=int(seeds[3])), threshold)
    muon_clean = simulate(det, muon_beam, n_max, seed=int(seeds[4]))
    cells = hit_cells(reference[: config.events])
    metrics: dict[str, Any] = {"config": asdict(config), "hit_cells": int(cells.sum()), "scenarios": {}}
    results: dict[str, dict[str, CalibrationResult]] = {}
    for k, name in enumerate(config.scenarios):
        spec, response = SCENARIOS[name]
        scaled_dose = dose * mae_scale(response, dose[cells], TARGET_MAE)
        damaged, truth_record = age(clean, AgeingConfig(**spec), seed=int(seeds[5]) + k, dose=scaled_dose)
        truth = np.asarray(truth_record.coefficients, float)
        data = {"reference": reference, "damaged": read_out(damaged, threshold), "muon_reference": muon_reference,
                "muon_damaged": read_out(scale_cells(muon_clean, truth), threshold)}
        scenario: dict[str, Any] = {"start_mae": float(np.mean(np.abs(1 - truth[cells]))), "methods": {}}
        results[name] = {}
        for method in config.methods:
            result, seconds = _run_method(method, data, config.events, truth, config, scan=False)
            found = score(result, truth, cells) | {"seconds": seconds}
            # the constants applied to the pion runs, whatever runs they came from (mip: muons)
            found["energy_scale"] = energy_scale(data["reference"][: config.events], data["damaged"][: config.events],
                                                 result, truth)
            results[name][method] = result
            scenario["methods"][method] = found | {"diagnostics": _small(result.diagnostics)}
            echo(f"[{name}] {method:12s} MAE {found['mae']:.4f}  RMSE {found['rmse']:.4f}  "
                 f"coverage {found['coverage']:.2f}  corrected/reference sum "
                 f"{found['energy_scale']['sum_ratio_corrected']:.3f}  E-weighted response "
                 f"{found['energy_scale']['response_corrected']:.3f}  {seconds:6.1f} s")
        if k == 0:
            scenario["repeats"] = _repeats(config, det, beam, muon_beam, spec, scaled_dose, cells, echo)
            scenario["scan"] = _scan(config, data, truth, echo)
            scenario["energy_sums"] = _energy_sums(out, data, results[name], config.events, wasserstein_distance)
            _plots(out, scenario, results[name], truth, cells)
        metrics["scenarios"][name] = scenario
    write_json(out / "metrics.json", metrics)
    (out / "table.md").write_text(_table(metrics))
    echo(f"run folder: {out} (config.yaml, metrics.json, table.md, figures)")
    return metrics


def _small(diagnostics: dict) -> dict:
    return {k: v for k, v in diagnostics.items() if not isinstance(v, list) or len(v) <= 200}


def _repeats(config: AgeingStudyConfig, det, beam: Beam, muon_beam: Beam, spec: dict[str, Any], dose: np.ndarray,
             cells: np.ndarray, echo) -> dict[str, Any]:
    """MAE of the fast methods on ``config.repeats`` independent pairs of runs (same detector, same dose).

    One pair of 5000-event runs is one draw: its MAE fluctuates from draw to draw (the
    curve of the hierarchical model moves with the runs' statistical fluctuations), so the
    mean and spread over independent draws are the figures to compare.
    """
    methods = [m for m in config.methods if m != "wgan"]
    found: dict[str, list[dict[str, float]]] = {m: [] for m in methods}
    for r in range(config.repeats):
        seeds = np.random.SeedSequence([config.seed, r + 1]).generate_state(5)
        clean = simulate(det, beam, config.events, seed=int(seeds[1]))
        damaged, truth_record = age(clean, AgeingConfig(**spec), seed=int(seeds[4]), dose=dose)
        truth = np.asarray(truth_record.coefficients, float)
        threshold = readout_threshold(det, config)
        data = {"reference": read_out(simulate(det, beam, config.events, seed=int(seeds[0])), threshold),
                "damaged": read_out(damaged, threshold),
                "muon_reference": read_out(simulate(det, muon_beam, config.events, seed=int(seeds[2])), threshold),
                "muon_damaged": read_out(scale_cells(simulate(det, muon_beam, config.events, seed=int(seeds[3])),
                                                     truth), threshold)}
        for method in methods:
            result, _ = _run_method(method, data, config.events, truth, config, scan=False)
            found[method].append(score(result, truth, cells))
    summary: dict[str, Any] = {"repeats": config.repeats, "events": config.events}
    for method, scores in found.items():
        mae = np.array([s["mae"] for s in scores])
        width = np.array([s.get("pull_width_robust", np.nan) for s in scores])
        summary[method] = {"mae": mae.tolist(), "mae_mean": float(mae.mean()),
                           "mae_std": float(mae.std(ddof=1)) if len(mae) > 1 else 0.0,
                           "mae_median": float(np.median(mae)), "mae_worst": float(mae.max()),
                           "pull_width_robust_mean": float(np.nanmean(width)) if np.isfinite(width).any() else None}
        spread = summary[method]["mae_std"]
        echo(f"{config.repeats} independent draws, {method:12s}: MAE {mae.mean():.4f} +- {spread:.4f}, "
             f"median {np.median(mae):.4f}, worst {mae.max():.4f} (" + ", ".join(f"{m:.4f}" for m in mae) + ")")
    return summary


def _scan(config: AgeingStudyConfig, data: dict[str, Showers], truth: np.ndarray, echo) -> dict[str, Any]:
    scan: dict[str, Any] = {"events": list(config.scan_events), "wgan_critic": config.wgan_scan_critic}
    for method in config.methods:
        maes = []
        for n in config.scan_events:
            cells = hit_cells(data["reference"][:n])
            result, _ = _run_method(method, data, n, truth, config, scan=True)
            maes.append(score(result, truth, cells)["mae"])
        scan[method] = maes
        label = f"{method} ({config.wgan_scan_critic} critic)" if method == "wgan" else method
        echo(f"MAE vs events, {label:12s}: " + ", ".join(f"{n}: {m:.4f}" for n, m in zip(config.scan_events, maes,
                                                                                             strict=True)))
    return scan


@styled
def _energy_sums(out: Path, data: dict[str, Showers], results: dict[str, CalibrationResult], n: int,
                 distance) -> dict[str, float]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sums = {"reference": data["reference"][:n].energy_sum(), "damaged": data["damaged"][:n].energy_sum()}
    for method in ("hierarchical", "wgan", "quantile"):
        if method in results:
            sums[f"calibrated ({method})"] = apply_calibration(data["damaged"][:n], results[method]).energy_sum()
    w1 = {name: float(distance(values, sums["reference"])) for name, values in sums.items() if name != "reference"}
    fig, ax = plt.subplots(figsize=(7, 5))
    bins = np.linspace(0, np.percentile(sums["reference"], 99.5), 80)
    for name, values in sums.items():
        label = name if name == "reference" else f"{name}: W1 = {w1[name]:.2f} MeV"
        ax.hist(values, bins=bins, histtype="step", label=label)
    ax.set(xlabel="visible energy sum [MeV]", ylabel="events", title="energy sums: reference, damaged, calibrated")
    ax.legend()
    save_figure(fig, out / "energy_sums.png")
    return w1


@styled
def _plots(out: Path, scenario: dict[str, Any], results: dict[str, CalibrationResult], truth: np.ndarray,
           cells: np.ndarray) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scan = scenario["scan"]
    fig, ax = plt.subplots(figsize=(7, 5))
    for method in results:
        label = f"wgan ({scan.get('wgan_critic')} critic)" if method == "wgan" else method
        ax.plot(scan["events"], scan[method], "o-", label=label)
    ax.axhline(scenario["start_mae"], color="0.5", ls=":", label="uncorrected")
    ax.axhline(0.0074, color="k", ls="--", lw=1, label="papers' WGAN, 5000 events")
    ax.set(xscale="log", yscale="log", xlabel="events per state", ylabel="MAE over hit cells", title="MAE vs events")
    ax.legend()
    save_figure(fig, out / "mae_vs_events.png")

    if "wgan" in results and "mae_per_epoch" in results["wgan"].diagnostics:
        fig, ax = plt.subplots(figsize=(7, 5))
        mae = results["wgan"].diagnostics["mae_per_epoch"]
        ax.plot(np.arange(len(mae)), mae, "o-", ms=3)
        ax.axhline(0.0074, color="k", ls="--", lw=1, label="papers: 0.0074 after 100 epochs")
        ax.set(xlabel="epoch", ylabel="MAE over hit cells", title=f"wgan ({results['wgan'].diagnostics.get('critic')})")
        ax.legend()
        save_figure(fig, out / "wgan_mae_vs_epoch.png")

    fig, axes = plt.subplots(1, len(results), figsize=(4 * len(results), 4), squeeze=False)
    for ax, (method, result) in zip(axes[0], results.items(), strict=True):
        est = np.where(result.calibrated, result.coefficients, 1.0)[cells]
        ax.plot(truth[cells], est, ".", ms=2, alpha=0.4)
        ax.plot([0, 1.05], [0, 1.05], "k-", lw=0.8)
        ax.set(xlabel="true c", ylabel="estimated c", title=method, xlim=(0, 1.05), ylim=(0, 1.3))
    fig.tight_layout()
    save_figure(fig, out / "predicted_vs_true.png")

    fig, ax = plt.subplots(figsize=(7, 5))
    grid = np.linspace(-5, 5, 101)
    for method, result in results.items():
        ok = cells & result.calibrated & np.isfinite(result.uncertainty) & (result.uncertainty > 0)
        if ok.sum() > 10:
            pulls = (result.coefficients[ok] - truth[ok]) / result.uncertainty[ok]
            ax.hist(np.clip(pulls, -5, 5), bins=grid, histtype="step", density=True,
                    label=f"{method}: width {np.std(pulls):.2f}")
    ax.plot(grid, np.exp(-grid**2 / 2) / np.sqrt(2 * np.pi), "k--", lw=1, label="N(0, 1)")
    ax.set(xlabel="(estimate - truth) / sigma", ylabel="density", title="pulls")
    ax.legend()
    save_figure(fig, out / "pulls.png")


def _table(metrics: dict[str, Any]) -> str:
    lines = []
    for name, scenario in metrics["scenarios"].items():
        first = next(iter(scenario["methods"].values()))["energy_scale"]
        lines += [f"## {name} (uncorrected: MAE {scenario['start_mae']:.4f}, damaged / reference sum "
                  f"{first['sum_ratio_damaged']:.3f}, E-weighted response {first['response_damaged']:.3f}, "
                  f"{first['dead_cells_true']} hit cells with c = 0)", "",
                  "| method | MAE | RMSE | coverage | pull width (robust) | corrected / reference sum "
                  "| E-weighted response | runtime [s] |", "|---|---|---|---|---|---|---|---|"]
        for method, m in scenario["methods"].items():
            pull = f"{m['pull_width_robust']:.2f}" if "pull_width_robust" in m else "-"
            scale = m["energy_scale"]
            lines.append(f"| {method} | {m['mae']:.4f} | {m['rmse']:.4f} | {m['coverage']:.2f} | {pull} | "
                         f"{scale['sum_ratio_corrected']:.3f} | {scale['response_corrected']:.3f} | "
                         f"{m['seconds']:.1f} |")
        repeats = scenario.get("repeats")
        if repeats:
            n = repeats["events"]
            lines += [f"{repeats['repeats']} independent draws of {n} + {n} events:", "",
                      "| method | MAE mean | MAE std | MAE median | MAE worst |", "|---|---|---|---|---|"]
            lines += [f"| {m} | {v['mae_mean']:.4f} | {v['mae_std']:.4f} | {v['mae_median']:.4f} | "
                      f"{v['mae_worst']:.4f} |" for m, v in repeats.items() if isinstance(v, dict)]
        lines.append("")
    return "\n".join(lines)


