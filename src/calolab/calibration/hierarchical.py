"""``hierarchical``: calolab's own calibrator, an empirical-Bayes model of ageing with dose.

What physics knows, and this method uses:

* a damage multiplies every deposit of a cell by c, so it shifts the logarithm of every
  hit energy by ln c. The mean log-energy of a cell's hits has none of the heavy tail that
  rare dense sub-showers give the mean energy, so it measures ln c far more precisely;
* radiation damage is a function of dose, and cells with similar dose age alike. The dose
  of a cell is proportional to the energy it collects, which both runs measure (or the
  user passes a dose map); the dose field is smooth, so a sparsely hit cell borrows the
  dose estimate of its 3x3x3 neighbourhood;
* every cell's statistical uncertainty is known from its hit count and the spread of
  log-energies of cells with similar dose.

The method

1. estimates ``ln c_i`` per cell as the difference of mean log hit energies, with variance
   ``v_bin (1/n_D + 1/n_R)`` (``v_bin`` the log-energy variance pooled over cells of similar dose);
   with zero suppression at ``threshold``, reference hits below ``threshold / c`` are dropped
   so both runs see the same part of the spectrum (iterated);
2. fits an ageing curve ``ln g(dose)``, piecewise linear with knots where the damage
   changes most and ``g(0) = 1`` (no dose, no damage), by weighted least squares with a
   cell-to-cell spread that grows with the damage (cells differ in radiation sensitivity),
   estimated robustly (median of the normalised squared residuals); the error of the dose
   proxy enters each cell's variance through the curve's slope; the number of knots (3 or
   4 by default) is chosen by BIC and the curve's covariance checked against
   Poisson-bootstrap replicas of both runs (events correlate cells). Few knots, because
   the errors of neighbouring cells' log-ratios and dose proxies are correlated through
   the events they share, which BIC does not see: with more knots the curve follows those
   common fluctuations at low dose, where thousands of sparse cells lean on it;
3. combines each cell's own estimate with the curve (posterior of a normal-normal model):
   a cell with few hits leans on the curve, a well-measured cell on its own data.

Uncertainties are posterior standard deviations (curve uncertainty included), so the pulls
are honest when the model holds. Cells with no reference hit cannot be calibrated and are
flagged. A cell silent in the damaged run is called dead (c = 0) when the
probability of its silence, given its reference hits and the dead fraction seen among
well-measured cells, makes death more likely than life, and a live cell would have shown at
least SURE_HITS hits (in a short run many live cells are silent by chance). The probability
that a live cell is silent is the negative-binomial predictive of its reference count (the
cell's rate is itself known only from that count), not a Poisson with the rate taken as exact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from calolab.calibration.base import CalibrationResult
from calolab.calibration.bootstrap import ReplicaSums
from calolab.calibration.cellstats import CellStats, LogStats
from calolab.calibration.passes import Source, open_runs, over
from calolab.errors import CalolabError

CHI2_1_MEDIAN = 0.4549364231195724  # median of a chi-square with one degree of freedom
SMOOTHING_HITS = 20.0  # hits at which a cell's own dose proxy counts as much as its neighbourhood's
SURE_HITS = 3.0  # a silent cell is called dead only if a live one would show this many hits (chance e^-3)
MIN_KNOTS = 3  # the curve has at least this many knots (0 and two more) where the cells allow


def random_effects_variance(resid: np.ndarray, s2: np.ndarray, shape: np.ndarray | float = 1.0) -> float:
    """Cell-to-cell variance t around the curve, cell i having ``t * shape_i^2``.

    ``t`` is set so that the median of ``resid^2 / (s^2 + t shape^2)`` is that of chi2(1); the
    median keeps it robust to the few cells the model does not describe.

    >>> rng = np.random.default_rng(1)
    >>> resid = rng.normal(0, np.sqrt(0.01 + 0.04), 20000)
    >>> round(random_effects_variance(resid, np.full(20000, 0.01)), 2)
    0.04
    """
    shape2 = np.broadcast_to(np.asarray(shape, float) ** 2, np.shape(resid))

    def excess(tau2: float) -> float:
        return float(np.median(resid**2 / (s2 + tau2 * shape2)) - CHI2_1_MEDIAN)

    if excess(0.0) <= 0:
        return 0.0
    low, high = 0.0, float(np.max(resid**2 / shape2)) + 1e-12
    for _ in range(60):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if excess(mid) > 0 else (low, mid)
    return 0.5 * (low + high)


def hat_basis(x: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """Piecewise-linear basis on ``knots`` (n, n_knots), flat beyond the last knot.

    >>> hat_basis(np.array([0.0, 0.5, 2.0]), np.array([0.0, 1.0])).tolist()
    [[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]
    """
    eye = np.eye(len(knots))
    return np.stack([np.interp(x, knots, eye[k]) for k in range(len(knots))], axis=1)


def dose_knots(x: np.ndarray, n_knots: int) -> np.ndarray:
    """Knots at 0 and at dose-weighted quantiles of ``x``: dense where the damage changes most."""
    order = np.sort(x)
    weight = np.cumsum(order) / order.sum()
    levels = np.linspace(0, 1, n_knots)[1:]
    return np.unique(np.concatenate([[0.0], np.interp(levels, weight, order)]))


def spread_shape(curve_log: np.ndarray) -> np.ndarray:
    """How the cell-to-cell spread of ln c grows with the damage: in proportion to ln g, plus a floor.

    Cells differ in radiation sensitivity, which multiplies their dose: a cell that took no
    dose does not spread at all, a strongly damaged one spreads most. The floor (1e-3) keeps
    room for a small dose-independent spread.
    """
    return np.abs(curve_log) + 1e-3


def fit_curve(x: np.ndarray, y: np.ndarray, s2: np.ndarray, knots: np.ndarray, anchor: bool,
              iterations: int = 20, fixed_tau2: float | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """Weighted piecewise-linear fit of ``y`` against ``x``, with cell-to-cell variance ``t * spread_shape^2``.

    With ``anchor`` the curve is 0 at x = 0 (no dose, no damage, in ln c). Returns the knot
    values (n_knots,), their covariance, and t (estimated, unless ``fixed_tau2`` is given).
    """
    design = hat_basis(x, knots)[:, 1:] if anchor else hat_basis(x, knots)
    tau2, shape = (0.0 if fixed_tau2 is None else fixed_tau2), np.full(len(x), 1e-3)
    for _ in range(iterations):
        w = 1.0 / (s2 + tau2 * shape**2)
        cov = np.linalg.pinv(design.T @ (design * w[:, None]))
        beta = cov @ (design.T @ (w * y))
        shape = spread_shape(design @ beta)
        if fixed_tau2 is not None:
            continue
        new = random_effects_variance(y - design @ beta, s2, shape)
        if np.isclose(new, tau2, rtol=1e-3, atol=1e-12):
            break
        tau2 = new
    if anchor:
        beta = np.concatenate([[0.0], beta])
        cov = np.pad(cov, ((1, 0), (1, 0)))
    return beta, cov, tau2


def curve_deviance(x: np.ndarray, y: np.ndarray, s2: np.ndarray, knots: np.ndarray, level: np.ndarray,
                   tau2: float) -> float:
    """-2 ln L of the cells around a fitted curve, each with variance ``s2 + tau2 * spread_shape^2``."""
    curve = hat_basis(x, knots) @ level
    var = s2 + tau2 * spread_shape(curve) ** 2
    return float(np.sum((y - curve) ** 2 / var + np.log(var)))


def select_curve(x: np.ndarray, y: np.ndarray, s2: np.ndarray, max_knots: int, anchor: bool,
                 criterion: str = "bic", min_knots: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """The curve with the number of knots (``min_knots`` to ``max_knots``) that minimises BIC (or AIC).

    Few knots pin the poorly measured low-dose cells to the shape the well-measured ones
    show; more knots are taken only when the data need them.
    """
    best = None
    for k in range(min(min_knots, max_knots), max_knots + 1):
        knots = dose_knots(x, k)
        level, cov, tau2 = fit_curve(x, y, s2, knots, anchor)
        n_par = len(knots) - int(anchor) + 1
        penalty = n_par * (np.log(len(x)) if criterion == "bic" else 2.0)
        value = curve_deviance(x, y, s2, knots, level, tau2) + penalty
        if best is None or value < best[0]:
            best = (value, knots, level, cov, tau2)
    return best[1:]


def curve_slope(x: np.ndarray, knots: np.ndarray, level: np.ndarray) -> np.ndarray:
    """Derivative of the piecewise-linear curve at ``x`` (0 beyond the last knot)."""
    gradient = np.diff(level) / np.diff(knots)
    return np.where(x < knots[-1], gradient[np.clip(np.searchsorted(knots, x, side="right") - 1, 0,
                                                    len(gradient) - 1)], 0.0)


def silent_dead_probability(ref_hits: np.ndarray, ref_events: int, dam_events: int,
                            prior_dead: float) -> np.ndarray:
    """Posterior probability that a cell silent in the damaged run is dead, per cell.

    A live cell's rate is known only from its ``ref_hits`` hits in ``ref_events`` events; with
    a flat prior on that rate, the chance that it shows no hit in ``dam_events`` events is the
    negative-binomial ``(N_R / (N_R + N_D))^(n_R + 1)``, much larger for a sparse cell than
    the ``exp(-n_R N_D / N_R)`` of a rate taken as exact.

    >>> p = silent_dead_probability(np.array([8, 30]), 5000, 5000, prior_dead=4e-4)
    >>> [round(float(v), 3) for v in p]  # a lucky 8-hit cell stays alive; at 30 hits silence means death
    [0.17, 1.0]
    """
    p_silent = (ref_events / (ref_events + dam_events)) ** (np.asarray(ref_hits, float) + 1)
    return prior_dead / (prior_dead + (1 - prior_dead) * p_silent)


def proxy_with_variance(ref: CellStats, dam: CellStats, damage: np.ndarray,
                        shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Dose proxy (mean deposit per event, MeV, both runs pooled, the damaged one undone by ``damage``)
    smoothed over neighbours (:func:`smooth_dose`), and its variance, flat (n_cells,)."""
    from scipy.ndimage import uniform_filter

    n = ref.n_events + dam.n_events
    mean = (ref.n_events * ref.mean + dam.n_events * dam.mean / damage) / n
    var_own = (ref.n_events * ref.var + dam.n_events * dam.var / damage**2) / n**2
    hits = (ref.hits + dam.hits).reshape(shape)
    own = hits / (hits + SMOOTHING_HITS)
    var_neighbourhood = uniform_filter(var_own.reshape(shape), size=3, mode="nearest") / 27
    proxy = smooth_dose(mean.reshape(shape), hits)
    # the neighbourhood is not the cell: the dose varies across it by about its local spread
    # (less the part that is only noise)
    m = mean.reshape(shape)
    local_spread = uniform_filter(m**2, size=3, mode="nearest") - uniform_filter(m, size=3, mode="nearest") ** 2
    offset = np.maximum(local_spread - uniform_filter(var_own.reshape(shape), size=3, mode="nearest"), 0.0)
    var = own**2 * var_own.reshape(shape) + (1 - own) ** 2 * (var_neighbourhood + offset)
    return proxy.ravel(), var.ravel()


def smooth_dose(mean_deposit: np.ndarray, hits: np.ndarray, prior_hits: float = SMOOTHING_HITS) -> np.ndarray:
    """Dose proxy per cell, its own mean deposit shrunk towards its neighbourhood's (layers, nx, ny).

    The dose field is smooth in space: a cell with few hits estimates its own dose poorly, the
    3x3x3 block around it much better. Each cell weighs its own value by its hit count and the
    neighbourhood's by ``prior_hits``, so well-measured cells (the shower core, where the dose
    changes fast) keep their own value and sparse ones (the halo) take the local average.
    """
    from scipy.ndimage import uniform_filter

    neighbourhood = uniform_filter(mean_deposit, size=3, mode="nearest")
    return (hits * mean_deposit + prior_hits * neighbourhood) / (hits + prior_hits)


def _bootstrap_levels(ref: ReplicaSums, dam: ReplicaSums, hits: np.ndarray, fit: np.ndarray, s2: np.ndarray,
                      tau2: float, knots: np.ndarray, anchor: bool, dose: np.ndarray | None,
                      curve_log: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Knot values refitted on Poisson-weighted replicas of both runs, (replicas, n_knots).

    ``ref`` and ``dam`` hold every replica's per-cell sums (:class:`ReplicaSums`); ``hits``
    (n_cells,) are the hits of both runs, which smooth the dose proxy. Knots, weights and the
    spread are those of the main fit; the dose proxy is recomputed in each replica, so its
    noise enters too.
    """
    y_all = dam.log.mean - ref.log.mean  # (replicas, n_cells)
    levels = []
    for r in range(len(ref.weight)):
        if dose is None:
            x = (ref.energy[r] + dam.energy[r] / np.exp(curve_log)) / (ref.weight[r] + dam.weight[r])
            x = smooth_dose(x.reshape(shape), hits.reshape(shape)).ravel()
        else:
            x = dose
        y = y_all[r]
        ok = fit & np.isfinite(y) & (ref.log.hits[r] > 0) & (dam.log.hits[r] > 0)
        level, _, _ = fit_curve(x[ok], y[ok], s2[ok], knots, anchor, fixed_tau2=tau2)
        levels.append(level)
    return np.asarray(levels)


def calibrate_hierarchical(reference: Source, damaged: Source, dose: np.ndarray | None = None,
                           min_hits: int = 10, n_knots: int = 4, threshold: float = 0.0,
                           anchor: bool = True, bootstrap: int = 30, seed: int = 0) -> CalibrationResult:
    """Empirical-Bayes calibration: per-cell log-energy shifts shrunk towards a fitted ageing curve.

    Parameters
    ----------
    reference, damaged
        The runs: :class:`~calolab.showers.Showers`, or paths of HDF5 files or sharded
        datasets, read chunk by chunk (:mod:`calolab.calibration.passes`) and never whole:
        everything the method takes from the events is a per-cell sum. One pass over the
        damaged run, one over the reference (three with a ``threshold``: its cuts
        ``threshold / c`` follow the estimate).
    dose
        Optional dose map (layers, nx, ny), any unit. Default: the mean deposit per event of
        each cell (MeV) pooled over both runs, the damaged one corrected by the curve.
    min_hits
        Cells with fewer reference hits are left out of the curve fit (they still get a posterior).
    n_knots
        Most knots of the piecewise-linear curve in ln c (at dose-weighted quantiles of the
        fitted cells; BIC chooses from 3 up). Radiation-damage curves (linear, exponential)
        need no more than the default; raise it for a curve with more structure, given
        many more events than cells.
    threshold
        Zero-suppression threshold of both runs in MeV (0: none).
    anchor
        Fix c = 1 at zero dose (true of radiation damage; switch off for other miscalibrations).
    bootstrap
        Replicas of both runs (Poisson event weights, seeded by ``seed`` and each event's
        chunk, :mod:`calolab.calibration.bootstrap`, so the result does not depend on how a
        run is stored) from which the curve's covariance is taken: hadron showers correlate
        the cells of an event, which the cell-by-cell variances miss. All replicas are summed
        in the same passes, (bootstrap, n_cells) float64 arrays per run. 0: the analytic
        covariance of the weighted fit.
    """
    ref_run, dam_run = open_runs(reference, damaged)
    detector = ref_run.detector
    shape, n_cells = detector.shape, detector.n_cells
    if dose is not None:
        dose = np.asarray(dose, float)
        if dose.shape != shape:
            raise CalolabError(f"dose map of shape {dose.shape} does not fit {detector.name} {shape}")

    def statistics(run_key: int, cut: np.ndarray | float, energy: bool) -> list:
        # what one pass over a run sums: log-energies above the cut, and the replicas' sums
        out: list[Callable[..., Any]] = [lambda chunk, _: LogStats.of(chunk, cut)]
        if bootstrap:
            out.append(lambda chunk, index: ReplicaSums.of(chunk, index, bootstrap, seed, run_key, cut, energy))
        return out

    # one pass over each run; the reference's cut threshold / c starts at c = 1
    dam_e, dam_l, *dam_boot = over(dam_run, lambda chunk, _: CellStats.of(chunk),
                                   *statistics(1, threshold, dose is None))
    ref_e, *first = over(ref_run, lambda chunk, _: CellStats.of(chunk), *statistics(0, threshold, dose is None))
    seen = ref_e.hits > 0
    if not seen.any():
        raise CalolabError("the reference data have no hits: nothing to calibrate")
    measured = ref_e.hits >= min_hits
    dead = measured & (dam_l.hits == 0)  # no hit with energy above the threshold
    coeff = np.ones(n_cells)
    curve_log, slope = np.zeros(n_cells), np.zeros(n_cells)
    var_x = np.zeros(n_cells)
    for iteration in range(3):
        if iteration == 0 or threshold == 0:  # without a threshold the cut stays 0: the first pass's sums hold
            ref_l, *ref_boot = first
        else:  # one more pass over the reference, for its hits above the new cuts
            ref_l, *ref_boot = over(ref_run, *statistics(0, threshold / np.clip(coeff, 1e-3, None), False))
            if bootstrap:
                ref_boot = [replace(ref_boot[0], energy=first[1].energy)]  # the energy sums take no cut
        log_ratio = dam_l.mean - ref_l.mean
        fit = measured & ~dead & (ref_l.hits >= 2) & (dam_l.hits >= 2) & np.isfinite(log_ratio)
        if fit.sum() < 20:
            raise CalolabError(f"only {fit.sum()} cells have {min_hits} or more hits in both runs: "
                               "too few to fit an ageing curve")
        knots_used = int(np.clip(fit.sum() // 30, 2, n_knots))  # about 30 cells per knot at least
        if dose is None:
            x, var_x = proxy_with_variance(ref_e, dam_e, np.exp(curve_log), shape)
        else:
            x = dose.ravel()
        # log-energy variance pooled over cells of similar dose (a cell's own from few hits is noisy)
        edges = np.unique(np.quantile(x[fit], np.linspace(0, 1, 11)))
        which = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)
        n = len(edges) - 1
        dof = np.maximum(ref_l.hits - 1, 0) * fit
        pooled_var = np.bincount(which, np.nan_to_num(ref_l.var) * dof, n) / np.maximum(np.bincount(which, dof, n), 1)
        with np.errstate(divide="ignore"):
            s2 = pooled_var[which] * (1.0 / dam_l.hits + 1.0 / ref_l.hits)
        # the dose proxy is itself measured: its error moves a cell along the curve
        s2_fit = s2 + slope**2 * var_x
        knots, level, cov, tau2 = select_curve(x[fit], log_ratio[fit], s2_fit[fit], knots_used, anchor,
                                               min_knots=MIN_KNOTS)
        if bootstrap:
            boot = _bootstrap_levels(ref_boot[0], dam_boot[0], ref_e.hits + dam_e.hits, fit, s2_fit, tau2, knots,
                                     anchor, None if dose is None else x, curve_log, shape)
            free = np.diag(cov) > 0
            inflation = float(np.median(np.var(boot, axis=0, ddof=1)[free] / np.diag(cov)[free]))
            cov = cov * max(inflation, 1.0)
        design = hat_basis(x, knots)
        curve_log = design @ level
        slope = curve_slope(x, knots, level)
        curve_var = np.maximum(np.einsum("ij,jk,ik->i", design, cov, design), 0.0)  # pinv rounding can dip below
        prior_var = np.maximum(tau2 * spread_shape(curve_log) ** 2 + curve_var + slope**2 * var_x, 1e-12)
        with np.errstate(divide="ignore", invalid="ignore"):
            w_data = np.where(fit, 1.0 / s2, 0.0)
            post_var = 1.0 / (w_data + 1.0 / prior_var)
            post = post_var * (w_data * np.nan_to_num(log_ratio) + curve_log / prior_var)
        coeff = np.exp(post)
    sigma = coeff * np.sqrt(post_var)
    # Dead cells: a live cell with n_R reference hits shows none in the damaged run with
    # probability (N_R / (N_R + N_D))^(n_R + 1), the predictive of a Poisson rate known from
    # n_R hits in N_R events (flat prior); exp(-n_R N_D / N_R) would take the rate as exact and
    # call the luckiest sparse cells dead. The prior is the dead fraction among well-measured
    # cells. Call a cell dead when that posterior exceeds one half.
    silent = seen & (dam_l.hits == 0)
    expected = ref_e.hits * dam_e.n_events / ref_e.n_events
    # the prior counts cells dead although the curve says they should still see signal
    # (radiation kills the hottest cells; failures strike anywhere)
    alive_expected = measured & (curve_log > np.log(0.5))
    prior_dead = (dead & alive_expected).sum() / max(alive_expected.sum(), 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        p_dead = np.where(silent, silent_dead_probability(ref_e.hits, ref_e.n_events, dam_e.n_events, prior_dead),
                          0.0)
    p_dead = np.nan_to_num(p_dead)
    # a well-measured cell is silent by chance too (chance 2^-11 at 10 hits in equal runs, and
    # there are thousands such cells): where the curve expects signal it passes the same test;
    # where it expects the hits to have fallen below the threshold, silence is what it predicts
    dead = (silent & (p_dead > 0.5) & (expected >= SURE_HITS)) | (dead & ~alive_expected)
    # a silent cell judged alive may still be dead: its uncertainty carries that chance
    maybe = silent & ~dead
    sigma[maybe] = np.sqrt(sigma[maybe] ** 2 + p_dead[maybe] * (1 - p_dead[maybe]) * coeff[maybe] ** 2)
    coeff[dead] = 0.0
    sigma[dead] = np.sqrt(p_dead[dead] * (1 - p_dead[dead])) + 1.0 / np.maximum(expected[dead], 1.0)
    diagnostics = {"dose_proxy": "dose map" if dose is not None else "pooled mean deposit",
                   "curve_dose": knots.tolist(), "curve": np.exp(level).tolist(),
                   "relative_spread": float(np.sqrt(tau2)),
                   "fit_cells": int(fit.sum()), "dead_cells": int(dead.sum()),
                   "curve_only_cells": int((seen & ~fit & ~dead).sum()), "min_hits": min_hits, "threshold": threshold}
    return CalibrationResult(coeff.reshape(shape), sigma.reshape(shape), seen.reshape(shape), "hierarchical",
                             diagnostics, run_stats=(ref_e, dam_e))
