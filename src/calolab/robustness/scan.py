"""Score every regressor at every grid point on the same distorted test events.

The events are taken a chunk at a time; for each chunk the noise is drawn once (shared
draws) and every grid point is read out and handed to every regressor, so the distorted
events are never stored and all regressors see the same ones. With ``workers=2`` one
background thread prepares the next grid point's events while the regressors run; the
result does not depend on it. Regressors must predict each event from its own hits (as
the calolab regressors do), since they see the events a chunk at a time.

>>> import numpy as np
>>> from calolab.geometry import Detector
>>> from calolab.showers import Showers
>>> det = Detector.from_dict({"name": "toy", "cells": {"nx": 4, "ny": 4, "pitch": 10.0},
...     "layers": [{"absorber": "Cu", "absorber_thickness": 20, "active": "Si", "active_thickness": 0.3,
...                 "repeat": 2}]})
>>> e = np.linspace(1e3, 1e4, 40)
>>> dense = np.zeros((40, *det.shape), np.float32); dense[:, 0, 1, 1] = e / 100
>>> test = Showers.from_dense(det, dense, particle=211, incident_energy=e)
>>> class Sum:
...     name = "sum"
...     def predict(self, showers):
...         return 100 * showers.energy_sum()
>>> config = ScanConfig(grid=RobustnessGrid((0.0,), (0.0,), (0.0, 0.15)), chunk_size=16)
>>> result = scan({"sum": Sum()}, test, config)
>>> shift = result.predictions[0, 1] - result.predictions[0, 0]  # bias 0.15 MeV in one cell, x 100
>>> result.predictions.shape, bool(np.all(np.abs(shift - 15) < 1e-3))
((1, 2, 40), True)
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from calolab.effects.copula import CopulaConfig
from calolab.errors import CalolabError
from calolab.reconstruction.regressor import Regressor
from calolab.robustness.distortions import DRAWS, STAT_KEYS, GridDistorter
from calolab.robustness.grid import GridPoint, RobustnessGrid
from calolab.showers import Showers


@dataclass(frozen=True)
class ScanConfig:
    """How the grid is applied; written with the run's config.

    Parameters
    ----------
    grid
        Parameters, threshold and units (Table 1 of paper 002 in MeV by default).
    calibration_copula, noise_copula
        Within-module correlation of the miscalibration and of the noise (the defaults of
        :mod:`calolab.effects`: Gaussian, Kendall tau drawn per module in [0.1, 0.5], 2 x 2
        cells through all layers).
    seed
        Seed of all draws.
    chunk_size
        Events per chunk; part of the seed's meaning (the noise of chunk ``k`` comes from ``(seed, k)``).
    draws
        ``shared`` (the same random numbers at every point) or ``per-point``.
    workers
        1, or 2 to prepare the next point's events in a background thread (same results).
    """

    grid: RobustnessGrid = field(default_factory=RobustnessGrid)
    calibration_copula: CopulaConfig = field(default_factory=CopulaConfig)
    noise_copula: CopulaConfig = field(default_factory=CopulaConfig)
    seed: int = 1
    chunk_size: int = 250
    draws: str = "shared"
    workers: int = 2

    def __post_init__(self) -> None:
        if self.chunk_size < 1:
            raise CalolabError(f"scan chunk_size must be >= 1 event, got {self.chunk_size}")
        if self.draws not in DRAWS:
            raise CalolabError(f"scan draws {self.draws!r}: expected shared or per-point")
        if self.workers not in (1, 2):
            raise CalolabError(f"scan workers must be 1 or 2, got {self.workers}")


@dataclass
class ScanResult:
    """Predictions and per-point sums of a scan.

    Attributes
    ----------
    points : list of GridPoint
    names : list of str
        Regressor names, in the order of the first axis of ``predictions``.
    predictions : float64 (regressors, points, N)
        Predicted energy of every test event at every point, MeV.
    e_true : float64 (N,)
        Incident energies, MeV.
    stats : dict of float64 (points,)
        Sums over the test events (:data:`~calolab.robustness.distortions.STAT_KEYS`): hits
        and true energy of the signal cells, those that survive, their readings, and the
        noise-only cells and their energy (MeV).
    seconds : float64 (regressors,)
        Time spent in each regressor's ``predict``; ``seconds_total`` the whole scan.
    """

    points: list[GridPoint]
    names: list[str]
    predictions: np.ndarray
    e_true: np.ndarray
    stats: dict[str, np.ndarray]
    seconds: np.ndarray
    seconds_total: float

    def per_event(self, key: str) -> np.ndarray:
        """A statistic averaged per event, (points,)."""
        return self.stats[key] / max(len(self.e_true), 1)


def scan(regressors: dict[str, Regressor], test: Showers, config: ScanConfig = ScanConfig(),
         progress: Callable[[str], None] | None = None) -> ScanResult:
    """Predict every test event at every grid point with every regressor.

    Parameters
    ----------
    regressors
        Name to :class:`~calolab.reconstruction.regressor.Regressor`.
    test
        Undistorted test events (energies in MeV).
    config
        Grid, copulas, seed, chunking.
    progress
        Called with a line every 5% of the events.
    """
    if not regressors:
        raise CalolabError("the robustness scan needs at least one regressor")
    if len(test) == 0:
        raise CalolabError("the robustness scan needs test events, got none")
    names = list(regressors)
    for name, reg in regressors.items():
        if not isinstance(reg, Regressor):
            raise CalolabError(f"regressor {name!r} has no name and predict(showers): not a calolab Regressor")
    start_time = time.perf_counter()
    points = config.grid.points()
    distorter = GridDistorter(test.detector, config.grid, config.calibration_copula, config.noise_copula,
                              config.seed, config.draws)
    preds = np.empty((len(names), len(points), len(test)))
    stats = {k: np.zeros(len(points)) for k in STAT_KEYS}
    seconds = np.zeros(len(names))
    starts = range(0, len(test), config.chunk_size)

    by_pair = sorted(points, key=lambda q: (q.noise_scale, q.bias, q.index))  # one merge per (noise, bias)

    def readouts() -> Iterator[tuple[int, int, Showers, dict[str, float]]]:
        for index, first in enumerate(starts):
            chunk = test[first:first + config.chunk_size]
            shared = distorter.chunk(chunk, index) if config.draws == "shared" else None
            for point in by_pair:
                readout = shared if shared is not None else distorter.chunk(chunk, index, point)
                events, sums = readout.readout(point)
                yield first, point.index, events, sums

    items = _prefetched(readouts()) if config.workers == 2 else readouts()
    report_every = max(1, len(starts) // 20)
    for first, p, events, sums in items:
        stop = first + len(events)
        for k, name in enumerate(names):
            t0 = time.perf_counter()
            values = np.asarray(regressors[name].predict(events), np.float64)
            seconds[k] += time.perf_counter() - t0
            if values.shape != (len(events),):
                raise CalolabError(f"regressor {name!r} returned shape {values.shape} for {len(events)} events")
            preds[k, p, first:stop] = values
        for key, value in sums.items():
            stats[key][p] += value
        if p == by_pair[-1].index:
            chunk_number = first // config.chunk_size + 1
            if progress is not None and (chunk_number % report_every == 0 or stop == len(test)):
                progress(f"robustness scan: {stop}/{len(test)} events x {len(points)} points, "
                         f"{time.perf_counter() - start_time:.0f} s")
    return ScanResult(points, names, preds, np.asarray(test.incident_energy, np.float64), stats, seconds,
                      time.perf_counter() - start_time)


def _prefetched(items: Iterable[Any], depth: int = 1) -> Iterator[Any]:
    """Iterate ``items`` in one background thread, ``depth`` items ahead; exceptions are re-raised here."""
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def work() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        slots.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            slots.put((end, None))
        except BaseException as exc:  # handed to the consumer
            slots.put((end, exc))

    thread = threading.Thread(target=work, name="calolab-robustness-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, exc = slots.get()
            if exc is not None:
                raise exc
            if item is end:
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                slots.get_nowait()
            except queue.Empty:
                pass
            thread.join(timeout=0.1)
