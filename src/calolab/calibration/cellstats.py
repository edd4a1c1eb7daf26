"""Per-cell statistics of a run, computed from the sparse hits in one pass."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calolab.showers import Showers


@dataclass(frozen=True)
class CellStats:
    """Per-cell moments over all events (cells without a hit count as zero), flat arrays (n_cells,).

    ``n_events`` is the number of events; ``hits`` the events with a non-zero deposit.
    """

    n_events: int
    hits: np.ndarray
    mean: np.ndarray
    var: np.ndarray

    @classmethod
    def of(cls, showers: Showers) -> CellStats:
        n_cells, n = showers.detector.n_cells, len(showers)
        energy = showers.energy.astype(np.float64)
        hits = np.bincount(showers.cell, minlength=n_cells)
        s1 = np.bincount(showers.cell, weights=energy, minlength=n_cells)
        s2 = np.bincount(showers.cell, weights=energy**2, minlength=n_cells)
        mean = s1 / n
        var = np.maximum(s2 / n - mean**2, 0.0) * n / max(n - 1, 1)
        return cls(n, hits, mean, var)

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
    """Per-cell statistics of the logarithm of hit energies (ln MeV), flat arrays (n_cells,).

    A multiplicative damage c shifts every log-energy by ln c; the log has none of the heavy
    tail that rare dense sub-showers give the energy itself, so its mean is a far more
    precise per-cell scale estimator than the mean energy.
    """

    hits: np.ndarray
    mean: np.ndarray
    var: np.ndarray

    @classmethod
    def of(cls, showers: Showers, threshold: np.ndarray | float = 0.0,
           event_weights: np.ndarray | None = None) -> LogStats:
        """Use hits above ``threshold`` (MeV; scalar or per cell (n_cells,)).

        ``event_weights`` (N,) weigh each event's hits (a bootstrap replica draws them from
        Poisson(1)); ``hits`` is then the weighted count.
        """
        n_cells = showers.detector.n_cells
        cut = np.broadcast_to(np.asarray(threshold, np.float64), (n_cells,))
        keep = showers.energy > cut[showers.cell]
        cell, log_e = showers.cell[keep], np.log(showers.energy[keep].astype(np.float64))
        w = None if event_weights is None else np.asarray(event_weights, np.float64)[showers.event_index[keep]]
        hits = np.bincount(cell, w, minlength=n_cells)
        weight = np.ones_like(log_e) if w is None else w
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = np.bincount(cell, weights=weight * log_e, minlength=n_cells) / hits
            var = np.bincount(cell, weights=weight * log_e**2, minlength=n_cells) / hits - mean**2
        if w is None:
            hits = hits.astype(np.int64)
        return cls(hits, mean, np.maximum(var, 0.0) * hits / np.maximum(hits - 1, 1))
