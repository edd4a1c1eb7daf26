"""Ensembles of energy CNNs (paper 003: five models), and the :class:`Regressor` that applies them.

:func:`train_ensemble` trains ``k`` models in ``run_dir/member-<i>`` with seeds ``seed + i``
(initial weights, dropout, shuffling; the validation split is shared), then writes
``run_dir/ensemble.yaml``: each member's best validation loss and its weight, proportional
to the inverse of that loss. Killed part way, it resumes member by member. With
``workers > 1`` that many members train at once, each in its own process with its share of
the torch threads: a small CNN on a few cores keeps more cores busy as separate members than
as threads of one (``make bench`` measures the ratio). A member's bits can depend on the
number of threads it trained with, so the same seed, ``workers`` and threads give the same
ensemble.

:class:`CNNEnsemble` follows :class:`calolab.reconstruction.regressor.Regressor`: it loads
from a run folder (an ensemble, or a single :func:`~calolab.ml.train.train` run) and
predicts the incident energy in MeV, the members' predictions averaged with those weights,
in batches under ``torch.inference_mode``. Models trained with ``mirror_y`` predict the mean
of each event and its mirror image in y (``y -> -y``, a symmetry of the detector that such a
model has learnt only approximately); this doubles the network's share of the inference time.
With ``mirror_x`` too, the mean of the four images (four times the network's time).
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from calolab.errors import CalolabError
from calolab.io.rundir import write_yaml
from calolab.ml.checkpoint import BEST, load_model
from calolab.ml.data import ShowerBatches
from calolab.ml.device import resolve_device
from calolab.ml.distributed import process_rank
from calolab.ml.mirror import check_mirror_grid, mirror_axes, mirror_batch, mirror_signs
from calolab.ml.model import EnergyCNN, RegressorConfig
from calolab.ml.sources import Source, source_chunks
from calolab.ml.train import TrainConfig, epoch_line, train
from calolab.showers import Showers

ENSEMBLE = "ensemble.yaml"


def event_features(showers: Showers, muon: bool | None = None) -> tuple[np.ndarray, list[str]]:
    """Features for the network body, float32 (N, F), and their names: the high-level features of
    :mod:`calolab.reconstruction.features`, then, if ``muon``, the muon features of paper 003
    (:mod:`calolab.reconstruction.muon_features`); ``None``: when every event is a muon, as the
    trees decide. Modules imported when first needed."""
    try:
        from calolab.reconstruction.baselines import MUON_CODES
        from calolab.reconstruction.features import high_level_features
        from calolab.reconstruction.muon_features import muon_features
    except ImportError:
        raise CalolabError("features need calolab.reconstruction, which is not available in this "
                           "installation") from None
    if muon is None:
        muon = len(showers) > 0 and bool(np.all(np.isin(showers.particle, MUON_CODES)))
    values, names = high_level_features(showers)
    if muon:
        more, more_names = muon_features(showers)
        values, names = np.hstack([values, more]), list(names) + list(more_names)
    return np.asarray(values, np.float32), list(names)


def source_features(source: Source, chunk_events: int = 4096) -> tuple[np.ndarray, list[str]]:
    """:func:`event_features` (N, F) of every event of ``source``, computed a chunk at a time; the muon
    features are added when every event of the source is a muon."""
    from calolab.reconstruction.baselines import MUON_CODES
    from calolab.reconstruction.muon_features import muon_features

    high, muon, names, muon_names, all_muons = [], [], [], [], True
    for chunk in source_chunks(source, chunk_events):
        values, names = event_features(chunk, muon=False)
        high.append(values)
        all_muons = all_muons and bool(np.all(np.isin(chunk.particle, MUON_CODES)))
        if all_muons:
            more, muon_names = muon_features(chunk)
            muon.append(np.asarray(more, np.float32))
    if all_muons and high:
        return np.hstack([np.concatenate(high), np.concatenate(muon)]), names + list(muon_names)
    return np.concatenate(high), names


def train_ensemble(source: Source, run_dir: str | Path, k: int = 5, model_config: RegressorConfig | None = None,
                   config: TrainConfig | None = None, features: np.ndarray | None = None,
                   feature_names: list[str] | None = None, progress: bool = False, workers: int = 1, *,
                   device: str = "auto", loader_workers: int = 0, distributed: bool = False) -> CNNEnsemble:
    """Train ``k`` models with seeds ``config.seed + i`` into ``run_dir`` and return the ensemble.

    Parameters are those of :func:`calolab.ml.train.train`; ``features`` (N, F) are shared.
    ``workers`` members train at once in separate processes, each with
    ``max(1, torch.get_num_threads() // workers)`` torch threads. The processes are spawned, so a
    script that asks for ``workers > 1`` needs Python's ``if __name__ == "__main__":`` guard, and
    each process holds its own copy of in-memory showers and features (an HDF5 source is read
    by each). ``device``, ``loader_workers`` and ``distributed`` go to :func:`~calolab.ml.train.train`;
    a distributed run trains one model (``k == 1``, ``workers == 1``), and the ensemble is
    returned on ``device``.
    """
    if k < 1:
        raise CalolabError(f"an ensemble needs k >= 1 models, got {k}")
    if workers < 1:
        raise CalolabError(f"an ensemble trains with workers >= 1 processes, got {workers}")
    if distributed and (k > 1 or workers > 1):
        raise CalolabError(f"distributed training trains one model: drop --ensemble {k} / --workers {workers}, or "
                           "train the members without --distributed")
    resolve_device(device)  # a bad device string fails here, not in a worker process
    run_dir, config = Path(run_dir), config or TrainConfig()
    jobs = [(i, k, run_dir / f"member-{i}", replace(config, seed=config.seed + i)) for i in range(k)]
    shared = (source, model_config, features, feature_names, progress, device, loader_workers, distributed)
    workers = min(workers, k)
    if workers == 1:
        results = [_train_member(job, shared) for job in jobs]
    else:
        threads = max(1, torch.get_num_threads() // workers)
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_init_worker, initargs=(shared, threads)) as pool:
            results = list(pool.map(_train_member, jobs))
    members = [{"path": f"member-{i}", "seed": config.seed + i, **result} for i, result in enumerate(results)]
    inverse = np.array([1.0 / max(m["val_loss"], 1e-30) for m in members])
    for m, w in zip(members, inverse / inverse.sum(), strict=True):
        m["weight"] = float(w)
    if not distributed or process_rank() == 0:  # rank 0 alone writes the run folder
        write_yaml(run_dir / ENSEMBLE, {"combination": "weights proportional to 1 / best validation loss",
                                        "loss": config.loss, "members": members})
    return CNNEnsemble(*_members(run_dir, [m["path"] for m in members], inverse / inverse.sum()), device=device)


_SHARED: tuple = ()  # in a worker process: what every member of the ensemble shares, sent once per worker


def _init_worker(shared: tuple, threads: int) -> None:
    global _SHARED
    _SHARED = shared
    torch.set_num_threads(threads)


def _train_member(job: tuple[int, int, Path, TrainConfig], shared: tuple | None = None) -> dict[str, Any]:
    """Train member ``i`` of ``k`` with ``shared`` (in a worker: the worker's); its best epoch and validation loss."""
    i, k, member_dir, config = job
    source, model_config, features, feature_names, progress, device, loader_workers, distributed = \
        _SHARED if shared is None else shared
    if progress:
        print(f"member {i + 1}/{k} (seed {config.seed})", flush=True)

    def report(record: dict) -> None:
        print(f"member {i + 1}/{k} {epoch_line(record)}", flush=True)

    result = train(source, member_dir, model_config, config, features, feature_names,
                   callback=report if progress else None, device=device, loader_workers=loader_workers,
                   distributed=distributed)
    return {"best_epoch": result.best_epoch, "val_loss": result.best_val_loss, "history_epochs": len(result.history)}


def _members(run_dir: Path, paths: list[str], weights: np.ndarray) -> tuple[list[EnergyCNN], np.ndarray, dict]:
    """The members' best models (CPU), their weights and the first member's info."""
    loaded = [load_model(run_dir / p / BEST) for p in paths]
    return [m for m, _ in loaded], weights, loaded[0][1]


class CNNEnsemble:
    """Weighted average of :class:`EnergyCNN` predictions; a :class:`~calolab.reconstruction.regressor.Regressor`.

    Parameters
    ----------
    models
        Trained models with the same pooling and features.
    weights
        One non-negative weight per model (normalised here).
    info
        What the models were trained on (``detector_shape``, ``feature_names``, ...).
    batch_size
        Events per inference batch.
    device
        Where the models run (``auto``, ``cpu``, ``cuda``, ``cuda:N``); predictions come back as numpy.
    mirror_y, mirror_x
        Average each event with its mirror image in y (in x; with both, the four images);
        ``None``: when ``info`` says the models were trained so.
    """

    name = "cnn"

    def __init__(self, models: list[EnergyCNN], weights: np.ndarray | list[float], info: dict[str, Any],
                 batch_size: int = 512, mirror_y: bool | None = None, mirror_x: bool | None = None,
                 device: str = "auto"):
        weights = np.asarray(weights, np.float64)
        if not models or len(weights) != len(models) or np.any(weights < 0) or not weights.sum() > 0:
            raise CalolabError("an ensemble needs at least one model and one non-negative weight per model")
        if len({(m.config.pool, m.config.n_features, m.config.hit_classes > 0) for m in models}) != 1:
            raise CalolabError("the models of an ensemble must share their pooling, features and use of hit classes")
        self.device = resolve_device(device)
        self.models = [m.eval().to(self.device) for m in models]
        self.weights, self.info = weights / weights.sum(), info
        self.batch_size = int(batch_size)
        self.mirror_y = bool(info.get("mirror_y", False)) if mirror_y is None else bool(mirror_y)
        self.mirror_x = bool(info.get("mirror_x", False)) if mirror_x is None else bool(mirror_x)

    @classmethod
    def load(cls, run_dir: str | Path, batch_size: int = 512, device: str = "auto") -> CNNEnsemble:
        """Load ``run_dir/ensemble.yaml`` and its members, or a single training run (``best.pt``), onto ``device``."""
        run_dir = Path(run_dir)
        if (run_dir / ENSEMBLE).is_file():
            try:
                members = yaml.safe_load((run_dir / ENSEMBLE).read_text())["members"]
                paths = [run_dir / m["path"] / BEST for m in members]
                weights = [float(m["weight"]) for m in members]
            except (yaml.YAMLError, KeyError, TypeError, ValueError):
                raise CalolabError(f"{run_dir / ENSEMBLE}: not a calolab ensemble description") from None
        elif (run_dir / BEST).is_file():
            paths, weights = [run_dir / BEST], [1.0]
        else:
            raise CalolabError(f"{run_dir}: no {ENSEMBLE} or {BEST}: not a trained energy-CNN run folder")
        loaded = [load_model(p) for p in paths]
        return cls([m for m, _ in loaded], weights, loaded[0][1], batch_size, device=device)

    @property
    def n_features(self) -> int:
        return self.models[0].config.n_features

    def predict(self, showers: Showers, features: np.ndarray | None = None) -> np.ndarray:
        """Estimated incident energy per event, MeV, float64 (N,).

        ``features`` (N, F) are the events' features; when the models use features and none are
        given they are computed with :func:`event_features`, with the muon features if the models
        were trained with them.
        """
        return 1e3 * (self.weights @ self.predict_members(showers, features))

    def predict_members(self, showers: Showers, features: np.ndarray | None = None) -> np.ndarray:
        """Each member's estimate, GeV, float64 (K, N)."""
        shape = self.info.get("detector_shape")
        if shape is not None and tuple(showers.detector.shape) != tuple(shape):
            raise CalolabError(f"the CNN was trained on a {tuple(shape)} grid ({self.info.get('detector')}), "
                               f"these showers have {showers.detector.shape} ({showers.detector.name})")
        layers = self.info.get("detector_layers")
        if layers is not None and layers != showers.detector.to_dict()["layers"]:
            raise CalolabError(f"the CNN was trained on {self.info.get('detector')} with other layers (absorbers or "
                               f"active thicknesses) than these showers' {showers.detector.name}: retrain it")
        axes = mirror_axes(self.mirror_y, self.mirror_x)
        for axis in axes:
            check_mirror_grid(showers.detector, self.models[0].config.pool, axis)
        if self.n_features and features is None:
            from calolab.reconstruction.muon_features import muon_feature_names

            trained, tail = self.info.get("feature_names"), muon_feature_names()
            features, names = event_features(showers, muon=None if trained is None else trained[-len(tail):] == tail)
            if names != self.info.get("feature_names", names):
                raise CalolabError("the features differ from those the CNN was trained with: "
                                   f"{names} vs {self.info.get('feature_names')}")
        if self.n_features and np.shape(features) != (len(showers), self.n_features):
            raise CalolabError(f"features must have shape ({len(showers)}, {self.n_features}), "
                               f"got {np.shape(features)}")
        batches = ShowerBatches(showers, self.batch_size, self.models[0].config.pool,
                                features if self.n_features else None,
                                hit_inputs=self.models[0].config.hit_classes > 0, cache_gib=0)  # one pass
        out = np.empty((len(self.models), len(showers)))
        names = self.info.get("feature_names", []) if self.n_features else []
        signs = {axis: mirror_signs(names, axis).to(self.device) for axis in axes}
        with torch.inference_mode():
            for batch in batches:
                batch = batch.to(self.device, non_blocking=True)
                images = [batch]
                for axis in axes:  # each image mirrored in this axis too: 1, 2 or 4 images
                    every = np.ones(len(batch), bool)
                    images += [mirror_batch(b, signs[axis], every, axis) for b in images]
                for k, model in enumerate(self.models):
                    pred = sum(model(b.x, b.esum, b.features, b.hits) for b in images)
                    out[k, batch.index] = (pred / len(images)).cpu().double().numpy()
        return out
