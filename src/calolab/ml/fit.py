"""Train a CNN ensemble on showers and score it as the baselines are scored (pion and muon studies).

:func:`fit_cnn` trains :func:`~calolab.ml.ensemble.train_ensemble` from a study's config
and scores the ensemble with :func:`~calolab.reconstruction.scoring.score` (response fitted
on held-out events, corrected test predictions, binned metrics). The features of the
network body can be passed through :func:`transform_features` first.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from calolab.errors import CalolabError
from calolab.reconstruction.scoring import Scored, score
from calolab.showers import Showers

FEATURE_TRANSFORMS = ("none", "signed-log")


def fit_cnn(config, label: str, features: Callable[[Showers], tuple[np.ndarray, list[str]]] | None,
            fit_set: Showers, calibration: Showers, test: Showers, edges: np.ndarray, common: dict[str, Any],
            run_dir: Path, seed: int, echo: Callable[[str], None] = print, progress: bool = False) -> Scored:
    """Train an ensemble of ``config.ensemble`` CNNs on ``fit_set`` into ``run_dir`` and score it.

    ``config`` gives the architecture (``pool``, ``channels``, ``hidden``), the training
    (``epochs``, ``batch_size``, ``lr_max``, ``patience``, ``mirror_y``, and ``mirror_x`` where the
    study has it), ``workers`` (CNNs trained at once) and ``feature_transform``;
    ``features`` computes the (N, F) features of the network body (``None``: none). The CNN
    keeps its own validation split of ``fit_set`` (20%, seeded by ``seed``) for early
    stopping and the ensemble weights; a killed run resumes from the checkpoints in ``run_dir``.
    ``common`` holds the keyword arguments of :func:`~calolab.reconstruction.scoring.score`.
    """
    from calolab.ml.ensemble import train_ensemble
    from calolab.ml.model import RegressorConfig
    from calolab.ml.train import TrainConfig

    if features is not None and config.feature_transform != "none":
        raw, how = features, config.feature_transform

        def features(showers: Showers) -> tuple[np.ndarray, list[str]]:
            x, names = raw(showers)
            return transform_features(x, how), names

    model_config = RegressorConfig(pool=config.pool, channels=config.channels, hidden=config.hidden,
                                   hit_classes=config.hit_classes)
    train_config = TrainConfig(epochs=config.epochs, batch_size=config.batch_size, lr_max=config.lr_max,
                               patience=config.patience, weight_decay=config.weight_decay, seed=seed, split_seed=seed,
                               mirror_y=config.mirror_y, mirror_x=mirror_x(config))
    values, names = features(fit_set) if features else (None, None)
    echo(f"training {label} on {len(fit_set)} events")
    start = time.perf_counter()
    ensemble = train_ensemble(fit_set, run_dir, config.ensemble, model_config, train_config, values, names,
                              progress=progress, workers=config.workers)
    seconds = time.perf_counter() - start

    def predict(showers: Showers) -> np.ndarray:
        return ensemble.predict(showers, features(showers)[0] if features else None)

    scored = score("cnn", label, predict, calibration, test, edges, seconds, **common)
    echo(f"{label} trained in {seconds:.0f} s, {scored.events_per_s:.0f} events/s")
    return scored


def mirror_x(config) -> bool:
    """Whether a study's CNNs are mirrored in x: ``config.mirror_x`` where the study has it (the muon
    study has not: in its field, x -> -x is not a symmetry)."""
    return bool(getattr(config, "mirror_x", False))


def transform_features(x: np.ndarray, how: str) -> np.ndarray:
    """Features as the CNN body sees them: ``none``, or ``signed-log`` ``sign(x) log(1 + |x|)``, float32 (N, F).

    The body standardises its inputs by their mean and standard deviation; energies and
    counts with long tails (muon radiative losses span orders of magnitude) are better
    spread after the log.

    >>> [round(float(v), 3) for v in transform_features(np.array([[0.0, -1.0, np.e - 1]]), "signed-log")[0]]
    [0.0, -0.693, 1.0]
    """
    if how not in FEATURE_TRANSFORMS:
        raise CalolabError(f"feature_transform must be one of {', '.join(FEATURE_TRANSFORMS)}, got {how!r}")
    x = np.asarray(x, np.float32)
    return x if how == "none" else (np.sign(x) * np.log1p(np.abs(x))).astype(np.float32)
