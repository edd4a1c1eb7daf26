"""What the energy-regression studies (pions, muons) share: split, fit the baselines, time, draw, tabulate.

Each regressor is scored with :func:`~calolab.reconstruction.scoring.score` (response fitted
on held-out calibration events, corrected test predictions, binned metrics and resolution
fit); the CNN ensembles are trained and scored by :func:`~calolab.ml.fit.fit_cnn`; two
regressors are compared on the same events with :func:`~calolab.reconstruction.paired.paired_ratio`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from calolab.errors import CalolabError
from calolab.plotting import styled
from calolab.reconstruction.metrics import ResolutionTable
from calolab.reconstruction.scoring import Scored, linearity, score, split_calibration
from calolab.showers import Showers


def split_training(train: Showers, fraction: float, seed: int) -> tuple[Showers, Showers]:
    """``(fit_set, calibration_set)``, held out by :func:`~calolab.reconstruction.scoring.split_calibration`.

    The studies need calibration events: ``fraction`` must be in (0, 1).
    """
    if not 0 < fraction < 1:
        raise CalolabError(f"calibration_fraction must be in (0, 1), got {fraction}")
    return split_calibration(train, fraction, seed)


def table_from_dict(data: Mapping[str, Any]) -> ResolutionTable:
    """A :class:`ResolutionTable` from its ``to_dict`` form."""
    return ResolutionTable(**{k: np.asarray(v, float) for k, v in data.items()})


BASELINE_LABELS = {"sum": "calibrated sum", "layers": "layer weights",
                   "compensation": "software compensation (hit-density weights)",
                   "trees": "trees (high-level features)"}


def fit_baselines(config, fit_set: Showers, calibration: Showers, test: Showers, edges: np.ndarray,
                  common: dict[str, Any], seed: int, echo: Callable[[str], None] = print,
                  labels: Mapping[str, str] | None = None) -> dict[str, Scored]:
    """Fit and score the baselines among ``config.methods`` (``sum``, ``layers``, ``compensation``, ``trees``).

    ``config`` gives ``methods``, ``segments``, ``trees_max_iter`` and ``threads``; ``common``
    the keyword arguments of :func:`~calolab.reconstruction.scoring.score`; ``seed`` seeds the trees.
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


def plot_ratios(ratios: Mapping[str, Mapping[str, Any]], ax=None):
    """Resolution ratios of :func:`paired_ratio` per bin, one series per ``{name: ratio}``, 1 as a line."""
    if ax is None:
        import matplotlib.pyplot as plt

        ax = plt.gca()
    for name, r in ratios.items():
        ax.errorbar(r["energy_gev"], r["ratio"], r["ratio_err"], fmt="o-", ms=3, capsize=2,
                    label=f"{name.replace('_vs_', ' / ')}: {r['overall']:.3f} ± {r['overall_err']:.3f} pooled")
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set(xlabel="true energy [GeV]", ylabel="ratio of 68% resolutions", title="resolution ratios (paired bootstrap)")
    ax.legend(fontsize="small", loc="best")
    return ax


# ------------------------------------------------------------------ run folder
@styled
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
        fig.subplots_adjust(left=0.12, right=0.97, bottom=0.11, top=0.89)  # fixed margins: no layout engine to solve
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
