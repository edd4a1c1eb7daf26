"""Sharded datasets: a directory of shower files with a manifest, read as one dataset.

Layout of a directory ``run/``::

    run/manifest.json        format "calolab-sharded", format_version, calolab_version,
                             n_events, geometry (the detector as YAML), meta (JSON of the
                             whole run's ``meta``), shards: [{file, events, hits, bytes}]
    run/shard-00000.h5       the events of each shard, in order, in any calolab format
    run/shard-00001.h5
    ...

The manifest is written last, so a directory without one is not (yet) a dataset; a crash
while the shards are written leaves no manifest and no dataset. A glob of shard files
(``"runs/sim/*.h5"``, in sorted order) is read as one dataset too, with the ``meta`` of its
first shard. Every reader of :mod:`calolab.io` takes a sharded dataset where it takes a
file: :func:`read_sharded` concatenates the shards, :func:`iter_sharded` streams them in
batches of ``chunk_events`` events (one shard's batch in memory at a time, HDF5 shards
read in chunks).

>>> import tempfile
>>> from calolab.geometry import load_detector
>>> from calolab.simulation import Beam, simulate
>>> showers = simulate(load_detector("siw-ecal"), Beam("e-", energy=2e3), 50, seed=1)
>>> folder = write_sharded(showers, tempfile.mkdtemp() + "/run", shard_events=20)
>>> [s["events"] for s in read_manifest(folder)["shards"]]
[20, 20, 10]
>>> back = read_sharded(folder)
>>> bool((back.energy == showers.energy).all()), back.meta == showers.meta
(True, True)
>>> [len(b) for b in iter_sharded(folder, chunk_events=30)]
[30, 20]
"""

from __future__ import annotations

import glob as globbing
import json
import os
import secrets
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from calolab.errors import CalolabError
from calolab.geometry import Detector
from calolab.io.encoding import DECODE_ERRORS, calolab_version, meta_from_json, meta_to_json, resolve_detector
from calolab.showers import Showers

MANIFEST = "manifest.json"
FORMAT = "calolab-sharded"
FORMAT_VERSION = 1
SUFFIXES = {"hdf5": ".h5", "parquet": ".parquet", "root": ".root"}


def is_sharded(path: str | Path) -> bool:
    """Whether ``path`` names a sharded dataset: a directory, or a glob pattern of files."""
    return Path(path).is_dir() or any(c in str(path) for c in "*?[")


def shard_name(index: int, format: str = "hdf5") -> str:
    """File name of shard ``index``: ``shard-00012.h5``."""
    if format not in SUFFIXES:
        raise CalolabError(f"unknown shard format {format!r}: expected one of {', '.join(SUFFIXES)}")
    return f"shard-{index:05d}{SUFFIXES[format]}"


# ------------------------------------------------------------------ writing
def write_sharded(showers: Showers | Iterable[Showers], directory: str | Path, shard_events: int = 100_000,
                  format: str = "hdf5", meta: dict[str, Any] | None = None) -> Path:
    """Write events as a sharded dataset in ``directory`` (replaced as a whole) and return it.

    Parameters
    ----------
    showers
        One :class:`Showers` (split into shards of ``shard_events`` events), or an iterable of
        batches, each written as one shard (e.g. chunks of a simulation, never all in memory).
    format
        Format of the shard files: ``"hdf5"``, ``"parquet"`` or ``"root"``.
    meta
        The whole run's ``meta``; default: the first shard's.
    """
    if shard_events < 1:
        raise CalolabError(f"shard_events must be >= 1, got {shard_events}")
    shard_name(0, format)  # checks the format before anything is written
    from calolab.io import write_showers

    if isinstance(showers, Showers):
        batches: Iterable[Showers] = (showers[s : s + shard_events] for s in range(0, max(len(showers), 1),
                                                                                      shard_events))
    else:
        batches = showers
    with staged_directory(directory) as tmp:
        entries, first = [], None
        for i, batch in enumerate(batches):
            first = batch if first is None else first
            entries.append(shard_entry(write_showers(batch, tmp / shard_name(i, format)), batch))
        if first is None:
            raise CalolabError(f"{directory}: no events to write")
        write_manifest(tmp, first.detector, entries, first.meta if meta is None else meta)
    return Path(directory)


def shard_entry(path: Path, showers: Showers) -> dict[str, Any]:
    """The manifest's record of one written shard."""
    return {"file": path.name, "events": len(showers), "hits": int(showers.n_hits), "bytes": path.stat().st_size}


def write_manifest(directory: Path, detector: Detector, shards: list[dict[str, Any]], meta: dict[str, Any]) -> Path:
    """Write ``manifest.json`` (atomically): the dataset exists from this moment."""
    from calolab.io.atomic import atomic_path

    body = {"format": FORMAT, "format_version": FORMAT_VERSION, "calolab_version": calolab_version(),
            "n_events": int(sum(s["events"] for s in shards)), "geometry": detector.to_yaml(),
            "meta": meta_to_json(meta), "shards": shards}
    path = Path(directory) / MANIFEST
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(body, indent=1))
    return path


