"""The robustness study (paper 002): energy regressors under miscalibration, noise and bias.

``calolab study robustness`` simulates (or reads) ``cusi`` test pions, fits the baselines
on a separate training sample (the calibrated sum; the trees when asked for and scikit-learn
is installed), loads a CNN ensemble from a run folder when given, and scores every
regressor at each point of Table 1's grid on the same distorted events
(:mod:`calolab.robustness`). The default, the sum on 20,000 events, takes about 10 minutes on
2 cores; the trees and the CNN compute per-hit features, which on the grid's noise-flooded
points (noise scale 1-1.5 MeV against the 0.6 MeV threshold: up to 53,000 noise cells per
event) costs about 0.3 s (trees) and 0.5 s (CNN) per event over the whole grid, so they are
scored on 1000-2000 events. The run folder holds::

    config.yaml        the study config (grid, copulas, seed, regressors), the Table 1 note
    points.csv/.json   per point and regressor: a, b (MeV), errors, chi2/ndf, resolutions,
                       signal hits and energy surviving, noise-only cells and energy per event
    regression.json    OLS of a and b on (s, n, u) per regressor: full and paper-002 models on
                       every point, and the linear model with interactions on the points where
                       noise does not flood the cells
    metrics.json       ranges over the grid, timing, signal survival
    predictions.npz    e_true (N,) and predictions (regressors, points, N), float32, MeV
    *.png              response curves, a and b against s, n, u, residuals, signal survival

This module imports only click and the standard library at module level, so the CLI
stays fast.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from calolab.config import check_fields
from calolab.errors import CalolabError

if TYPE_CHECKING:
    from calolab.robustness.scan import ScanConfig

TABLE1_NOTE = ("Table 1 of paper 002 lists the noise scale 0.1 twice; the second is read as 0.2, giving "
               "the stated 5 x 8 x 3 = 120 points.")
REGRESSOR_NAMES = ("sum", "trees", "cnn")
# A point is "flooded" where noise above the threshold reads more than this fraction of the signal:
# drawn open in the figures, and left out of the "unflooded" regression of a and b.
FLOODED_NOISE_FRACTION = 0.1
UNFLOODED_TERMS = ("1", "s", "n", "u", "s:n", "s:u", "n:u")


def _scan_config_type():
    from calolab.robustness.scan import ScanConfig

    return ScanConfig


@dataclass(frozen=True)
class RobustnessStudyConfig:
    """What the study simulates, scores and fits; written as ``config.yaml``.

    Parameters
    ----------
    scan
        Grid, copulas, seed, chunking (:class:`calolab.robustness.scan.ScanConfig`).
    detector, particle, energy_min_gev, energy_max_gev
        The simulated test and training events (uniform in energy, GeV); the default range is
        the test range of ``calolab study pions``, inside its CNN's training range.
    test_events, train_events
        Sample sizes (the training sample fits the baselines).
    regressors
        Names, for the record (the study scores the regressors it is given).
    energy_bins
        Equal-width bins of true energy for the response fits.
    terms, alpha
        Terms of the regression of a and b (:mod:`calolab.robustness.regression`), significance level.
    """

    scan: ScanConfig = field(default_factory=lambda: _scan_config_type()())
    detector: str = "cusi"
    particle: str = "pi+"
    energy_min_gev: float = 10.0
    energy_max_gev: float = 200.0
    test_events: int = 20000
    train_events: int = 20000
    regressors: tuple[str, ...] = ("sum",)
    energy_bins: int = 10
    terms: tuple[str, ...] = ("1", "s", "n", "u", "s:n", "s:u", "n:u", "above", "above:n", "above:u")
    alpha: float = 0.05

    @classmethod
    def quick(cls, mip_units: bool = False) -> RobustnessStudyConfig:
        """A small version for tests: 2 x 3 x 2 points, 200 test and 300 training events, 5 bins."""
        from calolab.robustness import RobustnessGrid, ScanConfig

        grid = RobustnessGrid.quick("MIP" if mip_units else "MeV")
        return cls(scan=ScanConfig(grid=grid, chunk_size=100), test_events=200, train_events=300, energy_bins=5)

    @classmethod
    def from_dict(cls, spec: dict[str, Any], where: str = "robustness config") -> RobustnessStudyConfig:
        """Build from a mapping (e.g. a run folder's ``config.yaml``); unknown fields are errors."""
        from calolab.effects.config import config_from_dict
        from calolab.robustness.scan import ScanConfig

        spec = dict(spec)
        for extra in ("note", "test", "provenance"):  # written next to the config, not part of it
            spec.pop(extra, None)
        scan = config_from_dict(ScanConfig, spec.pop("scan", None), f"{where}.scan")
        check_fields(spec, {f.name for f in fields(cls)} - {"scan"}, where)
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()}
        return cls(scan=scan, **values)


