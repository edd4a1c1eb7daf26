"""Data-parallel training of one CNN over several processes (``torch.distributed``).

Launched by ``torchrun --nproc-per-node N -m calolab train ...`` (or ``calolab train
--distributed`` under torchrun), each process (rank) joins one process group from the
environment torchrun sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
``MASTER_PORT``): gloo on the CPU, nccl on CUDA, where rank ``r`` uses ``cuda:LOCAL_RANK``.

Every rank draws the same global batches (the shuffle is seeded) and keeps its share
(:func:`shard`); ``DistributedDataParallel`` averages the gradients, and each rank's loss is
weighted so that the step is that of the global batch's mean loss. Statistics that a loss
takes over a batch (the Huber thresholds) are taken over the global batch (:func:`gather`).
Rank 0 alone writes the run folder.

>>> shard(np.arange(7), rank=1, world=2).tolist()  # rank 0 gets [0, 1, 2, 3]
[4, 5, 6]
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from calolab.errors import CalolabError


@dataclass(frozen=True)
class Group:
    """This process's place in the training: ``rank`` of ``world`` processes (``world == 1``: alone)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Whether this process writes the run folder (rank 0)."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def launched() -> bool:
    """Whether this process was started by torchrun with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def join(device: torch.device) -> tuple[Group, bool]:
    """Join the process group of the environment (or the one already initialised); whether it was made here.

    The backend is nccl for a CUDA ``device``, gloo for the CPU.
    """
    if dist.is_available() and dist.is_initialized():
        return Group(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0"))), False
    missing = [k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise CalolabError(f"distributed training needs the torchrun environment ({', '.join(missing)} unset): run "
                           "torchrun --nproc-per-node N -m calolab train ...")
    if not dist.is_available():
        raise CalolabError("this torch build has no torch.distributed")
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Group(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0"))), True


def process_rank() -> int:
    """This process's rank: that of the process group, else torchrun's ``RANK`` (0 when not launched)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0"))


def rank_device(device: torch.device, group: Group) -> torch.device:
    """The device of this rank: ``cuda:LOCAL_RANK`` when training on CUDA with several ranks, else ``device``."""
    if device.type == "cuda" and group.active:
        if group.local_rank >= torch.cuda.device_count():
            raise CalolabError(f"rank {group.rank} (local rank {group.local_rank}) has no CUDA device: this machine "
                               f"has {torch.cuda.device_count()}")
        return torch.device("cuda", group.local_rank)
    return device


def shard(index: np.ndarray, rank: int, world: int) -> np.ndarray:
    """Rank ``rank``'s contiguous share of a global batch's ``index`` (sizes differ by at most one)."""
    return np.array_split(np.asarray(index), world)[rank]


def gather(values: torch.Tensor) -> torch.Tensor:
    """The (n_r, ...) ``values`` of every rank concatenated in rank order (no gradient); ``values`` when alone."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return values
    world = dist.get_world_size()
    sizes = [torch.zeros(1, dtype=torch.int64, device=values.device) for _ in range(world)]
    dist.all_gather(sizes, torch.tensor([len(values)], dtype=torch.int64, device=values.device))
    longest = int(max(s.item() for s in sizes))
    padded = values.detach().new_zeros((longest, *values.shape[1:]))
    padded[: len(values)] = values.detach()
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return torch.cat([p[: int(s.item())] for p, s in zip(parts, sizes, strict=True)])


def all_sum(*values: float, device: torch.device | None = None) -> list[float]:
    """Each of ``values`` summed over the ranks (float64); the values themselves when alone."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return list(values)
    total = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(total)
    return total.tolist()


def barrier() -> None:
    """Wait for every rank (nothing when alone)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()
