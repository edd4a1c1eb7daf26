"""Sampling a trained generative model into :class:`~calolab.showers.Showers`.

The absorber layout is read from the detector passed to :func:`generate` (the trained base
detector by default): its 15 tungsten thicknesses in X0 are the model's condition, so a
layout written as a YAML detector can be sampled directly. The silicon, the cell grid and the
absorber materials must be those the model was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from calolab.errors import CalolabError
from calolab.generative.data import GEV, DatasetConfig, absorber_x0, make_conditions
from calolab.geometry import Detector, load_detector
from calolab.showers import Showers, particle_code


@dataclass
class TrainedModel:
    """A model loaded from a run folder: family ``name``, torch ``module``, base ``detector``, configs."""

    name: str
    module: torch.nn.Module
    detector: Detector
    data_config: DatasetConfig
    record: dict[str, Any]
    path: Path | None = None

    @property
    def energy_range(self) -> tuple[float, float]:
        """Training range of incident energies in MeV."""
        return self.data_config.energy_min_gev * GEV, self.data_config.energy_max_gev * GEV


def load_model(run_dir: str | Path, device: str = "auto") -> TrainedModel:
    """The model of a run folder written by :func:`calolab.generative.train.train`, in evaluation mode, on
    ``device`` (``auto`` or ``cpu``: see :func:`~calolab.generative.train.generative_device`)."""
    from calolab.generative.train import build_model, generative_device, load_checkpoint, model_config
    from calolab.yamlfile import read_yaml

    generative_device(device)
    run_dir = Path(run_dir)
    config_path = run_dir / "config.yaml"
    if not run_dir.is_dir() or not config_path.is_file():
        raise CalolabError(f"{run_dir}: not a generative run folder (no config.yaml)")
    record = read_yaml(config_path, "run config")
    try:
        name = record["model"]
        detector = Detector.from_dict(record["detector"], source=str(config_path))
        data_config = DatasetConfig.from_dict(record["dataset"], where=str(config_path))
        mconfig = model_config(name, _tuples(record["model_config"]))
    except (KeyError, TypeError) as exc:
        raise CalolabError(f"{config_path}: incomplete run config ({exc})") from None
    state = load_checkpoint(run_dir / "checkpoint.pt")
    module = build_model(name, mconfig, detector, seed=0)
    try:
        module.load_state_dict(state["model_state"])
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:200]
        raise CalolabError(f"{run_dir / 'checkpoint.pt'}: does not fit {config_path} ({detail})") from None
    module.eval()
    return TrainedModel(name, module, detector, data_config, record, run_dir)


def _tuples(spec: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()}


def _cells(detector: Detector) -> tuple[object, str]:
    """The cells, comparable (a cylinder's bins or a grid's pitches in mm), and in words."""
    if detector.cylinder is not None:
        return detector.cylinder, detector.cylinder.describe()
    return (detector.pitch_x, detector.pitch_y), f"{detector.pitch_x:g} x {detector.pitch_y:g} mm cells"


def _check_detector(model: TrainedModel, detector: Detector) -> None:
    base = model.detector
    (cells, words), (base_cells, base_words) = _cells(detector), _cells(base)
    if detector.shape != base.shape or cells != base_cells:
        raise CalolabError(f"detector {detector.name!r} ({detector.shape}, {words}) does not fit "
                           f"the model trained on {base.name!r} ({base.shape}, {base_words})")
    for i, (a, b) in enumerate(zip(detector.layers, base.layers, strict=True)):
        if a.with_absorber_thickness(b.absorber_thickness) != b:
            raise CalolabError(f"detector {detector.name!r} layer {i}: the model varies only the absorber thickness; "
                               f"expected {b.absorber} + {b.active_thickness:g} mm {b.active}")


def incident_energies(energies: float | tuple[float, float] | np.ndarray, n: int | None, rng: np.random.Generator,
                      spectrum: str = "log-uniform") -> np.ndarray:
    """Energies in MeV (N,): ``energies`` fixed, a ``(low, high)`` range drawn per ``spectrum``, or an array."""
    if isinstance(energies, tuple):
        if n is None:
            raise CalolabError("a range of energies needs a number of events n")
        low, high = map(float, energies)
        if not 0 < low < high:
            raise CalolabError(f"energy range ({low}, {high}) MeV: need 0 < low < high")
        if spectrum == "uniform":
            return rng.uniform(low, high, n)
        if spectrum == "log-uniform":
            return np.exp(rng.uniform(np.log(low), np.log(high), n))
        raise CalolabError(f"unknown spectrum {spectrum!r}: expected uniform or log-uniform")
    arr = np.asarray(energies, float)
    if arr.ndim == 0:
        if n is None:
            raise CalolabError("a fixed energy needs a number of events n")
        return np.full(n, float(arr))
    if arr.ndim != 1 or (n is not None and len(arr) != n):
        raise CalolabError(f"energies: expected a number, a (low, high) range or {n or 'N'} values, got {arr.shape}")
    return arr


def generate(model: TrainedModel, detector: Detector | str | None = None,
             energies: float | tuple[float, float] | np.ndarray = 10 * GEV, n: int | None = None, seed: int = 0,
             *, spectrum: str = "log-uniform", batch_size: int | None = None) -> Showers:
    """Generate showers with a trained model.

    Parameters
    ----------
    model
        From :func:`load_model`.
    detector
        Layout to generate in (preset name, YAML or :class:`Detector`); default: the base detector.
    energies
        Incident energy in MeV: one value, a ``(low, high)`` range drawn per ``spectrum``, or
        an array of ``n`` values. Must lie in the training range.
    n
        Number of events.
    seed
        The same seed (and batch size) gives the same bits.
    batch_size
        Events drawn at once (default: the model family's ``SAMPLE_BATCH``, else 4096).

    Returns
    -------
    Showers
        Sparse hits in MeV on the detector's ``(layers, nx, ny)`` grid; ``meta`` records the
        model, its run folder and the seed.
    """
    detector = model.detector if detector is None else load_detector(detector)
    _check_detector(model, detector)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xE]))
    energy = incident_energies(energies, n, rng, spectrum)
    low, high = model.energy_range
    if len(energy) and (energy.min() < low * (1 - 1e-9) or energy.max() > high * (1 + 1e-9)):
        raise CalolabError(f"energies {energy.min() / GEV:g}-{energy.max() / GEV:g} GeV outside the model's training "
                           f"range {low / GEV:g}-{high / GEV:g} GeV")
    cond = make_conditions(energy, absorber_x0(detector))
    family = _family(model.name)
    batch_size = batch_size or getattr(family, "SAMPLE_BATCH", 4096)
    gen = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, 0x70]).generate_state(1)[0]))
    events, cells, values = [], [], []
    for start in range(0, len(energy), batch_size):
        ev, cell, val = family.sample_hits(model.module, torch.from_numpy(cond[start:start + batch_size]), gen)
        events.append(ev + start)
        cells.append(cell)
        values.append(val)
    event = np.concatenate(events) if events else np.zeros(0, np.int64)
    cell = np.concatenate(cells) if cells else np.zeros(0, np.int64)
    value = np.concatenate(values) if values else np.zeros(0, np.float32)
    key = event * detector.n_cells + cell
    order = np.lexsort((cell, event)) if len(key) > 1 and np.any(np.diff(key) <= 0) else slice(None)
    offsets = np.concatenate([[0], np.cumsum(np.bincount(event, minlength=len(energy)))])
    meta = {"generator": f"calolab.generative.{model.name}", "run": str(model.path or ""), "seed": seed,
            "absorber_mm": np.array([la.absorber_thickness for la in detector.layers])}
    return Showers(detector, offsets, cell[order], value[order], particle_code(model.data_config.particle), energy,
                   meta=meta)


def _family(name: str):
    from calolab.generative.train import FAMILIES

    return FAMILIES[name][0]
