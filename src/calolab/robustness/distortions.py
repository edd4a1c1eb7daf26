"""Distorted copies of a chunk of test events, one per grid point, generated on the fly.

For each chunk of events the random numbers are drawn once (:meth:`GridDistorter.draw`):
the noise ``B'`` of every hit cell, and the empty cells whose noise could pass the
threshold at some grid point with their ``B'`` (:class:`~calolab.robustness.noise.SparseNoise`).
A grid point then only rescales them (:meth:`ChunkReadout.readout`)::

    hit cell:    E~ = (1 + s (2B - 1)) E + unit (u + n (2B' - 1)),  kept if E~ > unit t
    empty cell:  E~ = unit (u + n (2B' - 1)),                       kept if B' > b_cut(n, u)

with ``B`` the miscalibration pattern of the cells (one draw of the calibration copula)
and ``unit`` the MeV per grid unit of the cell's layer. With ``draws="shared"`` (default)
every grid point sees the same ``B`` and ``B'`` (common random numbers): the points differ
only in their parameters, so the response moves smoothly across the grid, and the noise
is drawn once per chunk instead of once per point. With ``draws="per-point"`` each point
draws its own, from ``(seed, point index, chunk)``. Either way the distorted events of a
point follow exactly the law of paper 002's equations 1.1-1.3 and zero suppression, and
the same seed and chunk size give the same bits.

>>> import numpy as np
>>> from calolab.geometry import Detector
>>> from calolab.robustness.grid import GridPoint, RobustnessGrid
>>> det = Detector.from_dict({"name": "toy", "cells": {"nx": 4, "ny": 4, "pitch": 10.0},
...     "layers": [{"absorber": "Cu", "absorber_thickness": 20, "active": "Si", "active_thickness": 0.3,
...                 "repeat": 2}]})
>>> dense = np.zeros((3, *det.shape), np.float32); dense[:, 0, 1, 1] = 5.0
>>> test = Showers.from_dense(det, dense, particle=211, incident_energy=[1e4] * 3)
>>> grid = RobustnessGrid((0.0,), (0.0, 2.0), (0.0,))
>>> distorter = GridDistorter(det, grid, seed=1)
>>> chunk = distorter.chunk(test, 0)
>>> quiet, _ = chunk.readout(GridPoint(0, 0.0, 0.0, 0.0))
>>> noisy, stats = chunk.readout(GridPoint(1, 0.0, 2.0, 0.0))
>>> quiet.energy.tolist(), bool(np.all(noisy.energy > 0.6)), stats["noise_cells"] > 0
([5.0, 5.0, 5.0], True, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calolab.effects.config import rng_for
from calolab.effects.copula import CopulaConfig, SubmoduleCopula, beta22_ppf
from calolab.errors import CalolabError
from calolab.geometry import Detector
from calolab.robustness.grid import GridPoint, RobustnessGrid
from calolab.robustness.noise import SparseNoise
from calolab.showers import Showers

DRAWS = ("shared", "per-point")
STREAM_CAL_TAU, STREAM_CAL, STREAM_NOISE_TAU, STREAM_NOISE = 41, 42, 43, 44
STAT_KEYS = ("signal_hits", "signal_hits_kept", "signal_energy", "signal_energy_kept", "signal_reading_kept",
             "noise_cells", "noise_energy")


class GridDistorter:
    """Distortions of one detector over one grid, seeded.

    Parameters
    ----------
    detector
        The detector of the test events.
    grid
        Parameters, threshold and units.
    calibration_copula, noise_copula
        Correlation of the miscalibration and of the noise within sub-modules
        (:class:`~calolab.effects.copula.CopulaConfig`; the noise: ``gaussian`` or ``independent``).
    seed
        Seed of everything drawn.
    draws
        ``shared`` (common random numbers for all points) or ``per-point``.
    """

    def __init__(self, detector: Detector, grid: RobustnessGrid, calibration_copula: CopulaConfig | None = None,
                 noise_copula: CopulaConfig | None = None, seed: int = 0, draws: str = "shared") -> None:
        if draws not in DRAWS:
            raise CalolabError(f"draws {draws!r}: expected shared or per-point")
        self.detector, self.grid, self.seed, self.draws = detector, grid, int(seed), draws
        shape = detector.shape
        self.cal_copula = SubmoduleCopula(calibration_copula or CopulaConfig(), shape,
                                          int(rng_for(self.seed, STREAM_CAL_TAU).integers(2**63)))
        self.noise = SparseNoise(noise_copula or CopulaConfig(), shape,
                                 int(rng_for(self.seed, STREAM_NOISE_TAU).integers(2**63)))
        self.unit_layer = grid.unit_mev(detector).astype(np.float32)
        self.cells_per_layer = detector.nx * detector.ny
        cuts = [grid.b_cut(n, u) for n, u in grid.pairs()]
        self.b_cut_min = min(cuts)
        self._patterns: dict[int, np.ndarray] = {}

    def pattern(self, point: int | None = None) -> np.ndarray:
        """The miscalibration variable ``B`` of every cell, float32 ``(n_cells,)`` in [0, 1].

        ``C = 1 + s (2B - 1)``. Shared draws: one pattern; per-point: one per point index.
        """
        key = -1 if self.draws == "shared" or point is None else int(point)
        if key not in self._patterns:
            rng = rng_for(self.seed, STREAM_CAL) if key < 0 else rng_for(self.seed, STREAM_CAL, key)
            self._patterns[key] = beta22_ppf(self.cal_copula.sample([rng])[0]).astype(np.float32)
        return self._patterns[key]

    def chunk(self, showers: Showers, index: int, point: GridPoint | None = None) -> ChunkReadout:
        """Draw the noise of chunk number ``index`` (events ``showers``), for all points or for ``point``.

        With per-point draws ``point`` is required and the chunk serves that point only.
        """
        if showers.detector != self.detector:
            raise CalolabError(f"showers of {showers.detector.name} given to a distorter of {self.detector.name}")
        if self.draws == "per-point":
            if point is None:
                raise CalolabError("per-point draws: give the grid point the chunk is drawn for")
            rng = rng_for(self.seed, STREAM_NOISE, index, point.index)
            b_cut = self.grid.b_cut(point.noise_scale, point.bias)
        else:
            rng = rng_for(self.seed, STREAM_NOISE, index)
            b_cut = self.b_cut_min
        showers = _cell_ordered(showers)
        event = showers.event_index
        cell = showers.cell.astype(np.int64)
        roots = self.noise.roots(rng, len(showers))
        hit_b = self.noise.draw_cells(roots, event, cell, rng).astype(np.float32)
        e_event, e_cell, e_b = self.noise.draw_empty(roots, event, cell, b_cut, rng)
        return ChunkReadout(self, showers, hit_b, e_event, e_cell, e_b.astype(np.float32), b_cut,
                            self.pattern(None if point is None else point.index))


@dataclass
class ChunkReadout:
    """The undistorted hits of a chunk and the noise drawn for them; :meth:`readout` gives a grid point."""

    distorter: GridDistorter
    showers: Showers
    hit_b: np.ndarray
    empty_event: np.ndarray
    empty_cell: np.ndarray
    empty_b: np.ndarray
    b_cut: float
    pattern: np.ndarray

    def __post_init__(self) -> None:
        d = self.distorter
        self.event = self.showers.event_index
        self.unit = d.unit_layer[self.showers.cell // d.cells_per_layer]
        self.empty_unit = d.unit_layer[self.empty_cell // d.cells_per_layer]
        n_cells = self.showers.detector.n_cells
        self.empty_key = self.empty_event * n_cells + self.empty_cell
        self.empty_cell = self.empty_cell.astype(np.int32)
        self.hit_key = self.event * n_cells + self.showers.cell
        self.calibration_b = self.pattern[self.showers.cell]
        self._pair: tuple[tuple[float, float], _Merged] | None = None

    def readout(self, point: GridPoint) -> tuple[Showers, dict[str, float]]:
        """The distorted events at ``point`` and sums over them (``STAT_KEYS``: counts, MeV)."""
        s, n, u = point.calibration_scale, point.noise_scale, point.bias
        merged = self._merged(n, u)
        t = np.float32(self.distorter.grid.zero_suppression)
        energy = self.showers.energy
        reading = np.float32(1) + np.float32(s) * (np.float32(2) * self.calibration_b - np.float32(1))
        reading *= energy
        reading += merged.hit_noise
        keep = reading > self.unit * t
        out_energy = merged.energy
        out_energy[merged.hit_pos] = reading
        dropped = ~keep
        if dropped.any():
            mask = np.ones(len(out_energy), bool)
            mask[merged.hit_pos[dropped]] = False
            cell, out_energy = merged.cell[mask], out_energy[mask]
            lost = np.bincount(self.event[dropped], minlength=len(self.showers))
            offsets = merged.offsets - np.concatenate([[0], np.cumsum(lost)])
        else:  # the cells are the pair's for every calibration scale: shared, read-only
            cell, out_energy, offsets = merged.cell, out_energy.copy(), merged.offsets
        sh = self.showers
        meta = dict(sh.meta)
        meta["effects"] = [*sh.meta.get("effects", []), {"effect": "robustness", "point": point._asdict(),
                                                         "units": self.distorter.grid.units}]
        out = Showers(sh.detector, offsets, cell, out_energy, sh.particle, sh.incident_energy, sh.entry,
                      sh.direction, dict(sh.extras), meta)
        stats = {"signal_hits": float(len(energy)), "signal_hits_kept": float(keep.sum()),
                 "signal_energy": float(energy.sum(dtype=np.float64)),
                 "signal_energy_kept": float(energy[keep].sum(dtype=np.float64)),
                 "signal_reading_kept": float(reading[keep].sum(dtype=np.float64)),
                 "noise_cells": float(merged.n_noise), "noise_energy": merged.noise_energy}
        return out, stats

    def _merged(self, n: float, u: float) -> _Merged:
        """Hits and surviving empty cells of the (noise, bias) pair, merged in cell order (cached per pair)."""
        if self._pair is not None and self._pair[0] == (n, u):
            return self._pair[1]
        grid = self.distorter.grid
        b_cut = grid.b_cut(n, u)
        if not (b_cut >= 1 or self.b_cut <= max(b_cut, 0.0)):
            raise CalolabError(f"noise drawn above B' = {self.b_cut:.4g} cannot serve a point that needs {b_cut:.4g}")
        sel = None if b_cut <= self.b_cut else np.flatnonzero(self.empty_b > b_cut)  # None: all drawn
        pick = (lambda a: a) if sel is None else (lambda a: a[sel])
        unit, e_b = pick(self.empty_unit), pick(self.empty_b)
        e_energy = unit * (np.float32(u) + np.float32(n) * (np.float32(2) * e_b - np.float32(1)))
        above = e_energy > unit * np.float32(grid.zero_suppression)  # float32 rounding at the cut
        if not above.all():
            sel = np.flatnonzero(above) if sel is None else sel[above]
            pick = lambda a: a[sel]  # noqa: E731
            e_energy = e_energy[above]
        e_key, e_cell = pick(self.empty_key), pick(self.empty_cell)
        n_events = len(self.showers)
        hit_pos = np.searchsorted(e_key, self.hit_key) + np.arange(len(self.hit_key))
        total = len(self.hit_key) + len(e_key)
        noise_pos = np.ones(total, bool)
        noise_pos[hit_pos] = False
        cell = np.empty(total, np.int32)
        cell[hit_pos] = self.showers.cell
        cell[noise_pos] = e_cell
        cell.flags.writeable = False
        energy = np.empty(total, np.float32)
        energy[noise_pos] = e_energy
        bounds = np.arange(n_events + 1) * self.showers.detector.n_cells
        counts = np.diff(np.searchsorted(e_key, bounds)) + np.diff(self.showers.offsets)
        hit_noise = self.unit * (np.float32(u) + np.float32(n) * (np.float32(2) * self.hit_b - np.float32(1)))
        merged = _Merged(cell, energy, hit_pos, np.concatenate([[0], np.cumsum(counts)]), hit_noise,
                         len(e_key), float(e_energy.sum(dtype=np.float64)))
        self._pair = ((n, u), merged)
        return merged


def _cell_ordered(showers: Showers) -> Showers:
    """``showers`` with the hits of each event in cell order (they usually are); repeated cells are an error."""
    key = showers.event_index * showers.detector.n_cells + showers.cell
    step = np.diff(key)
    if np.all(step > 0):
        return showers
    order = np.argsort(key, kind="stable")
    if np.any(np.diff(key[order]) == 0):
        raise CalolabError("test showers: a cell appears twice in one event; expected unique cells per event")
    return Showers(showers.detector, showers.offsets, showers.cell[order], showers.energy[order], showers.particle,
                   showers.incident_energy, showers.entry, showers.direction, dict(showers.extras), dict(showers.meta))


@dataclass
class _Merged:
    cell: np.ndarray  # int32 (total,), cell order within each event
    energy: np.ndarray  # float32 (total,), noise-only cells filled, hit cells overwritten per point
    hit_pos: np.ndarray  # int64 (n_hits,), where the hits sit
    offsets: np.ndarray  # int64 (N + 1,)
    hit_noise: np.ndarray  # float32 (n_hits,), unit (u + n (2B' - 1)) in MeV
    n_noise: int
    noise_energy: float
