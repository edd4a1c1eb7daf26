"""Readout cells of a layer made of grid cells: coarser tiles, strips, and rings of tile sizes.

A Cartesian detector simulates on one grid of ``nx`` x ``ny`` cells; a layer may read out
larger cells, each a block of ``gx`` x ``gy`` grid cells (:class:`Tiles`). A layer may
also change its tile size with the distance from the beam axis, as the CALICE AHCAL's
3 x 3 cm tiles in the core, 6 x 6 cm around them and 12 x 12 cm at the rim: an ordered list
of :class:`Tiles`, each filling a centred square of half-width ``within`` (grid cells),
minus the squares before it, the last one reaching the grid's edges. A readout cell is
stored at its first (lowest-index) grid cell.

>>> anchor, size = tile_map((Tiles((1, 1), (2, 2)), Tiles((2, 2))), 8, 8)
>>> anchor[3, 3], anchor[1, 1], anchor[0, 1], size[1, 0].tolist(), size[3, 4].tolist()
(np.int64(27), np.int64(0), np.int64(0), [2, 2], [1, 1])
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from calolab.errors import CalolabError


@dataclass(frozen=True)
class Tiles:
    """Readout cells of ``gang`` = ``(gx, gy)`` grid cells inside the centred square of half-widths
    ``within`` = ``(wx, wy)`` grid cells (``None``: up to the grid's edges)."""

    gang: tuple[int, int]
    within: tuple[float, float] | None = None


def check_tiles(tiles: tuple[Tiles, ...], nx: int, ny: int, where: str) -> None:
    """Raise a one-line error unless ``tiles`` tile an ``nx`` x ``ny`` grid exactly."""
    if not tiles:
        return
    if any(t.within is None for t in tiles[:-1]) or tiles[-1].within is not None:
        raise CalolabError(f"{where}: every region but the last needs 'within' (the last reaches the edges)")
    previous = (0.0, 0.0)
    for k, t in enumerate(tiles):
        if min(t.gang) < 1:
            raise CalolabError(f"{where}[{k}]: tiles gang whole numbers of grid cells, got {t.gang}")
        outer = t.within if t.within is not None else (nx / 2, ny / 2)
        for axis, n, g, w_in, w_out in (("x", nx, t.gang[0], previous[0], outer[0]),
                                        ("y", ny, t.gang[1], previous[1], outer[1])):
            if w_out <= w_in or w_out > n / 2:
                raise CalolabError(f"{where}[{k}]: regions must grow outwards within the grid's {n} cells along {axis}")
            for edge in (n / 2 - w_out, n / 2 - w_in, n / 2 + w_in, n / 2 + w_out):
                if abs(edge - round(edge)) > 1e-9 or round(edge) % g:
                    raise CalolabError(f"{where}[{k}]: the region's edges along {axis} must fall on whole "
                                       f"{g}-cell tiles of the grid (from its first cell)")
        previous = outer


@lru_cache(maxsize=64)
def tile_map(tiles: tuple[Tiles, ...], nx: int, ny: int) -> tuple[np.ndarray, np.ndarray]:
    """Readout cell of every grid cell of a layer: ``anchor`` int64 ``(nx, ny)``, the flat index
    ``ix * ny + iy`` of its first grid cell, and ``size`` int64 ``(nx, ny, 2)``, its ``(gx, gy)``."""
    ix, iy = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
    size = np.ones((nx, ny, 2), np.int64)
    if tiles:
        cx, cy = np.abs(ix + 0.5 - nx / 2), np.abs(iy + 0.5 - ny / 2)  # distance from the axis, grid cells
        todo = np.ones((nx, ny), bool)
        for t in tiles:
            wx, wy = t.within if t.within is not None else (np.inf, np.inf)
            here = todo & (cx < wx) & (cy < wy)
            size[here] = t.gang
            todo &= ~here
    ax, ay = ix - ix % size[..., 0], iy - iy % size[..., 1]
    return ax * ny + ay, size
