"""What the robustness study writes: per-point rows, ``metrics.json``, the summary and the figures.

:func:`fit_row` and :func:`signal_table` give each grid point's response fit and signal
survival; :func:`write_table` writes them as ``points.csv``; :func:`study_metrics` and
:func:`summary_lines` sum them up over the grid; :func:`draw_figures` draws the response
curves, ``a`` and ``b`` against each distortion, the regression residuals and the signal
survival. The study itself is :mod:`calolab.studies.robustness`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TABLE1_NOTE = ("Table 1 of paper 002 lists the noise scale 0.1 twice; the second is read as 0.2, giving "
               "the stated 5 x 8 x 3 = 120 points.")
# A point is "flooded" where noise above the threshold reads more than this fraction of the signal:
# drawn open in the figures, and left out of the "unflooded" regression of a and b.
FLOODED_NOISE_FRACTION = 0.1


def fit_row(fit) -> dict[str, float]:
    keys = ("a", "a_err", "b", "b_err", "chi2", "ndf", "resolution_raw_overall", "resolution_cal_overall")
    if fit is None:
        return {**dict.fromkeys(keys, float("nan")), "chi2_ndf": float("nan"), "resolution_raw_bins": [],
                "resolution_cal_bins": []}
    row = {k: getattr(fit, k) for k in keys}
    row["chi2_ndf"] = fit.chi2 / fit.ndf if fit.ndf > 0 else float("nan")
    row["resolution_raw_bins"] = [round(float(v), 6) for v in fit.resolution_raw]
    row["resolution_cal_bins"] = [round(float(v), 6) for v in fit.resolution_cal]
    return row


def signal_table(result) -> list[dict[str, float]]:
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


def write_table(path: Path, rows: list[dict[str, Any]]) -> None:
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


def study_metrics(config, result, rows, regression, signal, detector: str) -> dict[str, Any]:
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


def summary_lines(metrics: dict[str, Any], regression) -> list[str]:
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


def flooded(signal: list[dict[str, float]]):
    """Per point: noise above the threshold carries more than FLOODED_NOISE_FRACTION of the signal's reading."""
    import numpy as np

    return np.array([row["noise_energy_per_event"] > FLOODED_NOISE_FRACTION * row["signal_reading_per_event"]
                     for row in signal])


def draw_figures(out: Path, config, result, params, fits, regression, signal) -> None:
    """The study's figures, in :func:`~calolab.plotting.figure_style`."""
    from calolab.plotting import figure_style

    with figure_style():
        _draw_figures(out, config, result, params, fits, regression, signal)


def _draw_figures(out: Path, config, result, params, fits, regression, signal) -> None:
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

    flooded_points = flooded(signal)  # outside anything a regressor was trained on
    fig, axes = plt.subplots(2, 3, figsize=(14, 8))
    for row, target in enumerate(("a", "b")):
        for col, which in enumerate(("s", "n", "u")):
            ax = axes[row, col]
            values = np.array([[_response_value(fits[name, p], target) for p in range(len(result.points))]
                               for name in names])
            for name, row_values in zip(names, values, strict=True):
                plot_against_parameter(params, row_values, which, label=name, flooded=flooded_points, ax=ax)
            ax.set_ylabel("slope a" if target == "a" else "intercept b [GeV]")
            kept = values[:, ~flooded_points][np.isfinite(values[:, ~flooded_points])]
            if target == "a" and flooded_points.any() and len(kept):  # the slope's scale from the unflooded points
                pad = 0.1 * max(float(np.ptp(kept)), 0.05)
                low, high = kept.min() - pad, kept.max() + pad
                outside = values[:, flooded_points]
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
