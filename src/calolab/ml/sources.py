"""Where the energy CNN's events come from: an HDF5 file read a chunk at a time, or showers in memory.

A :data:`Source` is a :class:`~calolab.showers.Showers` or the path of a calolab or
CaloChallenge HDF5 file (:func:`calolab.io.iter_showers`; a CaloChallenge file carries no
geometry, so it needs ``detector``). :func:`source_chunks` yields its events in order,
``chunk_events`` at a time, so that a file never has to fit in memory; every chunk is
checked for negative energies (a CNN takes MIPs, which cannot be negative).
:func:`scan` reads a whole source once for what a training run needs before its first
batch: the detector, the target of every event (incident energy, GeV) and its
sampling-weighted energy sum (:func:`weighted_sums_gev`, GeV).

Pure NumPy: nothing here imports torch.

>>> import numpy as np
>>> from calolab.geometry import load_detector
>>> det = load_detector("cusi")
>>> dense = np.zeros((5, *det.shape), np.float32); dense[:, 10, 20, 25] = 1.0  # MeV
>>> s = Showers.from_dense(det, dense, particle=211, incident_energy=[1e4, 2e4, 3e4, 4e4, 5e4])
>>> [len(chunk) for chunk in source_chunks(s, 2)]
[2, 2, 1]
>>> table = scan(s, chunk_events=2)
>>> len(table), table.target.tolist()
(5, [10.0, 20.0, 30.0, 40.0, 50.0])
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calolab.errors import CalolabError
from calolab.geometry import Detector
from calolab.io import iter_showers
from calolab.io.failures import require_non_negative
from calolab.reconstruction.sums import layer_weights
from calolab.showers import Showers

Source = Showers | str | Path


def weighted_sums_gev(showers: Showers) -> np.ndarray:
    """Sampling-weighted energy sum per event, GeV (MIP scale), float64 (N,)."""
    layer = showers.cell // (showers.detector.shape[1] * showers.detector.shape[2])
    w = layer_weights(showers.detector)[layer]
    return np.bincount(showers.event_index, weights=showers.energy * w, minlength=len(showers)) / 1e3


def source_chunks(source: Source, chunk_events: int, detector: Detector | str | None = None) -> Iterator[Showers]:
    """Chunks of ``chunk_events`` events of an in-memory ``Showers`` or an HDF5 file, in order."""
    if isinstance(source, Showers):
        chunks = (source[start : start + chunk_events] for start in range(0, len(source), chunk_events))
    else:
        chunks = iter_showers(source, chunk_events, detector=detector)
    name = source if isinstance(source, str | Path) else "the showers"
    return (require_non_negative(chunk, name, "a CNN (energies in MIPs)") for chunk in chunks)


def source_detector(source: Source, detector: Detector | str | None = None) -> Detector:
    """The detector of a ``Showers`` or of an HDF5 file (read from its first event)."""
    if isinstance(source, Showers):
        return source.detector
    for chunk in iter_showers(source, 1, detector=detector):
        return chunk.detector
    raise CalolabError(f"{source}: the file holds no events")


@dataclass
class EventTable:
    """Per-event numbers of a whole source, from one pass (for splits and input scaling)."""

    detector: Detector
    target: np.ndarray  # (N,) incident energy, GeV
    esum: np.ndarray  # (N,) sampling-weighted sum, GeV

    def __len__(self) -> int:
        return len(self.target)


def scan(source: Source, chunk_events: int = 4096, detector: Detector | str | None = None) -> EventTable:
    """Read ``source`` once (a chunk at a time) for its detector, targets and energy sums."""
    det, target, esum = None, [], []
    for chunk in source_chunks(source, chunk_events, detector):
        det = chunk.detector
        target.append(chunk.incident_energy / 1e3)
        esum.append(weighted_sums_gev(chunk))
    if det is None:
        raise CalolabError(f"{source if not isinstance(source, Showers) else 'showers'}: no events")
    return EventTable(det, np.concatenate(target), np.concatenate(esum))
