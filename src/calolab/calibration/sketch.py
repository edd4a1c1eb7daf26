"""Mergeable per-cell quantile sketches: log-spaced histograms of the hit energies of each cell.

A :class:`QuantileSketch` counts the hits of each cell in fixed log-spaced energy bins
(:class:`Binning`, set from the detector's MIP scale: by default 1e-3 to 1e3 MIP in 64 bins
per decade). Its counts are integers, so the sketch of a run is the exact sum of the
sketches of any split of its events: merged sketches equal the one-pass sketch bit for
bit, whatever the chunks or shards. Quantiles come from the cumulative counts, linear in
log-energy inside a bin (:class:`Spectrum`).

Resolution: a bin spans a factor ``10 ** (1 / per_decade)`` in energy, a relative width of
``10 ** (1 / per_decade) - 1`` (3.7 % for 64 bins per decade); inside a bin hits are taken
as spread uniformly in log-energy, so a quantile is exact at bin edges and off by at most
one bin width in between. Hits below the lowest edge count in the first bin, hits above
the highest in the last; hits of 0 MeV are not counted.

Storage is sparse: the sorted flat keys ``cell * n_bins + bin`` of the non-empty bins and
their int64 counts, so a sketch holds at most one entry per hit and never more than the
non-empty (cell, bin) pairs. A dense (cells, bins) int32 array would be
187,500 x 384 x 4 B = 288 MB per run for cusi, most of it zeros (a cell's hits fill a few
dozen bins), before a second copy for each chunk being merged.

>>> from calolab.geometry import load_detector
>>> from calolab.simulation import Beam, simulate
>>> showers = simulate(load_detector("siw-ecal"), Beam("e-", energy=2e3), 40, seed=1)
>>> binning = Binning.of(showers.detector)
>>> whole = QuantileSketch.of(showers, binning)
>>> halves = QuantileSketch.of(showers[:15], binning) + QuantileSketch.of(showers[15:], binning)
>>> whole == halves, int(whole.hits.sum()) == int((showers.energy > 0).sum())
(True, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np

from calolab.calibration.cellstats import CellStats
from calolab.calibration.passes import Source, open_runs, over
from calolab.errors import CalolabError
from calolab.geometry import Detector
from calolab.showers import Showers


@dataclass(frozen=True)
class Binning:
    """Log-spaced energy bins: ``n_bins`` bins of ``1 / per_decade`` decade from ``low`` MeV upwards."""

    low: float
    per_decade: int
    n_bins: int

    @classmethod
    def of(cls, detector: Detector, decades_below: float = 3.0, decades_above: float = 3.0,
           per_decade: int = 64) -> Binning:
        """Bins from ``10 ** -decades_below`` of the smallest layer MIP MPV (MeV) to ``10 ** decades_above`` of the
        largest."""
        mip = np.asarray(detector.mip_mpv, float)
        low, high = float(mip.min()) * 10.0**-decades_below, float(mip.max()) * 10.0**decades_above
        return cls(low, per_decade, int(np.ceil(np.log10(high / low) * per_decade)))

    @property
    def relative_width(self) -> float:
        """Relative width of a bin, ``10 ** (1 / per_decade) - 1``."""
        return float(10.0 ** (1.0 / self.per_decade) - 1.0)

    def index(self, energy: np.ndarray) -> np.ndarray:
        """Bin of each energy (MeV, > 0), clipped to the first and last bin."""
        position = np.floor(np.log10(np.asarray(energy, np.float64) / self.low) * self.per_decade)
        return np.clip(position, 0, self.n_bins - 1).astype(np.int64)

    def log_edge(self, bins: np.ndarray) -> np.ndarray:
        """Natural log of the lower edge (ln MeV) of each bin (``bins + 1``: the upper edge)."""
        return np.log(self.low) + np.asarray(bins, np.float64) * (np.log(10.0) / self.per_decade)


@dataclass(frozen=True, eq=False)
class QuantileSketch:
    """Per-cell log-energy histograms of one run or batch, stored sparse.

    ``keys`` (int64, sorted, unique) are ``cell * binning.n_bins + bin`` of the non-empty
    bins and ``counts`` (int64) their hits; ``n_cells`` the detector's cells and
    ``n_events`` the events counted.
    """

    binning: Binning
    n_cells: int
    n_events: int
    keys: np.ndarray
    counts: np.ndarray

    @classmethod
    def of(cls, showers: Showers, binning: Binning) -> QuantileSketch:
        """The sketch of one batch of events (hits of 0 MeV are not counted)."""
        keep = showers.energy > 0
        keys = showers.cell[keep].astype(np.int64) * binning.n_bins + binning.index(showers.energy[keep])
        unique, counts = np.unique(keys, return_counts=True)
        return cls(binning, showers.detector.n_cells, len(showers), unique, counts.astype(np.int64))

    def __add__(self, other: QuantileSketch) -> QuantileSketch:
        if self.binning != other.binning or self.n_cells != other.n_cells:
            raise CalolabError(f"quantile sketches of {self.n_cells} and {other.n_cells} cells, binnings "
                               f"{self.binning} and {other.binning}: only sketches of the same binning merge")
        keys = np.concatenate([self.keys, other.keys])
        order = np.argsort(keys, kind="stable")
        keys, counts = keys[order], np.concatenate([self.counts, other.counts])[order]
        first = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]])) if len(keys) else np.zeros(0, int)
        keys, counts = keys[first], np.add.reduceat(counts, first) if len(first) else counts
        return QuantileSketch(self.binning, self.n_cells, self.n_events + other.n_events, keys, counts)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, QuantileSketch):
            return NotImplemented
        return (self.binning == other.binning and self.n_cells == other.n_cells and self.n_events == other.n_events
                and np.array_equal(self.keys, other.keys) and np.array_equal(self.counts, other.counts))

    @property
    def hits(self) -> np.ndarray:
        """Hits counted per cell, int64 (n_cells,)."""
        return np.bincount(self.keys // self.binning.n_bins, weights=self.counts,
                           minlength=self.n_cells).astype(np.int64)

    @property
    def starts(self) -> np.ndarray:
        """Where each cell's bins begin in ``keys`` (n_cells + 1,)."""
        return np.searchsorted(self.keys, np.arange(self.n_cells + 1, dtype=np.int64) * self.binning.n_bins)

    def spectrum(self, cell: int, starts: np.ndarray | None = None) -> Spectrum:
        """The hit spectrum of one cell (``starts``: :attr:`starts`, passed to save recomputing it)."""
        starts = self.starts if starts is None else starts
        part = slice(starts[cell], starts[cell + 1])
        return Spectrum.of(self.binning, self.keys[part] % self.binning.n_bins, self.counts[part])


