"""Calibration constants on disk: one HDF5 file per result, written atomically.

Datasets ``coefficients``, ``uncertainty`` (float64, (layers, nx, ny)) and ``calibrated``
(bool); attributes ``method``, ``diagnostics`` (JSON) and ``format = "calolab-calibration"``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from calolab.calibration.base import CalibrationResult
from calolab.errors import CalolabError
from calolab.io.atomic import atomic_path

FORMAT = "calolab-calibration"


def write_calibration(result: CalibrationResult, path: str | Path) -> Path:
    """Write ``result`` to ``path`` (HDF5) and return the path."""
    import h5py

    path = Path(path)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["method"] = result.method
        f.attrs["diagnostics"] = json.dumps(result.diagnostics, default=float)
        for name in ("coefficients", "uncertainty", "calibrated"):
            f.create_dataset(name, data=getattr(result, name), compression="gzip")
    return path


def read_calibration(path: str | Path) -> CalibrationResult:
    """Read a result written by :func:`write_calibration`; a wrong file gets a one-line error."""
    import h5py

    path = Path(path)
    if not path.exists():
        raise CalolabError(f"{path}: no such calibration file")
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise CalolabError(f"{path}: not a calolab calibration file (expected format {FORMAT!r})")
            missing = [n for n in ("coefficients", "uncertainty", "calibrated") if n not in f]
            if missing:
                raise CalolabError(f"{path}: missing dataset {missing[0]!r}")
            return CalibrationResult(np.asarray(f["coefficients"]), np.asarray(f["uncertainty"]),
                                     np.asarray(f["calibrated"], bool), str(f.attrs["method"]),
                                     json.loads(f.attrs.get("diagnostics", "{}")))
    except OSError as exc:
        raise CalolabError(f"{path}: not a readable HDF5 file ({str(exc).splitlines()[0]})") from None
