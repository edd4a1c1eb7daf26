"""Energy deposits in flight: points with a layer, a transverse position and a visible energy.

The simulators produce :class:`Deposits` (one row per charged-track crossing or spot);
:func:`to_sparse` bins them into cells and returns the sparse hits of a ``Showers``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calolab.geometry import Detector

# Dense accumulation is used while (events x cells) stays below this many bins.
DENSE_BINS = 1 << 24


@dataclass
class Deposits:
    """Visible energy deposits: all arrays have shape ``(n,)``; x, y in mm, energy in MeV."""

    event: np.ndarray
    layer: np.ndarray
    x: np.ndarray
    y: np.ndarray
    energy: np.ndarray

    @classmethod
    def empty(cls) -> Deposits:
        z = np.zeros(0)
        return cls(z.astype(np.int64), z.astype(np.int64), z, z, z)

    @classmethod
    def join(cls, parts: list[Deposits]) -> Deposits:
        parts = [p for p in parts if len(p.event)] or [cls.empty()]
        return cls(*(np.concatenate([getattr(p, k) for p in parts]) for k in ("event", "layer", "x", "y", "energy")))

    def __len__(self) -> int:
        return len(self.event)


def cell_index(detector: Detector, layer: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Flat cell index of points ``(layer, x mm, y mm)``; -1 where outside the grid.

    A cylindrical detector's cells are ``(layer, alpha, r)`` bins
    (:meth:`~calolab.geometry.cylinder.CylindricalGrid.bins`): points beyond its last r edge are lost.
    Where the layers have bins of their own, each point falls in its layer's bins, never on a
    padded cell beyond them.
    """
    if detector.cylinder is not None:
        ia, ir, inside = detector.cylinder.bins(x, y, layer)
        inside &= (layer >= 0) & (layer < detector.n_layers)
        return np.where(inside, (layer * detector.nx + ia) * detector.ny + ir, -1)
    # clip far-away points before the integer cast: they are off the grid either way
    ix = np.floor(np.clip(x / detector.pitch_x, -1e9, 1e9) + detector.nx / 2).astype(np.int64)
    iy = np.floor(np.clip(y / detector.pitch_y, -1e9, 1e9) + detector.ny / 2).astype(np.int64)
    inside = (ix >= 0) & (ix < detector.nx) & (iy >= 0) & (iy < detector.ny)
    inside &= (layer >= 0) & (layer < detector.n_layers)
    if not detector.uniform:  # coarse tiles and strips: every grid cell's deposit goes to its readout cell
        at = np.where(inside, layer, 0), np.where(inside, ix, 0), np.where(inside, iy, 0)
        ix, iy = np.divmod(detector.tile_anchor[at], detector.ny)
    return np.where(inside, (layer * detector.nx + ix) * detector.ny + iy, -1)


def to_sparse(detector: Detector, deposits: Deposits, n_events: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sum deposits per cell: return ``offsets`` (n_events + 1,), ``cell`` int32, ``energy`` float32.

    Deposits outside the grid are lost (lateral leakage). Cells are sorted within each event.
    """
    cell = cell_index(detector, deposits.layer, deposits.x, deposits.y)
    keep = cell >= 0
    key = deposits.event[keep] * detector.n_cells + cell[keep]
    weight = deposits.energy[keep]
    if n_events * detector.n_cells <= DENSE_BINS:
        dense = np.bincount(key, weights=weight, minlength=n_events * detector.n_cells)
        touched = np.zeros(len(dense), bool)  # scanning bytes for the hit cells is cheaper than doubles
        touched[key] = True
        flat = np.flatnonzero(touched)
        energy = dense[flat]
        nonzero = energy != 0
        flat, energy = flat[nonzero], energy[nonzero]
    else:
        flat, inverse = np.unique(key, return_inverse=True)
        energy = np.bincount(inverse, weights=weight, minlength=len(flat))
    event, cells = np.divmod(flat, detector.n_cells)
    offsets = np.concatenate([[0], np.cumsum(np.bincount(event, minlength=n_events))])
    return offsets, cells.astype(np.int32), energy.astype(np.float32)
