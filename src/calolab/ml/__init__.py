"""CNN energy regression (papers 002 and 003): data streaming, model, losses, training, ensembles.

``calolab.ml`` imports torch only when one of its names is first used, so the CLI, which
imports :mod:`calolab.ml.commands`, stays fast.

===============================  ==========================================================
module                           what
===============================  ==========================================================
:mod:`~calolab.ml.sources`       events from an HDF5 file (chunked) or in memory, ``scan``
:mod:`~calolab.ml.data`          batches densified from sparse hits, pooling, seeded shuffle
:mod:`~calolab.ml.hits`          per-hit inputs and ``HitBatch`` for learned hit classes
:mod:`~calolab.ml.model`         ``RegressorConfig``, ``EnergyCNN`` (residual 3D CNN)
:mod:`~calolab.ml.losses`        MSE, MFSE, paper 003's binned Huberised MFSE
:mod:`~calolab.ml.mirror`        mirror images in y or x (augmentation, ensemble averaging)
:mod:`~calolab.ml.train`         ``TrainConfig``, ``train`` (1-cycle Adam, resumable run folder)
:mod:`~calolab.ml.checkpoint`    ``best.pt`` and ``checkpoint.pt``: ``load_model``, ``save_model``
:mod:`~calolab.ml.ensemble`      ``train_ensemble``, ``CNNEnsemble`` (a ``Regressor``)
:mod:`~calolab.ml.predict`       ``predict_file``: predictions of a run on a showers file
:mod:`~calolab.ml.fit`           ``fit_cnn``: train an ensemble, score it as the baselines are
:mod:`~calolab.ml.device`        ``resolve_device``: ``auto``, ``cpu``, ``cuda``, ``cuda:N``
:mod:`~calolab.ml.distributed`   data-parallel training under torchrun (gloo, nccl)
===============================  ==========================================================
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ShowerBatches": "data", "pool_cells": "data", "pooled_shape": "data",
    "RegressorConfig": "model", "EnergyCNN": "model",
    "BinnedHuberMFSE": "losses", "make_loss": "losses", "mse": "losses", "mfse": "losses",
    "TrainConfig": "train", "TrainResult": "train", "load_model": "checkpoint",
    "CNNEnsemble": "ensemble", "train_ensemble": "ensemble",
    "predict_file": "predict",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'calolab.ml' has no attribute {name!r}")
    return getattr(importlib.import_module(f"calolab.ml.{_EXPORTS[name]}"), name)
