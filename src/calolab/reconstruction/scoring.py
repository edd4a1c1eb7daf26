"""Score a regressor: fit its response on held-out events, correct its test predictions, bin them.

A regressor is scored in three steps, the same for the baselines and the CNN:

1. predictions on the held-out calibration events of the training sample fit its response
   (:class:`~calolab.reconstruction.response.ResponseCalibration`, linear, power law, or
   binned in the prediction);
2. its predictions on the test sample, timed in one run (features included), are corrected
   with that response;
3. :func:`~calolab.reconstruction.metrics.binned_metrics` scores them per bin of true energy
   and :func:`~calolab.reconstruction.metrics.fit_resolution` fits ``a/sqrt(E) ⊕ b/E ⊕ c``.

Without calibration events (``calibration=None``) step 1 is skipped and the raw predictions
are scored.

>>> from calolab.geometry import load_detector
>>> from calolab.reconstruction.baselines import SumRegressor
>>> from calolab.simulation import Beam, simulate
>>> det = load_detector("ahcal")
>>> beam = Beam("pi+", energy_min=10e3, energy_max=50e3, spectrum="uniform")
>>> train, test = simulate(det, beam, 300, seed=1), simulate(det, beam, 200, seed=2)
>>> s = score("sum", "calibrated sum", SumRegressor().fit(train).predict, train, test, 3, n_boot=20)
>>> s.test_pred.shape, len(s.table.n), s.response.model
((200,), 3, 'linear')
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from calolab.errors import CalolabError
from calolab.reconstruction.metrics import ResolutionFit, ResolutionTable, binned_metrics, fit_resolution
from calolab.reconstruction.response import ResponseCalibration
from calolab.showers import Showers


@dataclass
class Scored:
    """One regressor scored on the test set (energies in MeV, float64 (N,)).

    Without calibration events ``response``, ``calibration_table`` and ``calibration_pred``
    are ``None``.
    """

    name: str
    label: str  # what it is, for tables and legends
    response: ResponseCalibration | None
    table: ResolutionTable  # test set, after the response correction
    fit: ResolutionFit | None  # a/sqrt(E) ⊕ b/E ⊕ c on ``table``; None when it cannot be fitted
    calibration_table: ResolutionTable | None  # the calibration events, after the correction
    test_pred: np.ndarray
    calibration_pred: np.ndarray | None
    fit_seconds: float
    predict_seconds: float
    events_per_s: float

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "response": self.response.to_dict() if self.response is not None else None,
                "table": self.table.to_dict(),
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


def split_calibration(train: Showers, fraction: float, seed: int) -> tuple[Showers, Showers]:
    """``(fit_set, calibration_set)``: a seeded ``fraction`` of ``train`` held out for the response fit.

    The events keep their order in both; ``fraction=0`` holds out none.
    """
    order = np.random.default_rng(seed).permutation(len(train))
    n_cal = int(round(fraction * len(train)))
    return train[np.sort(order[n_cal:])], train[np.sort(order[:n_cal])]


def score(name: str, label: str, predict: Callable[[Showers], np.ndarray], calibration: Showers | None,
          test: Showers, edges: int | np.ndarray, fit_seconds: float = 0.0, response_model: str = "linear",
          terms: str = "abc", n_boot: int = 200, seed: int = 0) -> Scored:
    """Calibrate ``predict`` (showers -> MeV) on ``calibration`` and score it on ``test`` (see the module docstring).

    ``edges`` are the bin edges in MeV (or their number), for the response fit and the
    scores; ``calibration=None`` scores the uncorrected predictions.
    """
    raw_cal = predict(calibration) if calibration is not None else None
    response = None if raw_cal is None else ResponseCalibration.fit(calibration.incident_energy, raw_cal, bins=edges,
                                                                     model=response_model)
    start = time.perf_counter()
    raw = predict(test)
    seconds = time.perf_counter() - start
    test_pred = response.correct(raw) if response is not None else raw
    table = binned_metrics(test.incident_energy, test_pred, bins=edges, n_boot=n_boot, seed=seed)
    cal_pred = cal_table = None
    if response is not None:
        cal_pred = response.correct(raw_cal)
        cal_table = binned_metrics(calibration.incident_energy, cal_pred, bins=edges, n_boot=n_boot, seed=seed)
    return Scored(name, label, response, table, fit_or_none(table, terms), cal_table, test_pred, cal_pred,
                  fit_seconds, seconds, len(test) / max(seconds, 1e-9))
