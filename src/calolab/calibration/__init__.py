"""Per-cell calibration of a damaged calorimeter against a reference run.

>>> sorted(METHODS)
['hierarchical', 'mip', 'moments', 'quantile']
"""

from __future__ import annotations

from collections.abc import Callable

from calolab.calibration.base import CalibrationResult, apply_calibration, check_pair, hit_cells, score
from calolab.calibration.hierarchical import calibrate_hierarchical
from calolab.calibration.mip import calibrate_mip
from calolab.calibration.moments import calibrate_moments
from calolab.calibration.quantile import calibrate_quantile
from calolab.calibration.store import read_calibration, write_calibration
from calolab.errors import CalolabError
from calolab.showers import Showers

METHODS: dict[str, Callable[..., CalibrationResult]] = {
    "moments": calibrate_moments,
    "quantile": calibrate_quantile,
    "hierarchical": calibrate_hierarchical,
    "mip": calibrate_mip,
}


def calibrate(reference: Showers, damaged: Showers, method: str = "hierarchical", **options) -> CalibrationResult:
    """Estimate per-cell coefficients (damaged = c x reference) with ``method``; see :data:`METHODS`."""
    if method not in METHODS:
        raise CalolabError(f"unknown calibration method {method!r}: expected one of {', '.join(sorted(METHODS))}")
    return METHODS[method](reference, damaged, **options)


__all__ = ["METHODS", "CalibrationResult", "apply_calibration", "calibrate", "check_pair", "hit_cells",
           "read_calibration", "score", "write_calibration"]
