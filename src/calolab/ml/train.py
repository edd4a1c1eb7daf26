"""Training one :class:`~calolab.ml.model.EnergyCNN` into a run folder, resumable bit for bit.

Adam with decoupled weight decay (``torch.optim.AdamW``) and a 1-cycle schedule with
cosine annealing (``OneCycleLR``: the learning rate rises to ``lr_max`` over the first
``pct_start`` of the steps and falls to ``lr_max / div_factor / final_div_factor``, while
Adam's beta1 cycles 0.95 -> 0.85 -> 0.95), as in paper 003. Early stopping ends the run when
the validation loss has not improved for ``patience`` epochs, counted only after the
learning rate's rise (the first ``ceil(pct_start * epochs)`` epochs), during which the
validation loss can sit on a plateau before it falls.

The run folder holds::

    config.yaml      model and training configs, data (source, events, split, detector)
    provenance.json  the command, calolab commit and version that started the run
    metrics.json     one record per epoch (losses, learning rate, throughput)
    best.pt          the weights with the lowest validation loss (see CNNEnsemble to load)
    checkpoint.pt    the state after the last finished epoch (see calolab.ml.checkpoint)

All files are written atomically (:mod:`calolab.ml.checkpoint`). :func:`train` resumes from
``checkpoint.pt`` when it is there: a run killed after any epoch and started again ends with
exactly the weights of a run that was never interrupted (same data, configs, seed and number
of threads). Training draws its random numbers (initial weights, dropout) from torch's global
generator inside ``torch.random.fork_rng``, so the caller's generator state is left as it
was; shuffling uses a numpy Generator seeded with ``seed`` whose state is also checkpointed.
``mirror_y`` and ``mirror_x`` mirror a random half of every training batch in y (and, drawn
apart, in x): see :mod:`calolab.ml.mirror`.

Energies: the target is the incident energy in GeV; the inputs are MIPs per pooled cell
(:mod:`calolab.ml.data`).

>>> from calolab.geometry import load_detector
>>> from calolab.showers import Showers
>>> import numpy as np, tempfile
>>> det = load_detector("cusi")
>>> dense = np.zeros((8, *det.shape), np.float32)
>>> dense[:, 10, 20, 25] = np.linspace(50.0, 400.0, 8)  # MeV
>>> s = Showers.from_dense(det, dense, particle=211, incident_energy=np.linspace(5e3, 40e3, 8))
>>> result = train(s, tempfile.mkdtemp(), RegressorConfig(pool=(6, 10, 10), channels=(2,), hidden=(4,)),
...                TrainConfig(epochs=2, batch_size=4, validation_fraction=0.25), device="cpu")
>>> len(result.history), sorted(p.name for p in result.run_dir.iterdir())
(2, ['best.pt', 'checkpoint.pt', 'config.yaml', 'metrics.json', 'provenance.json'])
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from calolab.errors import CalolabError
from calolab.io.rundir import PROVENANCE, provenance, write_json, write_yaml
from calolab.ml import distributed as dist
from calolab.ml.checkpoint import (  # noqa: F401  (FORMAT, on_cpu: re-exported)
    BEST,
    CHECKPOINT,
    CONFIG,
    FORMAT,
    METRICS,
    load_checkpoint,
    load_model,
    on_cpu,
    save_checkpoint,
    save_model,
)
from calolab.ml.data import Batch, ShowerBatches, loader
from calolab.ml.device import autocast, check_bf16, fork_rng_devices, resolve_device
from calolab.ml.losses import LOSSES, make_loss, mfse
from calolab.ml.mirror import (  # noqa: F401  (MIRROR_ODD: re-exported)
    MIRROR_ODD,
    check_mirror_grid,
    mirror_axes,
    mirror_batch,
    mirror_signs,
)
from calolab.ml.model import EnergyCNN, RegressorConfig, count_parameters
from calolab.ml.sources import Source, scan


@dataclass(frozen=True)
class TrainConfig:
    """How :func:`train` fits the model (written to ``config.yaml``)."""

    epochs: int = 20
    batch_size: int = 64
    lr_max: float = 3e-3
    weight_decay: float = 1e-4
    loss: str = "huber"  # mse, mfse or huber (paper 003)
    huber_bins: int = 20  # equal-width bins of true energy over the training range
    huber_percentile: float = 0.68
    huber_momentum: float = 0.1
    pct_start: float = 0.3
    div_factor: float = 25.0
    final_div_factor: float = 1e4
    patience: int = 5
    validation_fraction: float = 0.2
    split_seed: int = 0  # the validation split (shared by the members of an ensemble)
    seed: int = 0  # initial weights, dropout, shuffling
    shuffle_buffer: int = 16384
    chunk_events: int = 4096
    mirror_y: bool = False  # mirror a random half of each training batch in y (calolab.ml.mirror)
    mirror_x: bool = False  # and in x (detectors without a field only)
    bf16: bool = False  # bfloat16 autocast of the forward passes: CUDA only (an error on the CPU)

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise CalolabError(f"unknown loss {self.loss!r}: expected one of {', '.join(LOSSES)}")
        for name in ("epochs", "batch_size", "huber_bins", "patience", "shuffle_buffer", "chunk_events"):
            if int(getattr(self, name)) < 1:
                raise CalolabError(f"training {name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.validation_fraction < 1:
            raise CalolabError(f"validation_fraction must be in (0, 1), got {self.validation_fraction}")
        if not self.lr_max > 0 or self.weight_decay < 0:
            raise CalolabError("lr_max must be > 0 and weight_decay >= 0")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise CalolabError(f"unknown training config keys: {', '.join(sorted(unknown))}")
        return cls(**data)


@dataclass
class TrainResult:
    """What :func:`train` returns: the best model and the record of the run."""

    model: EnergyCNN  # weights of the best epoch, in eval mode
    run_dir: Path
    best_val_loss: float
    best_epoch: int
    history: list[dict[str, float]]


def validation_split(n: int, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask (n,) of the ``round(fraction * n)`` validation events, drawn with ``seed``."""
    mask = np.zeros(n, bool)
    mask[np.random.default_rng(seed).permutation(n)[: max(1, round(fraction * n))]] = True
    return mask


