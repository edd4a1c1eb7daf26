"""Which device torch runs on: one helper that resolves and checks a device string.

``"auto"`` is the first CUDA device when torch sees one, else the CPU; ``"cpu"``, ``"cuda"``
(the current CUDA device) and ``"cuda:N"`` name one. Anything else, ``cuda`` on a machine
(or a torch build) without CUDA, and ``cuda:N`` past the number of devices are a one-line
:class:`~calolab.errors.CalolabError`, which the CLI prints without a traceback (exit 2).

bf16 autocast (:func:`autocast`) runs the convolutions and linear layers in bfloat16 on
CUDA; asking for it on the CPU is an error rather than a silent no-op, so that a run's
``config.yaml`` never claims a precision it did not use.

>>> resolve_device("cpu")
device(type='cpu')
>>> resolve_device("tpu")
Traceback (most recent call last):
...
calolab.errors.CalolabError: unknown device 'tpu': expected auto, cpu, cuda or cuda:N
"""

from __future__ import annotations

import contextlib
import re

import torch

from calolab.errors import CalolabError

DEVICES = "auto, cpu, cuda or cuda:N"


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """The ``torch.device`` that ``spec`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``) names on this machine."""
    text = str(spec).strip().lower()
    match = re.fullmatch(r"(auto|cpu|cuda)(?::(\d+))?", text)
    if match is None or (match[2] is not None and match[1] != "cuda"):
        raise CalolabError(f"unknown device {str(spec)!r}: expected {DEVICES}")
    kind, index = match[1], match[2]
    if kind == "auto":
        return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    if kind == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        why = "this torch build has no CUDA" if torch.version.cuda is None else "torch sees no CUDA device"
        raise CalolabError(f"device {text!r}: {why} (use --device cpu, or install a CUDA build of torch: see the "
                           "README)")
    count = torch.cuda.device_count()
    if index is None:
        return torch.device("cuda", torch.cuda.current_device())
    if int(index) >= count:
        raise CalolabError(f"device {text!r}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    return torch.device("cuda", int(index))


def check_bf16(device: torch.device, bf16: bool) -> None:
    """Refuse bf16 autocast off CUDA (a one-line error)."""
    if bf16 and device.type != "cuda":
        raise CalolabError(f"bf16 autocast needs a CUDA device; this run is on {device} (drop --bf16)")


def autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to bfloat16 on CUDA when ``bf16``, else a context that changes nothing."""
    if not bf16:
        return contextlib.nullcontext()
    check_bf16(device, bf16)
    return torch.autocast("cuda", dtype=torch.bfloat16)


def fork_rng_devices(device: torch.device) -> list[int]:
    """The CUDA devices whose generator ``torch.random.fork_rng`` must save for training on ``device``."""
    return [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
