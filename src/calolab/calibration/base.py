"""What every calibrator returns, how it is applied, and how it is scored.

A calibrator compares a ``reference`` run (healthy detector) with a ``damaged`` run of
the same kind of events (unpaired, independent) and estimates each cell's response
coefficient ``c`` (damaged signal = c x healthy signal), shape ``(layers, nx, ny)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from calolab.calibration.cellstats import CellStats
from calolab.errors import CalolabError
from calolab.geometry import Detector
from calolab.showers import Showers


@dataclass
class CalibrationResult:
    """Per-cell coefficients, their uncertainties and which cells could be calibrated.

    Attributes
    ----------
    coefficients : float64 (layers, nx, ny)
        Estimated response c of each cell (1 = healthy). NaN where not calibrated.
    uncertainty : float64 (layers, nx, ny)
        One-standard-deviation uncertainty of ``coefficients``; NaN where not calibrated.
    calibrated : bool (layers, nx, ny)
        Cells with enough data to calibrate; the others are flagged, never silently set.
    method : str
    diagnostics : dict
        Method-specific numbers (runtime, epochs, MAE per epoch when truth was given, ...).
    run_stats : (CellStats, CellStats) or None
        The per-cell sums of the reference and damaged runs, where the method computed them
        (hierarchical, moments; quantile and mip on sketches), so that :func:`energy_scale` needs no other pass over the
        runs. Not stored by :func:`~calolab.calibration.write_calibration`.
    """

    coefficients: np.ndarray
    uncertainty: np.ndarray
    calibrated: np.ndarray
    method: str
    diagnostics: dict[str, Any] = field(default_factory=dict)
    run_stats: tuple[CellStats, CellStats] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.coefficients = np.where(self.calibrated, self.coefficients, np.nan)
        self.uncertainty = np.where(self.calibrated, self.uncertainty, np.nan)


def check_pair(reference: Showers, damaged: Showers) -> None:
    """Raise a one-line :class:`CalolabError` unless the two runs can be compared cell by cell."""
    check_geometries(reference.detector, damaged.detector)
    for name, showers in (("reference", reference), ("damaged", damaged)):
        check_energies(showers, name)


def check_geometries(reference: Detector, damaged: Detector) -> None:
    """Raise a one-line :class:`CalolabError` unless the two detectors have the same cells."""
    if reference.shape != damaged.shape:
        raise CalolabError(f"reference ({reference.name}, {reference.shape}) and damaged "
                           f"({damaged.name}, {damaged.shape}) data have different geometries")


def check_energies(showers: Showers, name: str, source: str = "") -> None:
    """Raise a one-line :class:`CalolabError` unless ``showers`` hold events with finite energies >= 0 MeV.

    ``name`` is the run's role (``"reference"``, ``"damaged"``); ``source``, if given, the
    file and events the batch came from, which then begins the message.
    """
    where = f"{source}: " if source else ""
    if len(showers) == 0:
        raise CalolabError(f"{where}the {name} data hold no events")
    if not np.all(np.isfinite(showers.energy)):
        raise CalolabError(f"{where}the {name} data contain NaN or infinite cell energies")
    if np.any(showers.energy < 0):
        raise CalolabError(f"{where}the {name} data contain negative cell energies: calibrate before pedestal "
                           "subtraction or zero suppression is applied")


def apply_calibration(showers: Showers, result: CalibrationResult) -> Showers:
    """Divide each hit by its cell's coefficient; uncalibrated cells are left as they are and listed in meta."""
    if result.coefficients.shape != showers.detector.shape:
        raise CalolabError(f"calibration for cells {result.coefficients.shape} does not fit "
                           f"{showers.detector.name} {showers.detector.shape}")
    factor = np.where(result.calibrated & (result.coefficients > 0), result.coefficients, 1.0).ravel()
    energy = (showers.energy / factor[showers.cell]).astype(np.float32)
    meta = dict(showers.meta)
    meta["calibration"] = {"method": result.method,
                           "uncalibrated_cells": np.flatnonzero(~result.calibrated.ravel()).astype(np.int32)}
    return Showers(showers.detector, showers.offsets, showers.cell, energy, showers.particle, showers.incident_energy,
                   showers.entry, showers.direction, dict(showers.extras), meta)


def hit_cells(showers: Showers, min_hits: int = 1) -> np.ndarray:
    """Boolean (layers, nx, ny) mask of cells with at least ``min_hits`` hits."""
    counts = np.bincount(showers.cell, minlength=showers.detector.n_cells)
    return (counts >= min_hits).reshape(showers.detector.shape)


