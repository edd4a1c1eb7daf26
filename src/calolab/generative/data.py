"""Training data for the generative models: showers in ``siw-ecal``-like stacks of varied absorbers.

A *layout* is the list of tungsten thicknesses of the 15 layers (mm); the silicon, the cell
grid and everything else stay those of the base detector. Each layout is drawn by scaling
every absorber of the base detector by its own factor in ``[scale_min, scale_max]``
(optionally rescaled so that the stack keeps the base detector's total depth in X0), and a
few hundred electrons are simulated through it with a log-uniform energy spectrum. Layout 0
is the base detector itself.

Every event carries its condition vector: ``ln(E / 1 GeV)`` and the 15 absorber thicknesses
in radiation lengths. The dataset is one calolab HDF5 showers file (written atomically by
:func:`calolab.io.write_showers`) whose per-event ``extras`` hold the conditions
(``log_energy_gev``, ``absorber_x0_00`` ... ``absorber_x0_14``) and the ``layout`` index, and
whose ``meta`` holds the layout table and the :class:`DatasetConfig`.

>>> data = build_dataset(DatasetConfig(n_layouts=2, events_per_layout=5, seed=3))
>>> len(data), data.conditions().shape, data.absorber_mm.shape
(10, (10, 16), (2, 15))
>>> bool(np.allclose(data.absorber_mm[0], [4.2] * 8 + [5.6] * 7))
True
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from calolab.config import check_fields
from calolab.errors import CalolabError
from calolab.geometry import Detector, load_detector
from calolab.showers import Showers

GEV = 1e3  # MeV


@dataclass(frozen=True)
class DatasetConfig:
    """How a training set is drawn (written next to every dataset and run).

    Parameters
    ----------
    detector
        Base detector (preset name or YAML); its absorbers are the ones varied.
    particle
        Beam particle.
    energy_min_gev, energy_max_gev
        Log-uniform incident-energy range in GeV (one energy if they are equal). The default
        reaches beyond the 1-100 GeV of paper 004 so that 1 and 100 GeV are not at the edge
        of what the models learn (at an edge a fit has neighbours on one side only).
    n_layouts, events_per_layout
        Number of absorber layouts (layout 0 is the base detector) and events in each.
    scale_min, scale_max
        Range of the per-layer scale factors of the absorber thickness.
    keep_total_x0
        Rescale each drawn layout so that its total depth in X0 equals the base detector's.
    seed
        Seed of the layouts and of the simulation: the same config gives the same bits.
    """

    detector: str = "siw-ecal"
    particle: str = "e-"
    energy_min_gev: float = 0.5
    energy_max_gev: float = 150.0
    n_layouts: int = 240
    events_per_layout: int = 250
    scale_min: float = 0.5
    scale_max: float = 1.5
    keep_total_x0: bool = False
    seed: int = 1

    def __post_init__(self) -> None:
        if not 0 < self.energy_min_gev <= self.energy_max_gev:
            raise CalolabError(f"dataset energies: need 0 < energy_min_gev <= energy_max_gev, got "
                               f"{self.energy_min_gev}, {self.energy_max_gev}")
        if self.n_layouts < 1 or self.events_per_layout < 1:
            raise CalolabError(f"dataset: n_layouts and events_per_layout must be >= 1, got "
                               f"{self.n_layouts}, {self.events_per_layout}")
        if not 0 < self.scale_min <= 1 <= self.scale_max:
            raise CalolabError(f"dataset: need 0 < scale_min <= 1 <= scale_max, got {self.scale_min}, {self.scale_max}")

    @classmethod
    def from_dict(cls, spec: dict[str, Any], where: str = "dataset config") -> DatasetConfig:
        check_fields(spec, (f.name for f in fields(cls)), where)
        return cls(**spec)


def absorber_mm(detector: Detector) -> np.ndarray:
    """Absorber thickness of every layer in mm, shape ``(layers,)``."""
    return np.array([layer.absorber_thickness for layer in detector.layers])


def x0_per_mm(detector: Detector) -> np.ndarray:
    """Radiation lengths per mm of each layer's absorber material, shape ``(layers,)`` (0 where none)."""
    return np.array([1.0 / la.absorber_material.x0 if la.absorber_material else 0.0 for la in detector.layers])


def absorber_x0(detector: Detector) -> np.ndarray:
    """Absorber thickness of every layer in radiation lengths, shape ``(layers,)`` (0 where none)."""
    return absorber_mm(detector) * x0_per_mm(detector)


def with_absorbers(detector: Detector, thickness_mm: np.ndarray, name: str | None = None) -> Detector:
    """``detector`` with the absorber thicknesses replaced by ``thickness_mm`` (layers,), in mm."""
    thickness_mm = np.asarray(thickness_mm, float)
    if thickness_mm.shape != (detector.n_layers,) or np.any(thickness_mm < 0) or not np.all(np.isfinite(thickness_mm)):
        raise CalolabError(f"absorber thicknesses for {detector.name}: expected {detector.n_layers} values >= 0 mm, "
                           f"got shape {thickness_mm.shape}")
    if any(not layer.passive for layer in detector.layers):
        raise CalolabError(f"absorber thicknesses for {detector.name}: every layer needs an absorber slab to vary")
    return dataclasses.replace(detector.with_absorber_thickness(thickness_mm), name=name or detector.name)


def draw_layouts(config: DatasetConfig) -> np.ndarray:
    """Absorber thicknesses in mm of ``config.n_layouts`` layouts, ``(n_layouts, layers)``; row 0 is the base."""
    base_det = load_detector(config.detector)
    base = absorber_mm(base_det)
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 0x1A]))
    scales = rng.uniform(config.scale_min, config.scale_max, (config.n_layouts, len(base)))
    scales[0] = 1.0
    layouts = base * scales
    if config.keep_total_x0:
        per_mm = x0_per_mm(base_det)
        layouts *= ((base * per_mm).sum() / (layouts * per_mm).sum(1))[:, None]
    return layouts


