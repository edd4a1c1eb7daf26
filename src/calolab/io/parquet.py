"""Parquet hit tables (pyarrow): one row per hit, per-event information in the file metadata.

Columns (``H`` rows, sorted by event)::

    event    int64     event number, 0 .. N - 1
    layer    int16     cell indices (int32 for grids with more than 32767 cells along an axis)
    x        int16
    y        int16
    energy   float32   visible energy, MeV

Key-value metadata of the file (strings)::

    calolab.format    JSON: format, format_version, calolab_version, n_events
    calolab.geometry  the detector as YAML
    calolab.events    JSON: particle, incident_energy, entry, direction, extras (arrays of
                      length N, zlib-compressed base64 with their dtype)
    calolab.meta      JSON of ``meta``

Events without hits have no rows; they survive the round trip because everything per event
lives in the metadata. Any Parquet reader (pandas, polars, DuckDB) sees a plain hit table.
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
    array_from_json,
    array_to_json,
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

COLUMNS = ("event", "layer", "x", "y", "energy")
THRIFT_LIMIT = 1 << 30  # bytes; the per-event metadata of large files exceeds pyarrow's default


def write_parquet(showers: Showers, path: str | Path, row_group_hits: int = 1 << 20) -> Path:
    """Write ``showers`` as a Parquet hit table (atomically) and return its path.

    ``row_group_hits`` bounds the rows per row group (what a reader loads at once).
    """
    pa, pq = _pyarrow("writing")
    path = Path(path)
    check_extras(showers, path)
    layer, x, y = showers.cell_coordinates()  # (H,) each
    dtype = index_dtype(showers.detector)
    table = pa.table({
        "event": showers.event_index.astype(np.int64),
        "layer": layer.astype(dtype),
        "x": x.astype(dtype),
        "y": y.astype(dtype),
        "energy": showers.energy,
    })
    events = {name: array_to_json(getattr(showers, name))
              for name in ("particle", "incident_energy", "entry", "direction")}
    events["extras"] = {name: array_to_json(np.asarray(arr)) for name, arr in showers.extras.items()}
    metadata = {
        "calolab.format": json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION,
                                      "calolab_version": calolab_version(), "n_events": len(showers)}),
        "calolab.geometry": showers.detector.to_yaml(),
        "calolab.events": json.dumps(events),
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


def read_parquet(path: str | Path, detector: Detector | str | None = None) -> Showers:
    """Read a calolab Parquet hit table; ``detector`` overrides the stored one (same shape)."""
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
        head = _json(kv, "calolab.format", path)
        if not isinstance(head, dict) or head.get("format") != FORMAT:
            raise CalolabError(f"{path}: metadata 'calolab.format' does not name format {FORMAT!r}")
        if int(head.get("format_version", 0)) > FORMAT_VERSION:
            raise CalolabError(f"{path}: format_version {head['format_version']} is newer than this calolab reads")
        det = resolve_detector(kv.get("calolab.geometry"), detector, path)
        missing = [c for c in COLUMNS if c not in pf.schema_arrow.names]
        if missing:
            raise CalolabError(f"{path}: missing column {missing[0]!r}: expected columns {', '.join(COLUMNS)}")
        groups = []
        for i in range(pf.num_row_groups):  # one at a time, so that damage names its row group
            with reading(path, f"row group {i} of {pf.num_row_groups}"):
                groups.append(pf.read_row_group(i, columns=list(COLUMNS)))
        table = pa.concat_tables(groups) if groups else pf.schema_arrow.empty_table().select(list(COLUMNS))
    columns = {}
    for name in COLUMNS:
        column = table.column(name)
        if column.null_count:
            raise CalolabError(f"{path}: column {name!r} has {column.null_count} missing values")
        columns[name] = column.to_numpy()
    events = _events(kv, path)
    n = len(events["incident_energy"])
    offsets, cell, energy = _hits(columns, det, n, path)
    meta = _decoded(path, "calolab.meta", lambda: meta_from_json(kv.get("calolab.meta", "{}")))
    return build_showers(path, det, offsets=offsets, cell=cell, energy=energy, meta=meta, **events)


def _hits(columns: dict[str, np.ndarray], det: Detector, n: int, path: Path) -> tuple[np.ndarray, ...]:
    """Offsets (N + 1,), flat cells (H,) and energies (H,) from the hit columns."""
    event = columns["event"].astype(np.int64)
    for name, size in (("event", n), ("layer", det.n_layers), ("x", det.nx), ("y", det.ny)):
        values = columns[name]
        if len(values) and (values.min() < 0 or values.max() >= size):
            raise CalolabError(f"{path}: column {name!r} has values outside [0, {size}) for {det.name!r}")
    order = np.argsort(event, kind="stable")  # already sorted for files calolab wrote
    layer, x, y = (columns[c].astype(np.int64)[order] for c in ("layer", "x", "y"))
    cell = (layer * det.nx + x) * det.ny + y
    offsets = np.concatenate([[0], np.cumsum(np.bincount(event, minlength=n))])
    return offsets, cell.astype(np.int32), columns["energy"].astype(np.float32)[order]


def _events(kv: dict[str, str], path: Path) -> dict[str, Any]:
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