@dataclass(frozen=True)
class Spectrum:
    """One cell's histogram as a piecewise log-linear cumulative distribution.

    ``log_energy`` (ln MeV) and ``below`` (hits below that energy) are the knots, both
    non-decreasing: two per non-empty bin, at its lower and upper edge; ``center`` (MeV) and
    ``count`` are the geometric bin centres and counts of the non-empty bins.

    >>> s = Spectrum.of(Binning(1.0, 10, 30), np.array([0, 10]), np.array([3, 1]))
    >>> s.n, round(float(s.from_top(1.0)), 6), s.above(1.0)
    (4, 10.0, 4.0)
    """

    log_energy: np.ndarray
    below: np.ndarray
    center: np.ndarray
    count: np.ndarray

    @classmethod
    def of(cls, binning: Binning, bins: np.ndarray, counts: np.ndarray) -> Spectrum:
        lo, hi = binning.log_edge(bins), binning.log_edge(bins + 1)
        cumulative = np.cumsum(counts).astype(np.float64)
        log_energy = np.column_stack([lo, hi]).ravel()
        below = np.column_stack([cumulative - counts, cumulative]).ravel()
        return cls(log_energy, below, np.exp(0.5 * (lo + hi)), np.asarray(counts, np.float64))

    @property
    def n(self) -> int:
        """Hits in the spectrum."""
        return int(self.below[-1]) if len(self.below) else 0

    def from_bottom(self, rank: np.ndarray | float) -> np.ndarray:
        """Energy (MeV) below which ``rank`` hits lie (a continuous rank, 0 to :attr:`n`)."""
        return np.exp(np.interp(rank, self.below, self.log_energy))

    def from_top(self, rank: np.ndarray | float) -> np.ndarray:
        """Energy (MeV) above which ``rank`` hits lie."""
        return self.from_bottom(self.n - np.asarray(rank, np.float64))

    def above(self, energy: float) -> float:
        """Hits above ``energy`` MeV (fractional inside a bin)."""
        if energy <= 0 or not len(self.below):
            return float(self.n)
        return float(self.n - np.interp(np.log(energy), self.log_energy, self.below))

    def moments(self, low: float = 0.0, high: float = np.inf) -> tuple[float, float, float]:
        """Count, mean and standard deviation (MeV) of the bin centres between ``low`` and ``high`` MeV.

        A bin counts whole when its centre is inside; ``(0, nan, nan)`` when none is.
        """
        inside = (self.center > low) & (self.center <= high)
        w, x = self.count[inside], self.center[inside]
        total = float(w.sum())
        if total == 0:
            return 0.0, float("nan"), float("nan")
        mean = float(w @ x / total)
        return total, mean, float(np.sqrt(max(float(w @ (x - mean) ** 2) / total, 0.0)))


def sketch_runs(reference: Source, damaged: Source, binning: Binning | None = None
                ) -> tuple[QuantileSketch, QuantileSketch, tuple[CellStats, CellStats], tuple[int, ...]]:
    """Sketches and per-cell sums of both runs, each in one pass of :func:`~calolab.calibration.passes.over`.

    The runs are :class:`Showers` or paths (HDF5 files, sharded datasets) checked as
    :func:`~calolab.calibration.passes.open_runs` does; ``binning`` defaults to
    :meth:`Binning.of` the reference's detector. Returns the reference and damaged sketches,
    their :class:`~calolab.calibration.cellstats.CellStats` and the cell shape (layers, nx, ny).
    """
    runs = open_runs(reference, damaged)
    bins = Binning.of(runs[0].detector) if binning is None else binning
    sketches: list[QuantileSketch] = []
    sums: list[CellStats] = []
    for run in runs:
        sketch, stats = over(run, lambda chunk, _: QuantileSketch.of(chunk, bins), lambda chunk, _: CellStats.of(chunk))
        sketches.append(cast(QuantileSketch, sketch))
        sums.append(cast(CellStats, stats))
    return sketches[0], sketches[1], (sums[0], sums[1]), runs[0].detector.shape
