"""Applying a trained CNN run to a showers file and writing the predictions.

The output is an HDF5 file (written atomically) with, for ``N`` events::

    event             int64   (N,)   event number in the input file
    true_energy       float64 (N,)   incident energy, MeV
    predicted_energy  float64 (N,)   the ensemble's estimate, MeV
    attributes: format="calolab-predictions", regressor, run_dir, input, members, weights,
                mirror_y, mirror_x (each event averaged with its mirror images)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np

from calolab.errors import CalolabError
from calolab.io import iter_showers
from calolab.io.atomic import atomic_path
from calolab.io.failures import require_non_negative
from calolab.ml.ensemble import CNNEnsemble

FORMAT = "calolab-predictions"


def predict_file(run_dir: str | Path, data: str | Path, output: str | Path, batch_size: int = 512,
                 chunk_events: int = 8192, device: str = "auto", detector: Any = None) -> dict[str, float]:
    """Predict every event of ``data`` with the run in ``run_dir`` on ``device``; write ``output``; return a summary.

    The summary holds the number of events and, over events with a true energy > 0, the
    median of ``E_pred / E_true`` and the RMS of ``E_pred / E_true - 1``.
    """
    ensemble = CNNEnsemble.load(run_dir, batch_size=batch_size, device=device)
    true, pred = [], []
    for chunk in iter_showers(data, chunk_events, detector=detector):
        require_non_negative(chunk, data, "calolab predict")
        true.append(chunk.incident_energy)
        pred.append(ensemble.predict(chunk))
    if not true:
        raise CalolabError(f"{data}: the file holds no events")
    true, pred = np.concatenate(true), np.concatenate(pred)
    with atomic_path(Path(output)) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("event", data=np.arange(len(true), dtype=np.int64))
        f.create_dataset("true_energy", data=true)
        f.create_dataset("predicted_energy", data=pred)
        f.attrs.update({"format": FORMAT, "regressor": ensemble.name, "run_dir": str(run_dir), "input": str(data),
                        "members": len(ensemble.models), "weights": ensemble.weights,
                        "mirror_y": ensemble.mirror_y, "mirror_x": ensemble.mirror_x})
    ratio = pred[true > 0] / true[true > 0]
    return {"events": len(true), "median_response": float(np.median(ratio)) if len(ratio) else float("nan"),
            "relative_rms": float(np.sqrt(np.mean((ratio - 1) ** 2))) if len(ratio) else float("nan")}
