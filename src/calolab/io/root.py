"""ROOT files (uproot): a TTree ``showers`` with one entry per event and jagged hit branches.

Layout of format version 2; every branch name carries its unit (``_mev``, ``_mm``; the
cell indices and directions have none)::

    TTree "showers"
        n_hits                 int32            hits in the event
        layer, ix, iy          int16[n_hits]    cell indices (int32 past 32767 cells along an axis)
        energy_mev             float[n_hits]    visible energy of the hit, MeV
        x_mm, y_mm, z_mm       float[n_hits]    the cell centre: x, y from the detector's cell
                                                edges, z the middle of the layer's active slab, mm
        particle               int32            PDG code
        incident_energy_mev    double           MeV
        entry_x_mm, entry_y_mm double           entry point on the front face, mm
        dir_x, dir_y, dir_z    double           unit direction at entry
        extra_<name>                            per-event truth, one branch per extra
    TObjString "geometry"   the detector as YAML
    TObjString "calolab"    JSON: format, format_version (2), calolab_version
    TObjString "meta"       JSON of ``meta``

ROOT users read it with ``TTree::Draw("energy_mev", "layer == 3")`` or draw ``z_mm:x_mm``;
events are written a chunk at a time, one basket per branch per chunk. Files of format
version 1 (branches ``layer, x, y, energy``, ``incident_energy``, ``entry_x``, ``entry_y``)
still read. A tree from elsewhere (a TTree, TNtuple or RNTuple) under any name (``tree=``,
or the only one of the file), with one entry per hit or one entry per event, reads with
``columns=`` and ``energy_unit=`` (see :mod:`calolab.io.hittable`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from calolab.errors import CalolabError
from calolab.geometry import Detector
from calolab.io.atomic import atomic_path
from calolab.io.encoding import (
    DECODE_ERRORS,
    FORMAT,
    build_showers,
    calolab_version,
    check_extras,
    index_dtype,
    meta_from_json,
    meta_to_json,
    optional_modules,
    resolve_detector,
)
from calolab.io.failures import reading
from calolab.io.hittable import HIT_KEYS, HitRows, assemble, foreign_arrays, jagged_rows, missing, wanted
from calolab.showers import Showers

FORMAT_VERSION = 2
TREE = "showers"
TREE_CLASSES = ("TTree", "TNtuple", "TNtupleD", "ROOT::RNTuple")  # what a hit table may be stored as
# calolab's names -> the branch names of each format version
BRANCHES = {
    1: {"layer": "layer", "ix": "x", "iy": "y", "energy_mev": "energy", "incident_energy": "incident_energy",
        "entry_x": "entry_x", "entry_y": "entry_y"},
    2: {"layer": "layer", "ix": "ix", "iy": "iy", "energy_mev": "energy_mev", "incident_energy": "incident_energy_mev",
        "entry_x": "entry_x_mm", "entry_y": "entry_y_mm"},
}
DIRECTION = ("dir_x", "dir_y", "dir_z")


def write_root(showers: Showers, path: str | Path, chunk_events: int = 100_000) -> Path:
    """Write ``showers`` as a ROOT file (atomically) and return its path.

    ``chunk_events`` events go into each TTree basket.
    """
    uproot, ak = _uproot("writing")
    path = Path(path)
    check_extras(showers, path)
    dt = index_dtype(showers.detector).name
    hit_type = f"layer: {dt}, ix: {dt}, iy: {dt}, energy_mev: float32, x_mm: float32, y_mm: float32, z_mm: float32"
    names = BRANCHES[FORMAT_VERSION]
    types: dict[str, Any] = {"hits": f"var * {{{hit_type}}}", "particle": np.int32}
    types |= {names[key]: np.float64 for key in ("incident_energy", "entry_x", "entry_y")}
    types |= {name: np.float64 for name in DIRECTION}
    types |= {f"extra_{name}": np.asarray(arr).dtype for name, arr in showers.extras.items()}
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "calolab_version": calolab_version()}
    with atomic_path(path) as tmp, uproot.recreate(tmp) as file:
        file["geometry"] = showers.detector.to_yaml()
        file["calolab"] = json.dumps(header)
        file["meta"] = meta_to_json(showers.meta)
        tree = file.mktree(TREE, types, counter_name=lambda _: "n_hits", field_name=lambda _, inner: inner)
        for start in range(0, len(showers), chunk_events):
            tree.extend(_branches(showers[start : start + chunk_events], ak, dt))
    return path


def _branches(batch: Showers, ak: Any, dt: str) -> dict[str, Any]:
    """One ``tree.extend`` worth of branches from a batch of events."""
    counts = np.diff(batch.offsets)
    layer, ix, iy = (c.astype(dt) for c in batch.cell_coordinates())
    x, y, z = (c.astype(np.float32) for c in batch.positions())
    hits = {"layer": layer, "ix": ix, "iy": iy, "energy_mev": batch.energy, "x_mm": x, "y_mm": y, "z_mm": z}
    names = BRANCHES[FORMAT_VERSION]
    out: dict[str, Any] = {"hits": ak.zip({k: ak.unflatten(v, counts) for k, v in hits.items()})}
    out |= {"particle": batch.particle, names["incident_energy"]: batch.incident_energy}
    out |= {names["entry_x"]: batch.entry[:, 0], names["entry_y"]: batch.entry[:, 1]}
    out |= {name: batch.direction[:, i] for i, name in enumerate(DIRECTION)}
    out |= {f"extra_{name}": np.asarray(arr) for name, arr in batch.extras.items()}
    return out


def read_root(path: str | Path, detector: Detector | str | None = None, columns: dict[str, str] | None = None,
              energy_unit: str = "MeV", tree: str | None = None) -> Showers:
    """Read a ROOT file.

    Parameters
    ----------
    detector
        Needed if the file has no ``geometry``; else it replaces the stored one (same shape).
    columns, energy_unit, tree
        Read a tree from elsewhere as a hit table (see :mod:`calolab.io.hittable`): the
        default for a file without calolab's header. ``tree`` names it (default: the
        file's only TTree).
    """
    uproot, ak = _uproot("reading")
    path = Path(path)
    if not path.is_file():
        raise CalolabError(f"{path}: no such file")
    try:
        file = uproot.open(path)
    except (ValueError, OSError) as exc:
        raise CalolabError(f"{path}: not a ROOT file ({str(exc).splitlines()[0]})") from None
    with file:
        with reading(path, "its directory (objects 'calolab', 'meta', 'geometry', TTree 'showers')"):
            version, meta = _header(file, path)
            geometry = str(file["geometry"]) if "geometry" in file else None
            det = resolve_detector(geometry, detector, path)
            native = bool(version) and columns is None and tree is None
            name = TREE if native else _tree_name(file, path, tree)
        if native:
            if energy_unit != "MeV":
                raise CalolabError(f"{path}: a calolab file, whose energies are MeV: energy_unit={energy_unit!r} "
                                   "applies to trees read with columns=")
            return _native(file, path, det, version, meta, ak)
        with reading(path, f"its directory (TTree {name!r})"):
            ttree = file[name]
        return _foreign(ttree, name, path, det, columns, energy_unit, ak)


def _native(file: Any, path: Path, det: Detector, version: int, meta: dict[str, Any], ak: Any) -> Showers:
    """A file calolab wrote (format version 1 or 2)."""
    names = BRANCHES[min(version, FORMAT_VERSION)]
    with reading(path, f"its directory (TTree {TREE!r})"):
        if TREE not in file or file.classname_of(TREE) != "TTree":
            raise CalolabError(f"{path}: missing TTree {TREE!r}")
        tree = file[TREE]
        present = list(tree.keys())
    hit_names = [names[key] for key in ("layer", "ix", "iy", "energy_mev")]
    event_names = ["particle", names["incident_energy"], names["entry_x"], names["entry_y"], *DIRECTION]
    for name in ("n_hits", *hit_names, *event_names):
        if name not in present:
            raise CalolabError(f"{path}: missing branch {name!r} in TTree {TREE!r}")

    def branch(name: str, library: str = "np") -> Any:
        with reading(path, f"branch {name!r} of TTree {TREE!r}"):
            return tree[name].array(library=library)

    counts = branch("n_hits").astype(np.int64)
    hits = {key: ak.to_numpy(ak.flatten(branch(names[key], "ak"))) for key in ("layer", "ix", "iy", "energy_mev")}
    if any(len(values) != counts.sum() for values in hits.values()):
        raise CalolabError(f"{path}: hit branches do not hold n_hits ({counts.sum()}) entries")
    scalars = {name: branch(name) for name in event_names}
    extras = {key.removeprefix("extra_"): branch(key) for key in present if key.startswith("extra_")}
    rows = jagged_rows(counts, hits, {})
    arrays = assemble(path, det, rows, {key: names[key] for key in hits}, "branch", keep_order=True)
    arrays.pop("ids")
    arrays.pop("per_event")
    return build_showers(
        path, det, **arrays,
        particle=scalars["particle"],
        incident_energy=scalars[names["incident_energy"]],
        entry=np.stack([scalars[names["entry_x"]], scalars[names["entry_y"]]], axis=-1).reshape(-1, 2),
        direction=np.stack([scalars[name] for name in DIRECTION], axis=-1).reshape(-1, 3),
        extras=extras,
        meta=meta,
    )


def _foreign(tree: Any, tree_name: str, path: Path, det: Detector, columns: dict[str, str] | None, unit: str,
             ak: Any) -> Showers:
    """A tree from elsewhere: one entry per hit, or one entry per event with jagged hit branches."""
    names, optional = wanted(columns, ("event", "incident_energy_mev", "particle"))
    present = list(tree.keys())
    where = f"branch of TTree {tree_name!r}"
    for key in ("layer", "ix", "iy", "energy_mev"):
        if names[key] not in present:
            raise missing(path, where, key, names[key], present)
    for key in {"event", "incident_energy_mev", "particle"} - optional:  # asked for by name
        if names[key] not in present:
            raise missing(path, where, key, names[key], present)
    used = {key: name for key, name in names.items() if name in present}
    arrays = {}
    for key, name in used.items():
        with reading(path, f"branch {name!r} of TTree {tree_name!r}"):
            arrays[key] = tree[name].array(library="ak")
    deep = [key for key, arr in arrays.items() if arr.ndim > 2]
    if deep:
        raise CalolabError(f"{path}: branch {used[deep[0]]!r} of TTree {tree_name!r} is nested {arrays[deep[0]].ndim} "
                           "deep: expected one value per entry, or one list of hits per entry")
    jagged = {key: arr.ndim > 1 for key, arr in arrays.items()}
    per_hit = {jagged[key] for key in ("layer", "ix", "iy", "energy_mev")}
    if len(per_hit) > 1:
        raise CalolabError(f"{path}: TTree {tree_name!r} mixes jagged and flat hit branches: expected all of "
                           f"{', '.join(used[k] for k in ('layer', 'ix', 'iy', 'energy_mev'))} one or the other")
    event_keys = [key for key in ("event", "incident_energy_mev", "particle") if key in arrays]
    if jagged["layer"]:
        for key in event_keys:
            if jagged[key]:
                raise CalolabError(f"{path}: branch {used[key]!r} of TTree {tree_name!r} is jagged: expected one "
                                   f"value per entry (event), like the other per-event branches")
        counts = ak.to_numpy(ak.num(arrays["layer"])).astype(np.int64)
        hits = {}
        for key in ("layer", "ix", "iy", "energy_mev"):
            if not np.array_equal(ak.to_numpy(ak.num(arrays[key])), counts):
                raise CalolabError(f"{path}: branch {used[key]!r} of TTree {tree_name!r} holds other numbers of "
                                   f"hits than {used['layer']!r}")
            hits[key] = ak.to_numpy(ak.flatten(arrays[key]))
        per_entry = {key: ak.to_numpy(arrays[key]) for key in event_keys if key != "event"}
        event = ak.to_numpy(arrays["event"]) if "event" in arrays else None
        rows = jagged_rows(counts, hits, per_entry, event)
    else:
        if "event" not in arrays:
            raise missing(path, where, "event", names["event"], present)
        flat = {key: ak.to_numpy(arr) for key, arr in arrays.items()}
        rows = HitRows(*(flat[key] for key in HIT_KEYS),
                       per_event={key: flat[key] for key in event_keys if key != "event"})
    return build_showers(path, det, **foreign_arrays(path, det, rows, used, "branch", unit))


def _tree_name(file: Any, path: Path, tree: str | None) -> str:
    """``tree``, checked to be a TTree of the file, or the file's only TTree."""
    trees = sorted({key.rsplit(";", 1)[0] for key, cls in file.classnames().items() if cls in TREE_CLASSES})
    if tree is not None:
        if tree not in trees:
            raise CalolabError(f"{path}: no TTree {tree!r}: the file has {', '.join(trees) or 'none'}")
        return tree
    if len(trees) != 1:
        raise CalolabError(f"{path}: {len(trees)} TTrees ({', '.join(trees) or 'none'}): name one with tree= (--tree)")
    return trees[0]


def _header(file: Any, path: Path) -> tuple[int, dict[str, Any]]:
    """Format version of the ``calolab`` header (0 in files from elsewhere) and ``meta``."""
    key = "calolab"
    version = 0
    try:
        if key in file:
            header = json.loads(str(file[key]))
            if header.get("format") != FORMAT:
                raise CalolabError(f"{path}: object 'calolab' does not name format {FORMAT!r}")
            version = max(1, int(header.get("format_version", 1)))
            if version > FORMAT_VERSION:
                raise CalolabError(f"{path}: format_version {version} is newer than this calolab reads")
        key = "meta"
        return version, meta_from_json(str(file[key])) if key in file else {}
    except DECODE_ERRORS:
        raise CalolabError(f"{path}: object {key!r} is not valid calolab JSON") from None


def _uproot(action: str) -> tuple[Any, ...]:
    return optional_modules(("uproot", "awkward"), "root", f"{action} ROOT")