def train(source: Source, run_dir: str | Path, model_config: RegressorConfig | None = None,
          config: TrainConfig | None = None, features: np.ndarray | None = None,
          feature_names: list[str] | None = None, callback: Callable[[dict], None] | None = None,
          progress: bool = False, *, device: str = "auto", loader_workers: int = 0,
          distributed: bool = False) -> TrainResult:
    """Train an :class:`EnergyCNN` on ``source`` into ``run_dir``, resuming from its checkpoint if any.

    Parameters
    ----------
    source
        Showers (in memory or an HDF5 file); the target is the incident energy (GeV).
    run_dir
        Run folder (created); a ``checkpoint.pt`` there is resumed if it matches the run.
    model_config, config
        Architecture and training (defaults if ``None``); ``n_features`` is set from ``features``.
    features
        High-level features of every event of ``source``, (N, F), or ``None``.
    feature_names
        Their names, stored with the model (``CNNEnsemble`` recomputes them for new data).
    callback
        Called with each epoch's record after its checkpoint is written (on every rank).
    progress
        Print one line per epoch.
    device
        ``auto`` (CUDA if available, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``
        (:func:`~calolab.ml.device.resolve_device`). The device may change when a run resumes:
        checkpoints hold CPU tensors.
    loader_workers
        Processes that densify the batches (a ``DataLoader``; 0: in this process). The batches,
        hence the bits, are the same for any number; on CUDA the batches are pinned.
    distributed
        Train data-parallel in the process group of ``torchrun`` (see
        :mod:`calolab.ml.distributed`): each rank takes its share of every batch of
        ``config.batch_size`` events, and rank 0 alone writes ``run_dir``.

    Examples
    --------
    ``torchrun --nproc-per-node 2 -m calolab train showers.h5 -o run`` runs this with
    ``distributed=True`` in two processes; ``train(showers, "run", device="cpu")`` in one.
    """
    run_dir = Path(run_dir)
    model_config, config = model_config or RegressorConfig(), config or TrainConfig()
    device = resolve_device(device)
    check_bf16(device, config.bf16)
    group, joined = dist.join(device) if distributed else (dist.Group(), False)
    try:
        return _train(source, run_dir, model_config, config, features, feature_names, callback, progress,
                      dist.rank_device(device, group), loader_workers, group)
    finally:
        if joined:
            dist.barrier()
            import torch.distributed

            torch.distributed.destroy_process_group()


