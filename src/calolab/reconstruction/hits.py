"""Sparse hits with neighbour look-ups, and per-event reductions, for the feature builders.

Every hit gets the key ``event * n_cells + cell``; keys are sorted, so the hit in a
neighbouring cell (same event) is found by binary search, without a dense array and
without a loop over events. All look-ups are vectorised over every hit of a batch.

>>> import numpy as np
>>> from calolab.geometry import Detector
>>> from calolab.showers import Showers
>>> det = Detector.from_dict({"name": "toy", "cells": {"nx": 3, "ny": 3, "pitch": 10.0},
...     "layers": [{"active": "PbWO4", "active_thickness": 10, "repeat": 2}]})
>>> dense = np.zeros((1, 2, 3, 3), np.float32); dense[0, 0, 1, 1] = 4.0; dense[0, 0, 1, 2] = 1.0
>>> grid = HitGrid(Showers.from_dense(det, dense, particle=13, incident_energy=[1e3]))
>>> grid.box_sum(grid.energy, layers=0, cells=1).tolist()  # 3x3 in-layer sums around each hit
[5.0, 5.0]
>>> grid.neighbour(0, 0, 1).tolist()  # the hit one cell up in y, -1 where there is none
[1, -1]
"""

from __future__ import annotations

import numpy as np

from calolab.showers import Showers

DENSE_BOX_RATIO = 0.15  # box sums go dense once hits x box cells exceeds 0.15 x events x cells (measured crossover)
DENSE_BOX_CELLS = 1 << 22  # cells per dense chunk (32 MB of float64)
LOOKUP_CELLS = 1 << 22  # cells of the hit-index table of box_sums (16 MB of int32; larger tables miss the cache)
CHUNK_HITS = 1 << 24  # the feature builders take larger batches in event ranges of at most this many hits


def event_chunks(offsets: np.ndarray, max_hits: int) -> list[slice]:
    """Consecutive event ranges of at most ``max_hits`` hits each (an event with more is a range of its own).

    ``offsets`` (n + 1,) delimit the events' hits, as in :class:`~calolab.showers.Showers`.

    >>> event_chunks(np.array([0, 3, 5, 12, 13]), 5)
    [slice(0, 2, None), slice(2, 3, None), slice(3, 4, None)]
    """
    offsets = np.asarray(offsets, np.int64)
    n, bounds = len(offsets) - 1, [0]
    while bounds[-1] < n:
        start = bounds[-1]
        stop = int(np.searchsorted(offsets, offsets[start] + max_hits, side="right")) - 1
        bounds.append(min(max(stop, start + 1), n))
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def in_event_chunks(build, showers: Showers, *args, **kwargs) -> tuple[np.ndarray, list[str]] | None:
    """``build(showers, ...)`` over event ranges of at most :data:`CHUNK_HITS` hits, stacked; ``None`` if one range.

    A per-event feature builder calls this first, so that its per-hit work arrays (a dozen
    or more per hit) stay bounded however large the batch: at most :data:`CHUNK_HITS` hits
    (or one larger event) are worked on at a time, whatever the number of events.
    """
    chunks = event_chunks(showers.offsets, CHUNK_HITS)
    if len(chunks) < 2:
        return None
    parts = [build(showers[chunk], *args, **kwargs) for chunk in chunks]
    return np.concatenate([x for x, _ in parts]), parts[0][1]


