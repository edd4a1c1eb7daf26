"""Response calibration: fit the mean prediction against the true energy, then invert it.

As in papers 002 and 003, the mean prediction in bins of true energy is fitted with a
straight line ``<E_pred> = a E + b`` (or a power law ``<E_pred> = a E_ref (E / E_ref)^p``,
``E_ref`` = 1 GeV), each bin weighted by the standard error of its mean; ``correct``
inverts the fit event by event. Energies in MeV.

When the response is not linear in the true energy over the range (a regressor that has
learnt the training spectrum pulls its predictions towards the bulk of it), ``"binned"``
calibrates in bins of the *prediction* instead: the median true energy of the events in
each bin, against their median prediction, made increasing by merging neighbouring bins,
interpolated in log E between these nodes and extrapolated proportionally
(``E = E_pred * E_node / E_pred,node``) beyond the first and the last. It needs no model of
the response and cannot misplace low predictions the way a line fitted to all events can;
being a median of the true energy given the prediction, it follows the calibration
events' spectrum.

>>> import numpy as np
>>> rng = np.random.default_rng(1)
>>> e = rng.uniform(10e3, 200e3, 20000)
>>> pred = 0.9 * e + 2e3 + rng.normal(0, 0.05 * e)
>>> cal = ResponseCalibration.fit(e, pred, bins=10)
>>> round(cal.params[0], 2), round(cal.params[1] / 1e3, 1)  # a, b in GeV
(0.9, 2.0)
>>> bool(abs(np.mean(cal.correct(pred) / e) - 1) < 0.005)
True
>>> curved = 0.7e3 * (e / 1e3) ** 0.9 * (1 + rng.normal(0, 0.05, len(e)))  # 0.7 E^0.9, E in GeV
>>> binned = ResponseCalibration.fit(e, curved, bins=10, model="binned")
>>> bool(abs(np.median(binned.correct(curved) / e) - 1) < 0.01)
True
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from calolab.errors import CalolabError

E_REF = 1e3  # MeV, the pivot of the power law
MODELS = ("linear", "power", "binned")
NODE_EVENTS = 40  # fewest calibration events behind one node of the binned model


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
        ``"power"``: params ``(a, p)`` with ``<E_pred> = a E_ref (E / E_ref)^p``;
        ``"binned"``: params are the median true energies (MeV) at the nodes ``knots``.
    params, errors : tuple of float
        Best fit and its standard errors (binned: ``1.2533 std / sqrt(n)`` of each node).
    covariance : tuple of tuple of float
        Covariance of ``params`` (binned: diagonal, the nodes share no events).
    chi2, ndf : float, int
        Goodness of fit over the bins (binned: 0 and 0, the curve passes through its nodes).
    knots : tuple of float
        Binned model only: the median prediction (MeV) of each node, increasing.
    """

    model: str
    params: tuple[float, ...]
    errors: tuple[float, ...]
    covariance: tuple[tuple[float, ...], ...]
    chi2: float
    ndf: int
    knots: tuple[float, ...] = ()

    @classmethod
    def fit(cls, e_true: np.ndarray, e_pred: np.ndarray, bins: int | np.ndarray = 10,
            model: str = "linear") -> ResponseCalibration:
        """Fit the binned mean prediction (MeV) against the true energy (MeV).

        Parameters
        ----------
        e_true, e_pred : (N,)
            True and predicted energies, MeV.
        bins
            Number of equal-width bins of true energy, or their edges in MeV. For ``"binned"``
            only their number counts: as many log-spaced bins of the prediction over the 0.1-99.9%
            range of its positive values (the first and last open-ended), on the prediction's own
            scale; neighbours are merged until each holds ``NODE_EVENTS`` events and the medians increase.
        model
            ``"linear"``, ``"power"`` or ``"binned"``.
        """
        from scipy.optimize import OptimizeWarning, curve_fit

        if model not in MODELS:
            raise CalolabError(f"response model must be one of {', '.join(MODELS)}, got {model!r}")
        e_true, e_pred = np.asarray(e_true, float), np.asarray(e_pred, float)
        if e_true.shape != e_pred.shape or e_true.ndim != 1:
            raise CalolabError(f"e_true and e_pred must be 1-D of equal length, got {e_true.shape}, {e_pred.shape}")
        if model == "binned":
            return cls._fit_binned(e_true, e_pred, bins)
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

    @classmethod
    def _fit_binned(cls, e_true: np.ndarray, e_pred: np.ndarray, bins: int | np.ndarray) -> ResponseCalibration:
        """Median true energy in bins of prediction, neighbours merged until every node holds
        ``NODE_EVENTS`` events, has a positive median prediction and the medians increase.
        A prediction that does not follow the true energy ends with a single node: a scale."""
        if len(e_true) < 2 * NODE_EVENTS:
            raise CalolabError(f"binned response needs >= {2 * NODE_EVENTS} calibration events, got {len(e_true)}")
        order = np.argsort(e_pred, kind="stable")
        pred, true = e_pred[order], e_true[order]
        n_bins = len(energy_bins(e_true, bins)) - 1
        positive = pred[pred > 0]
        if len(positive) < NODE_EVENTS:
            raise CalolabError(f"binned response needs >= {NODE_EVENTS} positive predictions, got {len(positive)}")
        edges = np.geomspace(*np.quantile(positive, [0.001, 0.999]), n_bins + 1)
        cuts = np.unique(np.searchsorted(pred, edges[1:-1]))
        groups = [g for g in np.split(np.arange(len(pred)), cuts) if len(g)]  # index ranges, increasing prediction

        def node(g: np.ndarray) -> tuple[float, float]:
            return float(np.median(pred[g])), float(np.median(true[g]))

        merged = True
        while merged and len(groups) > 1:
            merged = False
            nodes = [node(g) for g in groups]
            for k in range(len(groups)):
                short, low = len(groups[k]) < NODE_EVENTS, nodes[k][0] <= 0
                rising = k + 1 >= len(groups) or (nodes[k + 1][0] > nodes[k][0] and nodes[k + 1][1] > nodes[k][1])
                if short or low or not rising:
                    j = k if k + 1 < len(groups) else k - 1  # merge with the next (the last with the one before)
                    groups[j:j + 2] = [np.concatenate(groups[j:j + 2])]
                    merged = True
                    break
        nodes = [node(g) for g in groups]
        if nodes[0][0] <= 0 or nodes[0][1] <= 0:
            raise CalolabError(f"binned response needs a positive median prediction and true energy, got "
                               f"{nodes[0][0]:g} and {nodes[0][1]:g} MeV from {len(e_true)} events")
        err = [1.2533 * float(np.std(true[g], ddof=1)) / np.sqrt(len(g)) for g in groups]
        return cls("binned", tuple(y for _, y in nodes), tuple(err), tuple(tuple(e**2 if i == k else 0.0
                   for i, e in enumerate(err)) for k in range(len(err))), 0.0, 0, tuple(x for x, _ in nodes))

    def response(self, e_true: np.ndarray) -> np.ndarray:
        """The fitted mean prediction at true energy ``e_true`` (MeV) (binned: the median, from the nodes)."""
        if self.model == "binned":
            return _through(np.asarray(e_true, float), self.params, self.knots)
        func = _linear if self.model == "linear" else _power
        return func(np.asarray(e_true, float), *self.params)

    def correct(self, e_pred: np.ndarray) -> np.ndarray:
        """Invert the response: corrected energy (MeV) of each prediction (MeV), float64."""
        e_pred = np.asarray(e_pred, float)
        if self.model == "binned":
            return _through(e_pred, self.knots, self.params)
        a, second = self.params
        if self.model == "linear":
            return (e_pred - second) / a
        return E_REF * (np.maximum(e_pred, 0.0) / (a * E_REF)) ** (1.0 / second)

    def to_dict(self) -> dict:
        out = {"model": self.model, "params": list(self.params), "errors": list(self.errors),
               "covariance": [list(r) for r in self.covariance], "chi2": self.chi2, "ndf": self.ndf}
        return {**out, "knots": list(self.knots)} if self.model == "binned" else out

    @classmethod
    def from_dict(cls, data: dict) -> ResponseCalibration:
        try:
            cal = cls(str(data["model"]), tuple(map(float, data["params"])), tuple(map(float, data["errors"])),
                      tuple(tuple(map(float, r)) for r in data["covariance"]), float(data["chi2"]), int(data["ndf"]),
                      tuple(map(float, data.get("knots", ()))))
        except (KeyError, TypeError, ValueError) as exc:
            raise CalolabError(f"bad response calibration: {exc}") from None
        if cal.model == "binned" and (len(cal.knots) != len(cal.params) or len(cal.knots) < 1
                                      or np.any(np.diff(cal.knots) <= 0) or cal.knots[0] <= 0
                                      or np.any(np.diff(cal.params) <= 0) or cal.params[0] <= 0):
            raise CalolabError("bad response calibration: a binned response needs increasing positive knots "
                               "and params, as many of each")
        return cal


def _linear(e: np.ndarray, a: float, b: float) -> np.ndarray:
    return a * e + b


def _power(e: np.ndarray, a: float, p: float) -> np.ndarray:
    return a * E_REF * (np.maximum(e, 1e-9) / E_REF) ** p


def _through(x: np.ndarray, x_nodes: tuple[float, ...], y_nodes: tuple[float, ...]) -> np.ndarray:
    """The curve through the nodes: log-log interpolation inside, ``y = x * y_end / x_end`` outside."""
    xn, yn = np.asarray(x_nodes, float), np.asarray(y_nodes, float)
    inside = np.exp(np.interp(np.log(np.clip(x, xn[0], xn[-1])), np.log(xn), np.log(yn)))
    return np.where(x < xn[0], x * yn[0] / xn[0], np.where(x > xn[-1], x * yn[-1] / xn[-1], inside))
