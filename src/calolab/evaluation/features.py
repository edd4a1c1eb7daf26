"""High-level shower observables per event, computed on the sparse hits without a dense array.

Per event: visible energy (MeV), its ratio to the incident energy, the longitudinal centre
of gravity (X0), the number of hits above a fraction of the layer's most probable MIP
signal, and per layer the visible energy (MeV) and the energy-weighted centre and width in
x and y (mm). The cell-energy spectrum (every hit, MeV) is kept apart: it is not per event.

>>> import numpy as np
>>> from calolab.geometry import load_detector
>>> det = load_detector("siw-ecal")   # 15 layers x 32 x 32 cells of 5 mm
>>> dense = np.zeros((1, *det.shape), np.float32)
>>> dense[0, 2, 15, 16] = dense[0, 2, 16, 16] = 1.0   # two 1 MeV hits side by side in x
>>> f = high_level_features(Showers.from_dense(det, dense, particle=11, incident_energy=[1e4]))
>>> f.energy.tolist(), f.center_x[0, 2].item(), f.width_x[0, 2].item(), f.center_y[0, 2].item(), f.n_hits.tolist()
([2.0], 0.0, 2.5, 2.5, [2.0])
>>> bool(np.isnan(f.center_x[0, 0]))   # an empty layer has no centre
True
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from calolab.errors import CalolabError
from calolab.showers import Showers

SCALARS = ("energy", "energy_ratio", "depth_x0", "n_hits")
"""Per-event observables, (N,) each."""
LAYERED = ("layer_energy", "center_x", "center_y", "width_x", "width_y")
"""Per-event, per-layer observables, (N, layers) each."""
UNITS = {"energy": "MeV", "energy_ratio": "", "depth_x0": "X0", "n_hits": "", "layer_energy": "MeV",
         "center_x": "mm", "center_y": "mm", "width_x": "mm", "width_y": "mm", "cell_energy": "MeV"}


@dataclass(frozen=True)
class HighLevelFeatures:
    """High-level observables of ``N`` events in a detector of ``L`` layers.

    Attributes
    ----------
    energy : (N,)
        Visible energy in MeV.
    energy_ratio : (N,)
        Visible over incident energy; NaN where the incident energy is 0.
    depth_x0 : (N,)
        Energy-weighted mean depth of the active layers in X0; NaN for an empty event.
    n_hits : (N,)
        Hits above ``mip_fraction`` times the layer's most probable MIP signal.
    layer_energy : (N, L)
        Visible energy per layer in MeV.
    center_x, center_y : (N, L)
        Energy-weighted centre per layer in mm (grid centred on the beam axis); NaN where the layer is empty.
    width_x, width_y : (N, L)
        Energy-weighted standard deviation per layer in mm; NaN where the layer is empty.
    """

    energy: np.ndarray
    energy_ratio: np.ndarray
    depth_x0: np.ndarray
    n_hits: np.ndarray
    layer_energy: np.ndarray
    center_x: np.ndarray
    center_y: np.ndarray
    width_x: np.ndarray
    width_y: np.ndarray

    def __len__(self) -> int:
        return len(self.energy)

    @property
    def n_layers(self) -> int:
        return self.layer_energy.shape[1]

    def observables(self) -> dict[str, np.ndarray]:
        """Every observable as a (N,) column: scalars by name, per-layer ones as ``name_LL`` (``center_x_03``)."""
        out = {name: np.asarray(getattr(self, name), np.float64) for name in SCALARS}
        for name in LAYERED:
            values = getattr(self, name)
            out.update({f"{name}_{k:02d}": values[:, k] for k in range(self.n_layers)})
        return out

    def matrix(self) -> tuple[np.ndarray, list[str]]:
        """All observables as a float64 ``(N, 4 + 5 L)`` matrix (NaN kept) and the column names."""
        columns = self.observables()
        return np.column_stack(list(columns.values())), list(columns)

    def __getitem__(self, index) -> HighLevelFeatures:
        return HighLevelFeatures(**{f.name: getattr(self, f.name)[index] for f in fields(self)})


def high_level_features(showers: Showers, mip_fraction: float = 0.5) -> HighLevelFeatures:
    """High-level observables of every event (see :class:`HighLevelFeatures`).

    Parameters
    ----------
    showers
        Events with sparse hits in MeV.
    mip_fraction
        Hit threshold for ``n_hits`` as a fraction of ``detector.mip_mpv`` of the hit's layer
        (0.5 MIP by default).
    """
    if not mip_fraction >= 0:
        raise CalolabError(f"mip_fraction must be >= 0, got {mip_fraction}")
    det = showers.detector
    n, n_layers = len(showers), det.n_layers
    layer, ix, iy = showers.cell_coordinates()
    x, y = det.cell_centres(layer, ix, iy)  # readout cell centres, mm
    e = showers.energy.astype(np.float64)
    event = showers.event_index
    key = event * n_layers + layer

    def per_layer(weights: np.ndarray) -> np.ndarray:  # (N, L)
        return np.bincount(key, weights=weights, minlength=n * n_layers).reshape(n, n_layers)

    layer_energy = per_layer(e)
    live = layer_energy > 0
    safe = np.where(live, layer_energy, 1.0)
    centers, widths = [], []
    for coord in (x, y):
        mean = per_layer(e * coord) / safe
        var = per_layer(e * coord * coord) / safe - mean**2
        centers.append(np.where(live, mean, np.nan))
        widths.append(np.where(live, np.sqrt(np.clip(var, 0.0, None)), np.nan))

    total = layer_energy.sum(1)
    depth = det.x0_bounds[1:]  # the active slab closes each layer
    with np.errstate(invalid="ignore", divide="ignore"):
        depth_x0 = np.where(total > 0, layer_energy @ depth / np.where(total > 0, total, 1.0), np.nan)
        ratio = np.where(showers.incident_energy > 0, total / showers.incident_energy, np.nan)
    above = e > mip_fraction * det.mip_mpv[layer]
    n_hits = np.bincount(event[above], minlength=n).astype(np.float64)
    return HighLevelFeatures(total, ratio, depth_x0, n_hits, layer_energy, centers[0], centers[1], widths[0],
                             widths[1])


def low_level_inputs(showers: Showers, floor: float = 1e-7):
    """Cell inputs of the low-level classifier: a sparse CSR ``(N, cells + 1)`` float32 matrix.

    Cell ``c`` of event ``i`` holds ``log10(1 + E_ic / (floor * E_inc,i))`` (0 for an empty cell;
    energies relative to the incident energy, log-scaled); the last column is
    ``log10(E_inc / 1 GeV)``. Cells are in the flat ``(layer, x, y)`` order.
    """
    from scipy.sparse import csr_matrix

    if not floor > 0:
        raise CalolabError(f"low-level floor must be > 0, got {floor}")
    e_inc = np.where(showers.incident_energy > 0, showers.incident_energy, 1.0)
    values = np.log10(1.0 + showers.energy / (floor * e_inc[showers.event_index]))
    n, n_cells = len(showers), showers.detector.n_cells
    counts = np.diff(showers.offsets)
    # Append the incident-energy column to every event's row.
    rows = np.concatenate([showers.event_index, np.arange(n)])
    cols = np.concatenate([showers.cell, np.full(n, n_cells)])
    data = np.concatenate([values, np.log10(e_inc / 1e3)]).astype(np.float32)
    order = np.lexsort((cols, rows))
    indptr = np.concatenate([[0], np.cumsum(counts + 1)])
    return csr_matrix((data[order], cols[order], indptr), shape=(n, n_cells + 1))


def _cells(det) -> str:
    """The cell grid of a detector, in words: its pitch, or its cylindrical bins."""
    if det.cylinder is not None:
        return f"{det.cylinder.n_alpha} alpha bins x r edges {list(det.cylinder.r_edges)} mm"
    return f"of {det.pitch_x} x {det.pitch_y} mm"


def check_compatible(*samples: Showers, names: tuple[str, ...] | None = None) -> None:
    """Raise :class:`CalolabError` unless every sample has the detector grid of the first (shape and cells)."""
    names = names or tuple(f"sample {k}" for k in range(len(samples)))
    first = samples[0].detector
    for name, s in zip(names[1:], samples[1:], strict=True):
        det = s.detector
        if det.shape != first.shape:
            raise CalolabError(f"{name}: detector {det.name} has shape {det.shape}, expected {first.shape} "
                               f"as in {names[0]} ({first.name})")
        if _cells(det) != _cells(first):
            raise CalolabError(f"{name}: cells {_cells(det)}, expected {_cells(first)} as in {names[0]}")
        if len(s) < 2:
            raise CalolabError(f"{name}: {len(s)} events, need at least 2")
    if len(samples[0]) < 2:
        raise CalolabError(f"{names[0]}: {len(samples[0])} events, need at least 2")
