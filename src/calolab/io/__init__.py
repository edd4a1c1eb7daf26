"""Reading and writing :class:`~calolab.showers.Showers`, one module per format.

The format follows the file extension:

===================  ===============================================  ================
extension            format                                           needs
===================  ===============================================  ================
``.h5``, ``.hdf5``   calolab HDF5 (sparse hits, lossless; default)    h5py (core)
``.h5``, ``.hdf5``   CaloChallenge, with ``format="calochallenge"``    h5py (core)
``.parquet``         one row per hit, event truth as columns          ``calolab[parquet]``
``.root``            TTree ``showers`` with jagged hit branches       ``calolab[root]``
a directory, a glob  sharded dataset: shard files and a manifest      (as its shards)
===================  ===============================================  ================

Every format keeps the detector geometry and ``meta`` in the file, so a file read back
equals what was written. Writes are atomic (see :mod:`calolab.io.atomic`). Reading an HDF5
file recognises the layouts by their content. Hit tables from elsewhere (Parquet, ROOT
trees, HDF5 datasets as columns) read with ``columns=``, ``energy_unit=`` and, for ROOT,
``tree=`` (see :mod:`calolab.io.hittable`).

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
from calolab.io.hdf5 import iter_hdf5, layout, open_hdf5, read_hdf5, read_hdf5_table, write_hdf5
from calolab.io.hittable import energy_scale
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
    path: str | Path,
    detector: Detector | str | None = None,
    format: str | None = None,
    columns: dict[str, str] | None = None,
    energy_unit: str = "MeV",
    tree: str | None = None,
) -> Showers:
    """Read showers from ``path``, in the format of its extension.

    Parameters
    ----------
    path
        A file written by :func:`write_showers`, a CaloChallenge HDF5 file, a hit table
        (Parquet, ROOT or HDF5), or a sharded dataset (a directory written by
        :func:`write_sharded`, or a glob of shard files).
    detector
        A :class:`Detector` (or preset name). Needed for files that carry no geometry
        (CaloChallenge files and hit tables from elsewhere); for the others it replaces the
        stored detector, and must have the same ``(layers, nx, ny)`` shape.
    format
        One of :data:`FORMATS` to override the extension; HDF5 files are recognised by content.
    columns
        calolab name -> the file's column (branch, dataset) name, e.g. ``{"event": "evt",
        "layer": "z", "ix": "i", "iy": "j", "energy_mev": "e"}``: read the file as a hit
        table (see :mod:`calolab.io.hittable`). Files without calolab metadata are read so
        by default, under calolab's names.
    energy_unit
        ``"GeV"``, ``"MeV"`` or ``"keV"``: the unit of a hit table's energy columns.
    tree
        The TTree of a ROOT hit table (default: the file's only TTree).

    Examples
    --------
    >>> import tempfile, h5py, numpy as np
    >>> table = tempfile.mkdtemp() + "/hits.h5"
    >>> with h5py.File(table, "w") as f:
    ...     f["evt"], f["z"], f["i"], f["j"] = [7, 7, 9], [0, 3, 1], [16, 16, 2], [16, 17, 5]
    ...     f["e"] = [0.004, 0.002, 0.001]  # GeV
    >>> s = read_showers(table, detector="siw-ecal", energy_unit="GeV",
    ...                  columns={"event": "evt", "layer": "z", "ix": "i", "iy": "j", "energy_mev": "e"})
    >>> s.energy_sum().round(3).tolist(), s.extras["event_id"].tolist(), bool(np.isnan(s.incident_energy).all())
    ([6.0, 1.0], [7, 9], True)
    """
    options = {"columns": columns, "energy_unit": energy_unit, "tree": tree}
    energy_scale(energy_unit)  # an unknown unit is refused before anything is read
    if format is None and is_sharded(path):
        return read_sharded(path, detector=detector, **options)
    path = Path(path)
    fmt = _format(path, format)
    if tree is not None and fmt != "root":
        raise CalolabError(f"{path}: tree= names a TTree of a ROOT file, not of a {fmt} file")
    if fmt in ("parquet", "root"):
        reader = read_parquet if fmt == "parquet" else read_root
        return reader(path, detector=detector, **{k: v for k, v in options.items() if v is not None})
    if format is None:
        fmt = "table" if columns is not None else _hdf5_layout(path)
    if fmt == "table":
        return read_hdf5_table(path, detector=detector, columns=columns, energy_unit=energy_unit)
    if columns is not None or energy_unit != "MeV":
        raise CalolabError(f"{path}: a {fmt} file, whose energies are MeV: columns= and energy_unit= apply to "
                           "hit tables")
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
    kind = _hdf5_layout(path)
    if kind == "calochallenge":
        return iter_calochallenge(path, chunk_events, detector=detector)
    if kind == "table":  # read whole (a hit table has no per-event index), handed out in batches
        whole = read_hdf5_table(path, detector=detector)
        return (whole[start : start + chunk_events] for start in range(0, len(whole), chunk_events))
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
    """``"hdf5"``, ``"calochallenge"`` or ``"table"``."""
    with open_hdf5(path) as f:
        kind = layout(f)
    return "hdf5" if kind == "calolab" else kind
