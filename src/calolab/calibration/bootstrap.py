"""Poisson-bootstrap replicas of a run, as per-cell sums accumulated chunk by chunk.

A replica weighs every event by a Poisson(1) draw. The weights of a chunk come from
``np.random.default_rng([seed, run_key, chunk_index])``, so an event's weights depend on
its position in the run (its chunk of :data:`~calolab.calibration.passes.CHUNK_EVENTS` and
its place there), never on whether the run is in memory, a file or a sharded dataset;
``run_key`` (0 reference, 1 damaged) keeps the two independent runs' weights independent.
All replicas are accumulated in the same pass, as arrays (replicas, n_cells).

>>> from calolab.geometry import load_detector
>>> from calolab.simulation import Beam, simulate
>>> showers = simulate(load_detector("siw-ecal"), Beam("e-", energy=2e3), 30, seed=1)
>>> sums = ReplicaSums.of(showers, 0, replicas=4, seed=0, run_key=0)
>>> sums.log.hits.shape, sums.energy.shape, sums.weight.shape
((4, 15360), (4, 15360), (4,))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calolab.calibration.cellstats import LogStats
from calolab.showers import Showers


def poisson_weights(replicas: int, n_events: int, seed: int, run_key: int, chunk_index: int) -> np.ndarray:
    """Poisson(1) weights (replicas, n_events), float64, of the events of one chunk."""
    rng = np.random.default_rng([seed, run_key, chunk_index])
    return rng.poisson(1.0, (replicas, n_events)).astype(np.float64)


@dataclass(frozen=True)
class ReplicaSums:
    """Per replica: weighted :class:`LogStats` (replicas, n_cells), weighted energy sums and total weights.

    ``energy`` (replicas, n_cells) is the weighted sum of each cell's deposits in MeV (None
    when not asked for); ``weight`` (replicas,) the summed event weights, the replica's
    number of events.
    """

    log: LogStats
    energy: np.ndarray | None
    weight: np.ndarray

    @classmethod
    def of(cls, showers: Showers, chunk_index: int, replicas: int, seed: int, run_key: int,
           threshold: np.ndarray | float = 0.0, energy: bool = True) -> ReplicaSums:
        """The sums of one chunk; log-energies of hits above ``threshold`` (MeV, scalar or (n_cells,))."""
        w = poisson_weights(replicas, len(showers), seed, run_key, chunk_index)  # (replicas, N)
        sums = None
        if energy:
            event, n_cells = showers.event_index, showers.detector.n_cells
            sums = np.stack([np.bincount(showers.cell, showers.energy * w_r[event], n_cells) for w_r in w])
        return cls(LogStats.of(showers, threshold, w), sums, w.sum(axis=1))

    def __add__(self, other: ReplicaSums) -> ReplicaSums:
        energy = None if self.energy is None or other.energy is None else self.energy + other.energy
        return ReplicaSums(self.log + other.log, energy, self.weight + other.weight)
