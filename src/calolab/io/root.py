"""ROOT files (uproot): a TTree ``showers`` with one entry per event and jagged hit branches.

Layout (energies in MeV, lengths in mm)::

    TTree "showers"
        n_hits            int32             hits in the event
        layer, x, y       int16[n_hits]     cell indices (int32 past 32767 cells along an axis)
        energy            float[n_hits]     visible energy, MeV
        particle          int32             PDG code
        incident_energy   double            MeV
        entry_x, entry_y  double            entry point on the front face, mm
        dir_x, dir_y, dir_z double          unit direction at entry
        extra_<name>                        per-event truth, one branch per extra
    TObjString "geometry"   the detector as YAML
    TObjString "calolab"    JSON: format, format_version, calolab_version
    TObjString "meta"       JSON of ``meta``

ROOT users read it with ``TTree::Draw("energy", "layer == 3")``; events are written a chunk
at a time, one basket per branch per chunk.
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
    FORMAT_VERSION,
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
from calolab.showers import Showers

TREE = "showers"
HIT_BRANCHES = ("layer", "x", "y", "energy")
EVENT_BRANCHES = ("particle", "incident_energy", "entry_x", "entry_y", "dir_x", "dir_y", "dir_z")


def write_root(showers: Showers, path: str | Path, chunk_events: int = 100_000) -> Path:
    """Write ``showers`` as a ROOT file (atomically) and return its path.

    ``chunk_events`` events go into each TTree basket.
    """
    uproot, ak = _uproot("writing")
    path = Path(path)
    check_extras(showers, path)
    dt = index_dtype(showers.detector).name
    types: dict[str, Any] = {"hits": f"var * {{layer: {dt}, x: {dt}, y: {dt}, energy: float32}}"}
    types |= {name: np.float64 for name in EVENT_BRANCHES} | {"particle": np.int32}
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


def read_root(path: str | Path, detector: Detector | str | None = None) -> Showers:
    """Read a calolab ROOT file; ``detector`` is needed if the file has no ``geometry``."""
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
            meta = _header(file, path)
            geometry = str(file["geometry"]) if "geometry" in file else None
            det = resolve_detector(geometry, detector, path)
            if TREE not in file or file.classname_of(TREE) != "TTree":
                raise CalolabError(f"{path}: missing TTree {TREE!r}")
            tree = file[TREE]
            names = list(tree.keys())
        for name in ("n_hits", *HIT_BRANCHES, *EVENT_BRANCHES):
            if name not in names:
                raise CalolabError(f"{path}: missing branch {name!r} in TTree {TREE!r}")

        def branch(name: str, library: str = "np") -> Any:
            with reading(path, f"branch {name!r} of TTree {TREE!r}"):
                return tree[name].array(library=library)

        counts = branch("n_hits").astype(np.int64)
        hits = {name: ak.to_numpy(ak.flatten(branch(name, "ak"))) for name in HIT_BRANCHES}
        scalars = {name: branch(name) for name in EVENT_BRANCHES}
        extras = {key.removeprefix("extra_"): branch(key) for key in names if key.startswith("extra_")}
    if any(len(hits[name]) != counts.sum() for name in HIT_BRANCHES):
        raise CalolabError(f"{path}: hit branches do not hold n_hits ({counts.sum()}) entries")
    for name, size in (("layer", det.n_layers), ("x", det.nx), ("y", det.ny)):
        values = hits[name]
        if len(values) and (values.min() < 0 or values.max() >= size):
            raise CalolabError(f"{path}: branch {name!r} has values outside [0, {size}) for {det.name!r}")
    layer, x, y = (hits[name].astype(np.int64) for name in ("layer", "x", "y"))
    return build_showers(
        path,
        det,
        offsets=np.concatenate([[0], np.cumsum(counts)]),
        cell=((layer * det.nx + x) * det.ny + y).astype(np.int32),
        energy=hits["energy"],
        particle=scalars["particle"],
        incident_energy=scalars["incident_energy"],
        entry=np.stack([scalars["entry_x"], scalars["entry_y"]], axis=-1).reshape(-1, 2),
        direction=np.stack([scalars[f"dir_{c}"] for c in "xyz"], axis=-1).reshape(-1, 3),
        extras=extras,
        meta=meta,
    )


def _branches(batch: Showers, ak: Any, dt: str) -> dict[str, Any]:
    """One ``tree.extend`` worth of branches from a batch of events."""
    counts = np.diff(batch.offsets)
    layer, x, y = (c.astype(dt) for c in batch.cell_coordinates())
    hits = {"layer": layer, "x": x, "y": y, "energy": batch.energy}
    out: dict[str, Any] = {"hits": ak.zip({k: ak.unflatten(v, counts) for k, v in hits.items()})}
    out |= {"particle": batch.particle, "incident_energy": batch.incident_energy}
    out |= {"entry_x": batch.entry[:, 0], "entry_y": batch.entry[:, 1]}
    out |= {f"dir_{c}": batch.direction[:, i] for i, c in enumerate("xyz")}
    out |= {f"extra_{name}": np.asarray(arr) for name, arr in batch.extras.items()}
    return out


def _header(file: Any, path: Path) -> dict[str, Any]:
    """Check the ``calolab`` header (absent in foreign files) and return ``meta``."""
    key = "calolab"
    try:
        if key in file:
            header = json.loads(str(file[key]))
            if header.get("format") != FORMAT:
                raise CalolabError(f"{path}: object 'calolab' does not name format {FORMAT!r}")
            if int(header.get("format_version", 0)) > FORMAT_VERSION:
                version = header["format_version"]
                raise CalolabError(f"{path}: format_version {version} is newer than this calolab reads")
        key = "meta"
        return meta_from_json(str(file[key])) if key in file else {}
    except DECODE_ERRORS:
        raise CalolabError(f"{path}: object {key!r} is not valid calolab JSON") from None


def _uproot(action: str) -> tuple[Any, ...]:
    return optional_modules(("uproot", "awkward"), "root", f"{action} ROOT")
