"""CaloChallenge HDF5 files: the dense interchange layout physicists already use.

Layout (``N`` events, ``C = layers * nx * ny`` cells; energies in MeV)::

    incident_energies  float64 (N, 1)   incident energy, MeV
    showers            float32 (N, C)   cell energies, MeV, flattened in calolab order (layer, x, y)
    attributes         calolab_geometry (the detector as YAML), calolab_version
    calolab/           particle, entry, direction, extras/<name>, meta_arrays/, attribute meta

The attributes and the ``calolab/`` group make our own files self-describing and the round
trip lossless; CaloChallenge tools read ``incident_energies`` and ``showers`` only and ignore
them. Files from elsewhere carry neither, so reading them needs ``detector=``.

A cylindrical detector (:mod:`calolab.geometry.cylinder`) has CaloChallenge's own voxel order
(layer, alpha, r), and its files are written in CaloChallenge's energy scale by default
(``layout="calochallenge"``): the energy deposited in the active slabs divided by the
sampling fraction, so that a contained electron's voxels sum to about its incident energy,
as in the CaloChallenge datasets 2 and 3 (their showers are the silicon deposits times
1 / 0.033: ``Dataset_creation.ipynb`` of github.com/CaloChallenge/homepage). calolab
divides by its own electromagnetic visible fraction of each layer
(:func:`calolab.simulation.sampling.visible_per_mev`), the factor by which its simulated
electron showers sum to their energy; the attributes ``calolab_layout`` and
``calolab_sampling_fraction`` record it. Reading such a file, or a CaloChallenge file of
datasets 2 and 3 with ``detector="calochallenge-ds2"`` (or ``-ds3``), multiplies back.

In CaloChallenge's dataset 1 every layer has bins of its own
(:class:`~calolab.geometry.cylinder_layers.LayeredCylinder`): a file has one column per real
bin, layer after layer (the offsets of ``XMLHandler.GetBinEdges``), alpha outside r within a
layer, 368 for photons and 533 for pions, while calolab's cells are padded to
``(layers, max n_alpha, max n_r)``. :func:`voxel_cells` and :func:`cell_voxels` map between the
two, and writing and reading go through them.

Writing and reading go through the dense array a block of events at a time, so a file
never needs all of ``(N, C)`` in memory.

>>> import tempfile
>>> import numpy as np
>>> from calolab.geometry import load_detector
>>> det = load_detector("siw-ecal")
>>> dense = np.zeros((2, *det.shape), np.float32); dense[1, 14, 31, 0] = 2.5
>>> s = Showers.from_dense(det, dense, particle=11, incident_energy=[5e3, 1e4])
>>> path = write_calochallenge(s, tempfile.mkdtemp() + "/electrons.h5")
>>> back = read_calochallenge(path)
>>> back.n_hits, back.incident_energy.tolist(), back.particle.tolist()
(1, [5000.0, 10000.0], [11, 11])
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from calolab.errors import CalolabError
from calolab.geometry import Detector
from calolab.geometry.cylinder_layers import LayeredCylinder
from calolab.io.atomic import atomic_path
from calolab.io.encoding import build_showers, calolab_version, check_extras, resolve_detector
from calolab.io.failures import reading
from calolab.io.hdf5 import (
    CHUNK_BYTES,
    get_dataset,
    open_hdf5,
    put_dataset,
    read_event_info,
    read_meta,
    read_rows,
    write_event_info,
)
from calolab.io.hdf5 import layout as file_layout
from calolab.showers import Showers, particle_code

BLOCK_BYTES = 64 << 20  # dense float32 bytes held in memory at once while converting
LAYOUTS = ("calolab", "calochallenge")


def sampling_fractions(detector: Detector, layout: str | None = None,
                       sampling_fraction: Any = None) -> np.ndarray | None:
    """The sampling fraction of each layer, ``(layers,)``, that the CaloChallenge layout divides by.

    ``None`` for calolab's layout (visible energies as they are).

    ``layout`` is ``"calolab"`` (visible energy), ``"calochallenge"`` (visible / sampling
    fraction, cylindrical detectors only) or ``None``: ``"calochallenge"`` for a cylindrical
    detector, else ``"calolab"``. ``sampling_fraction`` (a number or one per layer) replaces
    the detector's electromagnetic visible fraction.

    >>> from calolab.geometry import load_detector
    >>> f = sampling_fractions(load_detector("calochallenge-ds2"))
    >>> f.shape, bool(0.01 < f[0] < 0.05), sampling_fractions(load_detector("siw-ecal"))
    ((45,), True, None)
    """
    from calolab.simulation.sampling import visible_per_mev

    layout = layout or ("calochallenge" if detector.cylinder is not None else "calolab")
    if layout not in LAYOUTS:
        raise CalolabError(f"unknown CaloChallenge layout {layout!r}: expected one of {', '.join(LAYOUTS)}")
    if layout == "calolab":
        if sampling_fraction is not None:
            raise CalolabError("sampling_fraction= applies to layout='calochallenge' (energies / sampling fraction)")
        return None
    if detector.cylinder is None:
        raise CalolabError(f"layout='calochallenge' is CaloChallenge's (layer, alpha, r) voxel order: detector "
                           f"{detector.name!r} has a Cartesian grid (write it with layout='calolab')")
    if sampling_fraction is None:
        return np.asarray(visible_per_mev(detector), np.float64)
    try:
        fraction = np.broadcast_to(np.asarray(sampling_fraction, np.float64), (detector.n_layers,)).copy()
    except ValueError:
        raise CalolabError(f"sampling_fraction: expected a number or {detector.n_layers} (one per layer)") from None
    if not np.all(np.isfinite(fraction) & (fraction > 0)):
        raise CalolabError(f"sampling_fraction: expected fractions > 0, got {sampling_fraction!r}")
    return fraction


def voxel_cells(detector: Detector) -> np.ndarray:
    """The calolab flat cell index of each CaloChallenge voxel, int64 ``(voxels,)``.

    Voxel ``v`` of layer ``k`` is ``bin_edges[k] + alpha * n_r[k] + r`` with ``bin_edges`` the
    running sum of ``n_alpha[k] * n_r[k]`` (CaloChallenge's ``XMLHandler``); its calolab cell is
    ``(k * nx + alpha) * ny + r``. For a detector whose layers share their bins, or a Cartesian
    grid, voxels and cells coincide (``arange(n_cells)``).

    >>> from calolab.geometry import load_detector
    >>> det = load_detector("calochallenge-ds1-photons")  # layers of 8, 160, 190, 5 and 5 voxels
    >>> v = voxel_cells(det)
    >>> len(v), det.shape, v[8:11].tolist()  # layer 1 starts at voxel 8: (1, alpha 0, r 0..2)
    (368, (5, 10, 19), [190, 191, 192])
    """
    cylinder = detector.cylinder
    if not isinstance(cylinder, LayeredCylinder):
        return np.arange(detector.n_cells, dtype=np.int64)
    bin_edges = np.concatenate([[0], np.cumsum([g.n_alpha * g.n_r for g in cylinder.grids])])
    cells = np.empty(bin_edges[-1], np.int64)
    for k, g in enumerate(cylinder.grids):
        alpha, r = np.divmod(np.arange(g.n_alpha * g.n_r), g.n_r)  # the layer's voxels in XMLHandler's order
        cells[bin_edges[k] : bin_edges[k + 1]] = (k * detector.nx + alpha) * detector.ny + r
    return cells


def cell_voxels(detector: Detector) -> np.ndarray:
    """The CaloChallenge voxel of each calolab cell, int64 ``(n_cells,)``; -1 on padded cells (no bin)."""
    out = np.full(detector.n_cells, -1, np.int64)
    cells = voxel_cells(detector)
    out[cells] = np.arange(len(cells))
    return out


def write_calochallenge(showers: Showers, path: str | Path, chunk_events: int | None = None,
                        layout: str | None = None, sampling_fraction: Any = None) -> Path:
    """Write ``showers`` as a CaloChallenge file (atomically) and return its path.

    Parameters
    ----------
    showers
        Events of any calolab detector; cells are flattened as ``(layer, x, y)``, for a
        cylindrical detector ``(layer, alpha, r)``: CaloChallenge's voxel order (with
        per-layer bins only the real ones, :func:`voxel_cells`).
    chunk_events
        Events made dense at a time; default: about 64 MB of float32.
    layout
        ``"calolab"``: visible energies, MeV; ``"calochallenge"``: visible energy divided by
        the sampling fraction of the cell's layer, MeV, as in the CaloChallenge datasets
        (cylindrical detectors only); default: ``"calochallenge"`` for a cylindrical
        detector, else ``"calolab"``.
    sampling_fraction
        With ``layout="calochallenge"``: a number or one per layer replacing the
        detector's electromagnetic visible fraction (0.033 is the datasets' own constant
        for their Geant4 silicon deposits).
    """
    path = Path(path)
    check_extras(showers, path)
    voxels = voxel_cells(showers.detector)
    n, width = len(showers), len(voxels)
    padded = width != showers.detector.n_cells
    if padded and np.any(cell_voxels(showers.detector)[showers.cell] < 0):
        raise CalolabError(f"{path}: the showers have hits on padded cells that are no bin of their layer "
                           f"(detector {showers.detector.name!r} has per-layer bins): they have no voxel")
    fraction = sampling_fractions(showers.detector, layout, sampling_fraction)
    chunk = chunk_events or max(1, BLOCK_BYTES // (4 * width))
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["calolab_geometry"] = showers.detector.to_yaml()
        f.attrs["calolab_version"] = calolab_version()
        f.attrs["calolab_layout"] = "calolab" if fraction is None else "calochallenge"
        if fraction is not None:
            f.attrs["calolab_sampling_fraction"] = fraction  # (layers,) visible MeV per MeV written
        put_dataset(f, "incident_energies", showers.incident_energy[:, None])  # (N, 1)
        rows = max(1, min(n, CHUNK_BYTES // (4 * width)))
        compress = {"chunks": (rows, width), "compression": "gzip", "compression_opts": 4} if n else {}
        ds = f.create_dataset("showers", shape=(n, width), dtype=np.float32, **compress)  # (N, C)
        for start in range(0, n, chunk):
            block = showers.dense(start, start + chunk)  # (B, layers, nx, ny)
            if fraction is not None:
                block = block / fraction[None, :, None, None]  # float64, stored as float32
            flat = block.reshape(len(block), showers.detector.n_cells)
            ds[start : start + len(block)] = flat[:, voxels] if padded else flat
        write_event_info(f.create_group("calolab"), showers)
    return path


def read_calochallenge(
    path: str | Path, detector: Detector | str | None = None, particle: int | str | None = None,
    layout: str | None = None, sampling_fraction: Any = None,
) -> Showers:
    """Read a CaloChallenge file into sparse :class:`Showers` (visible energies, MeV).

    Parameters
    ----------
    detector
        Needed unless the file carries ``calolab_geometry``; its ``n_cells`` must equal the
        width of ``showers``.
    particle
        PDG code or name for all events; default: what the file stores, else 0 (unknown).
    layout, sampling_fraction
        The energy scale of the file (see :func:`write_calochallenge`); default: what the
        file's ``calolab_layout`` and ``calolab_sampling_fraction`` say, and for a file
        without them ``"calochallenge"`` on a cylindrical detector (a CaloChallenge
        dataset), else ``"calolab"``. Energies are multiplied by the sampling fraction.
    """
    path = Path(path)
    with open_hdf5(path) as f:
        with reading(path, "the file's header (attributes and datasets)"):
            head = _header(f, path, detector, particle, layout, sampling_fraction)
        return _read_range(f, path, head, 0, head["n"])


def iter_calochallenge(
    path: str | Path,
    chunk_events: int = 4096,
    detector: Detector | str | None = None,
    particle: int | str | None = None,
    layout: str | None = None,
    sampling_fraction: Any = None,
) -> Iterator[Showers]:
    """Yield the events of a CaloChallenge file as sparse batches of ``chunk_events``.

    ``layout`` and ``sampling_fraction`` as in :func:`read_calochallenge`.
    """
    path = Path(path)
    if chunk_events < 1:
        raise CalolabError(f"chunk_events must be >= 1, got {chunk_events}")
    with open_hdf5(path) as f, reading(path, "the file's header (attributes and datasets)"):
        head = _header(f, path, detector, particle, layout, sampling_fraction)

    def batches() -> Iterator[Showers]:
        with open_hdf5(path) as f:
            for start in range(0, head["n"], chunk_events):
                yield _read_range(f, path, head, start, min(start + chunk_events, head["n"]))

    return batches()


def _header(f: h5py.File, path: Path, detector: Any, particle: Any, layout: str | None = None,
            sampling_fraction: Any = None) -> dict[str, Any]:
    if file_layout(f) != "calochallenge":
        raise CalolabError(f"{path}: a calolab showers file, not a CaloChallenge file: use read_showers")
    geometry = f.attrs.get("calolab_geometry")
    det = resolve_detector(None if geometry is None else str(geometry), detector, path)
    showers = get_dataset(f, "showers", path, (None, None))
    n, width = showers.shape
    voxels = voxel_cells(det)
    if width != len(voxels):
        raise CalolabError(
            f"{path}: dataset 'showers' has {width} cells per event, expected {len(voxels)} "
            f"for detector {det.name!r} of shape {det.shape}"
        )
    energies = get_dataset(f, "incident_energies", path, None)
    if energies.shape not in ((n, 1), (n,)):
        raise CalolabError(f"{path}: dataset 'incident_energies' has shape {energies.shape}, expected ({n}, 1)")
    info = f.get("calolab")
    return {
        "fraction": _stored_scale(f, path, det, layout, sampling_fraction),
        "detector": det,
        "voxels": voxels if len(voxels) != det.n_cells else None,
        "n": n,
        "has_info": info is not None,
        "meta": read_meta(info, path) if info is not None else {},
        "particle": None if particle is None else particle_code(particle),
    }


def _read_range(f: h5py.File, path: Path, head: dict[str, Any], start: int, stop: int) -> Showers:
    showers, width = f["showers"], f["showers"].shape[1]
    incident = np.asarray(read_rows(f["incident_energies"], path, start, stop), np.float64).reshape(-1)
    if not np.all(np.isfinite(incident) & (incident >= 0)):
        raise CalolabError(f"{path}: dataset 'incident_energies' has NaN or negative values: expected MeV >= 0")
    counts, cells, energies = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], [np.zeros(0, np.float32)]
    block = max(1, BLOCK_BYTES // (4 * width))
    for lo in range(start, stop, block):
        dense = np.asarray(read_rows(showers, path, lo, min(lo + block, stop)), np.float32)  # (B, C) MeV
        bad = ~np.isfinite(dense) | (dense < 0)
        if bad.any():
            event = lo + int(np.flatnonzero(bad.any(axis=1))[0])
            raise CalolabError(
                f"{path}: dataset 'showers' has NaN, infinite or negative energies (event {event}): "
                "expected finite energies >= 0 MeV"
            )
        event, voxel = np.nonzero(dense)
        counts.append(np.bincount(event, minlength=len(dense)))
        cell = voxel if head["voxels"] is None else head["voxels"][voxel]  # (layer, alpha, r) padded cells
        cells.append(cell)
        energy = dense[event, voxel]
        if head["fraction"] is not None:  # the CaloChallenge scale back to visible MeV
            det = head["detector"]
            energy = (energy * head["fraction"][cell // (det.nx * det.ny)]).astype(np.float32)
        energies.append(energy)
    if head["has_info"]:
        stored = read_event_info(f["calolab"], path, head["n"], start, stop)
    else:
        stored = {"particle": 0}
    if head["particle"] is not None:
        stored["particle"] = head["particle"]
    return build_showers(
        path,
        head["detector"],
        offsets=np.concatenate([[0], np.cumsum(np.concatenate(counts))]),
        cell=np.concatenate(cells),
        energy=np.concatenate(energies),
        incident_energy=incident,
        meta=dict(head["meta"]),
        **stored,
    )


def _stored_scale(f: h5py.File, path: Path, det: Detector, layout: str | None, fraction: Any) -> np.ndarray | None:
    """The sampling fractions a file's energies were divided by (``None``: visible energies)."""
    try:
        return _scale(f, path, det, layout, fraction)
    except CalolabError as exc:
        message = str(exc)
        raise CalolabError(message if message.startswith(str(path)) else f"{path}: {message}") from None


def _scale(f: h5py.File, path: Path, det: Detector, layout: str | None, fraction: Any) -> np.ndarray | None:
    stored = f.attrs.get("calolab_layout")
    if stored is None:
        return sampling_fractions(det, layout, fraction)
    stored = str(stored)
    if layout is not None and layout != stored:
        raise CalolabError(f"{path}: written with layout={stored!r}, not {layout!r}")
    if stored == "calolab" or fraction is not None:
        return sampling_fractions(det, stored, fraction)
    written = np.asarray(f.attrs.get("calolab_sampling_fraction", []), np.float64).reshape(-1)
    if written.shape != (det.n_layers,) or not np.all(np.isfinite(written) & (written > 0)):
        raise CalolabError(f"{path}: attribute calolab_sampling_fraction must hold {det.n_layers} fractions > 0 "
                           f"(one per layer), got {written.tolist()[:4]}")
    return written