def run_robustness_study(out_dir: str | Path, config: RobustnessStudyConfig, regressors: dict[str, Any],
                         test, echo: Callable[[str], None] = print,
                         provenance: dict[str, Any] | None = None) -> dict[str, Any]:
    """Score ``regressors`` (name to Regressor) on ``test`` (Showers) over the grid; write the run folder.

    ``provenance`` (e.g. where a CNN was trained, and on what) is written beside the config.
    Returns the metrics written to ``metrics.json``.
    """
    import numpy as np

    from calolab.io.atomic import atomic_path
    from calolab.io.rundir import write_json, write_yaml
    from calolab.robustness import fit_response, regress, scan
    from calolab.robustness.regression import PAPER_TERMS

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    grid = config.scan.grid
    write_yaml(out / "config.yaml", {**asdict(config), "regressors": list(regressors), "note": TABLE1_NOTE,
                                     "test": test.summary(), "provenance": provenance or {}})
    echo(f"robustness scan: {len(grid.points())} points x {len(test)} {test.detector.name} events, "
         f"regressors {', '.join(regressors)}, units {grid.units}, {config.scan.draws} draws")
    result = scan(regressors, test, config.scan, progress=echo)
    params = np.array([[p.calibration_scale, p.noise_scale, p.bias] for p in result.points])
    rows, fits = [], {}
    signal = _signal_table(result)
    for k, name in enumerate(result.names):
        for p, point in enumerate(result.points):
            try:
                fit = fit_response(result.e_true, result.predictions[k, p], config.energy_bins)
            except CalolabError as exc:
                echo(f"{name} at point {p}: no response fit ({exc})")
                fit = None
            fits[name, p] = fit
            rows.append({"regressor": name, **point._asdict(), **_fit_row(fit), **signal[p]})
    regression = {}
    clear = ~_flooded(signal)
    for name in result.names:
        regression[name] = {}
        for target in ("a", "b"):
            y = np.array([r[target] for r in rows if r["regressor"] == name], float)
            models = {"full": (tuple(config.terms), None), "paper": (PAPER_TERMS[target], None),
                      "unflooded": (UNFLOODED_TERMS, clear)}
            regression[name][target] = {}
            for model, (terms, keep) in models.items():
                keep = slice(None) if keep is None else keep
                try:
                    regression[name][target][model] = regress(params[keep], y[keep], terms,
                                                              grid.zero_suppression, config.alpha)
                except CalolabError as exc:
                    echo(f"{name}: regression of {target} ({model}) not possible: {exc}")
    _write_table(out / "points.csv", rows)
    write_json(out / "points.json", {"points": rows})
    write_json(out / "regression.json", {name: {t: {m: f.to_dict() for m, f in models.items()}
                                                for t, models in targets.items()}
                                         for name, targets in regression.items()})
    with atomic_path(out / "predictions.npz") as tmp, open(tmp, "wb") as handle:
        np.savez(handle, e_true=result.e_true, predictions=result.predictions.astype(np.float32),
                 regressors=np.array(result.names), points=params)
    metrics = _metrics(config, result, rows, regression, signal, test.detector.name)
    write_json(out / "metrics.json", metrics)
    _figures(out, config, result, params, fits, regression, signal)
    for line in _summary_lines(metrics, regression):
        echo(line)
    echo(f"run folder: {out} (config.yaml, points.csv, regression.json, metrics.json, figures)")
    return metrics


