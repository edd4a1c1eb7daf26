"""``quantile``: per-cell one-dimensional optimal transport of the largest deposits.

For a multiplicative damage, the damaged deposits of a cell are the reference deposits
scaled by c, so their upper quantiles per event are scaled by c. Matching quantiles of the
per-event survival function (the k-th largest deposit per event) uses only deposits above
any zero-suppression threshold, which makes the method robust to it. The coefficient is
the least-squares scale between matched quantiles (the 1-D Wasserstein-2 optimum for a
pure scale).
"""

from __future__ import annotations

import numpy as np

from calolab.calibration.base import CalibrationResult, check_pair
from calolab.calibration.cellstats import sorted_deposits
from calolab.calibration.passes import require_in_memory
from calolab.showers import Showers


def calibrate_quantile(reference: Showers, damaged: Showers, min_hits: int = 10, n_quantiles: int = 64,
                       threshold: float = 0.0) -> CalibrationResult:
    """Match upper-tail quantiles cell by cell; ``threshold`` (MeV) is the zero suppression of the data.

    Deposits at or below ``threshold`` in either run are ignored; with a threshold, only the
    part of the tail above ``threshold / c`` in the reference is compared, iterated twice.
    """
    require_in_memory("quantile", reference, damaged)
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
    return CalibrationResult(coeff.reshape(shape), sigma.reshape(shape), ok.reshape(shape), "quantile",
                             {"min_hits": min_hits, "n_quantiles": n_quantiles, "threshold": threshold})
