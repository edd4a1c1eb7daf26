"""Batches for the energy CNN, built from sparse hits one batch at a time.

Events stream from a :data:`~calolab.ml.sources.Source` (an HDF5 file one chunk at a time,
or an in-memory :class:`~calolab.showers.Showers`: :mod:`calolab.ml.sources`). Each hit is
converted on the sparse arrays:

* energy in MIPs, ``E / mip_mpv[layer]`` (visible energy over the most probable MIP signal
  of its layer), the unit of the network input (:class:`~calolab.ml.model.EnergyCNN`
  applies ``log1p(E / scale)`` or ``E / scale`` itself);
* pooled cell ``((layer // pl) * QX + x // px) * QY + y // py`` on the grid
  ``(Z, QX, QY) = ceil((layers, nx, ny) / (pl, px, py))`` (a last, partial block along an
  axis holds the leftover cells).

The hits of an event that fall into one pooled cell are then merged into one (their MIPs
summed in float64), unless the batch must carry its hits (below). Only then is a batch
densified, by a scatter-add into a torch tensor ``(B, 1, Z, QX, QY)``: the dataset is never
dense as a whole. The converted events of the first pass are kept for the next ones
(training makes one pass per epoch) while they take at most ``cache_gib`` GiB (2 by
default); a converted event takes 32 bytes, 4 more per feature, and 12 per merged hit (32
per hit when the batch carries its hits). A larger source is converted again on every pass,
one chunk at a time. For a model with learned hit classes
(:class:`~calolab.ml.model.EnergyCNN`, ``hit_classes > 0``) the batch also carries its hits
themselves, at the native cell size: each hit's energy, its voxel, and what surrounds it
(:class:`~calolab.ml.hits.HitBatch`, :func:`~calolab.ml.hits.hit_inputs`). Per event the
batch carries the sampling-weighted energy sum
(:func:`~calolab.ml.sources.weighted_sums_gev`, in GeV), the caller's high-level features
(raw: the model standardises them), the target (incident energy in GeV) and the event's
number in the source.

Shuffling is seeded: chunks are read in file order and collected in a buffer of
``shuffle_buffer`` events, which is permuted and emitted in full batches (the leftover
stays for the next chunk). With a buffer as large as the data this is a full shuffle.

>>> import numpy as np
>>> from calolab.geometry import load_detector
>>> det = load_detector("cusi")
>>> rng = np.random.default_rng(0)
>>> dense = np.zeros((3, *det.shape), np.float32); dense[:, 10, 20:30, 25] = rng.random((3, 10))
>>> s = Showers.from_dense(det, dense, particle=211, incident_energy=[1e4, 2e4, 5e4])
>>> batch = next(iter(ShowerBatches(s, batch_size=4, pool=(3, 5, 5))))
>>> tuple(batch.x.shape), batch.target.tolist(), batch.index.tolist()
((3, 1, 25, 10, 10), [10.0, 20.0, 50.0], [0, 1, 2])
>>> batch.hits is None  # hits travel only when asked for (hit_inputs=True)
True
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from calolab.errors import CalolabError
from calolab.geometry import Detector
from calolab.ml.hits import HIT_INPUTS, HitBatch, hit_inputs  # noqa: F401  (HIT_INPUTS: re-exported)
from calolab.ml.sources import (  # noqa: F401  (EventTable, scan: re-exported)
    EventTable,
    Source,
    scan,
    source_chunks,
    source_detector,
    weighted_sums_gev,
)
from calolab.showers import Showers


def pooled_shape(shape: tuple[int, int, int], pool: tuple[int, int, int]) -> tuple[int, int, int]:
    """Grid ``ceil(shape / pool)`` after summing blocks of ``pool`` cells along (layer, x, y)."""
    return tuple(-(-n // p) for n, p in zip(shape, pool, strict=True))


def pool_cells(cell: np.ndarray, shape: tuple[int, int, int], pool: tuple[int, int, int]) -> np.ndarray:
    """Flat pooled cell index (int64, like ``cell``) of flat cell indices ``(layer * nx + x) * ny + y``.

    >>> pool_cells(np.array([0, 1, 5, 25, 26]), (2, 5, 5), (1, 5, 5)).tolist()
    [0, 0, 0, 1, 1]
    """
    _, nx, ny = shape
    _, qx, qy = pooled_shape(shape, pool)
    layer, rest = np.divmod(np.asarray(cell, np.int64), nx * ny)
    ix, iy = np.divmod(rest, ny)
    return ((layer // pool[0]) * qx + ix // pool[1]) * qy + iy // pool[2]


def merge_pooled(offsets: np.ndarray, cell: np.ndarray, mips: np.ndarray,
                 n_cells: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One hit per occupied pooled cell of each event: ``(offsets, cell, mips)`` with the MIPs summed.

    ``offsets`` (n + 1,) delimit the events' hits; ``cell`` are pooled flat indices below
    ``n_cells``. Within an event the merged hits come in increasing ``cell``; the sums are
    taken in float64 and stored as float32.

    >>> o, c, m = merge_pooled(np.array([0, 3, 4]), np.array([5, 2, 5, 2]), np.array([1.0, 2.0, 0.5, 4.0]), 8)
    >>> o.tolist(), c.tolist(), m.tolist()
    ([0, 2, 3], [2, 5, 2], [2.0, 1.5, 4.0])
    """
    event = np.repeat(np.arange(len(offsets) - 1, dtype=np.int64), np.diff(offsets))
    key, inverse = np.unique(event * n_cells + cell, return_inverse=True)
    summed = np.bincount(inverse.reshape(-1), weights=mips, minlength=len(key)).astype(np.float32)
    counts = np.bincount(key // n_cells, minlength=len(offsets) - 1)
    return np.concatenate([[0], np.cumsum(counts)]), key % n_cells, summed


@dataclass
class Batch:
    """One batch of ``B`` events for :class:`~calolab.ml.model.EnergyCNN`."""

    x: torch.Tensor  # (B, 1, Z, X, Y) float32: energy per pooled cell, MIPs
    esum: torch.Tensor  # (B,) float32: sampling-weighted energy sum, GeV
    features: torch.Tensor | None  # (B, F) float32, raw
    target: torch.Tensor  # (B,) float32: incident energy, GeV
    index: np.ndarray  # (B,) int64: event number in the source
    hits: HitBatch | None = None  # the hits themselves, for learned hit classes (ShowerBatches(hit_inputs=True))

    def __len__(self) -> int:
        return len(self.index)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """The batch with its tensors on ``device`` (``index`` stays a numpy array)."""
        def move(t):
            return None if t is None else t.to(device, non_blocking=non_blocking)

        hits = self.hits
        if hits is not None:
            hits = HitBatch(move(hits.occupied), move(hits.slot), move(hits.mips), move(hits.inputs))
        return Batch(move(self.x), move(self.esum), move(self.features), move(self.target), self.index, hits)

    def pin_memory(self) -> Batch:
        """The batch in pinned (page-locked) memory, for fast copies to CUDA (``DataLoader(pin_memory=True)``)."""
        def pin(t):
            return None if t is None else t.pin_memory()

        hits = self.hits
        if hits is not None:
            hits = HitBatch(pin(hits.occupied), pin(hits.slot), pin(hits.mips), pin(hits.inputs))
        return Batch(pin(self.x), pin(self.esum), pin(self.features), pin(self.target), self.index, hits)


@dataclass
class _Events:
    """Events as pooled sparse hits (the shuffle buffer)."""

    offsets: np.ndarray  # (n + 1,) int64
    cell: np.ndarray  # (hits,) int64, pooled flat index
    mips: np.ndarray  # (hits,) float32
    index: np.ndarray  # (n,) int64
    target: np.ndarray  # (n,) float64, GeV
    esum: np.ndarray  # (n,) float64, GeV
    features: np.ndarray | None  # (n, F) float32
    inputs: np.ndarray | None = None  # (hits, len(HIT_INPUTS)) float32

    def __len__(self) -> int:
        return len(self.index)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.offsets, self.cell, self.mips, self.index, self.target, self.esum,
                                      self.features, self.inputs) if a is not None)

    def take(self, idx: np.ndarray) -> _Events:
        counts = np.diff(self.offsets)[idx]
        hit = np.repeat(self.offsets[idx] - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
        return _Events(np.concatenate([[0], np.cumsum(counts)]), self.cell[hit], self.mips[hit], self.index[idx],
                       self.target[idx], self.esum[idx], None if self.features is None else self.features[idx],
                       None if self.inputs is None else self.inputs[hit])

    @staticmethod
    def concat(a: _Events, b: _Events) -> _Events:
        def join(x, y):
            return None if x is None else np.concatenate([x, y])

        return _Events(np.concatenate([a.offsets, b.offsets[1:] + a.offsets[-1]]), np.concatenate([a.cell, b.cell]),
                       np.concatenate([a.mips, b.mips]), np.concatenate([a.index, b.index]),
                       np.concatenate([a.target, b.target]), np.concatenate([a.esum, b.esum]),
                       join(a.features, b.features), join(a.inputs, b.inputs))


class ShowerBatches(IterableDataset):
    """Batches (:class:`Batch`) of events of ``source``, densified one batch at a time.

    Parameters
    ----------
    source
        A :class:`~calolab.showers.Showers` or a calolab/CaloChallenge HDF5 file.
    batch_size
        Events per batch; all batches are full except the last one.
    pool
        Cells summed into one voxel along (layer, x, y).
    features
        Per-event feature vectors of all events of ``source``, (N, F), or ``None``.
    select
        Boolean mask (N,) of the events to use (a train or validation split), or ``None``.
    shuffle, seed, shuffle_buffer
        Shuffle within a buffer of this many events, seeded by ``seed`` and the epoch.
    chunk_events
        Events read from a file at a time.
    detector
        For CaloChallenge files that carry no geometry.
    hit_inputs
        Also carry each batch's hits at the native cell size (:class:`HitBatch`), for a
        model with learned hit classes (the hits of a pooled cell are then not merged).
    cache_gib
        Keep the converted events of the first pass for the next ones while they take at
        most this many GiB (0: convert on every pass, e.g. for a single pass).

    Iterate it directly, or through :func:`loader` (a ``DataLoader`` whose worker processes
    densify the batches, each worker every ``num_workers``-th batch, in the same order).
    """

    def __init__(self, source: Source, batch_size: int = 64, pool: tuple[int, int, int] = (1, 1, 1),
                 features: np.ndarray | None = None, select: np.ndarray | None = None, shuffle: bool = False,
                 seed: int = 0, shuffle_buffer: int = 16384, chunk_events: int = 4096,
                 detector: Detector | str | None = None, hit_inputs: bool = False, cache_gib: float = 2.0):
        super().__init__()
        if batch_size < 1 or shuffle_buffer < 1 or chunk_events < 1:
            raise CalolabError("batch_size, shuffle_buffer and chunk_events must be >= 1")
        self.source, self.batch_size, self.pool = source, int(batch_size), tuple(int(p) for p in pool)
        self.features = None if features is None else np.asarray(features, np.float32)
        self.select = None if select is None else np.asarray(select, bool)
        self.shuffle, self.seed, self.shuffle_buffer = shuffle, int(seed), int(shuffle_buffer)
        self.chunk_events, self.detector = int(chunk_events), detector
        self.hit_inputs = bool(hit_inputs)
        if not cache_gib >= 0:
            raise CalolabError(f"cache_gib must be >= 0, got {cache_gib}")
        self.cache_bytes = int(cache_gib * 2**30)
        self.epoch = 0
        self.shard = (0, 1)  # (rank, world): see set_shard
        self._converted: list[_Events] | None = None

    def set_epoch(self, epoch: int) -> None:
        """Seed the next pass's shuffle with ``(seed, epoch)``."""
        self.epoch = int(epoch)

    def n_batches(self, n_events: int) -> int:
        """Batches per pass when ``n_events`` events are selected."""
        return math.ceil(n_events / self.batch_size)

    def set_shard(self, rank: int, world: int) -> None:
        """Yield only rank ``rank``'s contiguous share of each batch of ``world`` ranks (distributed training)."""
        if not 0 <= rank < world:
            raise CalolabError(f"rank must be in [0, {world}), got {rank}")
        self.shard = (int(rank), int(world))

    def convert(self) -> None:
        """Convert the source now (one pass) so that later passes, and worker processes forked from this one,
        start from the cache."""
        if self._converted is None:
            for _ in self._events():
                pass

    def __iter__(self) -> Iterator[Batch]:
        for events in self._batch_events():
            yield self._batch(events)

    def _batch_events(self) -> Iterator[_Events]:
        """The events of each batch (this rank's share), skipping the batches of the other DataLoader workers."""
        worker = get_worker_info()
        mine, every = (0, 1) if worker is None else (worker.id, worker.num_workers)
        rank, world = self.shard
        for i, (buffer, idx) in enumerate(self._orders()):
            if i % every == mine:
                yield buffer.take(idx if world == 1 else np.array_split(idx, world)[rank])

    def _orders(self) -> Iterator[tuple[_Events, np.ndarray]]:
        """Each batch as the shuffle buffer and the batch's places in it."""
        rng = np.random.default_rng([self.seed, self.epoch])
        buffer: _Events | None = None
        for events in self._events():
            buffer = events if buffer is None else _Events.concat(buffer, events)
            if not self.shuffle or len(buffer) >= self.shuffle_buffer:
                order = rng.permutation(len(buffer)) if self.shuffle else np.arange(len(buffer))
                full = len(buffer) // self.batch_size * self.batch_size
                for start in range(0, full, self.batch_size):
                    yield buffer, order[start : start + self.batch_size]
                buffer = buffer.take(order[full:])
        if buffer is not None and len(buffer):
            order = rng.permutation(len(buffer)) if self.shuffle else np.arange(len(buffer))
            for start in range(0, len(buffer), self.batch_size):
                yield buffer, order[start : start + self.batch_size]

    def _events(self) -> Iterator[_Events]:
        if self._converted is not None:
            yield from self._converted
            return
        keep: list[_Events] | None = [] if self.cache_bytes > 0 else None
        size = 0
        for events in self._convert_source():
            if keep is not None:
                size += events.nbytes
                if size <= self.cache_bytes:
                    keep.append(events)
                else:
                    keep = None
            yield events
        self._converted = keep

    def _convert_source(self) -> Iterator[_Events]:
        start = 0
        for chunk in source_chunks(self.source, self.chunk_events, self.detector):
            stop = start + len(chunk)
            if self.select is not None and stop > len(self.select):
                raise CalolabError(f"select has {len(self.select)} entries but the source has more events")
            if self.features is not None and stop > len(self.features):
                raise CalolabError(f"features has {len(self.features)} rows but the source has more events")
            keep = np.arange(len(chunk)) if self.select is None else np.flatnonzero(self.select[start:stop])
            if len(keep):
                yield self._convert(chunk[keep] if len(keep) < len(chunk) else chunk, start + keep)
            start = stop

    def _convert(self, showers: Showers, index: np.ndarray) -> _Events:
        det = showers.detector
        layer = showers.cell // (det.shape[1] * det.shape[2])
        mips = (showers.energy / det.mip_mpv[layer]).astype(np.float32)
        features = None if self.features is None else self.features[index]
        offsets, cell = showers.offsets, pool_cells(showers.cell, det.shape, self.pool)
        if not self.hit_inputs:
            offsets, cell, mips = merge_pooled(offsets, cell, mips, int(np.prod(pooled_shape(det.shape, self.pool))))
        return _Events(offsets, cell, mips, index.astype(np.int64), showers.incident_energy / 1e3,
                       weighted_sums_gev(showers), features, hit_inputs(showers) if self.hit_inputs else None)

    def _batch(self, events: _Events) -> Batch:
        grid = self._grid()
        n_cells = int(np.prod(grid))
        local = np.repeat(np.arange(len(events), dtype=np.int64), np.diff(events.offsets))
        x = torch.zeros(len(events) * n_cells)
        x.index_add_(0, torch.from_numpy(local * n_cells + events.cell), torch.from_numpy(events.mips))
        feats = None if events.features is None else torch.from_numpy(events.features)
        hits = None
        if events.inputs is not None:
            occupied, slot = np.unique(local * n_cells + events.cell, return_inverse=True)
            hits = HitBatch(torch.from_numpy(occupied), torch.from_numpy(slot.reshape(-1)),
                            torch.from_numpy(events.mips), torch.from_numpy(events.inputs))
        return Batch(x.view(len(events), 1, *grid), torch.from_numpy(events.esum.astype(np.float32)), feats,
                     torch.from_numpy(events.target.astype(np.float32)), events.index, hits)

    def _grid(self) -> tuple[int, int, int]:
        if not hasattr(self, "_grid_shape"):
            det = self.source.detector if isinstance(self.source, Showers) else source_detector(self.source,
                                                                                                 self.detector)
            self._grid_shape = pooled_shape(det.shape, self.pool)
        return self._grid_shape


def loader(batches: ShowerBatches, workers: int = 0, pin_memory: bool = False) -> ShowerBatches | DataLoader:
    """``batches`` themselves (``workers == 0``), or a ``DataLoader`` whose ``workers`` processes densify them.

    The batches come in the same order either way. The source is converted here first, so
    that each worker forked from this process starts from the cache (when it fits) instead of
    converting the source itself. ``pin_memory`` (for CUDA) pins each batch in the loader.
    Iterating the loader leaves torch's global random generator alone.
    """
    if workers < 0:
        raise CalolabError(f"loader workers must be >= 0, got {workers}")
    if workers == 0:
        return batches
    batches.convert()
    # a generator of its own: the loader seeds its workers from it, not from torch's global one (dropout's)
    return DataLoader(batches, batch_size=None, num_workers=workers, pin_memory=pin_memory,
                      generator=torch.Generator().manual_seed(0))