def _fit_row(fit) -> dict[str, float]:
    keys = ("a", "a_err", "b", "b_err", "chi2", "ndf", "resolution_raw_overall", "resolution_cal_overall")
    if fit is None:
        return {**dict.fromkeys(keys, float("nan")), "chi2_ndf": float("nan"), "resolution_raw_bins": [],
                "resolution_cal_bins": []}
    row = {k: getattr(fit, k) for k in keys}
    row["chi2_ndf"] = fit.chi2 / fit.ndf if fit.ndf > 0 else float("nan")
    row["resolution_raw_bins"] = [round(float(v), 6) for v in fit.resolution_raw]
    row["resolution_cal_bins"] = [round(float(v), 6) for v in fit.resolution_cal]
    return row


def _signal_table(result) -> list[dict[str, float]]:
    """Per point: what survives of the signal and how much noise comes in (per event, MeV)."""
    n = max(len(result.e_true), 1)
    st = result.stats
    out = []
    for p in range(len(result.points)):
        hits, energy = st["signal_hits"][p], st["signal_energy"][p]
        out.append({"signal_hits_kept_fraction": st["signal_hits_kept"][p] / hits if hits else float("nan"),
                    "signal_energy_kept_fraction": st["signal_energy_kept"][p] / energy if energy else float("nan"),
                    "signal_reading_per_event": st["signal_reading_kept"][p] / n,
                    "noise_cells_per_event": st["noise_cells"][p] / n,
                    "noise_energy_per_event": st["noise_energy"][p] / n})
    return out


def _write_table(path: Path, rows: list[dict[str, Any]]) -> None:
    import csv

    from calolab.io.atomic import atomic_path

    columns = [k for k in rows[0] if not isinstance(rows[0][k], list)]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items() if k in columns})


def _finite_range(values) -> list[float] | None:
    import numpy as np

    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    return [float(v.min()), float(v.max())] if len(v) else None


def _metrics(config, result, rows, regression, signal, detector: str) -> dict[str, Any]:
    grid = config.scan.grid
    nominal = next((p.index for p in result.points
                    if p.calibration_scale == 0 and p.noise_scale == 0 and p.bias == 0), 0)
    per_reg = {}
    for k, name in enumerate(result.names):
        mine = [r for r in rows if r["regressor"] == name]
        per_reg[name] = {
            "a_range": _finite_range([r["a"] for r in mine]),
            "b_range_mev": _finite_range([r["b"] for r in mine]),
            "resolution_raw_range": _finite_range([r["resolution_raw_overall"] for r in mine]),
            "resolution_cal_range": _finite_range([r["resolution_cal_overall"] for r in mine]),
            "nominal": {key: mine[nominal][key] for key in ("a", "a_err", "b", "b_err", "resolution_raw_overall",
                                                            "resolution_cal_overall")},
            "predict_seconds": float(result.seconds[k]),
            "significant": {t: {m: f.significant for m, f in models.items()}
                            for t, models in regression.get(name, {}).items()},
        }
    crossing = [i for i, p in enumerate(result.points) if grid.crosses(p.noise_scale, p.bias)]
    return {
        "detector": detector,
        "units": grid.units, "zero_suppression": grid.zero_suppression, "points": len(result.points),
        "test_events": len(result.e_true), "draws": config.scan.draws, "seconds_scan": result.seconds_total,
        "nominal_point": nominal, "note": TABLE1_NOTE,
        "signal": {"nominal": signal[nominal],
                   "hits_kept_fraction_range": _finite_range([s["signal_hits_kept_fraction"] for s in signal]),
                   "energy_kept_fraction_range": _finite_range([s["signal_energy_kept_fraction"] for s in signal]),
                   "noise_cells_per_event_max": max(s["noise_cells_per_event"] for s in signal),
                   "points_with_noise_above_threshold": len(crossing)},
        "regressors": per_reg,
    }


def _summary_lines(metrics: dict[str, Any], regression) -> list[str]:
    sig = metrics["signal"]
    nominal = sig["nominal"]
    lines = [f"signal at the nominal point: {100 * nominal['signal_hits_kept_fraction']:.1f}% of hits and "
             f"{100 * nominal['signal_energy_kept_fraction']:.1f}% of the true visible energy survive the "
             f"{metrics['zero_suppression']:g} {metrics['units']} threshold; up to "
             f"{sig['noise_cells_per_event_max']:.0f} noise-only cells per event on "
             f"{sig['points_with_noise_above_threshold']} points"]
    for name, m in metrics["regressors"].items():
        fmt = lambda r, f="{:.3g}": "-" if r is None else f"{f.format(r[0])} .. {f.format(r[1])}"  # noqa: E731
        lines.append(f"{name}: a {fmt(m['a_range'])}, b {fmt(m['b_range_mev'])} MeV, resolution raw "
                     f"{fmt(m['resolution_raw_range'])}, calibrated {fmt(m['resolution_cal_range'])}; "
                     f"predict {m['predict_seconds']:.0f} s")
        for target, models in regression.get(name, {}).items():
            for model, note in (("full", ""), ("unflooded", ", points where noise does not flood")):
                if model in models:
                    fit = models[model]
                    lines.append(f"  {fit.formula(target)}  (R^2 {fit.r2:.3f}, rank {fit.rank}{note})")
    return lines


