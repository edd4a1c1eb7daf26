"""What the energy-regression studies (pions, muons) share: split, calibrate, score, compare, time, draw.

A regressor is scored in three steps, the same for the baselines and the CNN:

1. predictions on the held-out calibration events of the training sample fit its response
   (:class:`~calolab.reconstruction.response.ResponseCalibration`, linear, power law, or
   binned in the prediction);
2. its predictions on the test sample, timed in one run (features included), are corrected
   with that response;
3. :func:`~calolab.reconstruction.metrics.binned_metrics` scores them per bin of true energy
   and :func:`~calolab.reconstruction.metrics.fit_resolution` fits ``a/sqrt(E) ⊕ b/E ⊕ c``.

Two regressors are compared on the same events with :func:`paired_ratio`: the ratio of
their 68% resolutions (half the 16-84% width of ``E_pred / E_true`` over its median), per
bin and pooled over an energy range, with a paired bootstrap error (the same resampled
events for both), so that the correlation between the two estimates cancels.

>>> import numpy as np
>>> rng = np.random.default_rng(3)
>>> e = rng.uniform(50e3, 200e3, 20000)
>>> z = rng.standard_normal(len(e))
>>> found = paired_ratio(e, e * (1 + 0.08 * z), e * (1 + 0.10 * z), np.array([50e3, 125e3, 200e3]), n_boot=50)
>>> round(found["overall"], 3), found["overall_err"] < 1e-3, len(found["ratio"])  # the shared z cancels
(0.8, True, 2)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from calolab.errors import CalolabError
from calolab.reconstruction.metrics import ResolutionFit, ResolutionTable, binned_metrics, fit_resolution
from calolab.reconstruction.response import ResponseCalibration
from calolab.showers import Showers


def split_training(train: Showers, fraction: float, seed: int) -> tuple[Showers, Showers]:
    """``(fit_set, calibration_set)``: a seeded ``fraction`` of ``train`` held out for the response fit."""
    if not 0 < fraction < 1:
        raise CalolabError(f"calibration_fraction must be in (0, 1), got {fraction}")
    order = np.random.default_rng(seed).permutation(len(train))
    n_cal = int(round(fraction * len(train)))
    return train[np.sort(order[n_cal:])], train[np.sort(order[:n_cal])]


@dataclass
class Scored:
    """One regressor scored on the test set (energies in MeV, float64 (N,))."""

    name: str
    label: str  # what it is, for tables and legends
    response: ResponseCalibration
    table: ResolutionTable  # test set, after the response correction
    fit: ResolutionFit | None  # a/sqrt(E) ⊕ b/E ⊕ c on ``table``; None when it cannot be fitted
    calibration_table: ResolutionTable  # the calibration events, after the correction
    test_pred: np.ndarray
    calibration_pred: np.ndarray
    fit_seconds: float
    predict_seconds: float
    events_per_s: float

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "response": self.response.to_dict(), "table": self.table.to_dict(),
                "fit": self.fit.to_dict() if self.fit else None, "fit_label": self.fit.label() if self.fit else None,
                "linearity": linearity(self.table), "fit_seconds": self.fit_seconds,
                "predict_seconds": self.predict_seconds, "events_per_s": self.events_per_s}


def linearity(table: ResolutionTable) -> dict[str, float]:
    """Largest ``|response - 1|`` over the bins, for the mean and the median response (NaN without bins)."""
    if not len(table.n):
        return {"max_abs_mean_minus_1": math.nan, "max_abs_median_minus_1": math.nan}
    return {"max_abs_mean_minus_1": float(np.max(np.abs(table.response_mean - 1))),
            "max_abs_median_minus_1": float(np.max(np.abs(table.response_median - 1)))}


def fit_or_none(table: ResolutionTable, terms: str = "abc") -> ResolutionFit | None:
    """The resolution fit of ``table``, or ``None`` when there are too few bins or it fails."""
    try:
        return fit_resolution(table.energy_gev, table.resolution, table.resolution_err, terms=terms)
    except (CalolabError, RuntimeError, ValueError):
        return None


def score(name: str, label: str, predict: Callable[[Showers], np.ndarray], calibration: Showers, test: Showers,
          edges: np.ndarray, fit_seconds: float = 0.0, response_model: str = "linear", terms: str = "abc",
          n_boot: int = 200, seed: int = 0) -> Scored:
    """Calibrate ``predict`` (showers -> MeV) on ``calibration`` and score it on ``test`` (see the module docstring).

    ``edges`` are the bin edges in MeV, for the response fit and the scores.
    """
    raw_cal = predict(calibration)
    response = ResponseCalibration.fit(calibration.incident_energy, raw_cal, bins=edges, model=response_model)
    start = time.perf_counter()
    raw = predict(test)
    seconds = time.perf_counter() - start
    test_pred, cal_pred = response.correct(raw), response.correct(raw_cal)
    table = binned_metrics(test.incident_energy, test_pred, bins=edges, n_boot=n_boot, seed=seed)
    cal_table = binned_metrics(calibration.incident_energy, cal_pred, bins=edges, n_boot=n_boot, seed=seed)
    return Scored(name, label, response, table, fit_or_none(table, terms), cal_table, test_pred, cal_pred,
                  fit_seconds, seconds, len(test) / max(seconds, 1e-9))


def table_from_dict(data: Mapping[str, Any]) -> ResolutionTable:
    """A :class:`ResolutionTable` from its ``to_dict`` form."""
    return ResolutionTable(**{k: np.asarray(v, float) for k, v in data.items()})


def resolution68(ratio: np.ndarray) -> np.ndarray:
    """Half the 16-84% width over the median of ``ratio`` along its last axis (as in ``binned_metrics``)."""
    q16, q50, q84 = np.quantile(ratio, [0.16, 0.5, 0.84], axis=-1)
    return 0.5 * (q84 - q16) / q50


def paired_ratio(e_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, edges: np.ndarray,
                 n_boot: int = 200, seed: int = 0, min_events: int = 10) -> dict[str, Any]:
    """Resolution of ``pred_a`` over that of ``pred_b`` on the same events (energies in MeV).

    Returns ``energy_gev``, ``ratio`` and ``ratio_err`` per bin of ``edges`` (bins with at
    least ``min_events``), and ``overall`` / ``overall_err``: the ratio of the resolutions
    of all events from ``edges[0]`` to ``edges[-1]`` pooled, with ``resolution_a`` and
    ``resolution_b`` (and errors); errors from a paired bootstrap seeded by ``seed``.
    """
    e_true, pred_a, pred_b = (np.asarray(v, float) for v in (e_true, pred_a, pred_b))
    rng = np.random.default_rng(seed)
    idx = np.digitize(e_true, edges) - 1
    out: dict[str, Any] = {"energy_gev": [], "ratio": [], "ratio_err": []}

    def one(sel: np.ndarray) -> tuple[float, float, np.ndarray, np.ndarray]:
        ra, rb = pred_a[sel] / e_true[sel], pred_b[sel] / e_true[sel]
        boot = rng.integers(0, len(ra), (n_boot, len(ra)))
        res_a, res_b = resolution68(ra[boot]), resolution68(rb[boot])
        central = float(resolution68(ra) / resolution68(rb))
        return central, float(np.std(res_a / res_b, ddof=1)), resolution68(np.stack([ra, rb])), np.stack([res_a, res_b])

    for k in range(len(edges) - 1):
        sel = idx == k
        if sel.sum() >= min_events:
            central, err, _, _ = one(sel)
            out["energy_gev"].append(float(e_true[sel].mean() / 1e3))
            out["ratio"].append(central)
            out["ratio_err"].append(err)
    inside = (idx >= 0) & (idx < len(edges) - 1)
    if inside.sum() < min_events:
        raise CalolabError(f"fewer than {min_events} events between {edges[0] / 1e3:g} and {edges[-1] / 1e3:g} GeV")
    central, err, res, boot = one(inside)
    out.update(overall=central, overall_err=err, events=int(inside.sum()), resolution_a=float(res[0]),
               resolution_a_err=float(np.std(boot[0], ddof=1)), resolution_b=float(res[1]),
               resolution_b_err=float(np.std(boot[1], ddof=1)))
    return out


def improvement(ratio: Mapping[str, Any]) -> dict[str, float]:
    """``1 - overall ratio`` (the relative gain in resolution) and its error, from :func:`paired_ratio`."""
    return {"improvement": 1.0 - ratio["overall"], "improvement_err": ratio["overall_err"]}


BASELINE_LABELS = {"sum": "calibrated sum", "layers": "layer weights",
                   "compensation": "software compensation (hit-density weights)",
                   "trees": "trees (high-level features)"}


def fit_baselines(config, fit_set: Showers, calibration: Showers, test: Showers, edges: np.ndarray,
                  common: dict[str, Any], seed: int, echo: Callable[[str], None] = print,
                  labels: Mapping[str, str] | None = None) -> dict[str, Scored]:
    """Fit and score the baselines among ``config.methods`` (``sum``, ``layers``, ``compensation``, ``trees``).

    ``config`` gives ``methods``, ``segments``, ``trees_max_iter`` and ``threads``; ``common``
    the keyword arguments of :func:`score`; ``seed`` seeds the trees.
    """
    from calolab.reconstruction.compare import METHODS, RegressionConfig

    labels = {**BASELINE_LABELS, **(labels or {})}
    methods = tuple(m for m in config.methods if m in METHODS)
    scored: dict[str, Scored] = {}
    if not methods:
        return scored
    settings = RegressionConfig(methods=methods, segments=config.segments, trees_max_iter=config.trees_max_iter,
                                threads=config.threads, seed=seed)
    for method in methods:
        start = time.perf_counter()
        model = settings.regressor(method).fit(fit_set)
        scored[method] = score(method, labels[method], model.predict, calibration, test, edges,
                               time.perf_counter() - start, **common)
        echo(f"{labels[method]:40s} fitted in {scored[method].fit_seconds:6.1f} s, "
             f"{scored[method].events_per_s:8.0f} events/s")
    return scored


def fit_cnn(config, label: str, features: Callable[[Showers], tuple[np.ndarray, list[str]]] | None,
            fit_set: Showers, calibration: Showers, test: Showers, edges: np.ndarray, common: dict[str, Any],
            run_dir: Path, seed: int, echo: Callable[[str], None] = print, progress: bool = False) -> Scored:
    """Train an ensemble of ``config.ensemble`` CNNs on ``fit_set`` into ``run_dir`` and score it.

    ``config`` gives the architecture (``pool``, ``channels``, ``hidden``), the training
    (``epochs``, ``batch_size``, ``lr_max``, ``patience``, ``mirror_y``, and ``mirror_x`` where the
    study has it), ``workers`` (CNNs trained at once) and ``feature_transform``;
    ``features`` computes the (N, F) features of the network body (``None``: none). The CNN
    keeps its own validation split of ``fit_set`` (20%, seeded by ``seed``) for early
    stopping and the ensemble weights; a killed run resumes from the checkpoints in ``run_dir``.
    """
    from calolab.ml.ensemble import train_ensemble
    from calolab.ml.model import RegressorConfig
    from calolab.ml.train import TrainConfig

    if features is not None and config.feature_transform != "none":
        raw, how = features, config.feature_transform

        def features(showers: Showers) -> tuple[np.ndarray, list[str]]:
            x, names = raw(showers)
            return transform_features(x, how), names

    model_config = RegressorConfig(pool=config.pool, channels=config.channels, hidden=config.hidden,
                                   hit_classes=config.hit_classes)
    train_config = TrainConfig(epochs=config.epochs, batch_size=config.batch_size, lr_max=config.lr_max,
                               patience=config.patience, weight_decay=config.weight_decay, seed=seed, split_seed=seed,
                               mirror_y=config.mirror_y, mirror_x=mirror_x(config))
    values, names = features(fit_set) if features else (None, None)
    echo(f"training {label} on {len(fit_set)} events")
    start = time.perf_counter()
    ensemble = train_ensemble(fit_set, run_dir, config.ensemble, model_config, train_config, values, names,
                              progress=progress, workers=config.workers)
    seconds = time.perf_counter() - start

    def predict(showers: Showers) -> np.ndarray:
        return ensemble.predict(showers, features(showers)[0] if features else None)

    scored = score("cnn", label, predict, calibration, test, edges, seconds, **common)
    echo(f"{label} trained in {seconds:.0f} s, {scored.events_per_s:.0f} events/s")
    return scored


def mirror_x(config) -> bool:
    """Whether a study's CNNs are mirrored in x: ``config.mirror_x`` where the study has it (the muon
    study has not: in its field, x -> -x is not a symmetry)."""
    return bool(getattr(config, "mirror_x", False))


FEATURE_TRANSFORMS = ("none", "signed-log")


def transform_features(x: np.ndarray, how: str) -> np.ndarray:
    """Features as the CNN body sees them: ``none``, or ``signed-log`` ``sign(x) log(1 + |x|)``, float32 (N, F).

    The body standardises its inputs by their mean and standard deviation; energies and
    counts with long tails (muon radiative losses span orders of magnitude) are better
    spread after the log.

    >>> [round(float(v), 3) for v in transform_features(np.array([[0.0, -1.0, np.e - 1]]), "signed-log")[0]]
    [0.0, -0.693, 1.0]
    """
    if how not in FEATURE_TRANSFORMS:
        raise CalolabError(f"feature_transform must be one of {', '.join(FEATURE_TRANSFORMS)}, got {how!r}")
    x = np.asarray(x, np.float32)
    return x if how == "none" else (np.sign(x) * np.log1p(np.abs(x))).astype(np.float32)


def plot_ratios(ratios: Mapping[str, Mapping[str, Any]], ax=None, goals: Mapping[str, float] | None = None):
    """Resolution ratios of :func:`paired_ratio` per bin, one series per ``{name: ratio}``, goals as lines."""
    if ax is None:
        import matplotlib.pyplot as plt

        ax = plt.gca()
    for name, r in ratios.items():
        points = ax.errorbar(r["energy_gev"], r["ratio"], r["ratio_err"], fmt="o-", ms=3, capsize=2,
                             label=f"{name.replace('_vs_', ' / ')}: {r['overall']:.3f} ± {r['overall_err']:.3f} "
                                   "pooled")
        if goals and name in goals:
            ax.axhline(1 - goals[name], color=points[0].get_color(), ls="--", lw=0.8,
                       label=f"goal {1 - goals[name]:.2f}")
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set(xlabel="true energy [GeV]", ylabel="ratio of 68% resolutions", title="resolution ratios (paired bootstrap)")
    ax.legend(fontsize="small")
    return ax


# ------------------------------------------------------------------ run folder
def draw_figures(out: Path, scored: Mapping[str, Scored], e_true: np.ndarray, log_x: bool = False,
                 extra: Mapping[str, Callable] | None = None, note: str = "") -> list[str]:
    """``response.png``, ``resolution.png`` (with fits), ``truth_<name>.png`` and ``extra`` figures; their names.

    Legends use the short names; ``note`` (what the CNN is) goes above every figure.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from calolab.io.rundir import save_figure
    from calolab.reconstruction.plots import plot_prediction_vs_truth, plot_resolution, plot_response

    tables = {name: s.table for name, s in scored.items()}
    fits = {name: s.fit for name, s in scored.items() if s.fit}
    drawers = {"response": lambda ax: plot_response(tables, ax=ax, kind="mean"),  # the calibrated quantity
               "resolution": lambda ax: plot_resolution(tables, fits, ax=ax, log_x=log_x), **(extra or {})}
    names = []
    for name, draw in drawers.items():
        fig, ax = plt.subplots(figsize=(7, 5))
        fig.subplots_adjust(left=0.12, right=0.97, bottom=0.11, top=0.89)  # no layout engine: it costs 0.5 s a figure
        draw(ax)
        if log_x:
            ax.set_xscale("log")
        fig.suptitle(note, fontsize="small")
        save_figure(fig, out / f"{name}.png")
        names.append(f"{name}.png")
    for name, s in scored.items():
        fig, ax = plt.subplots(figsize=(5.5, 4.5))
        fig.subplots_adjust(left=0.14, right=0.98, bottom=0.12, top=0.92)
        plot_prediction_vs_truth(e_true, s.test_pred, ax=ax)
        ax.set_title(s.label, fontsize="small")
        save_figure(fig, out / f"truth_{name}.png")
        names.append(f"truth_{name}.png")
    return names


