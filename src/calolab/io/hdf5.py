"""calolab's own HDF5 showers file: the sparse :class:`Showers` arrays as datasets.

Layout (``N`` events, ``H`` hits; energies in MeV, lengths in mm)::

    offsets          int64   (N + 1,)   event i owns hits offsets[i]:offsets[i + 1]
    cell             int32   (H,)       flat cell index (layer * nx + x) * ny + y
    energy           float32 (H,)       visible energy, MeV
    particle         int32   (N,)       PDG code
    incident_energy  float64 (N,)       MeV
    entry            float64 (N, 2)     entry point (x, y) on the front face, mm
    direction        float64 (N, 3)     unit direction at entry
    extras/<name>            (N,)       per-event truth
    meta_arrays/<i>                     numpy arrays referenced from the ``meta`` attribute
    attributes: format="calolab-showers", format_version=1, calolab_version,
                geometry (the detector as YAML), meta (JSON)

Every dataset is chunked and gzip-compressed; :func:`iter_hdf5` reads a few events at a
time, so files larger than memory can be processed. An HDF5 hit table from elsewhere, one
1-D dataset per column, reads with :func:`read_hdf5_table`.

>>> import tempfile
>>> import numpy as np
>>> from calolab.geometry import load_detector
>>> dense = np.zeros((3, 15, 32, 32), np.float32); dense[0, 2, 5, 6] = 4.0; dense[2, 0, 1, 1] = 0.5
>>> s = Showers.from_dense(load_detector("siw-ecal"), dense, particle=22, incident_energy=[1e3] * 3)
>>> path = write_hdf5(s, tempfile.mkdtemp() + "/photons.h5")
>>> back = read_hdf5(path)
>>> back.detector == s.detector, bool(np.array_equal(back.dense(), dense))
(True, True)
>>> [len(batch) for batch in iter_hdf5(path, chunk_events=2)]
[2, 1]
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from calolab.errors import CalolabError
from calolab.geometry import Detector
from calolab.io.atomic import atomic_path
from calolab.io.encoding import (
    DECODE_ERRORS,
    FORMAT,
    FORMAT_VERSION,
    array_from_json,
    array_to_json,
    build_showers,
    calolab_version,
    check_extras,
    meta_from_json,
    meta_to_json,
    resolve_detector,
)
from calolab.io.failures import reading
from calolab.io.hittable import HIT_KEYS, HitRows, foreign_arrays, missing, wanted
from calolab.showers import Showers

CHUNK_BYTES = 1 << 20  # target size of one compressed HDF5 chunk before compression


def write_hdf5(showers: Showers, path: str | Path) -> Path:
    """Write ``showers`` to a calolab HDF5 file (atomically) and return its path."""
    path = Path(path)
    check_extras(showers, path)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["calolab_version"] = calolab_version()
        f.attrs["geometry"] = showers.detector.to_yaml()
        put_dataset(f, "offsets", showers.offsets)
        put_dataset(f, "cell", showers.cell)
        put_dataset(f, "energy", showers.energy)
        put_dataset(f, "incident_energy", showers.incident_energy)
        write_event_info(f, showers)
    return path


def read_hdf5(path: str | Path, detector: Detector | str | None = None) -> Showers:
    """Read a whole calolab HDF5 file; ``detector`` overrides the stored one (same shape)."""
    path = Path(path)
    with open_hdf5(path) as f:
        with reading(path, "the file's header (attributes and datasets)"):
            det, meta, n = _header(f, path, detector)
        return _read_range(f, path, det, meta, 0, n)


def iter_hdf5(
    path: str | Path, chunk_events: int = 65536, detector: Detector | str | None = None
) -> Iterator[Showers]:
    """Yield the events of a calolab HDF5 file in batches of ``chunk_events``.

    Only one batch of hits is in memory at a time. The file is checked before the first
    batch is asked for.
    """
    path = Path(path)
    if chunk_events < 1:
        raise CalolabError(f"chunk_events must be >= 1, got {chunk_events}")
    with open_hdf5(path) as f, reading(path, "the file's header (attributes and datasets)"):
        det, meta, n = _header(f, path, detector)

    def batches() -> Iterator[Showers]:
        with open_hdf5(path) as f:
            for start in range(0, n, chunk_events):
                yield _read_range(f, path, det, meta, start, min(start + chunk_events, n))

    return batches()


def read_hdf5_table(path: str | Path, detector: Detector | str | None = None,
                    columns: dict[str, str] | None = None, energy_unit: str = "MeV") -> Showers:
    """Read an HDF5 hit table: one 1-D dataset per column (see :mod:`calolab.io.hittable`).

    Hit columns hold one value per hit; a per-event column (``incident_energy_mev``,
    ``particle``) one value per hit, or one per event in the order of the event numbers.
    Dataset names may include groups (``columns={"energy_mev": "hits/e"}``). ``detector``
    is needed unless the file has a ``geometry`` attribute.
    """
    path = Path(path)
    names, optional = wanted(columns)
    with open_hdf5(path) as f:
        geometry = f.attrs.get("geometry")
        det = resolve_detector(None if geometry is None else str(geometry), detector, path)
        present = [name for name in f if isinstance(f[name], h5py.Dataset)]
        values = {}
        for key, name in names.items():
            if not isinstance(f.get(name), h5py.Dataset):
                if key in optional:
                    continue
                raise missing(path, "dataset", key, name, present)
            ds = get_dataset(f, name, path, (None,))
            values[key] = read_rows(ds, path, 0, ds.shape[0], "rows")
    used = {key: names[key] for key in values}
    rows = HitRows(*(values[key] for key in HIT_KEYS),
                   per_event={key: values[key] for key in ("incident_energy_mev", "particle") if key in values})
    lengths = {used[key]: len(values[key]) for key in HIT_KEYS}
    if len(set(lengths.values())) > 1:
        raise CalolabError(f"{path}: hit datasets of different lengths ({lengths}): expected one value per hit each")
    return build_showers(path, det, **foreign_arrays(path, det, rows, used, "dataset", energy_unit))


# ------------------------------------------------------------------ helpers shared by formats
def open_hdf5(path: Path) -> h5py.File:
    """Open an HDF5 file for reading; a missing or foreign file is a :class:`CalolabError`."""
    if not path.is_file():
        raise CalolabError(f"{path}: no such file")
    if not h5py.is_hdf5(path):
        raise CalolabError(f"{path}: not an HDF5 file")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise CalolabError(f"{path}: cannot open HDF5 file ({str(exc).splitlines()[0]})") from None


def layout(f: h5py.File) -> str:
    """``"calolab"``, ``"calochallenge"`` or ``"table"`` (a hit table with calolab's column
    names): which HDF5 layout ``f`` holds."""
    if f.attrs.get("format") == FORMAT:
        return "calolab"
    if "showers" in f or "incident_energies" in f:
        return "calochallenge"
    if all(key in f for key in HIT_KEYS):
        return "table"
    raise CalolabError(
        f"{f.filename}: neither a calolab showers file (attribute format={FORMAT!r}), a "
        "CaloChallenge file (datasets 'incident_energies' and 'showers') nor a hit table (datasets "
        f"{', '.join(HIT_KEYS)}, or others named with columns=)"
    )


def put_dataset(group: h5py.Group, name: str, data: Any) -> h5py.Dataset:
    """Store an array as a chunked, gzip-compressed dataset (plain if scalar or empty)."""
    data = np.asarray(data)
    if data.ndim == 0 or data.size == 0:
        return group.create_dataset(name, data=data)
    row_bytes = max(1, data[:1].nbytes)
    rows = int(min(len(data), max(1, CHUNK_BYTES // row_bytes)))
    return group.create_dataset(
        name, data=data, chunks=(rows, *data.shape[1:]), compression="gzip", compression_opts=4, shuffle=True
    )


def get_dataset(
    group: h5py.Group, name: str, path: Path, shape: tuple[int | None, ...] | None
) -> h5py.Dataset:
    """Dataset ``name`` of ``group``, checked against ``shape`` (``None``: any length or shape)."""
    full = f"{group.name.strip('/')}/{name}".lstrip("/")
    if name not in group or not isinstance(group[name], h5py.Dataset):
        raise CalolabError(f"{path}: missing dataset {full!r}")
    ds = group[name]
    if shape is None:
        return ds
    if len(ds.shape) != len(shape) or any(want not in (None, got) for want, got in zip(shape, ds.shape, strict=True)):
        want = "(" + ", ".join("n" if s is None else str(s) for s in shape) + (",)" if len(shape) == 1 else ")")
        raise CalolabError(f"{path}: dataset {full!r} has shape {ds.shape}, expected {want}")
    return ds


def write_event_info(group: h5py.Group, showers: Showers) -> None:
    """Store particle, entry, direction, extras and meta (with its arrays) in ``group``."""
    for name in ("particle", "entry", "direction"):
        put_dataset(group, name, getattr(showers, name))
    extras = group.create_group("extras")
    for name, arr in showers.extras.items():
        put_dataset(extras, name, arr)
    arrays = group.create_group("meta_arrays")

    def put_array(arr: np.ndarray) -> Any:
        if arr.dtype.kind not in "biufc":  # strings and the like go inline in the JSON
            return array_to_json(arr)
        name = str(len(arrays))
        put_dataset(arrays, name, arr)
        return {"dataset": f"meta_arrays/{name}"}

    group.attrs["meta"] = meta_to_json(showers.meta, put_array)


def read_rows(ds: h5py.Dataset, path: Path, start: int, stop: int, unit: str = "events") -> np.ndarray:
    """Rows ``start:stop`` of ``ds``; damaged bytes (a failing gzip chunk, a truncation) give a
    one-line :class:`CalolabError` naming the dataset and the rows."""
    with reading(path, f"dataset {ds.name.lstrip('/')!r} ({unit} {start}-{stop})"):
        return ds[start:stop]


def read_event_info(group: h5py.Group, path: Path, n: int, start: int, stop: int) -> dict[str, Any]:
    """Particle, entry, direction and extras of events ``start:stop`` as keyword arguments."""
    out = {
        "particle": read_rows(get_dataset(group, "particle", path, (n,)), path, start, stop),
        "entry": read_rows(get_dataset(group, "entry", path, (n, 2)), path, start, stop),
        "direction": read_rows(get_dataset(group, "direction", path, (n, 3)), path, start, stop),
    }
    extras = group.get("extras", {})
    out["extras"] = {name: read_rows(get_dataset(extras, name, path, (n,)), path, start, stop) for name in extras}
    return out


def read_meta(group: h5py.Group, path: Path) -> dict[str, Any]:
    """The ``meta`` dict stored by :func:`write_event_info` (empty if there is none)."""
    if "meta" not in group.attrs:
        return {}

    def get_array(ref: dict[str, Any]) -> np.ndarray:
        if "dataset" not in ref:
            return array_from_json(ref)
        ds = group.get(ref["dataset"])
        if not isinstance(ds, h5py.Dataset):
            raise CalolabError(f"{path}: missing dataset {ref['dataset']!r} named in attribute 'meta'")
        with reading(path, f"dataset {ref['dataset']!r}"):
            return np.asarray(ds[()])

    try:
        return meta_from_json(str(group.attrs["meta"]), get_array)
    except DECODE_ERRORS:
        raise CalolabError(f"{path}: attribute 'meta' is not valid calolab meta JSON") from None


# ------------------------------------------------------------------ reading
def _header(f: h5py.File, path: Path, detector: Any) -> tuple[Detector, dict[str, Any], int]:
    kind = layout(f)
    if kind != "calolab":
        reader = "read_calochallenge" if kind == "calochallenge" else "read_hdf5_table"
        raise CalolabError(f"{path}: a {kind} file, not a calolab showers file: use {reader}")
    version = int(f.attrs.get("format_version", 0))
    if version > FORMAT_VERSION:
        raise CalolabError(
            f"{path}: format_version {version} is newer than this calolab reads ({FORMAT_VERSION}); upgrade calolab"
        )
    geometry = f.attrs.get("geometry")
    det = resolve_detector(None if geometry is None else str(geometry), detector, path)
    n = get_dataset(f, "incident_energy", path, (None,)).shape[0]
    return det, read_meta(f, path), n


def _read_range(f: h5py.File, path: Path, det: Detector, meta: dict, start: int, stop: int) -> Showers:
    n = f["incident_energy"].shape[0]
    cell = get_dataset(f, "cell", path, (None,))
    energy = get_dataset(f, "energy", path, (cell.shape[0],))
    offsets = read_rows(get_dataset(f, "offsets", path, (n + 1,)), path, start, stop + 1)
    if np.any(np.diff(offsets) < 0) or offsets[0] < 0 or offsets[-1] > cell.shape[0]:
        raise CalolabError(f"{path}: dataset 'offsets' must be non-decreasing within [0, {cell.shape[0]}]")
    lo, hi = int(offsets[0]), int(offsets[-1])
    return build_showers(
        path,
        det,
        offsets=offsets - lo,
        cell=read_rows(cell, path, lo, hi, "hits"),
        energy=read_rows(energy, path, lo, hi, "hits"),
        incident_energy=read_rows(f["incident_energy"], path, start, stop),
        meta=dict(meta),
        **read_event_info(f, path, n, start, stop),
    )
