"""Parquet hit tables (pyarrow): one row per hit, the event's truth as plain columns.

Columns of format version 2 (``R`` rows sorted by event: one per hit, and one for each
event without hits)::

    event                int64     event number, 0 .. N - 1
    layer, ix, iy        int16     cell indices (int32 past 32767 cells along an axis)
    energy_mev           float32   visible energy of the hit, MeV
    x_mm, y_mm, z_mm     float32   the cell centre: x, y from the detector's cell edges,
                                   z the middle of the layer's active slab, mm
    particle             int32     PDG code of the event
    incident_energy_mev  float64   incident energy of the event, MeV
    entry_x_mm, entry_y_mm float64 entry point on the front face, mm
    dir_x, dir_y, dir_z  float64   unit direction at entry
    extra_<name>                   per-event truth (dtype of the extra)

The per-event columns repeat the event's values on each of its rows (Parquet's dictionary
and run-length encodings store such runs in a few bytes). An event without hits has one
row whose hit columns (``layer`` .. ``z_mm``) are null, so the events survive the round
trip and ``df.groupby("event").energy_mev.sum()`` gives them 0. A pandas user reads hits
and truth from one file: ``pd.read_parquet(path)``; with null rows present, pandas turns
the integer hit columns into floats unless ``dtype_backend="numpy_nullable"``.

Why columns repeated per hit and not a sibling ``<stem>.events.parquet``: one file stays
self-contained. It is written atomically, copied, globbed and sharded as one (a sharded
dataset's ``shard-*.parquet`` and a glob of a folder see only shards), and no half of a
pair can go missing or come from another run.

Key-value metadata of the file (strings)::

    calolab.format    JSON: format, format_version (2), calolab_version, n_events
    calolab.geometry  the detector as YAML
    calolab.meta      JSON of ``meta``

Files of format version 1 (columns ``event, layer, x, y, energy``, per-event arrays in the
metadata key ``calolab.events``) still read. A Parquet hit table from elsewhere, without
calolab metadata, reads with ``columns=`` and ``energy_unit=`` (see :mod:`calolab.io.hittable`).
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
    array_from_json,
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
from calolab.io.hittable import HIT_KEYS, HitRows, assemble, foreign_arrays, missing, wanted
from calolab.showers import Showers

FORMAT_VERSION = 2
HIT_COLUMNS = ("event", "layer", "ix", "iy", "energy_mev", "x_mm", "y_mm", "z_mm")
EVENT_COLUMNS = ("particle", "incident_energy_mev", "entry_x_mm", "entry_y_mm", "dir_x", "dir_y", "dir_z")
COLUMNS_V1 = ("event", "layer", "x", "y", "energy")
THRIFT_LIMIT = 1 << 30  # bytes; the per-event metadata of large version-1 files exceeds pyarrow's default


def write_parquet(showers: Showers, path: str | Path, row_group_hits: int = 1 << 20) -> Path:
    """Write ``showers`` as a Parquet hit table (atomically) and return its path.

    ``row_group_hits`` bounds the rows per row group (what a reader loads at once).
    """
    pa, pq = _pyarrow("writing")
    path = Path(path)
    check_extras(showers, path)
    table = pa.table(_columns(showers, pa))
    metadata = {
        "calolab.format": json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION,
                                      "calolab_version": calolab_version(), "n_events": len(showers)}),
        "calolab.geometry": showers.detector.to_yaml(),
        "calolab.meta": meta_to_json(showers.meta),
    }
    with atomic_path(path) as tmp:
        if hasattr(pq.ParquetWriter, "add_key_value_metadata"):  # pyarrow >= 17: stored once
            with pq.ParquetWriter(tmp, table.schema, compression="zstd", store_schema=False,
                                  write_page_checksum=True) as writer:
                writer.write_table(table, row_group_size=row_group_hits)
                writer.add_key_value_metadata(metadata)
        else:  # older pyarrow: via the schema (also copied into the stored Arrow schema)
            table = table.replace_schema_metadata(metadata)
            pq.write_table(table, tmp, compression="zstd", row_group_size=row_group_hits, write_page_checksum=True)
    return path


def _columns(showers: Showers, pa: Any) -> dict[str, Any]:
    """The table's columns: hit rows, and a row of nulls for each event without hits."""
    counts = np.diff(showers.offsets)
    rows = np.maximum(counts, 1)
    event = np.repeat(np.arange(len(showers)), rows)  # (R,)
    is_hit = np.ones(len(event), bool)
    is_hit[np.cumsum(rows)[counts == 0] - 1] = False  # the one row of each empty event
    dtype = index_dtype(showers.detector)

    def on_hit_rows(values: np.ndarray, dt: Any) -> Any:
        full = np.zeros(len(event), dt)
        full[is_hit] = values
        return pa.array(full, mask=~is_hit)

    layer, ix, iy = showers.cell_coordinates()
    x, y, z = showers.positions()
    out = {"event": pa.array(event.astype(np.int64))}
    out |= {name: on_hit_rows(values, dtype) for name, values in (("layer", layer), ("ix", ix), ("iy", iy))}
    out["energy_mev"] = on_hit_rows(showers.energy, np.float32)
    out |= {name: on_hit_rows(values, np.float32) for name, values in (("x_mm", x), ("y_mm", y), ("z_mm", z))}
    per_event = {"particle": showers.particle, "incident_energy_mev": showers.incident_energy,
                 "entry_x_mm": showers.entry[:, 0], "entry_y_mm": showers.entry[:, 1]}
    per_event |= {f"dir_{c}": showers.direction[:, i] for i, c in enumerate("xyz")}
    per_event |= {f"extra_{name}": np.asarray(arr) for name, arr in showers.extras.items()}
    return out | {name: pa.array(np.asarray(values)[event]) for name, values in per_event.items()}


