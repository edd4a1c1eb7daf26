"""The YAML (or dict) form of a detector: fields, checks and the parser behind ``Detector.from_dict``.

A detector spec has ``name``, ``cells`` and ``layers`` and optionally ``description``,
``field_tesla`` (T), ``materials`` (compounds by composition) and ``readout`` (every layer's
default readout). ``cells`` is a Cartesian grid ``{nx, ny, pitch | pitch_x, pitch_y}`` (mm) or
cylindrical bins ``{kind: cylindrical, r_edges, n_alpha}``; in a cylindrical detector a layer
group's ``cells: {r_edges, n_alpha}`` gives its layers bins of their own
(:mod:`calolab.geometry.cylinder_layers`). A layer group is the shorthand
``{absorber, absorber_thickness, active, active_thickness, repeat}`` (mm), a stack
``{slabs: [{material, thickness, active}], readout, cells, repeat}`` or a repeated sequence
``{layers: [...], readout, repeat}`` (a cassette). Any problem raises a one-line
:class:`~calolab.errors.CalolabError` naming the source and the field.

>>> det = parse_detector({"name": "toy", "cells": {"nx": 2, "ny": 2, "pitch": 5.0},
...                       "layers": [{"absorber": "Pb", "absorber_thickness": 2.0, "active": "Scintillator",
...                                   "active_thickness": 3.0, "repeat": 4}]}, "toy.yaml")
>>> det.shape, det.layers[0].thickness  # (layers, nx, ny), mm
((4, 2, 2), 5.0)
>>> parse_detector({"name": "toy", "cells": {"nx": 2, "ny": 2}, "layers": []}, "toy.yaml")
Traceback (most recent call last):
...
calolab.errors.CalolabError: toy.yaml: cells: missing field 'pitch_x'
"""

from __future__ import annotations

import math
from typing import Any

from calolab.config import check_fields
from calolab.errors import CalolabError

from calolab.geometry.materials import Material, get_material  # isort: skip (compounds needs it first)
from calolab.geometry.compounds import materials_from_spec
from calolab.geometry.cylinder import CylindricalGrid
from calolab.geometry.cylinder_layers import LayeredCylinder, parse_layer_cells
from calolab.geometry.detector import Detector
from calolab.geometry.layer import Layer, Readout, Slab
from calolab.geometry.tiling import Tiles, check_tiles


