"""``moments``: each cell's coefficient is the ratio of its mean deposits, damaged over reference.

Cells without a hit count as zero in the means, so the ratio is unbiased for a purely
multiplicative damage without zero suppression. The uncertainty is the delta-method
error of a ratio of two independent sample means.

>>> import numpy as np
>>> from calolab.geometry import load_detector
>>> from calolab.simulation import Beam, simulate
>>> det = load_detector("siw-ecal")
>>> ref, dam = (simulate(det, Beam("e-", energy=1e4), 2000, seed=s) for s in (1, 2))
>>> dam.energy *= np.float32(0.9)                       # every cell loses 10%
>>> result = calibrate_moments(ref, dam, min_hits=500)
>>> bool(abs(np.nanmedian(result.coefficients) - 0.9) < 0.01)
True

"""

from __future__ import annotations

import numpy as np

from calolab.calibration.base import CalibrationResult
from calolab.calibration.cellstats import CellStats
from calolab.calibration.passes import Source, open_runs, over


def ratio_of_means(reference: CellStats, damaged: CellStats) -> tuple[np.ndarray, np.ndarray]:
    """Flat (n_cells,) ratio of means and its relative uncertainty (NaN where the reference is empty).

    A multiplicative damage leaves a cell's coefficient of variation unchanged, so the
    relative error of the ratio is ``CV_ref * sqrt(1/N_damaged + 1/N_reference)``, with the
    CV of the better-measured reference; the error of the estimate is that times the
    coefficient. Using the relative error avoids the bias of weighting by ``ratio``-dependent errors.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = damaged.mean / reference.mean
        cv2 = reference.var / reference.mean**2
        rel = np.sqrt(cv2 * (1.0 / damaged.n_events + 1.0 / reference.n_events))
    return ratio, rel


def calibrate_moments(reference: Source, damaged: Source, min_hits: int = 10) -> CalibrationResult:
    """Per-cell ratio of mean deposits; cells with fewer than ``min_hits`` reference hits are not calibrated.

    Each run is :class:`Showers` or a path (HDF5 file, sharded dataset) read in one pass
    (see :mod:`calolab.calibration.passes`).
    """
    runs = open_runs(reference, damaged)
    ref, dam = (over(run, lambda chunk, _: CellStats.of(chunk))[0] for run in runs)
    ratio, rel = ratio_of_means(ref, dam)
    sigma = np.maximum(ratio, 0.0) * rel
    dead = (dam.hits == 0) & (ref.hits > 0)  # ratio 0: its error is that of one expected hit
    sigma[dead] = 1.0 / np.maximum(ref.hits[dead] * dam.n_events / ref.n_events, 1.0)
    ok = ref.hits >= min_hits
    shape = runs[0].detector.shape
    return CalibrationResult(ratio.reshape(shape), sigma.reshape(shape), ok.reshape(shape), "moments",
                             {"min_hits": min_hits}, run_stats=(ref, dam))
