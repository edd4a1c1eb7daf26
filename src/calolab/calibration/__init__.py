"""Per-cell calibration of a damaged calorimeter against a reference run.

>>> sorted(METHODS)
['hierarchical', 'mip', 'moments', 'quantile', 'wgan']
"""

from __future__ import annotations

from collections.abc import Callable

from calolab.calibration.base import (
    CalibrationResult,
    apply_calibration,
    check_pair,
    energy_scale,
    hit_cells,
    score,
)
from calolab.calibration.hierarchical import calibrate_hierarchical
from calolab.calibration.mip import calibrate_mip
from calolab.calibration.moments import calibrate_moments
from calolab.calibration.passes import STREAMING, Source, require_in_memory
from calolab.calibration.quantile import calibrate_quantile
from calolab.calibration.store import read_calibration, write_calibration
from calolab.errors import CalolabError
from calolab.showers import Showers


def calibrate_wgan(reference: Showers, damaged: Showers, **options) -> CalibrationResult:
    """The papers' WGAN calibration; torch is imported only here (see :mod:`calolab.calibration.wgan`)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        raise CalolabError("the wgan calibration needs torch: pip install 'calolab[ml]'") from None
    from calolab.calibration import wgan

    return wgan.calibrate_wgan(reference, damaged, **options)


METHODS: dict[str, Callable[..., CalibrationResult]] = {
    "moments": calibrate_moments,
    "quantile": calibrate_quantile,
    "hierarchical": calibrate_hierarchical,
    "mip": calibrate_mip,
    "wgan": calibrate_wgan,
}


def calibrate(reference: Source, damaged: Source, method: str = "hierarchical", **options) -> CalibrationResult:
    """Estimate per-cell coefficients (damaged = c x reference) with ``method``; see :data:`METHODS`.

    The runs are :class:`Showers`; for the methods of :data:`STREAMING` also paths of HDF5
    files or sharded datasets, read chunk by chunk (:mod:`calolab.calibration.passes`).
    """
    if method not in METHODS:
        raise CalolabError(f"unknown calibration method {method!r}: expected one of {', '.join(sorted(METHODS))}")
    if method not in STREAMING:
        require_in_memory(method, reference, damaged)
    return METHODS[method](reference, damaged, **options)


__all__ = ["METHODS", "STREAMING", "CalibrationResult", "apply_calibration", "calibrate", "check_pair",
           "energy_scale", "hit_cells", "read_calibration", "score", "write_calibration"]
