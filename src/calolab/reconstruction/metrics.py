"""Energy-regression metrics: response and resolution per energy bin, resolution fits, combinations.

Per bin of true energy, with ``r = E_pred / E_true``:

- ``response_median``, ``response_mean``: median and mean of ``r``;
- ``resolution``: half the central 68% width of ``r`` (16th to 84th percentile) over the
  median response, a robust sigma/E;
- ``rmse``: ``sqrt(mean((r - 1)^2))``, the relative RMSE that includes the bias (paper 003);
- ``sigma_3_97``: the standard deviation of the ``r`` between their 3rd and 97th
  percentiles, over the median response (paper 002; for a Gaussian it is 0.853 sigma).

Uncertainties: analytic for the mean (std / sqrt(n)), seeded bootstrap for the rest.
The resolution curve ``sigma/E = a/sqrt(E) ⊕ b/E ⊕ c`` (E in GeV) is fitted with bounds
``>= 0``. :func:`combined_resolution` and :func:`combine_estimates` combine two estimators
by inverse variance (per event: maximum likelihood) (calorimeter and tracker, paper 003), :func:`crossover_energy` finds
where two resolution curves cross (the last crossing).

>>> import numpy as np
>>> rng = np.random.default_rng(2)
>>> e = rng.uniform(10e3, 100e3, 40000)
>>> table = binned_metrics(e, e * (1 + 0.1 * rng.standard_normal(len(e))), bins=4, seed=1)
>>> np.round(table.resolution, 2).tolist()
[0.1, 0.1, 0.1, 0.1]
>>> round(crossover_energy(lambda x: 0.5 / np.sqrt(x), tracker_resolution, 1.0, 1e5), 1)  # 2500^(2/3) GeV
184.2
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from calolab.errors import CalolabError
from calolab.reconstruction.response import energy_bins

TRACKER_SLOPE = 2e-4  # sigma/E = 2e-4 E[GeV]: 20% at 1 TeV (paper 003)


@dataclass(frozen=True)
class ResolutionTable:
    """Metrics per bin of true energy; every field is a float64 (bins,) array (energies in MeV).

    ``*_err`` fields hold the uncertainties. Bins with fewer than ``min_events`` are left out.
    """

    e_low: np.ndarray
    e_high: np.ndarray
    e_mean: np.ndarray
    n: np.ndarray
    response_median: np.ndarray
    response_median_err: np.ndarray
    response_mean: np.ndarray
    response_mean_err: np.ndarray
    resolution: np.ndarray
    resolution_err: np.ndarray
    rmse: np.ndarray
    rmse_err: np.ndarray
    sigma_3_97: np.ndarray
    sigma_3_97_err: np.ndarray

    @property
    def energy_gev(self) -> np.ndarray:
        """Mean true energy of each bin in GeV."""
        return self.e_mean / 1e3

    def to_dict(self) -> dict:
        """Plain lists, ready for JSON."""
        return {k: np.asarray(v).tolist() for k, v in asdict(self).items()}

    def select(self, mask: np.ndarray) -> ResolutionTable:
        """The bins where ``mask``."""
        return ResolutionTable(**{k: np.asarray(v)[mask] for k, v in asdict(self).items()})


def _stats(r: np.ndarray) -> np.ndarray:
    """(median, resolution, rmse, sigma_3_97) of ratios along the last axis; r (..., n)."""
    q3, q16, q50, q84, q97 = np.quantile(r, [0.03, 0.16, 0.5, 0.84, 0.97], axis=-1)
    inside = (r >= q3[..., None]) & (r <= q97[..., None])
    count = inside.sum(axis=-1)
    mean_in = np.where(inside, r, 0).sum(axis=-1) / count
    var_in = np.where(inside, (r - mean_in[..., None]) ** 2, 0).sum(axis=-1) / np.maximum(count - 1, 1)
    rmse = np.sqrt(np.mean((r - 1) ** 2, axis=-1))
    return np.stack([q50, 0.5 * (q84 - q16) / q50, rmse, np.sqrt(var_in) / q50])


def binned_metrics(e_true: np.ndarray, e_pred: np.ndarray, bins: int | np.ndarray = 10, n_boot: int = 200,
                   seed: int = 0, min_events: int = 10) -> ResolutionTable:
    """Response and resolution per bin of true energy.

    Parameters
    ----------
    e_true, e_pred : (N,)
        True and predicted energies, MeV.
    bins
        Number of equal-width bins, or edges in MeV.
    n_boot
        Bootstrap resamples for the uncertainties (seeded by ``seed``).
    min_events
        Bins with fewer events are dropped.
    """
    e_true, e_pred = np.asarray(e_true, float), np.asarray(e_pred, float)
    if e_true.shape != e_pred.shape or e_true.ndim != 1:
        raise CalolabError(f"e_true and e_pred must be 1-D of equal length, got {e_true.shape}, {e_pred.shape}")
    if np.any(e_true <= 0):
        raise CalolabError("true energies must be > 0 MeV for relative metrics")
    edges = energy_bins(e_true, bins)
    idx = np.digitize(e_true, edges) - 1
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(len(edges) - 1):
        r = (e_pred / e_true)[idx == k]
        if len(r) < min_events:
            continue
        central = _stats(r)
        boot = _stats(r[rng.integers(0, len(r), (n_boot, len(r)))]) if n_boot > 1 else np.full((4, 1), np.nan)
        spread = np.std(boot, axis=1, ddof=1) if n_boot > 1 else np.full(4, np.nan)
        rows.append([edges[k], edges[k + 1], e_true[idx == k].mean(), len(r), central[0], spread[0], r.mean(),
                     r.std(ddof=1) / math.sqrt(len(r)), central[1], spread[1], central[2], spread[2], central[3],
                     spread[3]])
    cols = np.array(rows, float).T if rows else np.zeros((14, 0))
    return ResolutionTable(*cols)


def resolution_model(energy_gev: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    """sigma/E = a/sqrt(E) ⊕ b/E ⊕ c, E in GeV (b in GeV)."""
    e = np.asarray(energy_gev, float)
    return np.sqrt(a**2 / e + (b / e) ** 2 + c**2)


@dataclass(frozen=True)
class ResolutionFit:
    """``sigma/E = a/sqrt(E) ⊕ b/E ⊕ c`` (E in GeV) and its uncertainties.

    A term fixed by the caller (``terms``) is 0 with error 0; a term that fits to its bound
    of 0 has an infinite error (``None`` in ``to_dict``): the data do not constrain it.
    """

    a: float
    b: float
    c: float
    a_err: float
    b_err: float
    c_err: float
    chi2: float
    ndf: int

    def __call__(self, energy_gev: np.ndarray) -> np.ndarray:
        return resolution_model(energy_gev, self.a, self.b, self.c)

    def to_dict(self) -> dict:
        return {k: (v if math.isfinite(v) else None) for k, v in asdict(self).items()}

    def label(self) -> str:
        """``a/√E ⊕ b/E ⊕ c`` for legends: a and c in percent, b in GeV; a noise term fitted to its
        bound (below 5 MeV) is left out.

        >>> ResolutionFit(a=0.723, b=7e-12, c=0.037, a_err=0, b_err=0, c_err=0, chi2=0, ndf=0).label()
        '72.3%/√E ⊕ 3.7%'
        """
        parts = [f"{100 * self.a:.1f}%/√E"] + ([f"{self.b:.2g} GeV/E"] if self.b >= 0.005 else [])
        return " ⊕ ".join([*parts, f"{100 * self.c:.1f}%"])


def fit_resolution(energy_gev: np.ndarray, rel_res: np.ndarray, rel_err: np.ndarray,
                   terms: str = "abc") -> ResolutionFit:
    """Fit the resolution curve to ``rel_res`` ± ``rel_err`` at ``energy_gev`` (curve_fit, bounds >= 0).

    ``terms`` names the free terms: ``"abc"`` (all), ``"ac"`` (no noise term), ...
    """
    from scipy.optimize import OptimizeWarning, curve_fit

    e, y, s = (np.asarray(v, float) for v in (energy_gev, rel_res, rel_err))
    ok = np.isfinite(e) & np.isfinite(y) & np.isfinite(s) & (s > 0) & (e > 0)
    free = [t for t in "abc" if t in terms]
    if not free or set(terms) - set("abc"):
        raise CalolabError(f"resolution terms must be a non-empty subset of 'abc', got {terms!r}")
    if ok.sum() < len(free):
        raise CalolabError(f"resolution fit needs >= {len(free)} points with errors > 0, got {int(ok.sum())}")
    e, y, s = e[ok], y[ok], s[ok]

    def model(x, *p):
        values = dict(zip(free, p, strict=True))
        return resolution_model(x, values.get("a", 0.0), values.get("b", 0.0), values.get("c", 0.0))

    guess = {"a": float(np.median(y * np.sqrt(e))) / 2, "b": 0.01 * float(np.median(e)), "c": float(np.min(y)) / 2}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimizeWarning)  # a term at its bound of 0 has no defined error
        popt, pcov = curve_fit(model, e, y, p0=[guess[t] for t in free], sigma=s, absolute_sigma=True,
                               bounds=(0.0, np.inf), maxfev=20000)
    values = dict(zip(free, popt, strict=True))
    # at (or next to) its bound of 0 a term's derivative vanishes and its error is undefined:
    # report it as infinite when it exceeds a thousand times the value
    err = np.sqrt(np.abs(np.diag(pcov)))
    errors = dict(zip(free, np.where((popt <= 0) | (err > 1e3 * popt), np.inf, err), strict=True))
    chi2 = float(np.sum(((y - model(e, *popt)) / s) ** 2))
    a, b, c = (float(values.get(t, 0.0)) for t in "abc")
    a_err, b_err, c_err = (float(errors.get(t, 0.0)) for t in "abc")
    return ResolutionFit(a, b, c, a_err, b_err, c_err, chi2, int(len(e) - len(free)))


def tracker_resolution(energy_gev: np.ndarray, slope: float = TRACKER_SLOPE) -> np.ndarray:
    """Tracker momentum resolution sigma/E = ``slope`` E[GeV] (20% at 1 TeV by default)."""
    return slope * np.asarray(energy_gev, float)


def combined_resolution(res1: np.ndarray, res2: np.ndarray) -> np.ndarray:
    """Inverse-variance combination of two independent relative resolutions: ``1/sqrt(1/s1^2 + 1/s2^2)``."""
    res1, res2 = np.asarray(res1, float), np.asarray(res2, float)
    return 1.0 / np.sqrt(1.0 / res1**2 + 1.0 / res2**2)


def combine_estimates(e1: np.ndarray, e2: np.ndarray, res1: Callable[[np.ndarray], np.ndarray],
                      res2: Callable[[np.ndarray], np.ndarray], method: str = "likelihood",
                      iterations: int = 3, grid_points: int = 160) -> np.ndarray:
    """Per-event combination of two energy estimates (MeV) with energy-dependent resolutions.

    ``res1`` and ``res2`` give sigma/E as functions of E in GeV.

    - ``"likelihood"`` (default): the E that maximises the product of the two Gaussian
      likelihoods ``N(e_i; E, res_i(E) E)``, normalisations included; at its maximum the
      estimate is the inverse-variance average with both variances taken at E itself. Found
      on a per-event log grid from a third of the smaller positive estimate to three times
      the larger, refined by a parabola through the best three points.
    - ``"iterated"``: inverse-variance weights evaluated at the current combined estimate,
      from the plain mean, ``iterations`` times. Weights that follow the estimate favour
      whichever input fluctuated towards its better-resolved side: with a tracker whose
      sigma/E grows with E, an upward tracker fluctuation loses weight, so this combination
      is biased low and broader than either input at high energy.

    Returns the combined energies (N,) in MeV.
    """
    e1, e2 = np.asarray(e1, float), np.asarray(e2, float)
    if method == "iterated":
        combined = 0.5 * (e1 + e2)
        for _ in range(iterations):
            e_gev = np.maximum(combined, 1.0) / 1e3
            w1, w2 = 1.0 / np.asarray(res1(e_gev)) ** 2, 1.0 / np.asarray(res2(e_gev)) ** 2
            combined = (w1 * e1 + w2 * e2) / (w1 + w2)
        return combined
    if method != "likelihood":
        raise CalolabError(f"combination method {method!r}: expected 'likelihood' or 'iterated'")
    positive = np.where(e1 > 0, e1, np.inf), np.where(e2 > 0, e2, np.inf)
    low = np.minimum(*positive)
    low = np.where(np.isfinite(low), low, 1.0) / 3.0
    high = np.maximum(np.maximum(e1, e2), 3.0 * low) * 3.0
    steps = np.linspace(0.0, 1.0, grid_points)
    log_grid = np.log(low)[:, None] + np.log(high / low)[:, None] * steps  # (N, grid_points)
    energy = np.exp(log_grid)

    def nll(e: np.ndarray) -> np.ndarray:
        s1 = np.asarray(res1(e.ravel() / 1e3), float).reshape(e.shape) * e
        s2 = np.asarray(res2(e.ravel() / 1e3), float).reshape(e.shape) * e
        return (0.5 * ((e1[:, None] - e) / s1) ** 2 + np.log(s1)
                + 0.5 * ((e2[:, None] - e) / s2) ** 2 + np.log(s2))

    values = nll(energy)
    k = np.clip(np.argmin(values, axis=1), 1, grid_points - 2)
    rows = np.arange(len(e1))
    y0, y1, y2 = values[rows, k - 1], values[rows, k], values[rows, k + 1]
    curvature = y0 - 2 * y1 + y2
    shift = np.where(curvature > 0, 0.5 * (y0 - y2) / np.where(curvature > 0, curvature, 1.0), 0.0)
    step = log_grid[:, 1] - log_grid[:, 0]
    return np.exp(log_grid[rows, k] + np.clip(shift, -1.0, 1.0) * step)


def crossover_energy(res1: Callable[[np.ndarray], np.ndarray], res2: Callable[[np.ndarray], np.ndarray],
                     e_low: float, e_high: float) -> float:
    """Energy in GeV in ``[e_low, e_high]`` where the two resolution curves cross last; NaN if they do not.

    The last sign change of ``res1 - res2`` on a 400-point log grid is refined with Brent's
    method: above it the order of the two curves no longer changes, so a measured curve that
    fluctuates across the other at low energies (a few events per bin, a response correction
    that misplaces them) does not set the crossover.

    >>> wiggly = lambda e: np.where(e < 100, 0.005, 0.5 / np.sqrt(e))  # dips below the tracker at 50-100 GeV
    >>> round(crossover_energy(wiggly, tracker_resolution, 10.0, 1e4), 1)
    184.2
    """
    from scipy.optimize import brentq

    if not 0 < e_low < e_high:
        raise CalolabError(f"crossover range must satisfy 0 < e_low < e_high GeV, got {e_low}, {e_high}")
    grid = np.geomspace(e_low, e_high, 400)
    diff = np.asarray(res1(grid), float) - np.asarray(res2(grid), float)
    change = np.flatnonzero(np.sign(diff[:-1]) * np.sign(diff[1:]) <= 0)
    if len(change) == 0:
        return float("nan")
    k = int(change[-1])
    if diff[k] == 0:
        return float(grid[k])

    def gap(x: float) -> float:
        return float(np.asarray(res1(np.array([x])), float)[0] - np.asarray(res2(np.array([x])), float)[0])

    return float(brentq(gap, grid[k], grid[k + 1], xtol=1e-10 * grid[k]))
