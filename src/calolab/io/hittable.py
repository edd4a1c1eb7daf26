"""Hit tables from elsewhere: columns named by the user, energies in a stated unit.

A hit table has one row per hit: an event number, the cell indices (layer, ix, iy) and the
visible energy. Parquet files, ROOT TTrees (one entry per hit, or one entry per event with
jagged hit branches) and HDF5 files (one dataset per column) are read this way by
:func:`calolab.io.read_showers` when ``columns=`` is given or the file carries no calolab
header. ``columns`` maps calolab's names to the file's:

=======================  ======================================================  =========
calolab name             what                                                    needed
=======================  ======================================================  =========
``event``                event number (any integers; rows of an event need not   yes [#]_
                         be adjacent)
``layer``, ``ix``,       cell indices, integers in ``[0, layers)``, ``[0, nx)``,  yes
``iy``                   ``[0, ny)`` of the detector
``energy_mev``           visible energy of the hit, in ``energy_unit``           yes
``incident_energy_mev``  incident energy of the event, in ``energy_unit``,       no
                         repeated on every row of the event
``particle``             PDG code of the event, repeated on every row            no
=======================  ======================================================  =========

.. [#] a ROOT tree with one entry per event numbers its events by entry without it.

A name left out of ``columns`` is looked for under calolab's own name; an optional column
that is absent leaves incident energies NaN (unknown) and particle codes 0. Events are
numbered 0 .. N - 1 in the order of their event numbers; when those are not already
0 .. N - 1 they are kept as the per-event extra ``event_id``. Hits in the same cell of the
same event are summed, and hits are sorted by cell within each event.

>>> parse_columns("event=evt, layer=z, energy_mev=e")
{'event': 'evt', 'layer': 'z', 'energy_mev': 'e'}
>>> energy_scale("GeV"), energy_scale("keV")
(1000.0, 0.001)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from calolab.errors import CalolabError
from calolab.geometry import Detector

HIT_KEYS = ("event", "layer", "ix", "iy", "energy_mev")
EVENT_KEYS = ("incident_energy_mev", "particle")
KEYS = HIT_KEYS + EVENT_KEYS
ENERGY_UNITS = {"GeV": 1e3, "MeV": 1.0, "keV": 1e-3}
"""MeV per unit of the energies in a hit table."""


def energy_scale(unit: str) -> float:
    """MeV per ``unit`` (``"GeV"``, ``"MeV"`` or ``"keV"``)."""
    if unit not in ENERGY_UNITS:
        raise CalolabError(f"unknown energy unit {unit!r}: expected one of {', '.join(ENERGY_UNITS)}")
    return ENERGY_UNITS[unit]


def parse_columns(text: str) -> dict[str, str]:
    """``"event=evt,layer=z"`` as ``{"event": "evt", "layer": "z"}`` (the CLI's ``--columns``)."""
    out: dict[str, str] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        key, sep, name = (s.strip() for s in item.partition("="))
        if not sep or not key or not name:
            raise CalolabError(f"--columns: {item!r} is not NAME=COLUMN (e.g. event=evt,layer=z,energy_mev=e)")
        out[key] = name
    return check_columns(out)


def check_columns(columns: Mapping[str, str] | None) -> dict[str, str]:
    """The mapping, checked: its keys must be calolab names, its values non-empty strings."""
    columns = dict(columns or {})
    for key, name in columns.items():
        if key not in KEYS:
            raise CalolabError(f"columns: unknown name {key!r}: expected some of {', '.join(KEYS)}")
        if not isinstance(name, str) or not name:
            raise CalolabError(f"columns: {key!r} must map to a non-empty column name, got {name!r}")
    return columns


@dataclass
class HitRows:
    """The columns of a hit table, one entry per row.

    A row is a hit, or (``hit`` False) a row that only carries an event without hits, as
    calolab's own Parquet files and ROOT trees with one entry per event have.
    """

    event: np.ndarray  # (R,) event number of each row
    layer: np.ndarray  # (R,) integer cell indices
    ix: np.ndarray
    iy: np.ndarray
    energy: np.ndarray  # (R,) visible energy in the table's unit
    hit: np.ndarray | None = None  # (R,) bool; None: every row is a hit
    per_event: dict[str, np.ndarray] = field(default_factory=dict)  # (R,) or (N,) per-event columns


def integers(values: Any, where: str) -> np.ndarray:
    """``values`` as int64; a one-line error naming ``where`` if they are not whole numbers."""
    arr = np.asarray(values)
    if arr.dtype.kind in "iub":
        return arr.astype(np.int64)
    if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        return arr.astype(np.int64)
    raise CalolabError(f"{where} holds {arr.dtype} values that are not whole numbers: expected integers")


def assemble(path: Path, det: Detector, rows: HitRows, names: Mapping[str, str], kind: str, *,
             scale: float = 1.0, keep_order: bool = False) -> dict[str, Any]:
    """Sparse arrays of :class:`~calolab.showers.Showers` from the rows of a hit table.

    Parameters
    ----------
    names
        calolab name -> the file's column name, for the error messages.
    kind
        ``"column"``, ``"branch"`` or ``"dataset"``, for the error messages.
    scale
        MeV per unit of the energy columns (see :func:`energy_scale`).
    keep_order
        A file calolab wrote: hits keep their order within an event (no sorting, no sums).

    Returns
    -------
    dict
        ``offsets``, ``cell``, ``energy`` (MeV), ``ids`` (N,) event numbers and
        ``per_event``, each per-event column as an (N,) array.
    """

    def where(key: str) -> str:
        return f"{path}: {kind} {names.get(key, key)!r}"

    event = integers(rows.event, where("event"))
    hit = np.ones(len(event), bool) if rows.hit is None else np.asarray(rows.hit, bool)
    ids, first, inverse = np.unique(event, return_index=True, return_inverse=True)
    n = len(ids)
    per_event = {}
    for key, values in rows.per_event.items():
        values = np.asarray(values)
        if len(values) == len(event):  # repeated on every row: the first row's
            mine = values[first]
            other = mine[inverse]
            differs = (other != values) & ~(_isnan(other) & _isnan(values))
            if np.any(differs):
                raise CalolabError(f"{where(key)}: differs between rows of event {event[np.argmax(differs)]}: "
                                   "expected one value per event")
            values = mine
        elif len(values) != n:
            raise CalolabError(f"{where(key)}: {len(values)} values for {len(event)} rows and {n} events")
        per_event[key] = values
    local = inverse[hit]
    cells = []
    for key, size in (("layer", det.n_layers), ("ix", det.nx), ("iy", det.ny)):
        values = integers(np.asarray(getattr(rows, key))[hit], where(key))
        if len(values) and (values.min() < 0 or values.max() >= size):
            bad = values[(values < 0) | (values >= size)][0]
            raise CalolabError(f"{where(key)}: value {bad} outside [0, {size}) for detector {det.name!r} "
                               f"(shape {det.shape})")
        cells.append(values)
    cell = (cells[0] * det.nx + cells[1]) * det.ny + cells[2]
    energy = np.asarray(rows.energy)[hit]
    if energy.dtype.kind not in "iuf":
        raise CalolabError(f"{where('energy_mev')}: holds {energy.dtype} values: expected numbers")
    energy = energy.astype(np.float64) * scale if scale != 1.0 else energy
    if keep_order:
        order = np.argsort(local, kind="stable")  # already sorted for files calolab wrote
        local, cell, energy = local[order], cell[order], energy[order]
    else:  # sorted by (event, cell), hits in one cell summed
        key = local * det.n_cells + cell
        unique, at = np.unique(key, return_inverse=True)
        energy = np.bincount(at, weights=energy, minlength=len(unique))
        local, cell = np.divmod(unique, det.n_cells)
    offsets = np.concatenate([[0], np.cumsum(np.bincount(local, minlength=n))])
    return {"offsets": offsets, "cell": cell.astype(np.int32), "energy": np.asarray(energy, np.float32),
            "ids": ids, "per_event": per_event}


def foreign_arrays(path: Path, det: Detector, rows: HitRows, names: Mapping[str, str], kind: str,
                   unit: str) -> dict[str, Any]:
    """Keyword arguments of :class:`~calolab.showers.Showers` for a hit table from elsewhere.

    Incident energies come from ``incident_energy_mev`` (times the unit's scale) or are NaN;
    particle codes from ``particle`` or 0; ``meta["hit_table"]`` records the file, the
    column mapping and the unit.
    """
    scale = energy_scale(unit)
    arrays = assemble(path, det, rows, names, kind, scale=scale)
    n = len(arrays["ids"])
    per_event = arrays.pop("per_event")
    ids = arrays.pop("ids")
    incident = per_event.get("incident_energy_mev")
    particle = per_event.get("particle")
    if incident is not None and np.asarray(incident).dtype.kind not in "iuf":
        raise CalolabError(f"{path}: {kind} {names.get('incident_energy_mev')!r} holds {np.asarray(incident).dtype} "
                           "values: expected numbers")
    extras = {} if np.array_equal(ids, np.arange(n)) else {"event_id": ids.astype(np.int64)}
    return arrays | {
        "incident_energy": np.full(n, np.nan) if incident is None else np.asarray(incident, np.float64) * scale,
        "particle": np.zeros(n, np.int32) if particle is None else integers(particle, f"{path}: {kind} "
                                                                             f"{names.get('particle', 'particle')!r}"),
        "extras": extras,
        "meta": {"hit_table": {"file": str(path), "columns": dict(names), "energy_unit": unit}},
    }


def wanted(columns: Mapping[str, str] | None, optional: tuple[str, ...] = EVENT_KEYS) -> tuple[dict[str, str], set]:
    """The file's name for every calolab name, and the optional ones that were not asked for by name."""
    given = check_columns(columns)
    names = {key: given.get(key, key) for key in KEYS}
    return names, {key for key in optional if key not in given}


def missing(path: Path, kind: str, key: str, name: str, present: list[str]) -> CalolabError:
    """The error for a mapped column that the file does not have."""
    shown = ", ".join(present[:12]) + (", ..." if len(present) > 12 else "")
    return CalolabError(f"{path}: no {kind} {name!r} (for {key}): the file has {shown or 'none'}; "
                        "map the names with columns= (--columns)")


def _isnan(values: np.ndarray) -> np.ndarray:
    return np.isnan(values) if values.dtype.kind == "f" else np.zeros(values.shape, bool)


def jagged_rows(counts: np.ndarray, hits: Mapping[str, np.ndarray], per_entry: Mapping[str, np.ndarray],
                event: np.ndarray | None = None) -> HitRows:
    """The rows of a table with one entry per event and jagged hit columns.

    ``counts`` (E,) hits per entry; ``hits`` the flattened ``layer``, ``ix``, ``iy`` and
    ``energy_mev`` (sum of counts,); ``per_entry`` (E,) columns; ``event`` (E,) the event
    numbers (default: the entry numbers). An entry without hits becomes one row with
    ``hit`` False.
    """
    counts = np.asarray(counts, np.int64)
    rows = np.maximum(counts, 1)
    entry = np.repeat(np.arange(len(counts)), rows)  # (R,)
    hit = np.ones(len(entry), bool)
    hit[np.cumsum(rows)[counts == 0] - 1] = False

    def pad(values: np.ndarray) -> np.ndarray:
        full = np.zeros(len(entry), np.asarray(values).dtype)
        full[hit] = values
        return full

    if event is None:  # entry numbers: the per-entry columns are already in event order
        numbers, per_event = entry, {k: np.asarray(v) for k, v in per_entry.items()}
    else:
        numbers, per_event = np.asarray(event)[entry], {k: np.asarray(v)[entry] for k, v in per_entry.items()}
    return HitRows(numbers, *(pad(hits[key]) for key in ("layer", "ix", "iy", "energy_mev")), hit=hit,
                   per_event=per_event)
