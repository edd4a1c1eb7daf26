"""The files of an energy-CNN run folder: the best model and the resumable checkpoint.

:func:`save_model` writes ``best.pt`` (:data:`BEST`): the weights, with the input scaling
buffers, the model config and an info dict (the run's data, the epoch); :func:`load_model`
reads it back into an :class:`~calolab.ml.model.EnergyCNN` in eval mode.
:func:`save_checkpoint` writes ``checkpoint.pt`` (:data:`CHECKPOINT`): the state after the
last finished epoch (model, optimiser, scheduler, loss with its Huber thresholds, the RNG
states of torch, CUDA and numpy, and the training state dict: epoch, best-so-far, history);
:func:`load_checkpoint` restores all of it, and refuses a checkpoint of a different run
(configs or data). Tensors are stored on the CPU (:func:`on_cpu`), so a file written on one
device loads on any other. Every file is written atomically (:mod:`calolab.io.atomic`) and
tagged with :data:`FORMAT`; a missing, damaged or foreign file raises
:class:`~calolab.errors.CalolabError` naming the file.

>>> import tempfile
>>> from pathlib import Path
>>> from calolab.ml.model import EnergyCNN, RegressorConfig
>>> path = Path(tempfile.mkdtemp()) / BEST
>>> _ = save_model(path, EnergyCNN(RegressorConfig(channels=(4,), hidden=(8,))), {"epoch": 3})
>>> model, info = load_model(path)
>>> model.training, info
(False, {'epoch': 3})
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from calolab.errors import CalolabError
from calolab.io.atomic import atomic_path
from calolab.ml.model import EnergyCNN, RegressorConfig

CHECKPOINT, BEST, CONFIG, METRICS = "checkpoint.pt", "best.pt", "config.yaml", "metrics.json"
FORMAT = "calolab-energy-cnn"


def save_model(path: Path, model: EnergyCNN, info: dict[str, Any]) -> Path:
    """Write the weights (with the input scaling buffers) and the model config, atomically."""
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "model_config": model.config.to_dict(), "state_dict": on_cpu(model.state_dict()),
                    "info": json.dumps(info)}, tmp)
    return path


def load_model(path: str | Path) -> tuple[EnergyCNN, dict[str, Any]]:
    """An :class:`EnergyCNN` (eval mode) and its info from a file written by :func:`save_model`."""
    data = _load(Path(path))
    try:
        with torch.random.fork_rng(devices=[]):  # the initial weights are overwritten: leave the caller's RNG alone
            model = EnergyCNN(RegressorConfig.from_dict(data["model_config"]))
        model.load_state_dict(data["state_dict"])
        info = json.loads(data["info"])
    except (KeyError, TypeError, RuntimeError, ValueError, CalolabError) as exc:
        raise CalolabError(f"{path}: not a matching calolab energy-CNN model ({_reason(exc)})") from None
    return model.eval(), info


def on_cpu(obj: Any) -> Any:
    """``obj`` (nested dicts, lists and tuples of tensors) with every tensor on the CPU, so that a file written on
    one device loads on any other."""
    if isinstance(obj, torch.Tensor):
        return obj.cpu()
    if isinstance(obj, dict):
        return type(obj)((k, on_cpu(v)) for k, v in obj.items())
    if isinstance(obj, list | tuple):
        return type(obj)(on_cpu(v) for v in obj)
    return obj


def save_checkpoint(path, meta, state, model, optimiser, scheduler, loss_fn, rng, rank_rngs=None) -> Path:
    """Write the run's state (CPU tensors, and the CUDA generator's state when training on CUDA), atomically;
    ``rank_rngs`` (world, n): the torch generator state of each rank of a distributed run."""
    extra = {} if rank_rngs is None else {"rank_rngs": rank_rngs.cpu()}
    device = next(model.parameters()).device
    if device.type == "cuda":
        extra["cuda_rng"] = torch.cuda.get_rng_state(device)
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "meta": json.dumps(meta), "state": json.dumps(state),
                    "model": on_cpu(model.state_dict()), "optimiser": on_cpu(optimiser.state_dict()),
                    "scheduler": scheduler.state_dict(), "loss": on_cpu(loss_fn.state_dict()),
                    "torch_rng": torch.get_rng_state(), "numpy_rng": json.dumps(rng.bit_generator.state), **extra}, tmp)
    return path


def load_checkpoint(path, meta, model, optimiser, scheduler, loss_fn, rng, group=None) -> dict[str, Any]:
    """Restore everything :func:`save_checkpoint` wrote; the run must be the same (configs, data). A rank of
    a distributed run (``group``) takes its own torch generator state when the run had as many ranks."""
    data = _load(path)
    try:
        saved = json.loads(data["meta"])
        if saved != json.loads(json.dumps(meta)):
            diff = sorted(k for k in meta if saved.get(k) != json.loads(json.dumps(meta[k])))
            raise CalolabError(f"{path}: checkpoint of a different run ({', '.join(diff)} differ): "
                               "use a new run folder or delete the checkpoint")
        model.load_state_dict(data["model"])
        optimiser.load_state_dict(data["optimiser"])
        scheduler.load_state_dict(data["scheduler"])
        loss_fn.load_state_dict(data["loss"])
        torch.set_rng_state(data["torch_rng"])
        if group is not None and group.active and len(data.get("rank_rngs", ())) == group.world:
            torch.set_rng_state(data["rank_rngs"][group.rank].clone())  # a tensor of its own: not a view
        device = next(model.parameters()).device
        if device.type == "cuda" and "cuda_rng" in data:  # dropout draws on CUDA from the device's generator
            torch.cuda.set_rng_state(data["cuda_rng"], device)
        rng.bit_generator.state = json.loads(data["numpy_rng"])
        return json.loads(data["state"])
    except CalolabError:
        raise
    except (KeyError, TypeError, RuntimeError, ValueError) as exc:
        raise CalolabError(f"{path}: checkpoint does not match this run ({_reason(exc)})") from None


def _load(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CalolabError(f"{path}: no such file")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, UnpicklingError, EOFError, ... for damaged files
        raise CalolabError(f"{path}: not a readable checkpoint ({_reason(exc)})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CalolabError(f"{path}: not a calolab energy-CNN file (format {FORMAT!r})")
    return data


def _reason(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