def score(result: CalibrationResult, truth: np.ndarray, cells: np.ndarray | None = None) -> dict[str, float]:
    """MAE and RMSE of the coefficients over ``cells`` (default: all cells), and the pulls.

    ``truth`` is the true coefficient array, shape (layers, nx, ny). Cells the method could
    not calibrate are scored as left uncorrected (coefficient 1), which is what
    :func:`apply_calibration` does with them; ``coverage`` is the calibrated fraction.
    Pulls ``(estimate - truth) / sigma`` are over calibrated cells with finite sigma > 0.
    """
    cells = np.ones(truth.shape, bool) if cells is None else np.asarray(cells, bool)
    estimate = np.where(result.calibrated, result.coefficients, 1.0)
    diff = estimate[cells] - truth[cells]
    out = {"cells": int(cells.sum()), "mae": float(np.mean(np.abs(diff))), "rmse": float(np.sqrt(np.mean(diff**2))),
           "coverage": float(np.mean(result.calibrated[cells]))}
    sigma = result.uncertainty
    with_sigma = cells & result.calibrated & np.isfinite(sigma) & (sigma > 0)
    if with_sigma.any():
        pulls = (result.coefficients[with_sigma] - truth[with_sigma]) / sigma[with_sigma]
        out.update(pull_mean=float(np.mean(pulls)), pull_width=float(np.std(pulls)),
                   pull_width_robust=float(0.7413 * np.subtract(*np.percentile(pulls, [75, 25]))))
    return out


def energy_scale(reference: Showers | CellStats, damaged: Showers | CellStats, result: CalibrationResult,
                 truth: np.ndarray | None = None) -> dict[str, float]:
    """What a calibration does to the energy scale, which a per-cell MAE hides.

    Returns the mean visible sum per event of ``damaged`` before and after
    :func:`apply_calibration`, each over that of ``reference`` (``sum_ratio_damaged``,
    ``sum_ratio_corrected``; the runs hold the same kind of events), and ``dead_cells_found``,
    the reference's hit cells set to c = 0. The runs may be given as their per-cell sums
    (:class:`~calolab.calibration.cellstats.CellStats`, e.g. accumulated over a streamed run):
    every figure is computed from those (the corrected sum as each cell's sum over its
    coefficient, in float64). With the true coefficients ``truth`` (layers,
    nx, ny) it adds the energy-weighted response over the reference's energy flow, before
    (``sum_c E_c t_c / sum_c E_c``) and after correction (``t_c / c_hat_c``; a dead cell's
    energy is lost: 0), and ``dead_cells_true``, the hit cells with t = 0.

    >>> from calolab.geometry import load_detector
    >>> det = load_detector("siw-ecal")
    >>> dense = np.zeros((1, *det.shape), np.float32); dense[0, 0, 0, :2] = [3.0, 1.0]
    >>> ref = Showers.from_dense(det, dense, particle=11, incident_energy=[1e3])
    >>> dam = Showers.from_dense(det, dense * 0.5, particle=11, incident_energy=[1e3])
    >>> c = np.ones(det.shape); c[0, 0, :2] = 0.5
    >>> found = CalibrationResult(c, np.zeros(det.shape), np.ones(det.shape, bool), "toy")
    >>> {k: round(v, 3) for k, v in energy_scale(ref, dam, found, truth=c).items()}  # doctest: +NORMALIZE_WHITESPACE
    {'sum_ratio_damaged': 0.5, 'sum_ratio_corrected': 1.0, 'dead_cells_found': 0, 'response_damaged': 0.5,
     'response_corrected': 1.0, 'dead_cells_true': 0}
    """
    ref, dam = (s if isinstance(s, CellStats) else CellStats.of(s) for s in (reference, damaged))
    reference_sum = float(ref.sum.sum()) / ref.n_events
    cells = (ref.hits > 0).reshape(result.coefficients.shape)
    estimate = np.where(result.calibrated, result.coefficients, 1.0)
    factor = np.where(result.calibrated & (result.coefficients > 0), result.coefficients, 1.0).ravel()
    out: dict[str, float] = {
        "sum_ratio_damaged": float(dam.sum.sum()) / dam.n_events / reference_sum,
        "sum_ratio_corrected": float((dam.sum / factor).sum()) / dam.n_events / reference_sum,
        "dead_cells_found": int((cells & (estimate == 0)).sum()),
    }
    if truth is not None:
        flow = ref.sum.reshape(cells.shape)
        truth = np.asarray(truth, float)
        with np.errstate(divide="ignore", invalid="ignore"):
            corrected = np.where(estimate > 0, truth / estimate, 0.0)
        out |= {"response_damaged": float((flow * truth).sum() / flow.sum()),
                "response_corrected": float((flow * corrected).sum() / flow.sum()),
                "dead_cells_true": int((cells & (truth == 0)).sum())}
    return out
