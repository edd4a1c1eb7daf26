"""Cylindrical cell grids: bins in the angle alpha and the radius r around the beam axis.

The CaloChallenge datasets 2 and 3 (github.com/CaloChallenge/homepage) read their showers
out in such bins: every layer has ``n_alpha`` equal bins in alpha from -pi to pi and bins
in r between ``r_edges`` (mm). A point ``(x, y)`` mm of a layer lies in alpha bin
``floor((alpha + pi) / (2 pi / n_alpha))`` with ``alpha = atan2(y, x)``, the binning of
Geant4's Par04 example (``phiNo = floor((pi + delta.phi()) / meshSizePhi)``), with which
dataset 3 was produced; its bin centres are at ``x = r cos(alpha)``, ``y = r sin(alpha)``,
as in CaloChallenge's ``XMLHandler`` (``eta = r cos(alpha)``, ``phi = r sin(alpha)``).
Points beyond the last r edge are lost (lateral leakage). In dataset 1 every layer has bins
of its own (:mod:`calolab.geometry.cylinder_layers`).

A cylindrical :class:`~calolab.geometry.detector.Detector` keeps calolab's three index axes
``(layer, x, y)`` and stores ``(layer, alpha, r)`` in them (``nx = n_alpha``, ``ny = n_r``),
so its flat index ``(layer * n_alpha + alpha) * n_r + r`` is CaloChallenge's voxel order
(layer-major, then alpha, then r: ``XMLHandler.fill_r_a_lists`` loops over alpha outside r)
and its dense ``(N, layers, n_alpha, n_r)`` view is what
``showers.reshape(N, layers, n_alpha, n_r)`` gives for a CaloChallenge file.

>>> grid = CylindricalGrid((0.0, 4.65, 9.3), 4)
>>> ia, ir, inside = grid.bins(np.array([1.0, 0.0, -5.0, 20.0]), np.array([1.0, -3.0, 0.0, 0.0]))
>>> ia.tolist(), ir.tolist(), inside.tolist()
([2, 1, 3, 2], [0, 0, 1, 0], [True, True, True, False])
>>> x, y = grid.centres(np.array([2]), np.array([0]))
>>> round(float(x[0]), 3), round(float(y[0]), 3)  # alpha = pi / 4, r = 2.325 mm
(1.644, 1.644)
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from calolab.errors import CalolabError

if TYPE_CHECKING:
    from calolab.geometry.cylinder_layers import LayeredCylinder
    from calolab.geometry.detector import Detector

CELL_FIELDS = ("kind", "r_edges", "n_alpha")


@dataclass(frozen=True)
class CylindricalGrid:
    """Bins in alpha (``n_alpha`` equal bins from -pi to pi) and r (``r_edges``, mm) of every layer.

    Parameters
    ----------
    r_edges
        Increasing radial bin edges in mm, ``n_r + 1`` of them, the first >= 0.
    n_alpha
        Number of equal bins in alpha = atan2(y, x), from -pi to pi.
    """

    r_edges: tuple[float, ...]
    n_alpha: int

    def __post_init__(self) -> None:
        r = np.asarray(self.r_edges, float)
        if r.ndim != 1 or len(r) < 2 or not np.all(np.isfinite(r)) or r[0] < 0 or np.any(np.diff(r) <= 0):
            raise CalolabError(f"cells.r_edges: expected at least two increasing radii >= 0 mm, "
                               f"got {list(self.r_edges)}")
        if not isinstance(self.n_alpha, int) or isinstance(self.n_alpha, bool) or self.n_alpha < 1:
            raise CalolabError(f"cells.n_alpha: expected an integer >= 1, got {self.n_alpha!r}")

    @property
    def n_r(self) -> int:
        return len(self.r_edges) - 1

    @property
    def r_max(self) -> float:
        """Outer radius of the last r bin in mm (beyond it deposits are lost)."""
        return float(self.r_edges[-1])

    def mask(self, n_layers: int) -> np.ndarray:
        """Which cells of ``n_layers`` layers are bins: all of them, bool ``(layers, n_alpha, n_r)``."""
        return np.ones((n_layers, self.n_alpha, self.n_r), bool)

    def outer_radius(self, layer: Any) -> np.ndarray:
        """``r_max`` in mm for each ``layer`` (every layer shares it), float of ``layer``'s shape."""
        return np.full(np.shape(layer), self.r_max)

    def layer_cells(self, layer: int) -> None:
        """A layer group's own ``cells:``: none, every layer has the detector's bins."""
        return None

    def contains(self, x: np.ndarray, y: np.ndarray, layer: Any = None) -> np.ndarray:
        """Whether points ``(x, y)`` mm lie in a bin (``r_edges[0] <= r < r_edges[-1]``), bool.

        ``layer`` is accepted for the interface of a per-layer binning; every layer has these bins.
        """
        r = np.hypot(np.asarray(x, float), np.asarray(y, float))
        return (r >= self.r_edges[0]) & (r < self.r_edges[-1])

    @cached_property
    def alpha_edges(self) -> np.ndarray:
        """Bin edges in alpha, rad, shape ``(n_alpha + 1,)`` from -pi to pi."""
        return np.linspace(-math.pi, math.pi, self.n_alpha + 1)

    @cached_property
    def alpha_centres(self) -> np.ndarray:
        return 0.5 * (self.alpha_edges[1:] + self.alpha_edges[:-1])

    @cached_property
    def r_centres(self) -> np.ndarray:
        """Middle of each r bin in mm, shape ``(n_r,)`` (CaloChallenge's ``r_midvalue``)."""
        r = np.asarray(self.r_edges, float)
        return 0.5 * (r[1:] + r[:-1])

    @cached_property
    def areas(self) -> np.ndarray:
        """Area of each bin in mm2, shape ``(n_alpha, n_r)``."""
        r = np.asarray(self.r_edges, float)
        ring = math.pi * np.diff(r * r) / self.n_alpha
        return np.broadcast_to(ring, (self.n_alpha, self.n_r)).copy()

    def bins(self, x: np.ndarray, y: np.ndarray, layer: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Alpha and r bins of points ``(x, y)`` mm and whether they lie inside the grid; int64, int64, bool.

        ``layer`` (ignored) is the interface of a per-layer binning
        (:class:`~calolab.geometry.cylinder_layers.LayeredCylinder`).
        """
        x, y = np.asarray(x, float), np.asarray(y, float)
        alpha = np.arctan2(y, x)  # [-pi, pi]
        ia = np.floor((alpha + math.pi) / (2 * math.pi / self.n_alpha)).astype(np.int64)
        ia = np.minimum(ia, self.n_alpha - 1)  # alpha = pi exactly (y = +0, x < 0) closes the last bin
        r = np.hypot(x, y)
        edges = np.asarray(self.r_edges, float)
        ir = np.searchsorted(edges, r, side="right") - 1
        inside = (ir >= 0) & (ir < self.n_r) & np.isfinite(r)
        return ia, np.where(inside, ir, 0).astype(np.int64), inside

    def centres(self, ia: np.ndarray, ir: np.ndarray, layer: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)`` in mm of the centres (middle alpha, middle r) of bins ``(ia, ir)``."""
        alpha, r = self.alpha_centres[np.asarray(ia)], self.r_centres[np.asarray(ir)]
        return r * np.cos(alpha), r * np.sin(alpha)

    def describe(self) -> str:
        return f"{self.n_alpha} alpha x {self.n_r} r bins (cylindrical, r < {self.r_edges[-1]:g} mm)"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "cylindrical", "r_edges": [float(r) for r in self.r_edges], "n_alpha": self.n_alpha}

    @classmethod
    def from_dict(cls, cells: dict[str, Any], where: str) -> CylindricalGrid:
        """The grid of a YAML ``cells: {kind: cylindrical, r_edges: [...], n_alpha: n}``."""
        from calolab.config import check_fields

        check_fields(cells, CELL_FIELDS, where)
        edges, n_alpha = cells.get("r_edges"), cells.get("n_alpha")
        numbers = isinstance(edges, list) and all(isinstance(r, int | float) and not isinstance(r, bool) for r in edges)
        if not numbers:
            raise CalolabError(f"{where}.r_edges: expected a list of radii in mm, got {edges!r}")
        try:
            return cls(tuple(float(r) for r in edges), n_alpha)  # type: ignore[arg-type]
        except CalolabError as exc:
            raise CalolabError(f"{where}: {str(exc).removeprefix('cells.')}") from None


