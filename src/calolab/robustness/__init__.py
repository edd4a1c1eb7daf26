"""Robustness of energy regressors to miscalibration, noise and bias (paper 002).

==================================  ====================================================
module                              concept
==================================  ====================================================
:mod:`.grid`                        the scanned (calibration, noise, bias) grid and its units
:mod:`.noise`                       per-event noise behind zero suppression, drawn sparsely
:mod:`.distortions`                 the distorted events of each grid point, on the fly
:mod:`.scan`                        every regressor at every point, on the same events
:mod:`.response`                    ``<E_hat> = a E + b`` and the resolution per point
:mod:`.regression`                  OLS of ``a`` and ``b`` on the distortion parameters
:mod:`.plots`                       response curves, parameters, residuals
==================================  ====================================================

The study that ties them together and writes a run folder is the ``calolab robustness``
command (``run_robustness_study`` in the studies package).
"""

from calolab.robustness.distortions import GridDistorter
from calolab.robustness.grid import GridPoint, RobustnessGrid, empty_cell_occupancy
from calolab.robustness.noise import SparseNoise
from calolab.robustness.regression import FULL_TERMS, PAPER_TERMS, OLSFit, design_matrix, ols, regress
from calolab.robustness.response import ResponseFit, fit_response
from calolab.robustness.scan import ScanConfig, ScanResult, scan

__all__ = [
    "FULL_TERMS",
    "PAPER_TERMS",
    "GridDistorter",
    "GridPoint",
    "OLSFit",
    "ResponseFit",
    "RobustnessGrid",
    "ScanConfig",
    "ScanResult",
    "SparseNoise",
    "design_matrix",
    "empty_cell_occupancy",
    "fit_response",
    "ols",
    "regress",
    "scan",
]