def _flooded(signal: list[dict[str, float]]):
    """Per point: noise above the threshold carries more than FLOODED_NOISE_FRACTION of the signal's reading."""
    import numpy as np

    return np.array([row["noise_energy_per_event"] > FLOODED_NOISE_FRACTION * row["signal_reading_per_event"]
                     for row in signal])


def _figures(out: Path, config, result, params, fits, regression, signal) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from calolab.io.rundir import save_figure
    from calolab.robustness.plots import (
        plot_against_parameter,
        plot_residuals,
        plot_response_curves,
        plot_signal_survival,
    )

    chosen = _selected_points(result.points, config.scan.grid)
    names = result.names
    fig, axes = plt.subplots(1, len(names), figsize=(6 * len(names), 4.8), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        curves = {label: fits[name, p] for label, p in chosen.items() if fits.get((name, p)) is not None}
        plot_response_curves(curves, ax=ax)
        ax.set_title(f"{name}: mean response")
    fig.tight_layout()
    save_figure(fig, out / "response_curves.png")

    flooded = _flooded(signal)  # outside anything a regressor was trained on
    fig, axes = plt.subplots(2, 3, figsize=(14, 8))
    for row, target in enumerate(("a", "b")):
        for col, which in enumerate(("s", "n", "u")):
            ax = axes[row, col]
            values = np.array([[_response_value(fits[name, p], target) for p in range(len(result.points))]
                               for name in names])
            for name, row_values in zip(names, values, strict=True):
                plot_against_parameter(params, row_values, which, label=name, flooded=flooded, ax=ax)
            ax.set_ylabel("slope a" if target == "a" else "intercept b [GeV]")
            kept = values[:, ~flooded][np.isfinite(values[:, ~flooded])]
            if target == "a" and flooded.any() and len(kept):  # the slope's scale from the unflooded points
                pad = 0.1 * max(float(np.ptp(kept)), 0.05)
                low, high = kept.min() - pad, kept.max() + pad
                outside = values[:, flooded]
                off = int(np.sum((outside < low) | (outside > high)))
                ax.set_ylim(low, high)
                ax.set_title("open: noise floods" + (f" ({off} off scale)" if off else ""), fontsize=8)
            b_all = np.abs([_response_value(fits[name, p], "b") for name in names for p in range(len(params))])
            b_all = b_all[np.isfinite(b_all) & (b_all > 0)]
            if target == "b" and len(b_all) and b_all.max() > 1000 * np.median(b_all):  # noise swamps the signal
                ax.set_yscale("symlog", linthresh=float(np.median(b_all)))
    axes[0, 0].legend()
    fig.tight_layout()
    save_figure(fig, out / "response_vs_parameters.png")

    fig, axes = plt.subplots(2, len(names), figsize=(6 * len(names), 8), squeeze=False)
    for col, name in enumerate(names):
        for row, target in enumerate(("a", "b")):
            fit = regression.get(name, {}).get(target, {}).get("full")
            if fit is not None:
                plot_residuals(fit, "a" if target == "a" else "b [MeV]", label=name, ax=axes[row, col])
    fig.tight_layout()
    save_figure(fig, out / "regression_residuals.png")

    grid = config.scan.grid
    fig, ax = plt.subplots(figsize=(7, 4.8))
    for u in grid.biases:
        idx = [p.index for p in result.points if p.calibration_scale == grid.calibration_scales[0] and p.bias == u]
        plot_signal_survival(params[idx, 1], [signal[i]["signal_hits_kept_fraction"] for i in idx],
                             [signal[i]["signal_energy_kept_fraction"] for i in idx],
                             [signal[i]["noise_cells_per_event"] for i in idx], f"u = {u:g}", ax=ax)
    ax.set_title(f"zero suppression at {grid.zero_suppression:g} {grid.units} (s = {grid.calibration_scales[0]:g})")
    fig.tight_layout()
    save_figure(fig, out / "signal_survival.png")


def _response_value(fit, target: str) -> float:
    """``a``, or ``b`` in GeV, of a fit; NaN without one."""
    if fit is None:
        return float("nan")
    return fit.a if target == "a" else fit.b / 1e3


def _selected_points(points, grid) -> dict[str, int]:
    """A few telling points for the response curves: nominal, worst calibration, noise, bias."""
    def find(s, n, u):
        return next((p.index for p in points if (p.calibration_scale, p.noise_scale, p.bias) == (s, n, u)), None)

    s0, n0, u0 = (min(v, key=abs) for v in (grid.calibration_scales, grid.noise_scales, grid.biases))
    quiet = [n for n in grid.noise_scales if not grid.crosses(n, u0)]
    loud = [n for n in grid.noise_scales if grid.crosses(n, u0)]
    candidates = {
        "nominal": find(s0, n0, u0),
        f"s = {max(grid.calibration_scales):g}": find(max(grid.calibration_scales), n0, u0),
        f"n = {max(quiet):g}" if quiet else "": find(s0, max(quiet), u0) if quiet else None,
        f"n = {max(loud):g}" if loud else "": find(s0, max(loud), u0) if loud else None,
        f"u = {max(grid.biases):g}": find(s0, n0, max(grid.biases)),
    }
    out: dict[str, int] = {}
    for label, index in candidates.items():
        if index is not None and index not in out.values():
            out[label] = index
    return out


# ---------------------------------------------------------------- the CLI command
def _fit_baselines(names: tuple[str, ...], train, seed: int, echo) -> dict[str, Any]:
    """Fit the requested baselines on ``train`` (read out as at the grid's nominal point).

    Those that cannot be built here are left out with a message.
    """
    out: dict[str, Any] = {}
    try:
        from calolab.reconstruction import baselines
    except ImportError:
        baselines = None
    if "sum" in names:
        if baselines is not None:
            out["sum"] = baselines.SumRegressor().fit(train)
        else:
            out["sum"] = _CalibratedSum().fit(train)
    if "trees" in names:
        if baselines is None:
            echo("trees: calolab.reconstruction.baselines is not available here, left out")
        else:
            try:
                out["trees"] = baselines.TreesRegressor(random_state=seed, threads=1).fit(train)
            except CalolabError as exc:
                echo(f"trees: left out ({exc})")
    return out


def _nominal_threshold(grid, detector):
    """The grid's zero-suppression threshold in MeV per layer, shape ``(layers,)``."""
    import numpy as np

    scale = detector.mip_mpv if grid.units == "MIP" else np.ones(detector.n_layers)
    return grid.zero_suppression * scale


class _CalibratedSum:
    """Fallback sum regressor: ``E = k S + c`` on the sampling-weighted sum (when baselines are missing)."""

    name = "sum"

    def fit(self, train) -> _CalibratedSum:
        import numpy as np

        from calolab.reconstruction.sums import weighted_sum

        self.k, self.c = np.polyfit(weighted_sum(train), train.incident_energy, 1)
        return self

    def predict(self, showers):
        from calolab.reconstruction.sums import weighted_sum

        return self.k * weighted_sum(showers) + self.c


@click.command("robustness")
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("runs/robustness"), show_default=True)
@click.option("--quick", is_flag=True, help="2 x 3 x 2 points, 200 test and 300 training events (for tests).")
@click.option("--test-events", type=click.IntRange(min=20), help="Test pions to simulate [20000].")
@click.option("--train-events", type=click.IntRange(min=20), help="Training pions for the baselines [20000].")
@click.option("--test", "test_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Read the test events from this file instead of simulating them.")
@click.option("--regressors", default="sum", show_default=True,
              help="Comma-separated: sum, trees, cnn. Trees and CNN compute per-hit features, slow where noise "
                   "floods the cells (120 points x 1000 events: trees ~5, CNN ~8 minutes on 2 cores): give them "
                   "--test-events 1000-2000.")