def read_binning_xml(path: str | Path, particle: str | None = None) -> list[tuple[tuple[float, ...], int]]:
    """Per-layer ``(r_edges mm, n_alpha)`` of a CaloChallenge binning XML file.

    Parameters
    ----------
    path
        A file such as ``binning_dataset_2.xml``: ``<Bins><Bin name=...><Layer id r_edges
        n_bin_alpha/>...``.
    particle
        The ``name`` of the ``<Bin>`` to read; default: the file's only one.
    """
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise CalolabError(f"{path}: cannot read the binning XML ({exc})") from None
    bins = [b for b in root if b.tag == "Bin"]
    names = [b.attrib.get("name", "") for b in bins]
    if particle is None and len(bins) != 1:
        raise CalolabError(f"{path}: {len(bins)} <Bin> elements ({', '.join(names)}): pass particle=")
    chosen = bins[0] if particle is None else next((b for b in bins if b.attrib.get("name") == particle), None)
    if chosen is None:
        raise CalolabError(f"{path}: no <Bin name={particle!r}>; the file has {', '.join(names) or 'none'}")
    layers = []
    for k, layer in enumerate(e for e in chosen if e.tag == "Layer"):
        try:
            edges = tuple(float(s) for s in layer.attrib["r_edges"].split(","))
            n_alpha = int(layer.attrib["n_bin_alpha"])
        except (KeyError, ValueError):
            raise CalolabError(f"{path}: <Layer> {k}: expected r_edges (comma-separated mm) and n_bin_alpha") from None
        layers.append((edges, n_alpha))
    if not layers:
        raise CalolabError(f"{path}: <Bin name={chosen.attrib.get('name')!r}> has no <Layer> elements")
    return layers


