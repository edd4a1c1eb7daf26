"""Cylindrical detectors whose layers have bins of their own: CaloChallenge dataset 1.

In CaloChallenge's dataset 1 (ATLAS photons and pions, binning files
``binning_dataset_1_photons.xml`` and ``binning_dataset_1_pions.xml`` of
github.com/CaloChallenge/homepage) every layer has its own r edges and number of alpha bins
(the presampler and the third EM layer one alpha bin, the strips and the middle layer ten).
A :class:`LayeredCylinder` holds one :class:`~calolab.geometry.cylinder.CylindricalGrid`
per layer. The detector's index axes are padded to the largest bins: ``nx = max n_alpha``,
``ny = max n_r``, so dense views stay ``(layers, nx, ny)``; a layer's bins are its
``(alpha, r)`` with ``alpha < n_alpha[layer]`` and ``r < n_r[layer]``, and the cells beyond
them (:meth:`LayeredCylinder.mask` is False) are never hit.

In YAML such a detector has ``cells: {kind: cylindrical}`` (optionally with default
``r_edges`` and ``n_alpha``) and a layer group's ``cells: {r_edges: [...], n_alpha: n}``
gives the bins of its layers.

>>> from calolab.geometry.cylinder import CylindricalGrid
>>> cyl = LayeredCylinder((CylindricalGrid((0.0, 5.0, 10.0, 30.0), 1), CylindricalGrid((0.0, 2.0, 4.0), 10)))
>>> cyl.n_alpha, cyl.n_r, int(cyl.mask(2).sum())  # padded (10, 3); 3 + 20 real bins
(10, 3, 23)
>>> ia, ir, inside = cyl.bins(np.array([3.0, 3.0]), np.array([0.0, 0.0]), np.array([0, 1]))
>>> ia.tolist(), ir.tolist(), inside.tolist()  # layer 0: one alpha bin; layer 1: +x starts bin 5
([0, 5], [0, 1], [True, True])
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from calolab.errors import CalolabError
from calolab.geometry.cylinder import CELL_FIELDS, CylindricalGrid


@dataclass(frozen=True)
class LayeredCylinder:
    """The ``(alpha, r)`` bins of each layer of a cylindrical detector, padded to ``(n_alpha, n_r)``.

    Parameters
    ----------
    grids
        One :class:`~calolab.geometry.cylinder.CylindricalGrid` per layer, front to back.
    """

    grids: tuple[CylindricalGrid, ...]

    def __post_init__(self) -> None:
        if not self.grids:
            raise CalolabError("cells: a layered cylinder needs the bins of at least one layer")

    @property
    def n_alpha(self) -> int:
        """The padded alpha axis: the largest ``n_alpha`` of the layers."""
        return max(g.n_alpha for g in self.grids)

    @property
    def n_r(self) -> int:
        """The padded r axis: the largest ``n_r`` of the layers."""
        return max(g.n_r for g in self.grids)

    @property
    def r_edges(self) -> tuple[float, ...]:
        """Every layer's r edges together, sorted, mm (the rings of a radial profile)."""
        return tuple(sorted({float(e) for g in self.grids for e in g.r_edges}))

    @property
    def r_max(self) -> float:
        """Outer radius in mm of the widest layer's last r bin."""
        return max(g.r_max for g in self.grids)

    def mask(self, n_layers: int) -> np.ndarray:
        """Which padded cells are bins of their layer, bool ``(layers, n_alpha, n_r)``."""
        out = np.zeros((n_layers, self.n_alpha, self.n_r), bool)
        for k, g in enumerate(self.grids[:n_layers]):
            out[k, : g.n_alpha, : g.n_r] = True
        return out

    @cached_property
    def areas(self) -> np.ndarray:
        """Area of each bin in mm2, ``(layers, n_alpha, n_r)``; 0 on the padded cells."""
        out = np.zeros((len(self.grids), self.n_alpha, self.n_r))
        for k, g in enumerate(self.grids):
            out[k, : g.n_alpha, : g.n_r] = g.areas
        return out

    @cached_property
    def _r_centres(self) -> np.ndarray:  # (layers, n_r) mm, NaN on padded r bins
        out = np.full((len(self.grids), self.n_r), np.nan)
        for k, g in enumerate(self.grids):
            out[k, : g.n_r] = g.r_centres
        return out

    def _layer(self, layer: Any, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Layer indices broadcast to ``shape`` and whether each is a layer of the stack."""
        layer = np.broadcast_to(np.asarray(layer, np.int64), shape)
        return layer, (layer >= 0) & (layer < len(self.grids))

    def bins(self, x: np.ndarray, y: np.ndarray, layer: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Alpha and r bins of points ``(x, y)`` mm in ``layer`` and whether they lie on a bin; int64, int64, bool."""
        x, y = np.broadcast_arrays(np.asarray(x, float), np.asarray(y, float))
        if layer is None:
            raise CalolabError("a layered cylinder's bins depend on the layer: pass layer=")
        layer, known = self._layer(layer, x.shape)
        ia, ir = np.zeros(x.shape, np.int64), np.zeros(x.shape, np.int64)
        inside = np.zeros(x.shape, bool)
        for k in np.unique(layer[known]):
            on = known & (layer == k)
            ia[on], ir[on], inside[on] = self.grids[k].bins(x[on], y[on])
        return ia, ir, inside

    def contains(self, x: np.ndarray, y: np.ndarray, layer: Any = None) -> np.ndarray:
        """Whether points ``(x, y)`` mm lie on a bin of ``layer`` (default: of any layer), bool."""
        x, y = np.broadcast_arrays(np.asarray(x, float), np.asarray(y, float))
        if layer is None:
            return np.logical_or.reduce([g.contains(x, y) for g in self.grids])
        return self.bins(x, y, layer)[2]

    def outer_radius(self, layer: Any) -> np.ndarray:
        """``r_max`` in mm of each ``layer``, float (NaN for an index outside the stack)."""
        layer = np.asarray(layer, np.int64)
        r = np.array([g.r_max for g in self.grids])
        known = (layer >= 0) & (layer < len(r))
        return np.where(known, r[np.clip(layer, 0, len(r) - 1)], np.nan)

    def centres(self, ia: np.ndarray, ir: np.ndarray, layer: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)`` in mm of the centres of bins ``(ia, ir)`` of ``layer``; NaN on padded cells."""
        ia, ir = np.broadcast_arrays(np.asarray(ia, np.int64), np.asarray(ir, np.int64))
        if layer is None:
            raise CalolabError("a layered cylinder's bin centres depend on the layer: pass layer=")
        layer, _ = self._layer(layer, ia.shape)
        n_alpha = np.array([g.n_alpha for g in self.grids])[layer]
        alpha = -math.pi + (ia + 0.5) * (2 * math.pi / n_alpha)
        r = np.where(ia < n_alpha, self._r_centres[layer, ir], np.nan)
        return r * np.cos(alpha), r * np.sin(alpha)

    def describe(self) -> str:
        bins = int(self.mask(len(self.grids)).sum())
        return (f"per-layer cylindrical bins ({bins} in all, up to {self.n_alpha} alpha x {self.n_r} r, "
                f"r < {self.r_max:g} mm)")

    def to_dict(self) -> dict[str, Any]:
        """The detector-level ``cells:``; each layer's bins go into its group (:meth:`layer_cells`)."""
        return {"kind": "cylindrical"}

    def layer_cells(self, layer: int) -> dict[str, Any]:
        """The ``cells:`` of ``layer``'s group: ``{r_edges, n_alpha}``."""
        grid = self.grids[layer].to_dict()
        grid.pop("kind")
        return grid


def parse_layer_cells(cells: dict[str, Any], groups: Any, where: str,
                      layers_at: str) -> tuple[CylindricalGrid | LayeredCylinder, Any]:
    """The bins of a cylindrical detector spec and its layer groups without their ``cells:``.

    ``cells`` is the detector's ``{kind: cylindrical, r_edges, n_alpha}`` (both optional when
    every group gives its own); a group's ``cells: {r_edges, n_alpha}`` sets the bins of its
    layers, a field it leaves out is the detector's. Equal bins on every layer give one
    :class:`~calolab.geometry.cylinder.CylindricalGrid`; other cases a :class:`LayeredCylinder`.
    """
    from calolab.config import check_fields

    check_fields(cells, CELL_FIELDS, where)
    default = {k: cells[k] for k in ("r_edges", "n_alpha") if k in cells}
    grids: list[CylindricalGrid] = []

    def walk(entries: Any, at: str) -> Any:
        if not isinstance(entries, list):
            return entries
        out = []
        for i, group in enumerate(entries):
            here = f"{at}[{i}]"
            if not isinstance(group, dict):
                out.append(group)
                continue
            repeat = group.get("repeat", 1)
            times = repeat if isinstance(repeat, int) and not isinstance(repeat, bool) and repeat >= 1 else 1
            if "layers" in group:
                start = len(grids)
                stripped = {**group, "layers": walk(group["layers"], f"{here}.layers")}
                grids.extend(grids[start:] * (times - 1))
                out.append(stripped)
                continue
            own = group.get("cells", {})
            if not isinstance(own, dict):
                raise CalolabError(f"{here}.cells: expected a mapping with r_edges and n_alpha (the layer's bins)")
            unknown = sorted(set(own) - {"r_edges", "n_alpha"})
            if unknown:
                raise CalolabError(f"{here}.cells: a cylindrical detector's layers have (alpha, r) bins "
                                   f"{{r_edges, n_alpha}}, not {unknown[0]!r}")
            spec = {**default, **own}
            for key in ("r_edges", "n_alpha"):
                if key not in spec:
                    raise CalolabError(f"{here}.cells: missing field {key!r} (the detector's cells give none)")
            grids.extend([CylindricalGrid.from_dict(spec, f"{here}.cells")] * times)
            out.append({k: v for k, v in group.items() if k != "cells"})
        return out

    stripped = walk(groups, layers_at)
    if not grids:
        return CylindricalGrid.from_dict(cells, where), stripped
    if all(g == grids[0] for g in grids):
        return grids[0], stripped
    return LayeredCylinder(tuple(grids)), stripped