def _train(source, run_dir, model_config, config, features, feature_names, callback, progress, device,
           loader_workers, group) -> TrainResult:
    table = scan(source, config.chunk_events)
    n = len(table)
    if features is not None:
        features = np.asarray(features, np.float32)
        if features.ndim != 2 or len(features) != n or not np.all(np.isfinite(features)):
            raise CalolabError(f"features must be a finite (N, F) array with N = {n} events, got {features.shape}")
    model_config = RegressorConfig.from_dict({**model_config.to_dict(),
                                              "n_features": 0 if features is None else features.shape[1]})
    val = validation_split(n, config.validation_fraction, config.split_seed)
    if val.all():
        raise CalolabError(f"{n} events are too few to split into training and validation")
    info = {"source": str(source) if isinstance(source, str | Path) else "showers", "events": n,
            "train_events": int((~val).sum()), "validation_events": int(val.sum()),
            "target_sum_gev": float(table.target.sum()), "detector": table.detector.name,
            "detector_shape": list(table.detector.shape), "feature_names": list(feature_names or []),
            "detector_layers": table.detector.to_dict()["layers"], "mirror_y": bool(config.mirror_y),
            "mirror_x": bool(config.mirror_x)}
    train_config = asdict(config)
    if not config.bf16:
        del train_config["bf16"]  # run folders from before bf16 existed resume
    meta = {"model_config": model_config.to_dict(), "train_config": train_config, "data": info}

    def batches(select: np.ndarray, shuffle: bool) -> ShowerBatches:
        return ShowerBatches(source, config.batch_size, model_config.pool, features, select, shuffle, config.seed,
                             config.shuffle_buffer, config.chunk_events, hit_inputs=model_config.hit_classes > 0)

    train_ds, val_ds = batches(~val, True), batches(val, False)
    if group.active:
        train_ds.set_shard(group.rank, group.world)  # every rank validates on all validation events
    pin = device.type == "cuda"
    train_loader, val_loader = (loader(ds, loader_workers, pin) for ds in (train_ds, val_ds))
    mirror = {axis: signs.to(device) for axis, signs in
              _mirror_signs(config, model_config, table.detector, feature_names, features).items()}
    steps_per_epoch = train_ds.n_batches(int((~val).sum()))
    warm_up = math.ceil(config.pct_start * config.epochs)  # epochs while the learning rate rises: no early stopping
    with torch.random.fork_rng(devices=fork_rng_devices(device)):
        torch.manual_seed(config.seed)
        model = EnergyCNN(model_config)
        model.fit_scaling(table.esum[~val], table.target[~val], None if features is None else features[~val])
        model.to(device)  # the initial weights are drawn on the CPU: the same on every device
        edges = np.linspace(table.target[~val].min(), table.target[~val].max(), config.huber_bins + 1)
        edges[0], edges[-1] = -np.inf, np.inf
        loss_fn = make_loss(config.loss, torch.as_tensor(edges), config.huber_percentile,
                            config.huber_momentum).to(device)
        loss_fn.distributed = group.active
        optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr_max, weight_decay=config.weight_decay)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimiser, config.lr_max, total_steps=config.epochs * steps_per_epoch, pct_start=config.pct_start,
            anneal_strategy="cos", div_factor=config.div_factor, final_div_factor=config.final_div_factor)
        rng = np.random.default_rng(config.seed)
        state = {"epoch": 0, "best_val_loss": math.inf, "best_epoch": -1, "bad_epochs": 0, "stopped": False,
                 "history": []}
        if group.active:  # the same initial weights on every rank, then dropout draws of each rank's own
            torch.manual_seed(int(np.random.SeedSequence([config.seed, group.rank]).generate_state(1)[0]))
        if (run_dir / CHECKPOINT).exists():
            state = load_checkpoint(run_dir / CHECKPOINT, meta, model, optimiser, scheduler, loss_fn, rng, group)
        elif group.main:
            write_yaml(run_dir / CONFIG, {**meta, "parameters": count_parameters(model)})
            write_json(run_dir / PROVENANCE, provenance())
        net = model
        if group.active:
            from torch.nn.parallel import DistributedDataParallel

            net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        step = _Step(net, loss_fn, optimiser, scheduler, device, config.bf16, group, mirror,
                     int((~val).sum()), config.batch_size)
        while state["epoch"] < config.epochs and not state["stopped"]:
            record = _epoch(step, train_ds, train_loader, val_loader, rng, state["epoch"])
            state["history"].append(record)
            best = record["val_loss"] < state["best_val_loss"]
            if best:
                state.update(best_val_loss=record["val_loss"], best_epoch=record["epoch"], bad_epochs=0)
            elif record["epoch"] >= warm_up:
                state["bad_epochs"] += 1
            state["stopped"] = state["bad_epochs"] >= config.patience
            state["epoch"] += 1
            rank_rngs = dist.gather(torch.get_rng_state()[None]) if group.active else None  # (world, n) uint8
            if group.main:
                if best:
                    save_model(run_dir / BEST, model, {**info, "epoch": record["epoch"],
                                                       "val_loss": record["val_loss"]})
                save_checkpoint(run_dir / CHECKPOINT, meta, state, model, optimiser, scheduler, loss_fn, rng,
                                rank_rngs)
                write_json(run_dir / METRICS, {"history": state["history"], "best_epoch": state["best_epoch"],
                                               "best_val_loss": state["best_val_loss"],
                                               "stopped_early": state["stopped"]})
            dist.barrier()  # the checkpoint is on disk before any rank goes on (or is killed)
            if progress and group.main:
                print(epoch_line(record), flush=True)
            if callback is not None:
                callback(record)
    best, _ = load_model(run_dir / BEST)
    return TrainResult(best, run_dir, state["best_val_loss"], state["best_epoch"], state["history"])


