"""Per-cell statistics of a run as raw sums, computed batch by batch and merged with ``+``.

Each statistic keeps counts and sums (not means), so the statistics of a run are the sum
of those of its batches: :func:`calolab.calibration.passes.over` adds them up over the
fixed chunks of a run, in memory or streamed from a file or a sharded dataset.

What is exact: unweighted counts (int64) under any split of the events. The sums are
float64 sums of per-batch ``np.bincount`` totals, so they depend on the order of
addition: the same chunks (an HDF5 file and its sharded copy, or the in-memory run cut at
the same events) give the same bits; another split of the events agrees to floating-point
rounding (relative 1e-12 and better for calorimeter runs).

>>> from calolab.geometry import load_detector
>>> from calolab.simulation import Beam, simulate
>>> showers = simulate(load_detector("siw-ecal"), Beam("e-", energy=2e3), 40, seed=1)
>>> whole, halves = CellStats.of(showers), CellStats.of(showers[:25]) + CellStats.of(showers[25:])
>>> bool((whole.hits == halves.hits).all()), bool(np.allclose(whole.mean, halves.mean, rtol=1e-12, atol=0))
(True, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calolab.showers import Showers


@dataclass(frozen=True)
class CellStats:
    """Per-cell energy sums over events (cells without a hit count as zero), flat arrays (n_cells,).

    ``n_events`` is the number of events; ``hits`` (int64) the events with a non-zero
    deposit; ``sum`` and ``sum2`` the float64 sums of the deposits (MeV) and of their squares
    (MeV^2). ``mean`` and ``var`` are per event, MeV and MeV^2.
    """

    n_events: int
    hits: np.ndarray
    sum: np.ndarray
    sum2: np.ndarray

    @classmethod
    def of(cls, showers: Showers) -> CellStats:
        """The sums of one batch of events."""
        n_cells = showers.detector.n_cells
        energy = showers.energy.astype(np.float64)
        return cls(len(showers), np.bincount(showers.cell, minlength=n_cells).astype(np.int64),
                   np.bincount(showers.cell, weights=energy, minlength=n_cells),
                   np.bincount(showers.cell, weights=energy**2, minlength=n_cells))

    def __add__(self, other: CellStats) -> CellStats:
        return CellStats(self.n_events + other.n_events, self.hits + other.hits, self.sum + other.sum,
                         self.sum2 + other.sum2)

    @property
    def mean(self) -> np.ndarray:
        """Mean deposit per event, MeV (n_cells,)."""
        return self.sum / self.n_events

    @property
    def var(self) -> np.ndarray:
        """Sample variance of the deposit per event, MeV^2 (n_cells,)."""
        n, mean = self.n_events, self.mean
        return np.maximum(self.sum2 / n - mean**2, 0.0) * n / max(n - 1, 1)

    @property
    def error_of_mean(self) -> np.ndarray:
        return np.sqrt(self.var / self.n_events)


def sorted_deposits(showers: Showers) -> tuple[np.ndarray, np.ndarray]:
    """Hit energies sorted by cell then decreasing energy, and the start of each cell's block (n_cells + 1,)."""
    order = np.lexsort((-showers.energy, showers.cell))
    counts = np.bincount(showers.cell, minlength=showers.detector.n_cells)
    return showers.energy[order].astype(np.float64), np.concatenate([[0], np.cumsum(counts)])


@dataclass(frozen=True)
class LogStats:
    """Per-cell sums of the logarithm of hit energies (ln MeV), arrays (n_cells,) or (replicas, n_cells).

    A multiplicative damage c shifts every log-energy by ln c; the log has none of the heavy
    tail that rare dense sub-showers give the energy itself, so its mean is a far more
    precise per-cell scale estimator than the mean energy. ``hits`` is the (weighted) count
    of hits used, ``sum`` and ``sum2`` the weighted sums of ln E and (ln E)^2; ``mean`` and
    ``var`` are over hits. With event weights of shape (replicas, N), every array has a
    leading replica axis.
    """

    hits: np.ndarray
    sum: np.ndarray
    sum2: np.ndarray

    @classmethod
    def of(cls, showers: Showers, threshold: np.ndarray | float = 0.0,
           event_weights: np.ndarray | None = None) -> LogStats:
        """Sums over the hits above ``threshold`` (MeV; scalar or per cell (n_cells,)) of one batch.

        ``event_weights`` (N,) or (replicas, N) weigh each event's hits (a bootstrap replica
        draws them from Poisson(1)); ``hits`` is then the weighted count (float64), else int64.
        """
        n_cells = showers.detector.n_cells
        cut = np.broadcast_to(np.asarray(threshold, np.float64), (n_cells,))
        keep = showers.energy > cut[showers.cell]
        cell, log_e = showers.cell[keep], np.log(showers.energy[keep].astype(np.float64))
        if event_weights is None:
            return cls(np.bincount(cell, minlength=n_cells).astype(np.int64),
                       np.bincount(cell, weights=log_e, minlength=n_cells),
                       np.bincount(cell, weights=log_e**2, minlength=n_cells))
        weights = np.asarray(event_weights, np.float64)
        event = showers.event_index[keep]
        sums = np.zeros((3, *weights.shape[:-1], n_cells))
        for index in np.ndindex(weights.shape[:-1]):  # one replica at a time: hits x 8 B each
            w = weights[index][event]
            sums[(slice(None), *index)] = [np.bincount(cell, w, n_cells), np.bincount(cell, w * log_e, n_cells),
                                           np.bincount(cell, w * log_e**2, n_cells)]
        return cls(*sums)

    def __add__(self, other: LogStats) -> LogStats:
        return LogStats(self.hits + other.hits, self.sum + other.sum, self.sum2 + other.sum2)

    @property
    def mean(self) -> np.ndarray:
        """Mean ln E over the hits (NaN where none)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.sum / self.hits

    @property
    def var(self) -> np.ndarray:
        """Sample variance of ln E over the hits (0 where fewer than two, NaN where none)."""
        mean = self.mean
        with np.errstate(divide="ignore", invalid="ignore"):
            var = self.sum2 / self.hits - mean**2
        return np.maximum(var, 0.0) * self.hits / np.maximum(self.hits - 1, 1)
