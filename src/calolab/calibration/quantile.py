"""``quantile``: per-cell one-dimensional optimal transport of the largest deposits.

For a multiplicative damage, the damaged deposits of a cell are the reference deposits
scaled by c, so their upper quantiles per event are scaled by c. Matching quantiles of the
per-event survival function (the k-th largest deposit per event) uses only deposits above
any zero-suppression threshold, which makes the method robust to it. The coefficient is
the least-squares scale between matched quantiles (the 1-D Wasserstein-2 optimum for a
pure scale).

Runs in memory are matched on their sorted deposits (exact). Runs given as paths (HDF5
files, sharded datasets) are streamed chunk by chunk into per-cell quantile sketches
(:mod:`calolab.calibration.sketch`) and matched on the sketches' quantiles, which are
exact at bin edges and interpolated in log-energy inside a bin; ``sketch=True`` does the
same for runs in memory.
"""

from __future__ import annotations

import numpy as np

from calolab.calibration.base import CalibrationResult, check_pair
from calolab.calibration.cellstats import sorted_deposits
from calolab.calibration.passes import Source
from calolab.calibration.sketch import QuantileSketch, sketch_runs
from calolab.showers import Showers


def calibrate_quantile(reference: Source, damaged: Source, min_hits: int = 10, n_quantiles: int = 64,
                       threshold: float = 0.0, sketch: bool = False) -> CalibrationResult:
    """Match upper-tail quantiles cell by cell; ``threshold`` (MeV) is the zero suppression of the data.

    Deposits at or below ``threshold`` in either run are ignored; with a threshold, only the
    part of the tail above ``threshold / c`` in the reference is compared, iterated twice.
    Each run is :class:`Showers` or a path, streamed into a sketch; ``sketch=True`` sketches
    runs in memory too.
    """
    options = {"min_hits": min_hits, "n_quantiles": n_quantiles, "threshold": threshold}
    if sketch or not (isinstance(reference, Showers) and isinstance(damaged, Showers)):
        ref_sketch, dam_sketch, sums, shape = sketch_runs(reference, damaged)
        result = quantile_of_sketches(ref_sketch, dam_sketch, shape, min_hits, n_quantiles, threshold)
        result.run_stats = sums
        return result
    check_pair(reference, damaged)
    ref_e, ref_start = sorted_deposits(reference)
    dam_e, dam_start = sorted_deposits(damaged)
    n_ref, n_dam = len(reference), len(damaged)
    n_cells = reference.detector.n_cells
    coeff, sigma = np.full(n_cells, np.nan), np.full(n_cells, np.nan)
    ok = np.zeros(n_cells, bool)
    for cell in np.flatnonzero(np.diff(ref_start) >= min_hits):
        r = ref_e[ref_start[cell]:ref_start[cell + 1]]
        d = dam_e[dam_start[cell]:dam_start[cell + 1]]
        r, d = r[r > threshold], d[d > threshold]
        if len(d) == 0:
            if len(r) >= min_hits:  # dead: the reference fires, the damaged cell never does
                coeff[cell], sigma[cell], ok[cell] = 0.0, 1.0 / len(r), True
            continue
        c = float(np.median(d) / np.median(r)) if threshold > 0 else 1.0
        for _ in range(2 if threshold > 0 else 1):
            # the reference tail that survives the threshold after damage: deposits above threshold / c
            r_eff = r[r * c > threshold] if threshold > 0 else r
            p_max = min(len(r_eff) / n_ref, len(d) / n_dam)
            m = int(min(n_quantiles, len(r_eff), len(d)))
            if m < 2:
                break
            p = (np.arange(m) + 0.5) / m * p_max
            q_r = np.interp(p * n_ref, np.arange(len(r_eff)) + 0.5, r_eff)
            q_d = np.interp(p * n_dam, np.arange(len(d)) + 0.5, d)
            c = float(q_d @ q_r / (q_r @ q_r))
        if m < 2:
            continue
        cv = np.std(r_eff) / np.mean(r_eff)
        n_eff = 1.0 / (1.0 / len(r_eff) + 1.0 / len(d))
        coeff[cell], sigma[cell], ok[cell] = c, c * cv / np.sqrt(n_eff), True
    shape = reference.detector.shape
    return CalibrationResult(coeff.reshape(shape), sigma.reshape(shape), ok.reshape(shape), "quantile", options)


def quantile_of_sketches(reference: QuantileSketch, damaged: QuantileSketch, shape: tuple[int, ...],
                         min_hits: int = 10, n_quantiles: int = 64, threshold: float = 0.0) -> CalibrationResult:
    """:func:`calibrate_quantile` on the per-cell sketches of two runs, cells of ``shape`` (layers, nx, ny).

    The same estimator with each cell's sorted deposits replaced by its sketch's
    :class:`~calolab.calibration.sketch.Spectrum`: hit counts above a cut and the quantiles
    are interpolated in the cumulative counts, the spread of the reference tail is that of
    its bin centres.
    """
    n_ref, n_dam = reference.n_events, damaged.n_events
    n_cells = reference.n_cells
    coeff, sigma = np.full(n_cells, np.nan), np.full(n_cells, np.nan)
    ok = np.zeros(n_cells, bool)
    ref_starts, dam_starts = reference.starts, damaged.starts
    for cell in np.flatnonzero(reference.hits >= min_hits):
        r, d = reference.spectrum(cell, ref_starts), damaged.spectrum(cell, dam_starts)
        n_r, n_d = r.above(threshold), d.above(threshold)
        if n_d == 0:
            if n_r >= min_hits:  # dead: the reference fires, the damaged cell never does
                coeff[cell], sigma[cell], ok[cell] = 0.0, 1.0 / n_r, True
            continue
        c = float(d.from_top(n_d / 2) / r.from_top(n_r / 2)) if threshold > 0 else 1.0
        for _ in range(2 if threshold > 0 else 1):
            cut = threshold / c if threshold > 0 else 0.0  # the reference tail that survives the threshold
            n_r_eff = r.above(cut)
            p_max = min(n_r_eff / n_ref, n_d / n_dam)
            m = int(min(n_quantiles, n_r_eff, n_d))
            if m < 2:
                break
            p = (np.arange(m) + 0.5) / m * p_max
            q_r, q_d = r.from_top(p * n_ref), d.from_top(p * n_dam)
            c = float(q_d @ q_r / (q_r @ q_r))
        if m < 2:
            continue
        _, mean, std = r.moments(low=cut)
        n_eff = 1.0 / (1.0 / n_r_eff + 1.0 / n_d)
        coeff[cell], sigma[cell], ok[cell] = c, c * std / mean / np.sqrt(n_eff), True
    return CalibrationResult(coeff.reshape(shape), sigma.reshape(shape), ok.reshape(shape), "quantile",
                             {"min_hits": min_hits, "n_quantiles": n_quantiles, "threshold": threshold,
                              "sketch": reference.binning.relative_width})