def epoch_line(record: dict) -> str:
    """One epoch's progress line.

    >>> epoch_line({"epoch": 7, "train_loss": 0.0125, "val_loss": 0.0131, "train_events_per_s": 812.4})
    'epoch 7: train 0.0125 val 0.0131 (812 events/s)'
    """
    return (f"epoch {record['epoch']}: train {record['train_loss']:.4g} val {record['val_loss']:.4g} "
            f"({record['train_events_per_s']:.0f} events/s)")


def _mirror_signs(config: TrainConfig, model_config: RegressorConfig, detector, feature_names: list[str] | None,
                  features: np.ndarray | None) -> dict[str, torch.Tensor]:
    """For each axis to mirror (``mirror_y``, ``mirror_x``): the sign of each feature under the mirroring (F,)."""
    axes = mirror_axes(config.mirror_y, config.mirror_x)
    for axis in axes:
        check_mirror_grid(detector, model_config.pool, axis)
    if axes and features is not None and (feature_names is None or len(feature_names) != features.shape[1]):
        raise CalolabError(f"mirror_{axes[0]} needs the features' names, to know which change sign when mirrored")
    return {axis: mirror_signs(feature_names if features is not None else [], axis) for axis in axes}


@dataclass
class _Step:
    """What one training step needs: the network (``DistributedDataParallel`` when distributed), the loss,
    optimiser, schedule, device, precision, process group, mirroring signs and the global batches' sizes."""

    net: torch.nn.Module
    loss_fn: torch.nn.Module
    optimiser: torch.optim.Optimizer
    scheduler: Any
    device: torch.device
    bf16: bool
    group: dist.Group
    mirror: dict[str, torch.Tensor]
    train_events: int
    batch_size: int

    @property
    def model(self) -> EnergyCNN:
        return getattr(self.net, "module", self.net)

    def global_size(self, i: int) -> int:
        """Events of global batch ``i`` (all full but the last)."""
        return min(self.batch_size, self.train_events - i * self.batch_size)

    def __call__(self, i: int, batch: Batch, flips: np.random.Generator | None) -> torch.Tensor:
        """Train on this rank's share of global batch ``i``; the share's summed loss (float64, no gradient)."""
        group, size = self.group, self.global_size(i)
        mine = dist.shard(np.arange(size), group.rank, group.world)  # this rank's places in the global batch
        if len(mine) != len(batch):
            raise CalolabError(f"batch {i} holds {len(batch)} events, expected {len(mine)} of {size}")
        self.optimiser.zero_grad(set_to_none=True)
        for axis, signs in self.mirror.items():  # y, then x: runs that mirror in y only draw as before
            batch = mirror_batch(batch, signs, (flips.random(size) < 0.5)[mine], axis)
        with autocast(self.device, self.bf16):
            pred = self.net(batch.x, batch.esum, batch.features, batch.hits)
        loss = self.loss_fn(pred.float(), batch.target)
        objective = loss
        if group.active:  # DDP averages the ranks' gradients: weigh each by its share of the global batch
            objective = loss * (len(batch) * group.world / size) if len(batch) else pred.sum() * 0.0
        objective.backward()
        self.optimiser.step()
        self.scheduler.step()
        return loss.detach().double() * len(batch) if len(batch) else torch.zeros((), dtype=torch.float64,
                                                                                device=self.device)


