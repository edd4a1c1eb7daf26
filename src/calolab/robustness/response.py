"""The response of a regressor at one grid point: ``<E_hat> = a E + b``, and the resolution before and after.

As in paper 002, the mean prediction in bins of true energy is fitted with a straight line
by weighted least squares (each bin weighted by the standard error of its mean; bins from
:func:`calolab.reconstruction.response.energy_bins`), giving ``a``, ``b`` (MeV), their
standard errors and covariance, and ``chi2/ndf``. Unlike
:class:`~calolab.reconstruction.response.ResponseCalibration` the fit also reports a
response that does not rise with energy (``a <= 0``: noise can swamp the signal), for
which the post-model calibration ``(E_hat - b) / a`` is undefined (NaN).

Resolution, per bin and pooled over all events: half the 16-84% width of ``E_x / E_true``
over its median (the ``resolution`` of :mod:`calolab.reconstruction.metrics`), for the raw
prediction and for the calibrated one.

>>> import numpy as np
>>> rng = np.random.default_rng(1)
>>> e = rng.uniform(10e3, 200e3, 20000)
>>> fit = fit_response(e, 0.8 * e + 3e3 + rng.normal(0, 0.05 * e), bins=10)
>>> round(fit.a, 2), round(fit.b / 1e3, 1), fit.ndf
(0.8, 3.0, 8)
>>> round(fit.resolution_cal_overall, 3)  # 5% / 0.8 of the calibrated energy
0.062
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from calolab.errors import CalolabError
from calolab.reconstruction.response import binned_means, energy_bins


@dataclass(frozen=True)
class ResponseFit:
    """A straight-line response and the resolutions; energies in MeV, arrays float64 ``(bins,)``.

    Attributes
    ----------
    a, b, a_err, b_err, cov_ab
        ``<E_hat> = a E + b``, standard errors and covariance.
    chi2, ndf
        Over the bins.
    e_mean, pred_mean, pred_err, counts
        Per bin: mean true energy, mean prediction and its standard error, events.
    resolution_raw, resolution_cal
        Per bin: half the 16-84% width of ``E_hat / E`` (resp. ``(E_hat - b) / (a E)``) over its median.
    resolution_raw_overall, resolution_cal_overall
        The same over all events pooled.
    """

    a: float
    b: float
    a_err: float
    b_err: float
    cov_ab: float
    chi2: float
    ndf: int
    e_mean: np.ndarray
    pred_mean: np.ndarray
    pred_err: np.ndarray
    counts: np.ndarray
    resolution_raw: np.ndarray
    resolution_cal: np.ndarray
    resolution_raw_overall: float
    resolution_cal_overall: float

    def to_dict(self) -> dict:
        """Plain numbers and lists (NaN kept as float NaN)."""
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in asdict(self).items()}

    def calibrate(self, e_pred: np.ndarray) -> np.ndarray:
        """``(E_hat - b) / a`` in MeV; NaN where the response does not rise (``a <= 0``)."""
        e_pred = np.asarray(e_pred, float)
        return (e_pred - self.b) / self.a if self.a > 0 else np.full(e_pred.shape, np.nan)


def line_fit(x: np.ndarray, y: np.ndarray, err: np.ndarray) -> tuple[float, float, np.ndarray, float]:
    """Weighted least squares of ``y = a x + b`` with standard errors ``err``: ``(a, b, cov (2, 2), chi2)``."""
    x, y, err = (np.asarray(v, float) for v in (x, y, err))
    if len(x) < 2:
        raise CalolabError(f"a straight-line fit needs >= 2 points, got {len(x)}")
    scale = max(float(np.max(np.abs(x))), 1e-300)  # condition the slope column
    design = np.column_stack([x / scale, np.ones_like(x)]) / err[:, None]
    coef, *_ = np.linalg.lstsq(design, y / err, rcond=None)
    cov = np.linalg.pinv(design.T @ design)
    coef[0] /= scale
    cov[0, :] /= scale
    cov[:, 0] /= scale
    chi2 = float(np.sum(((y - coef[0] * x - coef[1]) / err) ** 2))
    return float(coef[0]), float(coef[1]), cov, chi2


def half_width(ratio: np.ndarray) -> float:
    """Half the 16-84% width of ``ratio`` over its median; NaN if empty, not finite or the median is <= 0."""
    ratio = np.asarray(ratio, float)
    if len(ratio) < 2 or not np.all(np.isfinite(ratio)):
        return float("nan")
    q16, q50, q84 = np.quantile(ratio, [0.16, 0.5, 0.84])
    return float(0.5 * (q84 - q16) / q50) if q50 > 0 else float("nan")


def fit_response(e_true: np.ndarray, e_pred: np.ndarray, bins: int | np.ndarray = 10,
                 min_events: int = 10) -> ResponseFit:
    """Fit ``<E_hat> = a E + b`` in bins of true energy and measure the resolutions.

    Parameters
    ----------
    e_true, e_pred : (N,)
        True (> 0) and predicted energies, MeV.
    bins
        Number of equal-width bins over the range of ``e_true``, or edges in MeV.
    min_events
        Bins with fewer events are left out.
    """
    e_true, e_pred = np.asarray(e_true, float), np.asarray(e_pred, float)
    if e_true.shape != e_pred.shape or e_true.ndim != 1:
        raise CalolabError(f"e_true and e_pred must be 1-D of equal length, got {e_true.shape}, {e_pred.shape}")
    if np.any(e_true <= 0):
        raise CalolabError("true energies must be > 0 MeV for the response fit")
    if not np.all(np.isfinite(e_pred)):
        raise CalolabError("predicted energies contain NaN or infinity")
    edges = energy_bins(e_true, bins)
    x, y, err, counts = binned_means(e_true, e_pred, edges, min_events=min_events)
    if len(x) < 3:
        raise CalolabError(f"response fit needs >= 3 energy bins with >= {min_events} events, got {len(x)}")
    positive = err[err > 0]
    err = np.where(err > 0, err, positive.min() if len(positive) else 1.0)
    a, b, cov, chi2 = line_fit(x, y, err)
    calibrated = (e_pred - b) / a if a > 0 else np.full(len(e_pred), np.nan)
    index = np.digitize(e_true, edges) - 1
    raw_res, cal_res = [], []
    for k in range(len(edges) - 1):
        sel = index == k
        if sel.sum() >= min_events:
            raw_res.append(half_width(e_pred[sel] / e_true[sel]))
            cal_res.append(half_width(calibrated[sel] / e_true[sel]))
    return ResponseFit(a, b, float(np.sqrt(cov[0, 0])), float(np.sqrt(cov[1, 1])), float(cov[0, 1]), chi2,
                       len(x) - 2, x, y, err, counts.astype(np.int64), np.array(raw_res), np.array(cal_res),
                       half_width(e_pred / e_true), half_width(calibrated / e_true))
