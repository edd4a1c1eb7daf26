"""Reading and writing :class:`~calolab.showers.Showers`, one module per format.

The format follows the file extension:

===================  ===============================================  ================
extension            format                                           needs
===================  ===============================================  ================
``.h5``, ``.hdf5``   calolab HDF5 (sparse hits, lossless; default)    h5py (core)
``.h5``, ``.hdf5``   CaloChallenge, with ``format="calochallenge"``    h5py (core)
``.parquet``         one row per hit                                  ``calolab[parquet]``
``.root``            TTree ``showers`` with jagged hit branches       ``calolab[root]``
a directory, a glob  sharded dataset: shard files and a manifest      (as its shards)
===================  ===============================================  ================

Every format keeps the detector geometry and ``meta`` in the file, so a file read back
equals what was written. Writes are atomic (see :mod:`calolab.io.atomic`). Reading an HDF5
file recognises both layouts by their content.

>>> import tempfile
>>> import numpy as np
>>> from calolab.geometry import load_detector
>>> det = load_detector("siw-ecal")
>>> dense = np.zeros((2, *det.shape), np.float32); dense[0, 4, 16, 16] = 12.0
>>> s = Showers.from_dense(det, dense, particle=11, incident_energy=[1e4, 2e4], meta={"seed": 1})
>>> folder = tempfile.mkdtemp()
>>> path = write_showers(s, folder + "/run.h5")
>>> back = read_showers(path)
>>> back.energy_sum().tolist(), back.meta
([12.0, 0.0], {'seed': 1})
>>> cc = write_showers(s, folder + "/run_cc.h5", format="calochallenge")
>>> read_showers(cc).n_hits
1
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from calolab.errors import CalolabError
from calolab.geometry import Detector
from calolab.io.atomic import atomic_path
from calolab.io.calochallenge import iter_calochallenge, read_calochallenge, write_calochallenge
from calolab.io.hdf5 import iter_hdf5, layout, open_hdf5, read_hdf5, write_hdf5
from calolab.io.parquet import read_parquet, write_parquet
from calolab.io.root import read_root, write_root
from calolab.io.sharded import is_sharded, iter_sharded, read_sharded, write_sharded
from calolab.showers import Showers

__all__ = [
    "FORMATS",
    "atomic_path",
    "is_streamable",
    "iter_showers",
    "read_calochallenge",
    "read_sharded",
    "read_showers",
    "write_calochallenge",
    "write_sharded",
    "write_showers",
]

FORMATS = ("hdf5", "calochallenge", "parquet", "root")
_EXTENSIONS = {".h5": "hdf5", ".hdf5": "hdf5", ".parquet": "parquet", ".root": "root"}
_WRITERS = {"hdf5": write_hdf5, "calochallenge": write_calochallenge, "parquet": write_parquet, "root": write_root}
_READERS = {"hdf5": read_hdf5, "calochallenge": read_calochallenge, "parquet": read_parquet, "root": read_root}


def write_showers(showers: Showers, path: str | Path, format: str | None = None) -> Path:
    """Write ``showers`` to ``path`` in the format of its extension, atomically.

    Parameters
    ----------
    showers
        Events with sparse hits (energies in MeV).
    path
        ``.h5``/``.hdf5``, ``.parquet`` or ``.root``.
    format
        One of :data:`FORMATS` to override the extension; ``"calochallenge"`` writes the
        dense CaloChallenge layout ``incident_energies`` (N, 1), ``showers`` (N, cells).

    Returns
    -------
    Path
        The file written.
    """
    return _WRITERS[_format(path, format)](showers, Path(path))


def read_showers(
    path: str | Path, detector: Detector | str | None = None, format: str | None = None
) -> Showers:
    """Read showers from ``path``, in the format of its extension.

    Parameters
    ----------
    path
        A file written by :func:`write_showers`, a CaloChallenge HDF5 file, or a sharded
        dataset (a directory written by :func:`write_sharded`, or a glob of shard files).
    detector
        A :class:`Detector` (or preset name). Needed for files that carry no geometry
        (CaloChallenge files from elsewhere); for the others it replaces the stored
        detector, and must have the same ``(layers, nx, ny)`` shape.
    format
        One of :data:`FORMATS` to override the extension; HDF5 files are recognised by content.
    """
    if format is None and is_sharded(path):
        return read_sharded(path, detector=detector)
    path = Path(path)
    fmt = _format(path, format)
    if fmt == "hdf5" and format is None:
        fmt = _hdf5_layout(path)
    return _READERS[fmt](path, detector=detector)


def iter_showers(
    path: str | Path, chunk_events: int = 65536, detector: Detector | str | None = None
) -> Iterator[Showers]:
    """Yield the events of an HDF5 file (either layout) or a sharded dataset in batches of ``chunk_events``.

    Only one batch is in memory at a time, so files larger than memory can be processed.
    """
    if is_sharded(path):
        return iter_sharded(path, chunk_events, detector=detector)
    path = Path(path)
    if _format(path, None) != "hdf5":
        raise CalolabError(f"{path}: reading in chunks needs an HDF5 file (.h5 or .hdf5)")
    if _hdf5_layout(path) == "calochallenge":
        return iter_calochallenge(path, chunk_events, detector=detector)
    return iter_hdf5(path, chunk_events, detector=detector)


def is_streamable(path: str | Path) -> bool:
    """Whether :func:`iter_showers` reads ``path`` in chunks: an HDF5 file (.h5, .hdf5) or a sharded dataset."""
    return is_sharded(path) or Path(path).suffix.lower() in (".h5", ".hdf5")


def _format(path: str | Path, format: str | None) -> str:
    if format is not None:
        if format not in FORMATS:
            raise CalolabError(f"unknown showers format {format!r}: expected one of {', '.join(FORMATS)}")
        return format
    suffix = Path(path).suffix.lower()
    if suffix not in _EXTENSIONS:
        raise CalolabError(
            f"{path}: unknown showers file extension {suffix or '(none)'!r}: expected .h5, .hdf5, .parquet or .root"
        )
    return _EXTENSIONS[suffix]


def _hdf5_layout(path: Path) -> str:
    with open_hdf5(path) as f:
        return "hdf5" if layout(f) == "calolab" else "calochallenge"
