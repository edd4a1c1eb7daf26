"""Response calibration: fit the mean prediction against the true energy, then invert it.

As in papers 002 and 003, the mean prediction in bins of true energy is fitted with a
straight line ``<E_pred> = a E + b`` (or a power law ``<E_pred> = a E_ref (E / E_ref)^p``,
``E_ref`` = 1 GeV), each bin weighted by the standard error of its mean; ``correct``
inverts the fit event by event. Energies in MeV.

>>> import numpy as np
>>> rng = np.random.default_rng(1)
>>> e = rng.uniform(10e3, 200e3, 20000)
>>> pred = 0.9 * e + 2e3 + rng.normal(0, 0.05 * e)
>>> cal = ResponseCalibration.fit(e, pred, bins=10)
>>> round(cal.params[0], 2), round(cal.params[1] / 1e3, 1)  # a, b in GeV
(0.9, 2.0)
>>> bool(abs(np.mean(cal.correct(pred) / e) - 1) < 0.005)
True
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from calolab.errors import CalolabError

E_REF = 1e3  # MeV, the pivot of the power law
MODELS = ("linear", "power")


def energy_bins(e_true: np.ndarray, bins: int | np.ndarray) -> np.ndarray:
    """Bin edges in MeV: ``bins`` equal-width bins over the range of ``e_true``, or the given edges."""
    e_true = np.asarray(e_true, float)
    if np.ndim(bins) == 0:
        if int(bins) < 1 or len(e_true) == 0:
            raise CalolabError(f"need >= 1 energy bin and some events, got bins={bins}, {len(e_true)} events")
        lo, hi = float(e_true.min()), float(e_true.max())
        return np.linspace(lo, np.nextafter(hi, np.inf), int(bins) + 1)
    edges = np.asarray(bins, float)
    if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
        raise CalolabError("energy bin edges must be a strictly increasing 1-D array of >= 2 values (MeV)")
    return edges


def binned_means(e_true: np.ndarray, e_pred: np.ndarray, edges: np.ndarray, min_events: int = 2):
    """Per bin with at least ``min_events``: mean true energy, mean prediction, its standard error, count."""
    e_true, e_pred = np.asarray(e_true, float), np.asarray(e_pred, float)
    idx = np.digitize(e_true, edges) - 1
    rows = []
    for k in range(len(edges) - 1):
        sel = idx == k
        m = int(sel.sum())
        if m >= min_events:
            rows.append((e_true[sel].mean(), e_pred[sel].mean(), e_pred[sel].std(ddof=1) / np.sqrt(m), m))
    if not rows:
        return tuple(np.zeros(0) for _ in range(4))
    return tuple(np.array(col) for col in zip(*rows, strict=True))


@dataclass(frozen=True)
class ResponseCalibration:
    """A fitted response ``<E_pred>(E_true)`` and its inverse.

    Attributes
    ----------
    model : str
        ``"linear"``: params ``(a, b)`` with ``<E_pred> = a E + b`` (b in MeV);
        ``"power"``: params ``(a, p)`` with ``<E_pred> = a E_ref (E / E_ref)^p``.
    params, errors : tuple of float
        Best fit and its standard errors.
    covariance : tuple of tuple of float
        Covariance of ``params``.
    chi2, ndf : float, int
        Goodness of fit over the bins.
    """

    model: str
    params: tuple[float, ...]
    errors: tuple[float, ...]
    covariance: tuple[tuple[float, ...], ...]
    chi2: float
    ndf: int

    @classmethod
    def fit(cls, e_true: np.ndarray, e_pred: np.ndarray, bins: int | np.ndarray = 10,
            model: str = "linear") -> ResponseCalibration:
        """Fit the binned mean prediction (MeV) against the true energy (MeV).

        Parameters
        ----------
        e_true, e_pred : (N,)
            True and predicted energies, MeV.
        bins
            Number of equal-width bins of true energy, or their edges in MeV.
        model
            ``"linear"`` or ``"power"``.
        """
        from scipy.optimize import OptimizeWarning, curve_fit

        if model not in MODELS:
            raise CalolabError(f"response model must be one of {', '.join(MODELS)}, got {model!r}")
        e_true, e_pred = np.asarray(e_true, float), np.asarray(e_pred, float)
        if e_true.shape != e_pred.shape or e_true.ndim != 1:
            raise CalolabError(f"e_true and e_pred must be 1-D of equal length, got {e_true.shape}, {e_pred.shape}")
        x, y, err, _ = binned_means(e_true, e_pred, energy_bins(e_true, bins))
        if len(x) < 3:
            raise CalolabError(f"response fit needs >= 3 energy bins with >= 2 events, got {len(x)}")
        err = np.where(err > 0, err, np.max(err[err > 0]) if np.any(err > 0) else 1.0)
        func = _linear if model == "linear" else _power
        p0 = np.polyfit(x, y, 1) if model == "linear" else [float(np.mean(y / x)), 1.0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            popt, pcov = curve_fit(func, x, y, p0=p0, sigma=err, absolute_sigma=True, maxfev=10000)
        chi2 = float(np.sum(((y - func(x, *popt)) / err) ** 2))
        if popt[0] <= 0 or (model == "power" and popt[1] <= 0):
            raise CalolabError(f"response fit gave a non-increasing response {popt.tolist()}: cannot invert it")
        return cls(model, tuple(map(float, popt)), tuple(map(float, np.sqrt(np.diag(pcov)))),
                   tuple(tuple(map(float, row)) for row in pcov), chi2, len(x) - 2)

    def response(self, e_true: np.ndarray) -> np.ndarray:
        """The fitted mean prediction at true energy ``e_true`` (MeV)."""
        func = _linear if self.model == "linear" else _power
        return func(np.asarray(e_true, float), *self.params)

    def correct(self, e_pred: np.ndarray) -> np.ndarray:
        """Invert the response: corrected energy (MeV) of each prediction (MeV), float64."""
        e_pred = np.asarray(e_pred, float)
        a, second = self.params
        if self.model == "linear":
            return (e_pred - second) / a
        return E_REF * (np.maximum(e_pred, 0.0) / (a * E_REF)) ** (1.0 / second)

    def to_dict(self) -> dict:
        return {"model": self.model, "params": list(self.params), "errors": list(self.errors),
                "covariance": [list(r) for r in self.covariance], "chi2": self.chi2, "ndf": self.ndf}

    @classmethod
    def from_dict(cls, data: dict) -> ResponseCalibration:
        try:
            return cls(str(data["model"]), tuple(map(float, data["params"])), tuple(map(float, data["errors"])),
                       tuple(tuple(map(float, r)) for r in data["covariance"]), float(data["chi2"]), int(data["ndf"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise CalolabError(f"bad response calibration: {exc}") from None


def _linear(e: np.ndarray, a: float, b: float) -> np.ndarray:
    return a * e + b


def _power(e: np.ndarray, a: float, p: float) -> np.ndarray:
    return a * E_REF * (np.maximum(e, 1e-9) / E_REF) ** p