def _require(spec: dict, key: str, where: str, kind: type | tuple = (int, float)) -> Any:
    if not isinstance(spec, dict) or key not in spec:
        raise CalolabError(f"{where}: missing field {key!r}")
    value = spec[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise CalolabError(f"{where}.{key}: expected {getattr(kind, '__name__', 'a number')}, got {value!r}")
    return value


def _positive(spec: dict, key: str, where: str, allow_zero: bool = False) -> float:
    value = float(_require(spec, key, where))
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise CalolabError(f"{where}.{key}: must be {'>= 0' if allow_zero else 'positive'}, got {value!r}")
    return value


def _material(spec: dict, key: str, where: str, extra: dict[str, Material]) -> Material:
    name = _require(spec, key, where, str)
    try:
        return get_material(name, extra)
    except CalolabError as exc:
        raise CalolabError(f"{where}.{key}: {exc}") from None


TOP_FIELDS = ("name", "description", "cells", "field_tesla", "materials", "readout", "layers",
              "photoelectrons_per_mev", "excess_noise_factor")
SHORTHAND_FIELDS = ("absorber", "absorber_thickness", "active", "active_thickness")
STACK_FIELDS = ("slabs", "readout", "cells")
Grid = tuple[int, int, float, float]  # nx, ny, pitch_x, pitch_y


def _stack(group: dict, where: str, extra: dict[str, Material]) -> tuple[Slab, ...]:
    """The slabs of a layer group, in either of its two forms."""
    shorthand = [k for k in SHORTHAND_FIELDS if k in group]
    if "slabs" in group:
        if shorthand:
            raise CalolabError(f"{where}: give either slabs or {'/'.join(SHORTHAND_FIELDS)}, not both "
                               f"(found {shorthand[0]!r} beside slabs)")
        entries = _require(group, "slabs", where, list)
        slabs = []
        for j, entry in enumerate(entries):
            at = f"{where}.slabs[{j}]"
            check_fields(entry if isinstance(entry, dict) else {}, ("material", "thickness", "active"), at)
            active = entry.get("active", False) if isinstance(entry, dict) else False
            if not isinstance(active, bool):
                raise CalolabError(f"{at}.active: must be true or false, got {active!r}")
            slabs.append(Slab(_material(entry, "material", at, extra), _positive(entry, "thickness", at), active))
        n_active = sum(s.active for s in slabs)
        if n_active != 1:
            raise CalolabError(f"{where}.slabs: exactly one slab must be active: true, found {n_active}")
        return tuple(slabs)
    slabs = [Slab(_material(group, "active", where, extra), _positive(group, "active_thickness", where), True)]
    if group.get("absorber") is not None:
        absorber = _material(group, "absorber", where, extra)
        thickness = _positive(group, "absorber_thickness", where, allow_zero=True)
        if thickness > 0:
            slabs.insert(0, Slab(absorber, thickness))
    return tuple(slabs)


def _tiles(group: dict, where: str, grid: Grid) -> tuple[Tiles, ...]:
    """The readout cells of a layer group's ``cells:``: ``{pitch | pitch_x, pitch_y}`` for one size,
    or a list of such regions from the axis outwards, each but the last with ``within`` (or
    ``within_x``, ``within_y``), the half-width in mm of the centred square it fills."""
    if "cells" not in group:
        return ()
    nx, ny, base_x, base_y = grid
    if base_x == 0:
        raise CalolabError(f"{where}.cells: a cylindrical detector's layers all share its (alpha, r) bins")
    regions = group["cells"]
    listed = isinstance(regions, list)
    regions = regions if listed else [regions]
    out = []
    for k, cells in enumerate(regions):
        at = f"{where}.cells" + (f"[{k}]" if listed else "")
        if not isinstance(cells, dict):
            raise CalolabError(f"{at}: expected a mapping with pitch (or pitch_x, pitch_y) and, in a list, within")
        bounds = ("within", "within_x", "within_y") if listed else ()
        check_fields(cells, ("pitch", "pitch_x", "pitch_y", *bounds), at)
        gang = []
        for axis, n, base in (("x", nx, base_x), ("y", ny, base_y)):
            key = "pitch" if "pitch" in cells else f"pitch_{axis}"
            pitch = _positive(cells, key, at) if key in cells else base
            g = round(pitch / base)
            if g < 1 or abs(pitch - g * base) > 1e-6 * base or (not listed and n % g):
                raise CalolabError(f"{at}.{key}: {pitch:g} mm must be a whole number of the grid's {base:g} mm cells "
                                   f"that divides its {n} cells along {axis}")
            gang.append(g)
        within = None
        if any(k in cells for k in ("within", "within_x", "within_y")):
            wx = _positive(cells, "within" if "within" in cells else "within_x", at)
            wy = _positive(cells, "within" if "within" in cells else "within_y", at)
            within = (wx / base_x, wy / base_y)
        out.append(Tiles((gang[0], gang[1]), within))
    tiles = tuple(out)
    check_tiles(tiles, nx, ny, f"{where}.cells")
    return () if tiles == (Tiles((1, 1)),) else tiles


def _layers(groups: list, where: str, extra: dict[str, Material], readout: Readout, grid: Grid) -> list[Layer]:
    """The layers of a list of groups; a group ``{layers: [...], repeat: n}`` repeats a sequence (a cassette)."""
    if not groups:
        raise CalolabError(f"{where}: must list at least one layer")
    layers: list[Layer] = []
    for i, group in enumerate(groups):
        at = f"{where}[{i}]"
        if not isinstance(group, dict):
            raise CalolabError(f"{at}: expected a mapping")
        if "layers" in group:
            check_fields(group, ("layers", "readout", "repeat"), at)
            inner = Readout.from_dict(group.get("readout"), f"{at}.readout", readout)
            block = _layers(_require(group, "layers", at, list), f"{at}.layers", extra, inner, grid)
        else:
            check_fields(group, (*SHORTHAND_FIELDS, *STACK_FIELDS, "repeat"), at)
            block = [Layer(_stack(group, at, extra), Readout.from_dict(group.get("readout"), f"{at}.readout", readout),
                           _tiles(group, at, grid))]
        repeat = group.get("repeat", 1)
        if not isinstance(repeat, int) or isinstance(repeat, bool) or repeat < 1:
            raise CalolabError(f"{at}.repeat: must be an integer >= 1, got {repeat!r}")
        layers.extend(block * repeat)
    return layers


def _default_readout(spec: dict, source: str) -> Readout:
    legacy = {k: spec[k] for k in ("photoelectrons_per_mev", "excess_noise_factor") if spec.get(k) is not None}
    if legacy and "readout" in spec:
        raise CalolabError(f"{source}: move {', '.join(legacy)} into readout: (they are readout fields)")
    return Readout.from_dict(spec.get("readout", legacy or None), f"{source}: readout")


def parse_detector(spec: Any, source: str) -> Detector:
    """The :class:`Detector` of a spec dict read from ``source`` (a file name, for error messages)."""
    if not isinstance(spec, dict):
        raise CalolabError(f"{source}: expected a mapping with name, cells and layers")
    check_fields(spec, TOP_FIELDS, source)
    name = _require(spec, "name", source, str)
    cells = _require(spec, "cells", source, dict)
    where = f"{source}: cells"
    kind = cells.get("kind", "cartesian")
    if kind not in ("cartesian", "cylindrical"):
        raise CalolabError(f"{where}.kind: expected cartesian or cylindrical, got {kind!r}")
    cylinder: CylindricalGrid | LayeredCylinder | None = None
    stack = spec
    if kind == "cylindrical":  # a group's cells: are its layers' own (alpha, r) bins
        cylinder, groups = parse_layer_cells(cells, spec.get("layers"), where, f"{source}: layers")
        stack = {**spec, "layers": groups} if "layers" in spec else spec
    if cylinder is not None:  # no pitch: reading one raises; per-layer bins pad to the largest
        nx, ny, pitch_x, pitch_y = cylinder.n_alpha, cylinder.n_r, 0.0, 0.0
    else:
        nx, ny = (_require(cells, k, where, int) for k in ("nx", "ny"))
        if nx < 1 or ny < 1:
            raise CalolabError(f"{where}: nx and ny must be >= 1, got {nx} x {ny}")
        if "pitch" in cells:
            pitch_x = pitch_y = _positive(cells, "pitch", where)
        else:
            pitch_x, pitch_y = _positive(cells, "pitch_x", where), _positive(cells, "pitch_y", where)
    materials = spec.get("materials") or {}
    extra = materials_from_spec(materials, source) if materials else {}
    readout = _default_readout(spec, source)
    layers = _layers(_require(stack, "layers", source, list), f"{source}: layers", extra, readout,
                     (nx, ny, pitch_x, pitch_y))
    field_tesla = float(spec.get("field_tesla", 0.0) or 0.0)
    return Detector(
        name=name,
        layers=tuple(layers),
        nx=nx,
        ny=ny,
        _pitch_x=pitch_x,
        _pitch_y=pitch_y,
        field_tesla=field_tesla,
        cylinder=cylinder,
        description=str(spec.get("description", "")),
        materials=dict(materials),
        _source=source,
    )