def grid_from_xml(path: str | Path, particle: str | None = None) -> tuple[CylindricalGrid | LayeredCylinder, int]:
    """The bins of a CaloChallenge binning XML and its number of layers with bins.

    As in CaloChallenge's ``XMLHandler``, a ``<Layer>`` has ``(len(r_edges) - 1) * n_bin_alpha``
    voxels: a layer with ``r_edges="0"`` (dataset 1 keeps the ATLAS layer numbering, whose
    end-cap, HEC and forward layers a barrel shower does not reach) has none, adds nothing to
    the voxel offsets and is left out of the detector. Layers that all have the same bins give
    one :class:`CylindricalGrid` (datasets 2 and 3), other cases a
    :class:`~calolab.geometry.cylinder_layers.LayeredCylinder` (dataset 1).

    >>> import pathlib, tempfile
    >>> xml = pathlib.Path(tempfile.mkdtemp()) / "binning.xml"
    >>> _ = xml.write_text('<Bins><Bin pid="11" name="electron">'
    ...     '<Layer id="0" r_edges="0,4.65,9.3" n_bin_alpha="16"/><Layer id="1" r_edges="0,4.65,9.3" n_bin_alpha="16"/>'
    ...     '</Bin></Bins>')
    >>> grid, n_layers = grid_from_xml(xml)
    >>> grid.n_alpha, grid.n_r, n_layers
    (16, 2, 2)
    """
    from calolab.geometry.cylinder_layers import LayeredCylinder

    grids = []
    for k, (edges, n_alpha) in enumerate(read_binning_xml(path, particle)):
        if len(edges) < 2 or n_alpha == 0:  # no voxels (XMLHandler: r_bins * a_bins = 0)
            continue
        try:
            grids.append(CylindricalGrid(edges, n_alpha))
        except CalolabError as exc:
            raise CalolabError(f"{path}: <Layer> {k}: {str(exc).removeprefix('cells.')}") from None
    if not grids:
        raise CalolabError(f"{path}: no <Layer> has voxels (every r_edges is a single radius)")
    if all(g == grids[0] for g in grids):
        return grids[0], len(grids)
    return LayeredCylinder(tuple(grids)), len(grids)