def per_bin_table(tables: Mapping[str, ResolutionTable], metric: str = "resolution") -> list[str]:
    """Markdown rows: one column per ``{label: table}``, ``metric`` (percent ± error) per energy bin of the first."""
    first = next(iter(tables.values()))
    lines = ["| E [GeV] | " + " | ".join(tables) + " |", "|---|" + "---|" * len(tables)]
    for lo, hi in zip(first.e_low, first.e_high, strict=True):
        cells = []
        for table in tables.values():
            match = np.flatnonzero(np.isclose(table.e_low, lo))
            if len(match):
                value, err = getattr(table, metric)[match[0]], getattr(table, f"{metric}_err")[match[0]]
                cells.append(f"{100 * value:.2f} ± {100 * err:.2f}")
            else:
                cells.append("-")
        lines.append(f"| {lo / 1e3:.4g}-{hi / 1e3:.4g} | " + " | ".join(cells) + " |")
    return lines


def summary_rows(scored: Mapping[str, Scored]) -> list[str]:
    """Markdown rows per regressor: resolution fit and its chi2/ndf, linearity, inference speed."""
    lines = ["| regressor | resolution fit | chi2/ndf | max abs(<E_pred/E> - 1) | fit [s] | inference [events/s] |",
             "|---|---|---|---|---|---|"]
    for s in scored.values():
        lin = linearity(s.table)["max_abs_mean_minus_1"]
        quality = f"{s.fit.chi2:.0f}/{s.fit.ndf}" if s.fit else "-"  # how well a/sqrt(E) ⊕ b/E ⊕ c describes it
        lines.append(f"| {s.label} | {s.fit.label() if s.fit else 'no fit'} | {quality} | {100 * lin:.2f}% | "
                     f"{s.fit_seconds:.1f} | {s.events_per_s:.0f} |")
    return lines


class torch_threads:
    """Context manager: ``torch.set_num_threads(n)`` inside, the previous number restored after (``None``: leave)."""

    def __init__(self, n: int | None):
        self.n, self.before = n, None

    def __enter__(self) -> torch_threads:
        if self.n is not None:
            import torch

            self.before = torch.get_num_threads()
            torch.set_num_threads(int(self.n))
        return self

    def __exit__(self, *exc) -> None:
        if self.before is not None:
            import torch

            torch.set_num_threads(self.before)