class HitGrid:
    """The hits of a batch (optionally a subset), sorted by ``(event, cell)``.

    Parameters
    ----------
    showers
        The batch.
    mask : bool (n_hits,), optional
        Keep only these hits (e.g. those above a threshold).

    Attributes
    ----------
    n_events : int
    event, layer, ix, iy : int64 (n,)
        Event number and cell indices of each kept hit.
    energy : float64 (n,)
        Visible energy in MeV.
    key : int64 (n,)
        ``event * n_cells + cell``, strictly increasing.
    order : int64 (n,) or None
        Where the kept hits were sorted: hit ``i`` here is the kept hit ``order[i]`` of
        ``showers``; ``None`` if they were in order already.
    """

    def __init__(self, showers: Showers, mask: np.ndarray | None = None) -> None:
        det = showers.detector
        self.shape = det.shape
        self.n_cells = det.n_cells
        self.n_events = len(showers)
        event = showers.event_index
        cell = showers.cell.astype(np.int64)
        energy = showers.energy.astype(np.float64)
        if mask is not None:
            event, cell, energy = event[mask], cell[mask], energy[mask]
        key = event * self.n_cells + cell
        self.order = None
        if len(key) > 1 and not np.all(np.diff(key) > 0):
            self.order = order = np.argsort(key, kind="stable")
            event, cell, energy, key = event[order], cell[order], energy[order], key[order]
        _, nx, ny = self.shape
        self.event, self.energy, self.key = event, energy, key
        self.layer, rest = np.divmod(cell, nx * ny)
        self.ix, self.iy = np.divmod(rest, ny)

    def __len__(self) -> int:
        return len(self.key)

    def subset(self, mask: np.ndarray) -> HitGrid:
        """The hits where ``mask`` (bool (n,)), in the same order, as a new grid."""
        sub = object.__new__(HitGrid)
        sub.shape, sub.n_cells, sub.n_events, sub.order = self.shape, self.n_cells, self.n_events, None
        for name in ("event", "energy", "key", "layer", "ix", "iy"):
            setattr(sub, name, getattr(self, name)[mask])
        return sub

    def neighbour(self, d_layer: int, dx: int, dy: int) -> np.ndarray:
        """Index of the hit at ``(layer + d_layer, ix + dx, iy + dy)`` in the same event, or -1; int64 (n,)."""
        n_layers, nx, ny = self.shape
        layer, ix, iy = self.layer + d_layer, self.ix + dx, self.iy + dy
        inside = (layer >= 0) & (layer < n_layers) & (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
        target = self.event * self.n_cells + (layer * nx + ix) * ny + iy
        pos = np.minimum(np.searchsorted(self.key, target), max(len(self.key) - 1, 0))
        found = inside & (self.key[pos] == target) if len(self.key) else inside
        return np.where(found, pos, -1)

    def offsets(self, layers: int, cells: int) -> list[tuple[int, int, int]]:
        """All ``(d_layer, dx, dy)`` with ``|d_layer| <= layers`` and ``|dx|, |dy| <= cells``."""
        span_l, span_c = range(-layers, layers + 1), range(-cells, cells + 1)
        return [(dl, dx, dy) for dl in span_l for dx in span_c for dy in span_c]

    def box_sum(self, values: np.ndarray, layers: int = 0, cells: int = 1) -> np.ndarray:
        """Sum of ``values`` (n,) over the box of ``(2 layers + 1) x (2 cells + 1)^2`` cells around each hit.

        ``layers=0, cells=1`` is the 3x3 neighbourhood within the hit's layer; ``layers=1,
        cells=1`` the 3x3x3 cube. The hit itself is included. Returns float64 (n,).
        """
        return self.box_sums(np.asarray(values, np.float64), [(layers, cells)])[0]

    def box_sums(self, values: np.ndarray, boxes: list[tuple[int, int]]) -> np.ndarray:
        """Sums of ``values`` over several boxes ``(layers, cells)`` (as in :meth:`box_sum`) around each hit, in
        one pass over their cells.

        ``values`` is (n,) or (n, m) (m quantities per hit); returns (len(boxes), n) or
        (len(boxes), n, m), float32 for float32 values, else float64. The hits of a group of
        events are entered in a table of hit numbers indexed by cell (:data:`LOOKUP_CELLS`
        cells), on a grid padded by the largest box's reach, so that every neighbour of a hit
        is one array look-up with no bounds to test. Where the look-ups would outnumber a
        fraction :data:`DENSE_BOX_RATIO` of all cells (noise-flooded events), each box and
        quantity is summed on dense grids instead.
        """
        values = np.asarray(values)
        values = values.astype(np.result_type(values.dtype, np.float32), copy=False)
        reach_l, reach_c = max(b[0] for b in boxes), max(b[1] for b in boxes)
        total = np.zeros((len(boxes), *values.shape), values.dtype)
        n_layers, nx, ny = self.shape
        px, py = nx + 2 * reach_c, ny + 2 * reach_c
        shifts = []  # (look-up shift, boxes that hold the offset)
        for dl, dx, dy in self.offsets(reach_l, reach_c):
            within = [b for b, (bl, bc) in enumerate(boxes) if abs(dl) <= bl and max(abs(dx), abs(dy)) <= bc]
            if within:
                shifts.append(((dl * px + dx) * py + dy, within))
        if len(self) * len(shifts) > DENSE_BOX_RATIO * self.n_events * self.n_cells:  # most cells hold a hit
            columns = values.reshape(len(self), -1).astype(np.float64)
            for b, (bl, bc) in enumerate(boxes):
                for k in range(columns.shape[1]):
                    total[b].reshape(len(self), -1)[:, k] = self._dense_box_sum(columns[:, k], bl, bc)
            return total
        cells = (n_layers + 2 * reach_l) * px * py  # per event, padded
        per_group = max(1, LOOKUP_CELLS // cells)
        table = np.full(min(per_group, max(self.n_events, 1)) * cells, -1, np.int32)
        padded_cell = ((self.layer + reach_l) * px + self.ix + reach_c) * py + self.iy + reach_c
        bounds = np.searchsorted(self.event, np.arange(0, self.n_events + per_group, per_group))
        for g, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
            if hi == lo:
                continue
            key = (self.event[lo:hi] - g * per_group) * cells + padded_cell[lo:hi]
            table[key] = np.arange(hi - lo)
            group_values = np.concatenate([values[lo:hi], np.zeros((1, *values.shape[1:]), values.dtype)])  # -1: none
            for shift, within in shifts:
                found = group_values[table[key + shift]]
                for b in within:
                    total[b, lo:hi] += found
            table[key] = -1
        return total

    def _dense_box_sum(self, values: np.ndarray, layers: int, cells: int) -> np.ndarray:
        """:meth:`box_sum` through dense per-chunk grids: cheaper than look-ups once most cells hold a hit."""
        chunk = max(1, DENSE_BOX_CELLS // self.n_cells)
        total = np.empty(len(self))
        bounds = np.searchsorted(self.event, np.arange(0, self.n_events + chunk, chunk))
        for k, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
            if hi == lo:
                continue
            local = self.key[lo:hi] - k * chunk * self.n_cells
            grid = np.zeros((min(chunk, self.n_events - k * chunk), *self.shape))
            grid.reshape(-1)[local] = values[lo:hi]
            for axis, reach in ((1, layers), (2, cells), (3, cells)):
                grid = _box_along(grid, axis, reach)
            total[lo:hi] = grid.reshape(-1)[local]
        return total

    def event_sum(self, values: np.ndarray) -> np.ndarray:
        """Per-event sum of ``values`` (n,), float64 (n_events,)."""
        return np.bincount(self.event, weights=values, minlength=self.n_events)

    def event_count(self, mask: np.ndarray | None = None) -> np.ndarray:
        """Per-event number of hits (where ``mask``), int64 (n_events,)."""
        event = self.event if mask is None else self.event[mask]
        return np.bincount(event, minlength=self.n_events)

    def event_max(self, values: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Per-event maximum of ``values`` (where ``mask``); 0 for events without hits; float64 (n_events,)."""
        return event_max(values if mask is None else values[mask], self.event if mask is None else self.event[mask],
                         self.n_events)


def _box_along(a: np.ndarray, axis: int, reach: int) -> np.ndarray:
    """Sum of ``a`` over ``[i - reach, i + reach]`` along ``axis`` (zero outside), same shape."""
    out = a.copy()
    for d in range(1, reach + 1):
        head = [slice(None)] * a.ndim
        tail = [slice(None)] * a.ndim
        head[axis], tail[axis] = slice(d, None), slice(None, -d)
        out[tuple(head)] += a[tuple(tail)]
        out[tuple(tail)] += a[tuple(head)]
    return out


def event_max(values: np.ndarray, event: np.ndarray, n_events: int) -> np.ndarray:
    """Maximum of ``values`` per event (``event`` non-decreasing); 0 where an event has none; float64 (n_events,)."""
    out = np.zeros(n_events)
    if len(values) == 0:
        return out
    counts = np.bincount(event, minlength=n_events)
    present = counts > 0
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])[present]
    out[present] = np.maximum.reduceat(np.asarray(values, np.float64), starts)
    return out