def calochallenge_detector(xml_path: str | Path, layers: Any = None, particle: str | None = None,
                           name: str | None = None) -> Detector:
    """A cylindrical :class:`~calolab.geometry.detector.Detector` with the bins of a CaloChallenge XML.

    Parameters
    ----------
    xml_path
        A CaloChallenge binning file (datasets 1, 2 and 3); its layers without voxels
        (``r_edges="0"``) are left out.
    layers
        The layer stack, one layer per XML layer with voxels: a list of YAML layer groups,
        or a detector (a :class:`Detector`, preset name or YAML path) whose layers,
        materials and readout are taken; default: the stack of the ``calochallenge-ds2``
        preset (45 layers of W and Si) for equal bins on every layer, else the stack of
        ``calochallenge-ds1-photons`` (5 layers) or ``calochallenge-ds1-pions`` (7 layers),
        whichever has the file's number of layers with voxels.
    particle
        The ``<Bin name=...>`` to read; default: the file's only one.
    name
        The detector's name; default: the XML file's stem.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> xml = pathlib.Path(tempfile.mkdtemp()) / "binning.xml"
    >>> layer = '<Layer id="{}" r_edges="0,4.65,9.3,13.95" n_bin_alpha="16"/>'
    >>> _ = xml.write_text('<Bins><Bin pid="11" name="electron">'
    ...                          + "".join(layer.format(k) for k in range(45)) + "</Bin></Bins>")
    >>> det = calochallenge_detector(xml)
    >>> det.shape, det.layers[0].absorber
    ((45, 16, 3), 'W')
    """
    import dataclasses

    from calolab.geometry.detector import Detector
    from calolab.geometry.presets import load_detector

    cylinder, n_layers = grid_from_xml(xml_path, particle)
    first = cylinder if isinstance(cylinder, CylindricalGrid) else cylinder.grids[0]
    spec: dict[str, Any] = {"name": name or Path(xml_path).stem, "cells": first.to_dict()}
    if isinstance(layers, list):
        spec["layers"] = layers
    else:
        if layers is None:
            stacks = {5: "calochallenge-ds1-photons", 7: "calochallenge-ds1-pions"}
            layers = "calochallenge-ds2" if isinstance(cylinder, CylindricalGrid) else stacks.get(n_layers)
            if layers is None:
                raise CalolabError(f"{xml_path}: {n_layers} layers with voxels and no preset stack of that many: "
                                   "pass layers= with one layer per binned layer")
        base = load_detector(layers).to_dict()
        spec |= {k: base[k] for k in ("materials", "readout") if k in base}
        spec["layers"] = [{k: v for k, v in group.items() if k != "cells"} for group in base["layers"]]
    det = Detector.from_dict(spec, source=str(xml_path))
    if det.n_layers != n_layers:
        raise CalolabError(f"{xml_path}: {n_layers} layers in the binning, but the layer stack has {det.n_layers}: "
                           "pass layers= with one layer per binned layer")
    return dataclasses.replace(det, cylinder=cylinder, nx=cylinder.n_alpha, ny=cylinder.n_r,
                               description=f"the cylindrical bins of {Path(xml_path).name}")