@click.option("--cnn", "cnn_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Run folder of a trained CNN (ensemble), for the cnn regressor.")
@click.option("--mip-units", is_flag=True, help="Noise, bias and threshold in MIPs of each layer, not MeV.")
@click.option("--draws", type=click.Choice(["shared", "per-point"]), default="shared", show_default=True,
              help="shared: one draw of miscalibration and noise serves every point (scaled).")
@click.option("-s", "--seed", type=int, default=1, show_default=True)
def robustness_command(out_dir: Path, quick: bool, test_events: int | None, train_events: int | None,
                       test_file: Path | None, regressors: str, cnn_dir: Path | None, mip_units: bool, draws: str,
                       seed: int) -> None:
    """Response of energy regressors to miscalibration, noise and bias over paper 002's grid (cusi pions)."""
    import numpy as np

    from calolab.effects import zero_suppress
    from calolab.geometry import load_detector
    from calolab.robustness import RobustnessGrid
    from calolab.simulation import Beam, simulate

    names = tuple(r.strip() for r in regressors.split(",") if r.strip())
    unknown = sorted(set(names) - set(REGRESSOR_NAMES))
    if unknown or not names:
        raise CalolabError(f"--regressors: unknown {', '.join(unknown) or '(none)'}; expected some of "
                           f"{', '.join(REGRESSOR_NAMES)}")
    if "cnn" in names and cnn_dir is None:
        raise CalolabError("--regressors cnn needs --cnn RUN_DIR (a trained CNN run folder)")
    config = RobustnessStudyConfig.quick(mip_units) if quick else RobustnessStudyConfig()
    grid = config.scan.grid if quick else (RobustnessGrid(units="MIP") if mip_units else config.scan.grid)
    config = replace(config, scan=replace(config.scan, grid=grid, seed=seed, draws=draws), regressors=names,
                     test_events=test_events or config.test_events, train_events=train_events or config.train_events)
    det = load_detector(config.detector)
    beam = Beam(config.particle, energy_min=config.energy_min_gev * 1e3, energy_max=config.energy_max_gev * 1e3,
                spectrum="uniform")
    seeds = np.random.SeedSequence(seed).generate_state(2)
    start = time.perf_counter()
    if test_file is not None:
        from calolab.io import read_showers

        test = read_showers(test_file)
        click.echo(f"{test_file}: {test.summary()}")
    else:
        click.echo(f"simulating {config.test_events} test {config.particle} in {det.name}")
        test = simulate(det, beam, config.test_events, seed=int(seeds[0]))
    chosen: dict[str, Any] = {}
    provenance: dict[str, Any] = {"baselines": f"trained on {config.train_events} simulated events read out at the "
                                                f"grid's nominal point (zero suppression only)"}
    baseline_names = tuple(n for n in names if n in ("sum", "trees"))
    if baseline_names:
        click.echo(f"simulating {config.train_events} training {config.particle} for {', '.join(baseline_names)}")
        train = simulate(test.detector, beam, config.train_events, seed=int(seeds[1]))
        train = zero_suppress(train, _nominal_threshold(grid, test.detector))  # the readout at s = n = u = 0
        chosen.update(_fit_baselines(baseline_names, train, seed, click.echo))
    if "cnn" in names:
        from calolab.ml.ensemble import CNNEnsemble

        chosen["cnn"] = CNNEnsemble.load(cnn_dir)
        provenance["cnn"] = {"run": str(cnn_dir), **{k: chosen["cnn"].info.get(k) for k in
                                                     ("detector", "source", "events", "feature_names")}}
        study = cnn_dir.parent / "config.yaml"  # a CNN trained by ``calolab study pions``: its readout and range
        if study.is_file():
            import yaml

            trained = yaml.safe_load(study.read_text()) or {}
            provenance["cnn"].update({k: trained[k] for k in ("zero_suppression_mev", "train_range_gev")
                                      if k in trained})
        shown = {k: v for k, v in provenance["cnn"].items() if k not in ("run", "feature_names")}
        click.echo(f"cnn: {cnn_dir}, trained on {shown}")
    if not chosen:
        raise CalolabError("no regressor could be built: nothing to score")
    click.echo(f"data and regressors ready in {time.perf_counter() - start:.0f} s")
    run_robustness_study(out_dir, replace(config, regressors=tuple(chosen)), chosen, test, echo=click.echo,
                         provenance=provenance)
