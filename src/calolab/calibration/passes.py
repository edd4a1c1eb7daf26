"""Runs a calibrator reads in passes: in memory or streamed from disk, in the same fixed chunks.

A run is a :class:`~calolab.showers.Showers` or a path: an HDF5 file (either layout) or a
sharded dataset (a directory written by :func:`calolab.io.write_sharded`). Either way the
calibrators see its events in chunks of exactly :data:`CHUNK_EVENTS` events (the last
shorter): slices of the in-memory run, or :func:`calolab.io.iter_showers` batches, which are
the same events for a file and for its sharded copy. Per-cell sums accumulated over the
chunks (:mod:`calolab.calibration.cellstats`) are therefore the same bits whichever way a
run is stored, and only one chunk of a streamed run is in memory at a time. The quantile
sketches of :mod:`calolab.calibration.sketch` are integer counts, the same bits under any split.

>>> from calolab.geometry import load_detector
>>> from calolab.simulation import Beam, simulate
>>> from calolab.calibration.cellstats import CellStats
>>> showers = simulate(load_detector("siw-ecal"), Beam("e-", energy=2e3), 30, seed=1)
>>> run = open_run(showers, "reference")
>>> [stats] = over(run, lambda chunk, index: CellStats.of(chunk))
>>> stats.n_events, int(stats.hits.sum()) == showers.n_hits
(30, True)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from calolab.calibration.base import check_energies, check_geometries
from calolab.errors import CalolabError
from calolab.geometry import Detector
from calolab.showers import Showers

CHUNK_EVENTS = 16384  # events per chunk of every pass; the sums depend on it only through rounding
# the methods that take paths: their statistics are per-cell sums (hierarchical, moments) or
# per-cell quantile sketches (quantile, mip; see calolab.calibration.sketch)
STREAMING = ("hierarchical", "moments", "quantile", "mip")

Source = Showers | str | os.PathLike
T = TypeVar("T")


@dataclass(frozen=True)
class Run:
    """One run of a calibration: its events (in memory or a path), role, detector and ``meta``."""

    source: Showers | Path
    name: str
    detector: Detector
    meta: dict[str, Any]

    @property
    def streamed(self) -> bool:
        return not isinstance(self.source, Showers)

    def chunks(self) -> Iterator[Showers]:
        """The events in chunks of :data:`CHUNK_EVENTS`; a streamed chunk is checked as it is read."""
        if isinstance(self.source, Showers):
            showers = self.source
            if len(showers) <= CHUNK_EVENTS:
                yield showers
                return
            for start in range(0, len(showers), CHUNK_EVENTS):
                yield showers[start : start + CHUNK_EVENTS]
            return
        from calolab.io import iter_showers
        from calolab.io.failures import require_non_negative

        start = 0
        for chunk in iter_showers(self.source, CHUNK_EVENTS):
            where = f"{self.source} (events {start}-{start + len(chunk) - 1})"
            require_non_negative(chunk, where, "per-cell calibration")
            check_energies(chunk, self.name, where)
            start += len(chunk)
            yield chunk


def open_run(source: Source, name: str) -> Run:
    """A :class:`Run` of ``source``; in memory it is checked whole, a path's first chunk is read for its detector."""
    if isinstance(source, Showers):
        check_energies(source, name)
        return Run(source, name, source.detector, dict(source.meta))
    path = Path(source)
    from calolab.io import is_streamable

    if not is_streamable(path):
        raise CalolabError(f"{path}: a streamed calibration reads HDF5 files (.h5, .hdf5) or sharded datasets")
    from calolab.io import iter_showers

    first = next(iter_showers(path, CHUNK_EVENTS), None)
    if first is None:
        raise CalolabError(f"{path}: the {name} data hold no events")
    return Run(path, name, first.detector, dict(first.meta))


def open_runs(reference: Source, damaged: Source) -> tuple[Run, Run]:
    """Both runs of a calibration, with check_pair's checks (the same cells, events, finite energies >= 0)."""
    runs = open_run(reference, "reference"), open_run(damaged, "damaged")
    check_geometries(runs[0].detector, runs[1].detector)
    return runs


def over(run: Run, *statistics: Callable[[Showers, int], T]) -> list[T]:
    """One pass over ``run``: each ``statistic(chunk, chunk_index)`` summed over the chunks with ``+``."""
    totals: list[Any] = [None] * len(statistics)
    for index, chunk in enumerate(run.chunks()):
        for k, statistic in enumerate(statistics):
            part = statistic(chunk, index)
            totals[k] = part if totals[k] is None else totals[k] + part
    return totals


def require_in_memory(method: str, *sources: Source) -> None:
    """Raise a one-line :class:`CalolabError` if a run of a method without streaming is a path."""
    for source in sources:
        if not isinstance(source, Showers):
            raise CalolabError(f"{source}: the {method} calibration needs its runs in memory (read_showers); "
                               f"the methods that stream files and sharded datasets are {', '.join(STREAMING)}")
