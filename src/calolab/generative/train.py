"""Training a generative model in a run folder that survives being killed.

A run folder holds::

    config.yaml      model family, model / training / dataset configs, the base detector
    provenance.json  the command, calolab commit and version that started the run
    data.h5          the training set (simulated once from the dataset seed, then reused)
    checkpoint.pt    after every epoch: model, optimisers, random-generator state, epoch, losses
    losses.json      the per-epoch loss terms, learning rate and wall time

Every file is written atomically. Running :func:`train` again on the same folder resumes
from the last finished epoch and gives the same bits as an uninterrupted run with the same
seed (on the same machine and thread count). Only ``epochs`` may change between runs; the
learning-rate schedule follows the new total.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from calolab.config import check_fields
from calolab.errors import CalolabError
from calolab.generative import layerwise, wgan
from calolab.generative.data import DatasetConfig, build_dataset, load_dataset, save_dataset
from calolab.generative.table import LayerTable
from calolab.geometry import Detector, load_detector
from calolab.io.atomic import atomic_path
from calolab.io.rundir import PROVENANCE, provenance, write_json, write_yaml

FAMILIES = {"layerwise": (layerwise, layerwise.LayerwiseConfig, layerwise.LayerwiseModel),
            "wgan": (wgan, wgan.WGANConfig, wgan.WGAN)}
CHECKPOINT_FORMAT = "calolab-generative-checkpoint"


@dataclass(frozen=True)
class TrainConfig:
    """Training schedule: ``epochs`` passes over the data, cosine-decaying learning rate, ``seed``."""

    model: str = "layerwise"
    epochs: int = 30
    seed: int = 1

    def __post_init__(self) -> None:
        if self.model not in FAMILIES:
            raise CalolabError(f"unknown generative model {self.model!r}: expected one of {', '.join(FAMILIES)}")
        if self.epochs < 1:
            raise CalolabError(f"epochs must be >= 1, got {self.epochs}")


def generative_device(device: str = "auto") -> torch.device:
    """The device of a generative model: the CPU. ``auto`` means the CPU here, and a CUDA device
    (``cuda``, ``cuda:N``) is a one-line error: the families build their batches and draw their
    random numbers on the CPU. Strings are checked by :func:`calolab.ml.device.resolve_device`.

    >>> generative_device("auto")
    device(type='cpu')
    """
    from calolab.ml.device import resolve_device

    if str(device).strip().lower() == "auto":
        return torch.device("cpu")
    resolved = resolve_device(device)
    if resolved.type != "cpu":
        raise CalolabError(f"device {device!r}: the generative models (layerwise, wgan) run on the CPU only; "
                           "use --device cpu or auto")
    return resolved


def cosine_lr(base: float, epoch: int, epochs: int, warmup: int = 1) -> float:
    """Learning rate of ``epoch`` (0-based): linear warm-up over ``warmup`` epochs, then cosine decay to 2%.

    >>> [round(cosine_lr(1.0, e, 5), 3) for e in range(5)]
    [0.5, 1.0, 0.856, 0.51, 0.164]
    """
    if epoch < warmup:
        return base * (epoch + 1) / (warmup + 1)
    frac = (epoch - warmup) / max(epochs - warmup, 1)
    return base * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * frac)))


def model_config(name: str, spec: dict[str, Any] | None = None):
    """The config dataclass of model family ``name`` from a dict of overrides."""
    cls = FAMILIES[name][1]
    spec = dict(spec or {})
    check_fields(spec, (f.name for f in fields(cls)), f"{name} config")
    return cls(**spec)


def build_model(name: str, config, detector: Detector, seed: int) -> torch.nn.Module:
    """A freshly initialised model; the initial weights depend only on ``seed`` (global RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return FAMILIES[name][2](config, detector)


def _record(train: TrainConfig, mconfig, data: DatasetConfig, detector: Detector) -> dict[str, Any]:
    from calolab import __version__

    return {"model": train.model, "train": asdict(train), "model_config": asdict(mconfig), "dataset": asdict(data),
            "detector": detector.to_dict(), "calolab_version": __version__}


def _check_same(path: Path, old: dict[str, Any], new: dict[str, Any]) -> None:
    for section in ("model", "model_config", "dataset", "detector"):
        if old.get(section) != new.get(section):
            raise CalolabError(f"{path}: this run folder was made with a different {section.replace('_', ' ')} "
                               f"({old.get(section)!r}); use a new folder or the same settings")
    for key in ("seed", "model"):
        if old.get("train", {}).get(key) != new["train"][key]:
            raise CalolabError(f"{path}: this run folder was made with train {key} {old.get('train', {}).get(key)!r}, "
                               f"not {new['train'][key]!r}")


def save_checkpoint(path: Path, state: dict[str, Any]) -> Path:
    with atomic_path(path) as tmp:
        torch.save({"format": CHECKPOINT_FORMAT, **state}, tmp)
    return path


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint written by :func:`save_checkpoint`; anything unreadable is a :class:`CalolabError`."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CalolabError(f"{path}: no such checkpoint") from None
    except Exception as exc:  # torch raises many kinds for truncated or foreign files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CalolabError(f"{path}: corrupt or unreadable checkpoint ({reason[:120]}); delete it to start "
                           "the training over") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CalolabError(f"{path}: not a calolab generative checkpoint")
    missing = [k for k in ("epoch", "model_state", "optimizers", "rng", "history") if k not in state]
    if missing:
        raise CalolabError(f"{path}: checkpoint lacks {', '.join(missing)}")
    return state