def _epoch(step: _Step, train_ds: ShowerBatches, train_loader, val_loader, rng, epoch) -> dict[str, float]:
    epoch_seed = int(rng.integers(2**62))
    train_ds.set_epoch(epoch_seed)
    flips = np.random.default_rng([epoch_seed, 1]) if step.mirror else None  # resumes bit for bit
    model, loss_fn = step.model, step.loss_fn
    model.train()
    loss_fn.train()
    start, n = time.perf_counter(), 0
    total = torch.zeros((), dtype=torch.float64, device=step.device)
    for i, batch in enumerate(train_loader):
        total = total + step(i, batch.to(step.device, non_blocking=True), flips)
        n += len(batch)
    total, n = dist.all_sum(float(total), n, device=step.device)
    elapsed = time.perf_counter() - start
    model.eval()
    loss_fn.eval()
    pred, target = predict_batches(model, val_loader, step.device, step.bf16)
    p, t = torch.from_numpy(pred), torch.from_numpy(target)
    ratio = pred / target
    return {"epoch": epoch, "lr": step.scheduler.get_last_lr()[0], "train_loss": total / max(n, 1),
            "val_loss": float(loss_fn(p.to(step.device), t.to(step.device))), "val_mfse": float(mfse(p, t)),
            "val_response": float(np.median(ratio)), "val_rel_rms": float(np.std(ratio - 1)), "train_time_s": elapsed,
            "train_events_per_s": n / max(elapsed, 1e-9)}


def predict_batches(model: EnergyCNN, batches, device: torch.device | None = None,
                    bf16: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Predicted and true energies (GeV, float64 (N,)) of every batch, in ``inference_mode`` on ``device``
    (the model's; default the CPU), in bfloat16 autocast if ``bf16`` (CUDA only)."""
    device = device or torch.device("cpu")
    pred, target = [], []
    with torch.inference_mode(), autocast(device, bf16):
        for batch in batches:
            batch = batch.to(device, non_blocking=True)
            pred.append(model(batch.x, batch.esum, batch.features, batch.hits).float().cpu().double().numpy())
            target.append(batch.target.cpu().double().numpy())
    return np.concatenate(pred), np.concatenate(target)
