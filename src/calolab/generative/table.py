"""A training set as flat arrays, and minibatches of it as torch tensors (shared by both models).

>>> from calolab.generative.data import DatasetConfig, build_dataset
>>> from calolab.geometry import load_detector
>>> data = build_dataset(DatasetConfig(n_layouts=1, events_per_layout=4, energy_min_gev=5, energy_max_gev=6))
>>> table = LayerTable.of(data, load_detector("siw-ecal"))
>>> batch = make_batch(table, np.array([2, 0]))
>>> tuple(batch["energy"].shape), bool(torch.all(batch["hits"].sum(1) == torch.from_numpy(table.hits[[2, 0]].sum(1))))
((2, 15), True)
>>> bool(torch.allclose(dense_batch(table, np.array([2, 0]), (15, 32, 32)).sum((2, 3)), batch["energy"]))
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from calolab.geometry import Detector


@dataclass
class LayerTable:
    """Per event and layer, and per hit sorted by (event, layer, decreasing energy).

    Attributes
    ----------
    cond : float32 (N, 1 + L)
        Conditions ``[ln(E / 1 GeV), absorber X0 per layer]``.
    energy : float32 (N, L)
        Layer energies, MeV.
    hits : int64 (N, L)
        Hit cells per layer.
    offsets : int64 (N + 1,)
        Event ``i`` owns hits ``offsets[i]:offsets[i + 1]`` of the arrays below.
    hit_layer, hit_cell : int64 (H,)
        Layer and in-layer cell index ``x * ny + y`` of every hit.
    hit_energy : float32 (H,)
        MeV.
    hit_log_mip : float32 (H,)
        ``ln(e / MIP)`` with the layer's most probable MIP signal.
    """

    cond: np.ndarray
    energy: np.ndarray
    hits: np.ndarray
    offsets: np.ndarray
    hit_layer: np.ndarray
    hit_cell: np.ndarray
    hit_energy: np.ndarray
    hit_log_mip: np.ndarray

    @classmethod
    def of(cls, data, detector: Detector) -> LayerTable:
        """From a :class:`~calolab.generative.data.GenerativeDataset` in ``detector``'s grid."""
        showers = data.showers
        n_layers, nx, ny = detector.shape
        layer, rest = np.divmod(showers.cell.astype(np.int64), nx * ny)
        event = showers.event_index
        order = np.lexsort((-showers.energy, layer, event))
        layer, rest, energy = layer[order], rest[order], showers.energy[order]
        hits = np.bincount(event * n_layers + layer, minlength=len(showers) * n_layers).reshape(-1, n_layers)
        return cls(data.conditions(), showers.layer_sums().astype(np.float32), hits.astype(np.int64),
                   showers.offsets.copy(), layer, rest, energy,
                   np.log(energy / detector.mip_mpv[layer]).astype(np.float32))

    def __len__(self) -> int:
        return len(self.cond)


def _hit_rows(table: LayerTable, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Batch-local event number and table row of every hit of events ``index``, in order."""
    counts = np.diff(table.offsets)[index]
    starts = table.offsets[index]
    local = np.repeat(np.arange(len(index)), counts)
    row = np.repeat(starts - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts) + np.arange(counts.sum())
    return local, row


def make_batch(table: LayerTable, index: np.ndarray) -> dict[str, torch.Tensor]:
    """Tensors of events ``index``: ``cond``, ``energy``, ``hits`` (B, ...), and per hit its group
    (``event * L + layer``), in-layer cell and ``ln(e / MIP)``, grouped and in decreasing energy."""
    local, row = _hit_rows(table, index)
    n_layers = table.energy.shape[1]
    return {
        "cond": torch.from_numpy(table.cond[index]),
        "energy": torch.from_numpy(table.energy[index]),
        "hits": torch.from_numpy(table.hits[index]),
        "hit_group": torch.from_numpy(local * n_layers + table.hit_layer[row]),
        "hit_cell": torch.from_numpy(table.hit_cell[row]),
        "hit_log_mip": torch.from_numpy(table.hit_log_mip[row]),
    }


def dense_batch(table: LayerTable, index: np.ndarray, shape: tuple[int, int, int]) -> torch.Tensor:
    """Dense cell energies (B, layers, nx, ny) in MeV of events ``index``."""
    local, row = _hit_rows(table, index)
    per_layer = shape[1] * shape[2]
    out = np.zeros((len(index), shape[0] * per_layer), np.float32)
    out[local, table.hit_layer[row] * per_layer + table.hit_cell[row]] = table.hit_energy[row]
    return torch.from_numpy(out.reshape(len(index), *shape))
