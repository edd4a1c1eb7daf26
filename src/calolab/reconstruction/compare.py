"""Fit the baseline regressors on one set of showers and score them on another, into a run folder.

A seeded fraction of the training set is held out for the response calibration
(:class:`~calolab.reconstruction.response.ResponseCalibration`), so that the trees are
not calibrated on the events they were fitted to. Each regressor is scored as the studies
score theirs (:func:`~calolab.reconstruction.scoring.score`): the test set per bin of true
energy (:func:`~calolab.reconstruction.metrics.binned_metrics`), the resolution fitted with
``a/sqrt(E) ⊕ b/E ⊕ c``. The run folder holds ``config.yaml``,
``metrics.json``, the stored regressors (sum and layer weights) and the figures
``response.png``, ``resolution.png`` and ``truth_<name>.png``.

>>> from calolab.geometry import load_detector
>>> from calolab.simulation import Beam, simulate
>>> det = load_detector("ahcal")
>>> beam = Beam("pi+", energy_min=10e3, energy_max=50e3, spectrum="uniform")
>>> found = compare_regressors(simulate(det, beam, 300, seed=1), simulate(det, beam, 200, seed=2),
...                            RegressionConfig(methods=("sum", "layers"), bins=3, n_boot=20))
>>> sorted(found["methods"]), len(found["methods"]["sum"]["table"]["n"])
(['layers', 'sum'], 3)
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from calolab.errors import CalolabError
from calolab.reconstruction.baselines import (
    CompensationRegressor,
    LayerWeightedRegressor,
    SumRegressor,
    TreesRegressor,
    save_regressor,
)
from calolab.reconstruction.metrics import ResolutionTable
from calolab.reconstruction.scoring import score, split_calibration
from calolab.showers import Showers

METHODS = ("sum", "layers", "compensation", "trees")


@dataclass(frozen=True)
class RegressionConfig:
    """What :func:`compare_regressors` fits and how it scores; written as ``config.yaml``.

    Parameters
    ----------
    methods
        Any of ``sum``, ``layers``, ``compensation``, ``trees``.
    bins
        Equal-width bins of true energy over the test set's range.
    bin_edges_gev
        Explicit bin edges in GeV instead (for the scores and the response calibration).
    calibration_fraction
        Share of the training events held out for the response calibration (0: none).
    segments, alpha, non_negative
        :class:`~calolab.reconstruction.baselines.LayerWeightedRegressor` settings.
    trees_target, trees_max_iter, threads
        :class:`~calolab.reconstruction.baselines.TreesRegressor` settings.
    resolution_terms
        Free terms of the resolution fit (``"abc"``, ``"ac"``, ...).
    n_boot, seed
        Bootstrap resamples of the metrics; the seed of the split, the trees and the bootstrap.
    """

    methods: tuple[str, ...] = METHODS
    bins: int = 10
    bin_edges_gev: tuple[float, ...] | None = None
    calibration_fraction: float = 0.2
    segments: int = 10
    alpha: float = 1e-3
    non_negative: bool = False
    trees_target: str = "log"
    trees_max_iter: int = 300
    threads: int | None = None
    resolution_terms: str = "abc"
    n_boot: int = 200
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise CalolabError(f"methods must be among {', '.join(METHODS)}, got {', '.join(self.methods) or 'none'}")
        if not 0 <= self.calibration_fraction < 1:
            raise CalolabError(f"calibration_fraction must be in [0, 1), got {self.calibration_fraction}")

    @property
    def edges(self) -> int | np.ndarray:
        """What the binning functions take: the number of bins or the edges in MeV."""
        return self.bins if self.bin_edges_gev is None else np.asarray(self.bin_edges_gev, float) * 1e3

    def regressor(self, method: str):
        if method == "sum":
            return SumRegressor()
        if method == "layers":
            return LayerWeightedRegressor(segments=self.segments, alpha=self.alpha, non_negative=self.non_negative)
        if method == "compensation":
            return CompensationRegressor()
        return TreesRegressor(target=self.trees_target, max_iter=self.trees_max_iter, segments=self.segments,
                              random_state=self.seed, threads=self.threads)


def compare_regressors(train: Showers, test: Showers, config: RegressionConfig = RegressionConfig(),
                       echo=None) -> dict[str, Any]:
    """Fit every method of ``config`` on ``train`` and score it on ``test``.

    Returns a JSON-ready dict: ``{"methods": {name: {"table", "fit", "response", "seconds", "regressor"}}}``
    (``fit`` is ``None`` when too few bins); the fitted regressors are under ``"_fitted"``
    and the test predictions (MeV, after the response correction) under ``"_predictions"``.
    """
    if train.detector != test.detector:
        raise CalolabError(f"train ({train.detector.name}) and test ({test.detector.name}) detectors differ")
    fit_set, cal_set = split_calibration(train, config.calibration_fraction, config.seed)
    calibration = cal_set if len(cal_set) else None
    found: dict[str, Any] = {"methods": {}, "_fitted": {}, "_predictions": {}}
    for method in config.methods:
        start = time.perf_counter()
        model = config.regressor(method).fit(fit_set)
        seconds = time.perf_counter() - start
        scored = score(method, method, model.predict, calibration, test, config.edges, seconds,
                       terms=config.resolution_terms, n_boot=config.n_boot, seed=config.seed)
        found["methods"][method] = {
            "table": scored.table.to_dict(), "fit": scored.fit.to_dict() if scored.fit else None,
            "response": scored.response.to_dict() if scored.response is not None else None, "seconds": seconds,
            "regressor": model.to_dict() if hasattr(model, "to_dict") else model.params()}
        found["_fitted"][method], found["_predictions"][method] = model, scored.test_pred
        if echo:
            label = scored.fit.label() if scored.fit else "no fit"
            echo(f"{method:7s} fit {seconds:6.1f} s  resolution {label}")
    return found


def run_regression(train: Showers, test: Showers, out_dir: str | Path,
                   config: RegressionConfig = RegressionConfig(), sources: dict | None = None, echo=print) -> Path:
    """:func:`compare_regressors`, then write the run folder ``out_dir``; returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from calolab.io.rundir import save_figure, write_config, write_json
    from calolab.plotting import figure_style
    from calolab.reconstruction.metrics import ResolutionFit
    from calolab.reconstruction.plots import plot_prediction_vs_truth, plot_resolution, plot_response

    out = Path(out_dir)
    write_config(out, {**asdict(config), "sources": sources or {}, "detector": train.detector.name,
                                     "train_events": len(train), "test_events": len(test)})
    found = compare_regressors(train, test, config, echo=echo)
    fitted, predictions = found.pop("_fitted"), found.pop("_predictions")
    write_json(out / "metrics.json", found)
    for method, model in fitted.items():
        if hasattr(model, "to_dict"):
            save_regressor(model, out / "regressors" / f"{method}.json")
    tables = {m: ResolutionTable(**{k: np.asarray(v) for k, v in r["table"].items()})
              for m, r in found["methods"].items()}
    fits = {m: ResolutionFit(**{k: (np.inf if v is None else v) for k, v in r["fit"].items()})
            for m, r in found["methods"].items() if r["fit"]}
    energies = test.incident_energy[test.incident_energy > 0]
    wide = len(energies) > 0 and energies.max() >= 10 * energies.min()  # a decade or more: log E axes
    with figure_style():
        for name, draw in (("response", lambda ax: plot_response(tables, ax=ax)),
                           ("resolution", lambda ax: plot_resolution(tables, fits, ax=ax))):
            fig, ax = plt.subplots(figsize=(6, 4.5), layout="constrained")
            draw(ax)
            if wide:
                ax.set_xscale("log")
            save_figure(fig, out / f"{name}.png")
        for method, pred in predictions.items():
            fig, ax = plt.subplots(figsize=(5.5, 4.5), layout="constrained")
            plot_prediction_vs_truth(test.incident_energy, pred, ax=ax, label=method)
            save_figure(fig, out / f"truth_{method}.png")
    return out