@dataclass
class GenerativeDataset:
    """Showers of many absorber layouts with their per-event conditions.

    Attributes
    ----------
    showers
        All events (in the base detector's cell grid), MeV; ``extras["layout"]`` is the
        layout index of each event.
    absorber_mm
        Absorber thickness of every layout and layer in mm, ``(n_layouts, layers)``.
    absorber_x0
        The same in radiation lengths.
    config
        How it was drawn.
    """

    showers: Showers
    absorber_mm: np.ndarray
    absorber_x0: np.ndarray
    config: DatasetConfig

    def __len__(self) -> int:
        return len(self.showers)

    @property
    def layout(self) -> np.ndarray:
        """Layout index of each event, int (N,)."""
        return self.showers.extras["layout"].astype(np.int64)

    def conditions(self) -> np.ndarray:
        """Condition vectors ``[ln(E / 1 GeV), absorber X0 of each layer]``, float32 (N, 1 + layers)."""
        return make_conditions(self.showers.incident_energy, self.absorber_x0[self.layout])

    def select(self, index: np.ndarray | slice) -> GenerativeDataset:
        """The events ``index`` (layout table unchanged)."""
        return GenerativeDataset(self.showers[index], self.absorber_mm, self.absorber_x0, self.config)


def make_conditions(energy_mev: np.ndarray, absorber_x0: np.ndarray) -> np.ndarray:
    """Condition vectors from energies (N,) in MeV and absorber depths (N, layers) or (layers,) in X0.

    >>> make_conditions(np.array([1e3, 1e5]), np.ones(2)).astype(float).round(3).tolist()
    [[0.0, 1.0, 1.0], [4.605, 1.0, 1.0]]
    """
    energy_mev = np.asarray(energy_mev, float)
    thick = np.broadcast_to(np.asarray(absorber_x0, float), (len(energy_mev), np.shape(absorber_x0)[-1]))
    return np.column_stack([np.log(energy_mev / GEV), thick]).astype(np.float32)


def build_dataset(config: DatasetConfig, progress: bool = False) -> GenerativeDataset:
    """Simulate the training set described by ``config`` (reproducible from ``config.seed``)."""
    from calolab.simulation import Beam, simulate

    base = load_detector(config.detector)
    layouts = draw_layouts(config)
    if config.energy_min_gev == config.energy_max_gev:
        beam = Beam(config.particle, energy=config.energy_min_gev * GEV)
    else:
        beam = Beam(config.particle, energy_min=config.energy_min_gev * GEV, energy_max=config.energy_max_gev * GEV,
                    spectrum="log-uniform")
    seeds = np.random.SeedSequence([config.seed, 0x51]).generate_state(config.n_layouts)
    parts = []
    for k, thickness in enumerate(layouts):
        det = with_absorbers(base, thickness)
        part = simulate(det, beam, config.events_per_layout, seed=int(seeds[k]))
        parts.append(Showers(base, part.offsets, part.cell, part.energy, part.particle, part.incident_energy,
                             part.entry, part.direction, {"layout": np.full(len(part), k, np.int32)}))
        if progress and (k + 1) % max(1, config.n_layouts // 10) == 0:
            print(f"simulated layout {k + 1}/{config.n_layouts}: {part.summary()}", flush=True)
    showers = Showers.concatenate(parts)
    x0 = layouts * x0_per_mm(base)
    showers.meta = {"generator": "calolab.generative.build_dataset", "dataset_config": asdict(config),
                    "absorber_mm": layouts, "absorber_x0": x0}
    return GenerativeDataset(showers, layouts, x0, config)


def save_dataset(data: GenerativeDataset, path: str | Path) -> Path:
    """Write the dataset as a calolab HDF5 showers file (atomically); conditions go in ``extras``."""
    from calolab.io import write_showers

    showers = data.showers
    cond = data.conditions()
    extras = {"layout": showers.extras["layout"].astype(np.int32), "log_energy_gev": cond[:, 0]}
    extras |= {f"absorber_x0_{i:02d}": cond[:, 1 + i] for i in range(cond.shape[1] - 1)}
    meta = {**showers.meta, "dataset_config": asdict(data.config), "absorber_mm": data.absorber_mm,
            "absorber_x0": data.absorber_x0}
    out = Showers(showers.detector, showers.offsets, showers.cell, showers.energy, showers.particle,
                  showers.incident_energy, showers.entry, showers.direction, extras, meta)
    return write_showers(out, path)


def load_dataset(path: str | Path) -> GenerativeDataset:
    """Read a dataset written by :func:`save_dataset`; a foreign file is a :class:`CalolabError`."""
    from calolab.io import read_showers

    showers = read_showers(path)
    meta = showers.meta
    if "layout" not in showers.extras or not all(k in meta for k in ("absorber_mm", "absorber_x0", "dataset_config")):
        raise CalolabError(f"{path}: not a generative training set (expected extras 'layout' and meta "
                           "'absorber_mm', 'absorber_x0', 'dataset_config')")
    config = DatasetConfig.from_dict(dict(meta["dataset_config"]), where=str(path))
    layout = showers.extras["layout"]
    x0 = np.asarray(meta["absorber_x0"], float)
    if len(layout) and (layout.min() < 0 or layout.max() >= len(x0)):
        raise CalolabError(f"{path}: extra 'layout' points outside the {len(x0)} stored layouts")
    return GenerativeDataset(showers, np.asarray(meta["absorber_mm"], float), x0, config)