def read_parquet(path: str | Path, detector: Detector | str | None = None,
                 columns: dict[str, str] | None = None, energy_unit: str = "MeV") -> Showers:
    """Read a Parquet hit table.

    Parameters
    ----------
    detector
        Overrides the stored detector (same shape); needed for tables from elsewhere.
    columns, energy_unit
        Read the file as a hit table from elsewhere (see :mod:`calolab.io.hittable`);
        the default for a file without calolab metadata, with calolab's column names.
    """
    pa, pq = _pyarrow("reading")
    path = Path(path)
    if not path.is_file():
        raise CalolabError(f"{path}: no such file")
    try:
        pf = pq.ParquetFile(path, thrift_string_size_limit=THRIFT_LIMIT, thrift_container_size_limit=THRIFT_LIMIT,
                            page_checksum_verification=True)
    except (pa.ArrowException, OSError) as exc:
        raise CalolabError(f"{path}: not a Parquet file ({str(exc).splitlines()[0]})") from None
    with pf:
        kv = {k.decode(): v.decode() for k, v in (pf.metadata.metadata or {}).items()}
        det = None
        if columns is None and "calolab.format" in kv:
            head = _json(kv, "calolab.format", path)
            if not isinstance(head, dict) or head.get("format") != FORMAT:
                raise CalolabError(f"{path}: metadata 'calolab.format' does not name format {FORMAT!r}")
            version = int(head.get("format_version", 0))
            if version > FORMAT_VERSION:
                raise CalolabError(f"{path}: format_version {version} is newer than this calolab reads")
            if energy_unit != "MeV":
                raise CalolabError(f"{path}: a calolab file, whose energies are MeV: energy_unit={energy_unit!r} "
                                   "applies to hit tables read with columns=")
            det = resolve_detector(kv.get("calolab.geometry"), detector, path)
            if version < 2:
                return _read_v1(pf, path, det, kv)
            table = _read_table(pf, path, HIT_COLUMNS[:5] + EVENT_COLUMNS + _extra_columns(pf))
            return _native(path, det, table, kv, int(head.get("n_events", -1)))
        det = resolve_detector(kv.get("calolab.geometry"), detector, path)
        names, optional = wanted(columns)
        present = list(pf.schema_arrow.names)
        for key, name in names.items():
            if name not in present and key not in optional:
                raise missing(path, "column", key, name, present)
        used = {key: name for key, name in names.items() if name in present}
        table = _read_table(pf, path, tuple(dict.fromkeys(used.values())))
    hit = _hit_rows(table, [used[key] for key in HIT_KEYS[1:]], path)
    values = {key: (table.column(name).fill_null(0).to_numpy() if key in HIT_KEYS[1:] else _values(table, name, path))
              for key, name in used.items()}
    rows = HitRows(*(values[key] for key in HIT_KEYS), hit=hit,
                   per_event={key: values[key] for key in ("incident_energy_mev", "particle") if key in values})
    return build_showers(path, det, **foreign_arrays(path, det, rows, used, "column", energy_unit))


def _hit_rows(table: Any, names: list[str], path: Path) -> np.ndarray:
    """(R,) bool: the rows that hold a hit. A row whose hit columns are all null holds an event
    without hits; one with some of them null is an error."""
    nulls = np.stack([table.column(name).is_null().to_numpy(zero_copy_only=False) for name in names])
    partly = nulls.any(axis=0) & ~nulls.all(axis=0)
    if np.any(partly):
        name = names[int(np.argmax(nulls[:, np.argmax(partly)]))]
        raise CalolabError(f"{path}: column {name!r} is null on {int(partly.sum())} rows whose other hit columns "
                           f"({', '.join(names)}) are not")
    return np.asarray(~nulls.all(axis=0))


