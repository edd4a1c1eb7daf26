"""Apply detector effects to showers, and keep what was applied with the data.

:func:`age` and :func:`distort` return new :class:`~calolab.showers.Showers` and the
truth of what they applied. The truth is also appended to ``meta["effects"]`` (a list, in
the order the effects were applied), so that :func:`~calolab.io.write_showers` stores it
and :func:`read_truth` gets it back from a file.

>>> import numpy as np
>>> from calolab.geometry import Detector
>>> from calolab.showers import Showers
>>> det = Detector.from_dict({"name": "toy", "cells": {"nx": 4, "ny": 4, "pitch": 10.0},
...     "layers": [{"absorber": "Fe", "absorber_thickness": 20, "active": "Scintillator",
...                 "active_thickness": 5, "repeat": 2}]})
>>> dense = np.zeros((2, *det.shape), np.float32); dense[:, 0, 1, 1] = 10.0; dense[0, 1, 2, 2] = 4.0
>>> s = Showers.from_dense(det, dense, particle=11, incident_energy=[1e4, 1e4])
>>> aged, truth = age(s, AgeingConfig(model="linear", target_mae=0.1), seed=1)
>>> truth.coefficients[0, 1, 1].item() < truth.coefficients[1, 2, 2].item() < 1.0  # more dose, less light
True
>>> dist, dtruth = distort(aged, DistortionConfig(calibration_scale=0.2, noise_scale=0.5, bias=0.15), seed=2)
>>> [r["effect"] for r in dist.meta["effects"]], dist.n_hits >= 2
(['ageing', 'distortion'], True)
>>> bool(np.array_equal(read_truth(dist, "ageing").coefficients, truth.coefficients))
True
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from calolab.effects.ageing import AgeingConfig, AgeingTruth, ageing_truth
from calolab.effects.config import Seed, resolve_seed
from calolab.effects.dose import cumulative_energy, dose_map
from calolab.effects.miscalibration import (
    DistortionConfig,
    DistortionTruth,
    distort_chunk,
    distortion_truth,
    noise_copula,
)
from calolab.errors import CalolabError
from calolab.showers import Showers

TRUTHS: dict[str, Any] = {"ageing": AgeingTruth, "distortion": DistortionTruth}


def check_energies(showers: Showers, what: str, negative: bool = False) -> None:
    """Raise :class:`CalolabError` unless every hit energy is finite and (unless ``negative``) >= 0 MeV."""
    if not np.all(np.isfinite(showers.energy)):
        raise CalolabError(f"{what}: hit energies contain NaN or infinity")
    if not negative and showers.n_hits and showers.energy.min() < 0:
        raise CalolabError(f"{what}: hit energies must be >= 0 MeV, found {showers.energy.min():g}")


def age(showers: Showers, config: AgeingConfig, seed: Seed = None,
        dose: np.ndarray | None = None) -> tuple[Showers, AgeingTruth]:
    """Multiply every hit energy by the ageing coefficient of its cell.

    Parameters
    ----------
    showers
        Events to age (hit energies in MeV, finite and >= 0).
    config
        Response model, spread, dead cells and dose scale.
    seed
        Integer or Generator; the same seed gives the same constants.
    dose
        Dose map in krad ``(layers, nx, ny)``; default: from the energy ``showers`` deposit.

    Returns
    -------
    (Showers, AgeingTruth)
        Aged showers (hits in dead cells dropped) and the per-cell constants.
    """
    check_energies(showers, "age")
    seed = resolve_seed(seed)
    hit = cumulative_energy(showers) > 0
    if dose is None:
        dose = dose_map(showers, config.dose)
    elif np.shape(dose) != showers.detector.shape:
        raise CalolabError(f"age: dose map of shape {np.shape(dose)}, expected {showers.detector.shape}")
    truth = ageing_truth(dose, config, seed, hit=hit)
    energy = showers.energy * truth.coefficients.ravel()[showers.cell]
    return _replace_hits(showers, showers.event_index, showers.cell, energy, truth.to_meta()), truth


def distort(showers: Showers, config: DistortionConfig, seed: Seed = None, chunk_size: int | None = None,
            workers: int = 1, progress: bool = False) -> tuple[Showers, DistortionTruth]:
    """Apply ``E~ = C E + b + eps`` to every cell of every event, then zero suppression.

    Parameters
    ----------
    showers
        Events to distort (hit energies in MeV, finite and >= 0).
    config
        Scales, bias, threshold and correlations.
    seed
        Integer or Generator; the result does not depend on ``chunk_size``.
    chunk_size
        Events made dense at a time (default: about 2**21 cells, a few MB per array).
    workers
        Threads working on chunks in parallel; the result does not depend on it.
    progress
        Show a progress bar on stderr.

    Returns
    -------
    (Showers, DistortionTruth)
        The readings that pass zero suppression, and the per-cell constants.
    """
    check_energies(showers, "distort")
    seed = resolve_seed(seed)
    det = showers.detector
    truth = distortion_truth(config, det, seed)
    copula = noise_copula(config, det.shape, seed)
    threshold = None if truth.threshold is None else np.repeat(truth.threshold, det.nx * det.ny).astype(np.float32)
    chunk = chunk_size or max(1, (1 << 21) // det.n_cells)
    starts = range(0, len(showers), chunk)

    def job(start: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        dense = showers.dense(start, start + chunk).reshape(-1, det.n_cells)
        event, cell, energy = distort_chunk(dense, start, truth, copula, threshold)
        return event + start, cell, energy

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(showers), unit="ev", desc=f"distort {det.name}")
    events, cells, energies = [], [], []
    with ThreadPoolExecutor(max_workers=workers) as pool:  # NumPy releases the GIL; rows own their Generators
        for start, (event, cell, energy) in zip(starts, pool.map(job, starts), strict=True):
            events.append(event)
            cells.append(cell)
            energies.append(energy)
            if bar is not None:
                bar.update(min(chunk, len(showers) - start))
    if bar is not None:
        bar.close()
    out = _replace_hits(showers, np.concatenate(events or [np.zeros(0, np.int64)]),
                        np.concatenate(cells or [np.zeros(0, np.int64)]),
                        np.concatenate(energies or [np.zeros(0, np.float32)]), truth.to_meta())
    return out, truth


def zero_suppress(showers: Showers, threshold: float | np.ndarray) -> Showers:
    """Drop the hits at or below ``threshold`` (MeV), as a readout's zero suppression does.

    Negative hit energies (pedestal-subtracted data) are accepted, and dropped with the rest.

    ``threshold`` is one number or one per layer, shape ``(layers,)`` (e.g. half a MIP of
    each layer: ``0.5 * detector.mip_mpv``). Sparse: no event is made dense. The threshold
    is recorded in ``meta["effects"]``.

    >>> import numpy as np
    >>> from calolab.geometry import Detector
    >>> det = Detector.from_dict({"name": "toy", "cells": {"nx": 2, "ny": 2, "pitch": 10.0},
    ...     "layers": [{"absorber": "Cu", "absorber_thickness": 20, "active": "Si",
    ...                 "active_thickness": 2, "repeat": 2}]})
    >>> dense = np.zeros((1, *det.shape), np.float32); dense[0, 0, 0, :] = [0.3, 0.6]; dense[0, 1, 1, 1] = 0.9
    >>> kept = zero_suppress(Showers.from_dense(det, dense, particle=211, incident_energy=[1e3]), 0.6)
    >>> [round(float(e), 3) for e in kept.energy], kept.meta["effects"][-1]  # 0.6 is at the threshold: dropped
    ([0.9], {'effect': 'zero_suppression', 'threshold_mev': [0.6, 0.6]})
    """
    check_energies(showers, "zero_suppress", negative=True)  # pedestal-subtracted data are what it cleans
    per_layer = np.broadcast_to(np.asarray(threshold, np.float64), (showers.detector.n_layers,))
    if not np.all(np.isfinite(per_layer)) or np.any(per_layer < 0):
        raise CalolabError(f"zero_suppress: threshold must be finite and >= 0 MeV, got {threshold!r}")
    layer = showers.cell // (showers.detector.nx * showers.detector.ny)
    keep = showers.energy > per_layer.astype(np.float32)[layer]  # float32, as the hits are stored
    record = {"effect": "zero_suppression", "threshold_mev": [float(t) for t in per_layer]}
    return _replace_hits(showers, showers.event_index[keep], showers.cell[keep], showers.energy[keep], record)


def effect_records(meta: dict[str, Any]) -> list[dict[str, Any]]:
    """The effects applied to a sample, oldest first (``meta["effects"]``)."""
    return list(meta.get("effects", []))


def readout_threshold(source: Showers | dict[str, Any]) -> np.ndarray | None:
    """Per-layer zero-suppression threshold (layers,) in MeV that the last readout effect applied, or None.

    Read from ``meta["effects"]``: a ``zero_suppression`` record, or a ``distortion`` (which
    zero-suppresses its readings), whichever came last.
    """
    meta = source.meta if isinstance(source, Showers) else source
    for record in reversed(effect_records(meta)):
        if not isinstance(record, dict):
            continue
        if record.get("effect") == "zero_suppression" and "threshold_mev" in record:
            return np.asarray(record["threshold_mev"], float)
        if record.get("effect") == "distortion":
            threshold = TRUTHS["distortion"].from_meta(record).threshold
            return None if threshold is None else np.asarray(threshold, float)
    return None


def read_truth(source: Showers | dict[str, Any], effect: str) -> Any:
    """The truth of the last ``effect`` (``ageing`` or ``distortion``) applied to showers or a ``meta`` dict."""
    if effect not in TRUTHS:
        raise CalolabError(f"unknown effect {effect!r}: expected one of {', '.join(TRUTHS)}")
    meta = source.meta if isinstance(source, Showers) else source
    records = [r for r in effect_records(meta) if isinstance(r, dict) and r.get("effect") == effect]
    if not records:
        raise CalolabError(f"no {effect} was applied to these showers (meta has no such record)")
    return TRUTHS[effect].from_meta(records[-1])


def _replace_hits(showers: Showers, event: np.ndarray, cell: np.ndarray, energy: np.ndarray,
                  record: dict[str, Any]) -> Showers:
    """``showers`` with new hits (event-sorted; zero energies dropped) and ``record`` added to the effects."""
    keep = energy != 0
    event, cell, energy = event[keep], cell[keep], energy[keep]
    offsets = np.concatenate([[0], np.cumsum(np.bincount(event, minlength=len(showers)))])
    meta = dict(showers.meta)
    meta["effects"] = [*effect_records(showers.meta), record]
    return Showers(showers.detector, offsets, cell, energy, showers.particle, showers.incident_energy,
                   showers.entry, showers.direction, dict(showers.extras), meta)
