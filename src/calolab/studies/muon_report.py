"""What the muon study writes: its metrics and headline figures, ``table.md`` and the combination figure.

:func:`study_metrics` scores every calorimeter regressor, its per-event combination with the
tracker (:mod:`calolab.reconstruction.tracker`) and the crossover energy, and picks the
headline regressor on the calibration events; :func:`report_table` and :func:`summary_lines` say it in
Markdown and on the terminal; :func:`plot_combination` draws the calorimeter, the tracker and
their combination. The study itself is :mod:`calolab.studies.muons`.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any


def _analytic_gain(calorimeter, tracker, e_gev: float) -> float:
    """``1 - combined / tracker`` resolution at ``e_gev`` from the two curves."""
    import numpy as np

    from calolab.reconstruction.metrics import combined_resolution

    r_cal, r_trk = float(calorimeter(np.array([e_gev]))[0]), float(tracker(np.array([e_gev]))[0])
    return 1.0 - float(combined_resolution(r_cal, r_trk)) / r_trk


def binned_curve(table, field: str = "resolution"):
    """``table``'s measured ``field`` (``resolution`` or ``rmse``) as a function of E in GeV: log-log
    interpolation, flat outside."""
    import numpy as np

    x, y = np.log(table.energy_gev), np.log(np.maximum(getattr(table, field), 1e-6))
    return lambda e: np.exp(np.interp(np.log(np.asarray(e, float)), x, y))


def study_metrics(config, scored, e_true, e_trk, edges, seed, e_cal, n_fit, e_trk_cal) -> dict[str, Any]:
    import numpy as np

    from calolab.reconstruction import metrics as rm
    from calolab.reconstruction.paired import paired_ratio, resolution68
    from calolab.reconstruction.scoring import fit_or_none
    from calolab.reconstruction.tracker import combine_with_tracker, crossover

    def trk(e_gev):
        return rm.tracker_resolution(e_gev, config.tracker_slope)

    lo, hi = config.energy_range_gev
    window = config.headline_energy_gev * 1e3 * np.array([1 - config.headline_window, 1 + config.headline_window])
    high = np.array([config.high_energy_gev, hi]) * 1e3
    tracker_table = rm.binned_metrics(e_true, e_trk, bins=edges, n_boot=config.n_boot, seed=seed)
    metrics: dict[str, Any] = {
        "config": asdict(config), "detector": config.detector,
        "events": {"train": config.train_events, "fit": n_fit, "calibration": len(e_cal), "test": config.test_events},
        "cnn": scored["cnn"].label if "cnn" in scored else None,
        "tracker": {"model": f"E_trk = E (1 + N(0, {config.tracker_slope:g} E[GeV])), Gaussian in energy",
                    "table": tracker_table.to_dict()},
        "resolution_definition": "half the 16-84% width of E_pred/E_true over its median, after the response "
                                 "correction fitted on the held-out calibration events",
        "regressors": {name: s.to_dict() for name, s in scored.items()}, "combinations": {}, "headline": None}
    combined: dict[str, Any] = {}
    for name, s in scored.items():
        measured, fitted = binned_curve(s.table), fit_or_none(s.table, config.resolution_terms)
        # the weights: the calorimeter's width measured in bins of the calibration events (the
        # a/sqrt(E) ⊕ b/E ⊕ c form need not describe a muon calorimeter), so that no test event sets them
        width = binned_curve(s.calibration_table, config.combination_width)
        found = combine_with_tracker(e_true, s.test_pred, e_trk, width, edges, window,
                                     config.tracker_slope, config.n_boot, seed,
                                     calibration=(e_cal, s.calibration_pred, e_trk_cal),
                                     response_model=config.response_model)
        combined[name] = {"combined": found["combined"]}
        above = paired_ratio(e_true, s.test_pred, e_trk, high, config.n_boot, seed)
        sel = e_true >= high[0]
        metrics["combinations"][name] = {
            "table": found["table"], "response": found["response"],
            "per_bin_resolution": rm.combined_resolution(s.table.resolution, trk(s.table.energy_gev)).tolist(),
            "per_bin_energy_gev": s.table.energy_gev.tolist(),
            **crossover(fitted, measured, trk, lo, hi),
            "at_energy": {**found["at_window"],
                               "ratio_to_calorimeter": found["vs_calorimeter"]["overall"],
                               "ratio_to_calorimeter_err": found["vs_calorimeter"]["overall_err"],
                               "per_bin_improvement": _analytic_gain(measured, trk, config.headline_energy_gev)},
            "calorimeter_above": {"range_gev": (high / 1e3).tolist(), "resolution": above["resolution_a"],
                                  "resolution_err": above["resolution_a_err"], "events": above["events"],
                                  "rmse": float(np.sqrt(np.mean((s.test_pred[sel] / e_true[sel] - 1) ** 2)))}}
    # the headline regressor: the best resolution above high_energy_gev on the calibration events, not the test events
    above_cal = (e_cal >= high[0]) & (e_cal <= high[1])
    choice = {name: float(resolution68(s.calibration_pred[above_cal] / e_cal[above_cal]))
              for name, s in scored.items()} if above_cal.sum() >= 10 else {name: 0.0 for name in scored}
    best = min(choice, key=choice.get)
    found = metrics["combinations"][best]
    at_energy, above = found["at_energy"], found["calorimeter_above"]
    metrics["headline"] = {
        "regressor": scored[best].label, "regressor_name": best,
        "chosen_by": {"calibration_resolution_above": choice,
                      "rule": f"best 68% resolution above {config.high_energy_gev:g} GeV on the calibration events"},
        "combination_vs_tracker": {
            "statement": f"calorimeter + tracker better than the tracker at {config.headline_energy_gev:g} GeV",
            "improvement": at_energy["improvement"], "improvement_err": at_energy["improvement_err"]},
        "calorimeter_above": {
            "statement": f"calorimeter alone, 68% resolution above {config.high_energy_gev:g} GeV",
            "resolution": above["resolution"], "resolution_err": above["resolution_err"], "rmse": above["rmse"]},
        **{key: found[key] for key in ("crossover_gev", "crossover_from", "crossover_fit_gev",
                                       "crossover_measured_gev")}}
    metrics["_combined"] = combined  # per-event arrays for predictions.npz, not for metrics.json
    return metrics


def summary_lines(metrics: dict[str, Any]) -> list[str]:
    lines = [f"{s['label']:60s} {s['fit_label'] or 'no fit'}" for s in metrics["regressors"].values()]
    for name, c in metrics["combinations"].items():
        g, a = c["at_energy"], c["calorimeter_above"]
        lines.append(f"{name}: crossover with the tracker at {c['crossover_gev']:.0f} GeV (from the "
                     f"{c['crossover_from']}; fit {c['crossover_fit_gev']:.0f} GeV, bins "
                     f"{c['crossover_measured_gev']:.0f} GeV); combination "
                     f"{100 * g['improvement']:.1f} ± {100 * g['improvement_err']:.1f}% better than the tracker at "
                     f"{g['window_gev'][0]:.0f}-{g['window_gev'][1]:.0f} GeV; calorimeter {100 * a['resolution']:.1f} "
                     f"± {100 * a['resolution_err']:.1f}% (RMSE {100 * a['rmse']:.1f}%) above "
                     f"{a['range_gev'][0]:.0f} GeV")
    headline = metrics["headline"]
    for key in ("combination_vs_tracker", "calorimeter_above"):
        h = headline[key]
        value = h["improvement"] if "improvement" in h else h["resolution"]
        err = h["improvement_err"] if "improvement" in h else h["resolution_err"]
        lines.append(f"{h['statement']} ({headline['regressor']}): {100 * value:.1f} ± {100 * err:.1f}%")
    return lines


def _tables(metrics, scored):
    from calolab.studies.regression import table_from_dict as table

    tables = {s.label: s.table for s in scored.values()}
    tables["tracker (simulated)"] = table(metrics["tracker"]["table"])
    for name, c in metrics["combinations"].items():
        tables[f"{name} + tracker"] = table(c["table"])
    return tables


def report_table(config, metrics, scored) -> str:
    from calolab.studies import regression as reg

    lo, hi = config.energy_range_gev
    lines = [f"# Muons in {config.detector}: {lo:g}-{hi:g} GeV {config.spectrum} test, "
             f"{config.train_range_gev[0]:g}-{config.train_range_gev[1]:g} GeV training, "
             f"tracker {metrics['tracker']['model']}", ""]
    lines += [f"Track read by the calorimeter regressors: {track_label(config)}.", ""]
    if metrics["cnn"]:
        lines += [f"CNN: {metrics['cnn']}.", ""]
    lines += ["## Resolution (68%, percent) per bin of true energy", "", *reg.per_bin_table(_tables(metrics, scored)),
              "", "## Regressors", "", *reg.summary_rows(scored), "", "## Combination with the tracker", ""]
    lines += [f"- {line}" for line in summary_lines(metrics)[len(scored):]]
    return "\n".join(lines) + "\n"


def track_label(config) -> str:
    """How the calorimeter regressors know the muon's entry point and direction."""
    if not (config.track_sigma_mm or config.track_sigma_mrad):
        return "the true entry point and direction (exact)"
    return (f"entry point and direction smeared by {config.track_sigma_mm:g} mm and {config.track_sigma_mrad:g} mrad "
            "per coordinate")