def _native(path: Path, det: Detector, table: Any, kv: dict[str, str], n_events: int) -> Showers:
    """Showers from the columns of a version-2 file."""
    hit = _hit_rows(table, list(HIT_COLUMNS[1:5]), path)
    hits = {name: table.column(name).fill_null(0).to_numpy() for name in HIT_COLUMNS[1:5]}
    per_event = {name: _values(table, name, path) for name in table.column_names if name not in HIT_COLUMNS}
    rows = HitRows(_values(table, "event", path), hits["layer"], hits["ix"], hits["iy"], hits["energy_mev"],
                   hit=hit, per_event=per_event)
    arrays = assemble(path, det, rows, {}, "column", keep_order=True)
    ids = arrays["ids"]
    if not np.array_equal(ids, np.arange(len(ids))) or n_events not in (-1, len(ids)):
        raise CalolabError(f"{path}: column 'event' must number the events 0 .. N - 1 with N = {n_events} "
                           "(metadata 'calolab.format')")
    event = arrays.pop("per_event")
    arrays.pop("ids")
    meta = _decoded(path, "calolab.meta", lambda: meta_from_json(kv.get("calolab.meta", "{}")))
    return build_showers(
        path, det, **arrays, particle=event["particle"], incident_energy=event["incident_energy_mev"],
        entry=np.stack([event["entry_x_mm"], event["entry_y_mm"]], axis=-1).reshape(-1, 2),
        direction=np.stack([event[f"dir_{c}"] for c in "xyz"], axis=-1).reshape(-1, 3),
        extras={name.removeprefix("extra_"): arr for name, arr in event.items() if name.startswith("extra_")},
        meta=meta,
    )


def _extra_columns(pf: Any) -> tuple[str, ...]:
    return tuple(name for name in pf.schema_arrow.names if name.startswith("extra_"))


def _read_table(pf: Any, path: Path, names: tuple[str, ...]) -> Any:
    """The named columns of every row group, one row group at a time (damage names its row group)."""
    import pyarrow as pa

    absent = [name for name in names if name not in pf.schema_arrow.names]
    if absent:
        raise CalolabError(f"{path}: missing column {absent[0]!r}")
    groups = []
    for i in range(pf.num_row_groups):
        with reading(path, f"row group {i} of {pf.num_row_groups}"):
            groups.append(pf.read_row_group(i, columns=list(names)))
    return pa.concat_tables(groups) if groups else pf.schema_arrow.empty_table().select(list(names))


def _values(table: Any, name: str, path: Path) -> np.ndarray:
    column = table.column(name)
    if column.null_count:
        raise CalolabError(f"{path}: column {name!r} has {column.null_count} missing values")
    return column.to_numpy()


# ------------------------------------------------------------------ format version 1
def _read_v1(pf: Any, path: Path, det: Detector, kv: dict[str, str]) -> Showers:
    """A version-1 file: hit columns ``event, layer, x, y, energy``, events in the metadata."""
    table = _read_table(pf, path, COLUMNS_V1)
    columns = {name: _values(table, name, path) for name in COLUMNS_V1}
    events = _events_v1(kv, path)
    n = len(events["incident_energy"])
    rows = HitRows(columns["event"], columns["layer"], columns["x"], columns["y"], columns["energy"])
    names = {"layer": "layer", "ix": "x", "iy": "y", "energy_mev": "energy"}
    arrays = assemble(path, det, rows, names, "column", keep_order=True)
    ids = arrays.pop("ids")
    arrays.pop("per_event")
    if len(ids) and (ids.min() < 0 or ids.max() >= n):
        raise CalolabError(f"{path}: column 'event' has values outside [0, {n}) for {det.name!r}")
    counts = np.bincount(np.repeat(ids, np.diff(arrays["offsets"])), minlength=n)  # events without hits have no rows
    arrays["offsets"] = np.concatenate([[0], np.cumsum(counts)])
    meta = _decoded(path, "calolab.meta", lambda: meta_from_json(kv.get("calolab.meta", "{}")))
    return build_showers(path, det, **arrays, meta=meta, **events)


def _events_v1(kv: dict[str, str], path: Path) -> dict[str, Any]:
    body = _json(kv, "calolab.events", path)

    def decode() -> dict[str, Any]:
        out = {name: array_from_json(body[name]) for name in ("particle", "incident_energy", "entry", "direction")}
        out["extras"] = {name: array_from_json(obj) for name, obj in body.get("extras", {}).items()}
        return out

    return _decoded(path, "calolab.events", decode)


def _json(kv: dict[str, str], key: str, path: Path) -> Any:
    if key not in kv:
        raise CalolabError(f"{path}: not a calolab Parquet file (no metadata {key!r})")
    return _decoded(path, key, lambda: json.loads(kv[key]))


def _decoded(path: Path, key: str, decode: Any) -> Any:
    try:
        return decode()
    except DECODE_ERRORS:
        raise CalolabError(f"{path}: metadata {key!r} is corrupt") from None


def _pyarrow(action: str) -> tuple[Any, ...]:
    return optional_modules(("pyarrow", "pyarrow.parquet"), "parquet", f"{action} Parquet")
