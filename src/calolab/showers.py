"""The ``Showers`` container: a batch of events with sparse cell hits.

Hits are stored sparse: event ``i`` owns ``cell[offsets[i]:offsets[i+1]]`` (flat cell
index ``(layer * nx + x) * ny + y``) and ``energy[...]`` (visible energy in MeV). Dense
``(N, layers, x, y)`` views are built on demand, in chunks.

>>> import numpy as np
>>> from calolab.geometry import load_detector
>>> det = load_detector("siw-ecal")
>>> dense = np.zeros((2, *det.shape), np.float32); dense[0, 3, 16, 16] = 5.0; dense[1, 0, 0, 1] = 1.5
>>> s = Showers.from_dense(det, dense, particle=np.array([11, 11]), incident_energy=np.array([1e4, 2e4]))
>>> len(s), s.n_hits, s.energy_sum().tolist()
(2, 2, [5.0, 1.5])
>>> bool(np.array_equal(s.dense(), dense))
True
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from calolab.errors import CalolabError
from calolab.geometry import Detector

PARTICLES = {"e-": 11, "e+": -11, "gamma": 22, "pi+": 211, "pi-": -211, "mu-": 13, "mu+": -13}
PARTICLE_NAMES = {code: name for name, code in PARTICLES.items()}


def particle_code(name: str | int) -> int:
    """PDG code of a particle name (``e-``, ``gamma``, ``pi+``, ``mu-``, ...)."""
    if isinstance(name, int | np.integer) and int(name) in PARTICLE_NAMES:
        return int(name)
    aliases = {"electron": "e-", "positron": "e+", "photon": "gamma", "pion": "pi+", "muon": "mu-",
               "pi": "pi+", "mu": "mu-", "e": "e-"}
    key = aliases.get(str(name).lower(), str(name))
    if key not in PARTICLES:
        raise CalolabError(f"unknown particle {name!r}: expected one of {', '.join(PARTICLES)}")
    return PARTICLES[key]


@dataclass
class Showers:
    """Events in one detector, with hits stored sparse.

    Attributes
    ----------
    detector : Detector
    offsets : int64 (N + 1,)
        Event ``i`` owns hits ``offsets[i]:offsets[i + 1]``.
    cell : int32 (n_hits,)
        Flat cell index ``(layer * nx + x) * ny + y``; sorted and unique within an event.
    energy : float32 (n_hits,)
        Visible energy in MeV.
    particle : int32 (N,)
        PDG code of the incident particle.
    incident_energy : float64 (N,)
        Incident energy in MeV; NaN where unknown (hit tables read without an incident-energy
        column).
    entry : float64 (N, 2)
        Entry point (x, y) on the front face in mm.
    direction : float64 (N, 3)
        Unit direction (dx, dy, dz) at entry.
    extras : dict of (N,) arrays
        Per-event truth (first interaction depth, electromagnetic fraction, ...).
    meta : dict
        Provenance (simulation config, seed, calolab version, applied constants).
    """

    detector: Detector
    offsets: np.ndarray
    cell: np.ndarray
    energy: np.ndarray
    particle: np.ndarray
    incident_energy: np.ndarray
    entry: np.ndarray | None = None
    direction: np.ndarray | None = None
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.incident_energy)
        self.offsets = np.asarray(self.offsets, np.int64)
        self.cell = np.asarray(self.cell, np.int32)
        self.energy = np.asarray(self.energy, np.float32)
        self.particle = np.broadcast_to(np.asarray(self.particle, np.int32), (n,)).copy()
        self.incident_energy = np.asarray(self.incident_energy, np.float64)
        if self.entry is None:
            self.entry = np.zeros((n, 2))
        if self.direction is None:
            self.direction = np.tile([0.0, 0.0, 1.0], (n, 1))
        self.entry = np.asarray(self.entry, np.float64)
        self.direction = np.asarray(self.direction, np.float64)
        self.check()

    # ------------------------------------------------------------ checks
    def check(self, source: str = "showers") -> None:
        """Raise :class:`CalolabError` if arrays are inconsistent or energies are invalid."""
        n = len(self.incident_energy)
        if self.offsets.shape != (n + 1,) or self.offsets[0] != 0 or np.any(np.diff(self.offsets) < 0):
            raise CalolabError(f"{source}: offsets must be non-decreasing, start at 0, shape ({n + 1},)")
        if self.cell.shape != self.energy.shape or self.cell.ndim != 1 or self.offsets[-1] != len(self.cell):
            raise CalolabError(f"{source}: cell and energy must be 1-D with {self.offsets[-1]} hits")
        if len(self.cell) and (self.cell.min() < 0 or self.cell.max() >= self.detector.n_cells):
            raise CalolabError(f"{source}: cell index outside [0, {self.detector.n_cells}) for {self.detector.name}")
        if not np.all(np.isfinite(self.energy)):
            raise CalolabError(f"{source}: hit energies contain NaN or infinity")
        known = self.incident_energy[~np.isnan(self.incident_energy)]
        if not np.all(np.isfinite(known)) or np.any(known < 0):
            raise CalolabError(f"{source}: incident energies must be finite and >= 0 MeV (NaN where unknown)")
        for name, arr, shape in (("entry", self.entry, (n, 2)), ("direction", self.direction, (n, 3))):
            if arr.shape != shape:
                raise CalolabError(f"{source}: {name} must have shape {shape}, got {arr.shape}")
        for key, arr in self.extras.items():
            if len(arr) != n:
                raise CalolabError(f"{source}: extra {key!r} has {len(arr)} entries for {n} events")

    # ------------------------------------------------------------ basics
    def __len__(self) -> int:
        return len(self.incident_energy)

    @property
    def n_events(self) -> int:
        return len(self)

    @property
    def n_hits(self) -> int:
        return len(self.cell)

    @property
    def event_index(self) -> np.ndarray:
        """Event number of each hit, int64 (n_hits,)."""
        return np.repeat(np.arange(len(self)), np.diff(self.offsets))

    def hits_per_event(self, threshold: float = 0.0) -> np.ndarray:
        """Number of hits above ``threshold`` MeV per event, (N,)."""
        return np.bincount(self.event_index[self.energy > threshold], minlength=len(self))

    def energy_sum(self) -> np.ndarray:
        """Total visible energy per event in MeV, float64 (N,)."""
        return np.bincount(self.event_index, weights=self.energy, minlength=len(self))

    def layer_sums(self) -> np.ndarray:
        """Visible energy per layer in MeV, float64 (N, layers)."""
        n_layers, nx, ny = self.detector.shape
        key = self.event_index * n_layers + self.cell // (nx * ny)
        return np.bincount(key, weights=self.energy, minlength=len(self) * n_layers).reshape(len(self), n_layers)

    def cell_coordinates(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(layer, ix, iy)`` integer indices of every hit."""
        _, nx, ny = self.detector.shape
        layer, rest = np.divmod(self.cell, nx * ny)
        ix, iy = np.divmod(rest, ny)
        return layer, ix, iy

    def positions(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(x, y, z)`` in mm of every hit's cell centre, float64 (n_hits,) each.

        x and y are the centres of the readout cells (:meth:`Detector.cell_centres`: the grid is
        centred on the beam axis; a layer of coarser tiles or strips has its own cells; a
        cylindrical detector's are its (alpha, r) bin centres), z is
        the depth of the middle of the layer's active slab (``detector.z_active``), measured
        from the front face.

        >>> import numpy as np
        >>> from calolab.geometry import load_detector
        >>> det = load_detector("siw-ecal")
        >>> dense = np.zeros((1, *det.shape), np.float32); dense[0, 0, 16, 16] = 1.0
        >>> x, y, z = Showers.from_dense(det, dense, particle=11, incident_energy=[1e4]).positions()
        >>> bool(x[0] == 0.5 * det.pitch_x), bool(y[0] == 0.5 * det.pitch_y), bool(z[0] == det.z_active[0])
        (True, True, True)
        """
        layer, ix, iy = self.cell_coordinates()
        x, y = self.detector.cell_centres(layer, ix, iy)
        return x, y, np.asarray(self.detector.z_active, np.float64)[layer]

    @property
    def particle_names(self) -> list[str]:
        return [PARTICLE_NAMES.get(int(c), str(c)) for c in self.particle]

    # ------------------------------------------------------------ dense views
    def dense(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Dense float32 ``(stop - start, layers, nx, ny)`` array of events ``start:stop`` in MeV."""
        stop = len(self) if stop is None else min(stop, len(self))
        lo, hi = self.offsets[start], self.offsets[stop]
        out = np.zeros((stop - start, self.detector.n_cells), np.float32)
        local = np.repeat(np.arange(stop - start), np.diff(self.offsets[start : stop + 1]))
        out[local, self.cell[lo:hi]] = self.energy[lo:hi]
        return out.reshape(stop - start, *self.detector.shape)

    def iter_dense(self, chunk_size: int = 256) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(start, dense_chunk)`` over all events, ``chunk_size`` events at a time."""
        for start in range(0, len(self), chunk_size):
            yield start, self.dense(start, start + chunk_size)

    @classmethod
    def from_dense(cls, detector: Detector, dense: np.ndarray, **kwargs: Any) -> Showers:
        """Sparse showers from a dense ``(N, layers, nx, ny)`` or ``(N, cells)`` array in MeV."""
        dense = np.asarray(dense)
        n = dense.shape[0] if dense.ndim > 0 else 0
        if dense.ndim not in (2, 4) or math.prod(dense.shape[1:]) != detector.n_cells:
            raise CalolabError(
                f"dense showers of shape {dense.shape} do not fit {detector.name}: "
                f"expected (N, {', '.join(map(str, detector.shape))}) or (N, {detector.n_cells})"
            )
        flat = dense.reshape(n, detector.n_cells)
        event, cell = np.nonzero(flat)
        offsets = np.concatenate([[0], np.cumsum(np.bincount(event, minlength=n))])
        return cls(detector, offsets, cell, flat[event, cell], **kwargs)

    # ------------------------------------------------------------ selection
    def __getitem__(self, index: slice | np.ndarray | list[int]) -> Showers:
        """Events selected by a slice, an integer array or a boolean mask."""
        idx = np.arange(len(self))[index]
        idx = np.atleast_1d(idx)
        counts = np.diff(self.offsets)[idx]
        starts = self.offsets[idx]
        hit = np.repeat(starts - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts) + np.arange(counts.sum())
        return Showers(
            self.detector,
            np.concatenate([[0], np.cumsum(counts)]),
            self.cell[hit],
            self.energy[hit],
            self.particle[idx],
            self.incident_energy[idx],
            self.entry[idx],
            self.direction[idx],
            {k: v[idx] for k, v in self.extras.items()},
            dict(self.meta),
        )

    @classmethod
    def concatenate(cls, parts: list[Showers]) -> Showers:
        """Join batches of the same detector, in order."""
        if not parts:
            raise CalolabError("cannot concatenate an empty list of showers")
        det = parts[0].detector
        if any(p.detector != det for p in parts):
            raise CalolabError("cannot concatenate showers of different detectors")
        counts = np.concatenate([np.diff(p.offsets) for p in parts])
        keys = set(parts[0].extras)
        return cls(
            det,
            np.concatenate([[0], np.cumsum(counts)]),
            np.concatenate([p.cell for p in parts]),
            np.concatenate([p.energy for p in parts]),
            np.concatenate([p.particle for p in parts]),
            np.concatenate([p.incident_energy for p in parts]),
            np.concatenate([p.entry for p in parts]),
            np.concatenate([p.direction for p in parts]),
            {k: np.concatenate([p.extras[k] for p in parts]) for k in keys if all(k in p.extras for p in parts)},
            dict(parts[0].meta),
        )

    def summary(self) -> str:
        """A short description: events, particles, energy range, hits."""
        e = self.incident_energy[~np.isnan(self.incident_energy)] / 1e3
        energies = f"E = {e.min():.3g}-{e.max():.3g} GeV" if len(e) else "E unknown"
        if 0 < len(e) < len(self):
            energies += f" ({len(self) - len(e)} unknown)"
        names = sorted(set(self.particle_names))
        occupancy = self.n_hits / max(len(self), 1)
        return (
            f"{len(self)} events of {', '.join(names) or '-'} in {self.detector.name}, "
            f"{energies}, {occupancy:.1f} hits/event, "
            f"visible sum {self.energy_sum().mean() if len(self) else 0:.1f} MeV/event"
        )