def plot_combination(metrics, config, ax):
    import numpy as np

    from calolab.studies.regression import table_from_dict

    name = metrics["headline"]["regressor_name"]
    reg_table = table_from_dict(metrics["regressors"][name]["table"])
    trk_table = table_from_dict(metrics["tracker"]["table"])
    comb = metrics["combinations"][name]
    comb_table = table_from_dict(comb["table"])
    label = f"{name} alone"
    for t, lab in ((reg_table, label), (trk_table, "tracker (simulated)"), (comb_table, "combination per event")):
        ax.errorbar(t.energy_gev, t.resolution, t.resolution_err, fmt="o", ms=3, capsize=2, label=lab)
    grid = np.geomspace(*config.energy_range_gev, 200)
    ax.plot(grid, config.tracker_slope * grid, "k--", lw=0.8,
            label=f"tracker {config.tracker_slope:g} E[GeV] (paper 003: 20% at 1 TeV)")
    ax.plot(comb["per_bin_energy_gev"], comb["per_bin_resolution"], "k-", lw=0.8,
            label="inverse-variance per bin (measured ⊕ nominal)")
    if np.isfinite(comb["crossover_gev"]):
        ax.axvline(comb["crossover_gev"], color="grey", ls=":", label=f"crossover {comb['crossover_gev']:.0f} GeV")
    ax.set(xscale="log", xlabel="true energy [GeV]", ylabel="resolution σ/E (68%)", ylim=(0, 1.2),
           title="calorimeter, tracker and their combination")
    ax.legend(fontsize="small", loc="best")
    return ax