def prepare_run(run_dir: Path, train: TrainConfig, mconfig, data: DatasetConfig) -> tuple[dict, Detector]:
    """Write or check ``config.yaml`` of ``run_dir``; return the record and the base detector."""
    from calolab.yamlfile import read_yaml

    detector = load_detector(data.detector)
    record = _record(train, mconfig, data, detector)
    path = run_dir / "config.yaml"
    if path.exists():
        old = read_yaml(path, "run config")
        if not isinstance(old, dict):
            raise CalolabError(f"{path}: expected a mapping")
        _check_same(path, old, record)
    else:
        write_json(run_dir / PROVENANCE, provenance())
    write_yaml(path, record)
    return record, detector


def train(run_dir: str | Path, train_config: TrainConfig, data_config: DatasetConfig | None = None,
          model_spec: dict[str, Any] | None = None, *, progress: bool = False,
          on_epoch: Callable[[int, dict[str, float]], None] | None = None,
          device: str = "auto") -> tuple[torch.nn.Module, list[dict]]:
    """Train (or resume training) a generative model in ``run_dir``.

    Parameters
    ----------
    run_dir
        Run folder (created if needed); see the module docstring for its content.
    train_config
        Model family, epochs, seed (initial weights, data order and every random draw).
    data_config
        Training set; simulated into ``run_dir/data.h5`` on the first run.
    model_spec
        Overrides of the family's config (:class:`~calolab.generative.layerwise.LayerwiseConfig`
        or :class:`~calolab.generative.wgan.WGANConfig`).
    progress
        Print one line per epoch.
    on_epoch
        Called with ``(epoch, losses)`` after each epoch's checkpoint is written.
    device
        ``auto`` or ``cpu`` (:func:`generative_device`: CUDA is refused in one line).

    Returns
    -------
    The trained model (evaluation mode) and the per-epoch history.
    """
    generative_device(device)
    run_dir = Path(run_dir)
    data_config = data_config or DatasetConfig()
    family, _, _ = FAMILIES[train_config.model]
    mconfig = model_config(train_config.model, model_spec)
    _, detector = prepare_run(run_dir, train_config, mconfig, data_config)
    data_path = run_dir / "data.h5"
    if data_path.exists():
        data = load_dataset(data_path)
        if data.config != data_config:
            raise CalolabError(f"{data_path}: made with {data.config}, not {data_config}")
    else:
        data = build_dataset(data_config, progress=progress)
        save_dataset(data, data_path)
    table = LayerTable.of(data, detector)
    model = build_model(train_config.model, mconfig, detector, train_config.seed)
    optimizers = family.build_optimizers(model)
    generator = torch.Generator().manual_seed(train_config.seed)
    history: list[dict] = []
    ckpt = run_dir / "checkpoint.pt"
    if ckpt.exists():
        state = load_checkpoint(ckpt)
        try:
            model.load_state_dict(state["model_state"])
            for name, opt in optimizers.items():
                opt.load_state_dict(state["optimizers"][name])
            generator.set_state(state["rng"])
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise CalolabError(f"{ckpt}: does not fit this model ({str(exc).splitlines()[0][:120]})") from None
        history = list(state["history"])
    for epoch in range(len(history), train_config.epochs):
        start = time.perf_counter()
        lr = cosine_lr(mconfig.lr, epoch, train_config.epochs)
        terms = family.train_epoch(model, optimizers, table, generator, lr)
        history.append({"epoch": epoch + 1, "lr": lr, "seconds": time.perf_counter() - start, **terms})
        save_checkpoint(ckpt, {"model": train_config.model, "epoch": epoch + 1, "model_state": model.state_dict(),
                               "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
                               "rng": generator.get_state(), "history": history})
        write_json(run_dir / "losses.json", {"model": train_config.model, "epochs": history})
        if progress:
            print(f"{train_config.model} epoch {epoch + 1}/{train_config.epochs}: {history[-1]['seconds']:.1f} s, "
                  + ", ".join(f"{k} {v:.4g}" for k, v in terms.items()), flush=True)
        if on_epoch is not None:
            on_epoch(epoch + 1, history[-1])
    model.eval()
    return model, history