class staged_directory:
    """Context manager: a hidden sibling directory to fill; on success it replaces ``directory``.

    A directory that exists and is not a sharded dataset (no manifest) is refused rather than
    replaced, so a mistyped output never deletes a user's folder.
    """

    def __init__(self, directory: str | Path) -> None:
        self.final = Path(directory)
        self.tmp = self.final.with_name(f".{self.final.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")

    def __enter__(self) -> Path:
        final = self.final
        if final.exists() and not (final.is_dir() and ((final / MANIFEST).exists() or not any(final.iterdir()))):
            raise CalolabError(f"{final}: exists and is not a sharded dataset (no {MANIFEST}): not replacing it")
        try:
            self.tmp.mkdir(parents=True)
        except OSError as exc:
            raise CalolabError(f"{final}: could not write ({exc.strerror or exc})") from None
        return self.tmp

    def __exit__(self, kind, value, traceback) -> None:
        if kind is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        old = self.final.with_name(self.tmp.name + "-old")
        if self.final.exists():
            os.replace(self.final, old)
        os.replace(self.tmp, self.final)
        shutil.rmtree(old, ignore_errors=True)


# ------------------------------------------------------------------ reading
def read_manifest(directory: str | Path) -> dict[str, Any]:
    """The manifest of a sharded dataset, checked against the shard files beside it."""
    directory = Path(directory)
    path = directory / MANIFEST
    if not path.is_file():
        raise CalolabError(f"{directory}: a directory without {MANIFEST}: not a sharded calolab dataset")
    try:
        body = json.loads(path.read_text())
        shards = body["shards"]
        ok = body.get("format") == FORMAT and all(isinstance(s, dict) and {"file", "events"} <= set(s) for s in shards)
    except (OSError, UnicodeDecodeError, *DECODE_ERRORS):
        ok = False
    if not ok:
        raise CalolabError(f"{path}: not a calolab sharded-dataset manifest (format {FORMAT!r} with a shard list)")
    if int(body.get("format_version", 0)) > FORMAT_VERSION:
        raise CalolabError(f"{path}: format_version {body['format_version']} is newer than this calolab reads")
    for shard in shards:
        file = directory / shard["file"]
        if not file.is_file():
            raise CalolabError(f"{path}: shard {shard['file']!r} is missing")
        if "bytes" in shard and file.stat().st_size != shard["bytes"]:
            raise CalolabError(f"{file}: {file.stat().st_size} bytes, the manifest says {shard['bytes']}: "
                               "damaged or replaced")
    return body


def _dataset(path: str | Path, detector: Detector | str | None) -> tuple[list[Path], list[int] | None,
                                                                          Detector | str | None, dict | None]:
    """Shard files, their event counts (None for a glob), the detector and ``meta`` of a dataset."""
    if Path(path).is_dir():
        body = read_manifest(path)
        det = resolve_detector(body.get("geometry"), detector, Path(path) / MANIFEST)
        try:
            meta = meta_from_json(body.get("meta", "{}"))
        except DECODE_ERRORS:
            raise CalolabError(f"{Path(path) / MANIFEST}: field 'meta' is not valid calolab meta JSON") from None
        files = [Path(path) / s["file"] for s in body["shards"]]
        return files, [int(s["events"]) for s in body["shards"]], det, meta
    files = [Path(p) for p in sorted(globbing.glob(str(path))) if Path(p).is_file()]
    if not files:
        raise CalolabError(f"{path}: no files match")
    return files, None, detector, None


def read_sharded(path: str | Path, detector: Detector | str | None = None, **options: Any) -> Showers:
    """All events of a sharded dataset (directory with manifest, or glob), in order.

    ``options`` (``columns``, ``energy_unit``, ``tree``) go to :func:`calolab.io.read_showers`
    for each file, so that a glob of hit tables from elsewhere reads as one run.
    """
    from calolab.io import read_showers

    files, counts, det, meta = _dataset(path, detector)
    parts = [read_showers(f, detector=det, **options) for f in files]
    _check_counts(files, counts, [len(p) for p in parts])
    showers = Showers.concatenate(parts)
    showers.meta = parts[0].meta if meta is None else meta
    return showers


def iter_sharded(path: str | Path, chunk_events: int = 65536,
                 detector: Detector | str | None = None) -> Iterator[Showers]:
    """Yield the events of a sharded dataset in batches of ``chunk_events`` (the last may be short).

    Batches run across shard boundaries; no more than one batch and one shard's batch are
    in memory. The manifest is checked before the first batch is asked for.
    """
    if chunk_events < 1:
        raise CalolabError(f"chunk_events must be >= 1, got {chunk_events}")
    files, counts, det, meta = _dataset(path, detector)

    def batches() -> Iterator[Showers]:
        from calolab.io import iter_showers, read_showers

        pending: list[Showers] = []
        held = 0
        for k, file in enumerate(files):
            chunks = (iter_showers(file, chunk_events, detector=det) if file.suffix.lower() in (".h5", ".hdf5")
                      else iter([read_showers(file, detector=det)]))
            seen = 0
            for chunk in chunks:
                seen += len(chunk)
                pending.append(chunk)
                held += len(chunk)
                while held >= chunk_events:
                    joined = Showers.concatenate(pending)
                    yield _with_meta(joined[:chunk_events], meta)
                    rest = joined[chunk_events:]
                    pending, held = ([rest], len(rest)) if len(rest) else ([], 0)
            if counts is not None and seen != counts[k]:
                _check_counts([file], [counts[k]], [seen])
        if held:
            yield _with_meta(Showers.concatenate(pending), meta)

    return batches()


def _with_meta(showers: Showers, meta: dict | None) -> Showers:
    if meta is not None:
        showers.meta = dict(meta)
    return showers


def _check_counts(files: list[Path], expected: list[int] | None, found: list[int]) -> None:
    for file, want, got in zip(files, expected or found, found, strict=True):
        if want != got:
            raise CalolabError(f"{file}: holds {got} events, the manifest says {want}")

