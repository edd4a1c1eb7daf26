"""Radiation ageing: per-cell response coefficients ``c`` in [0, 1] from a dose map.

Response models of a cell that received a dose ``D`` (krad), physics.md section 6:

* ``linear``: ``c = 1 - k D`` (clipped to [0, 1]), the model of papers 000/001; it agrees
  with the exponential one while the damage is small (``k = 1 / Dc``).
* ``exponential``: ``c = exp(-D / Dc)``, scintillator light yield (CMS HCAL), with
  ``Dc = 4.0 R^0.575`` Mrad for a dose rate ``R`` in krad/h (:func:`scintillator_critical_dose`).
* ``sipm``: ``c = exp(-D^0.65 / 199.6)``, SiPM-on-tile (CMS HGCAL).

Cells of the same dose differ (material, production): each cell gets a radiation
*sensitivity* ``s`` with mean 1, lognormal ``s = exp(sigma z - sigma^2 / 2)`` or normal
``s = max(1 + sigma z, 0)``, and responds to the effective dose ``s D``, so undamaged
cells stay at exactly 1. A fraction of cells, drawn at random, is dead (``c = 0``).
``target_mae`` rescales the damage so that the mean ``|1 - c|`` over live cells that saw
energy equals the target (0.018 in paper 001): for ``linear`` the slope ``k``, for the
others the dose.

>>> round(float(sipm_response(10.0)), 3), round(float(sipm_response(100.0)), 3), round(float(sipm_response(1e3)), 2)
(0.978, 0.905, 0.64)
>>> dose = np.array([0.0, 1.0, 2.0, 5.0])
>>> k = linear_slope_for_mae(dose, target=0.018, mask=dose > 0)
>>> round(k, 6), round(float(np.mean(1 - linear_response(dose[1:], k))), 6)
(0.00675, 0.018)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from calolab.effects.config import check_range, config_from_dict, config_to_dict, rng_for
from calolab.effects.dose import DoseConfig
from calolab.errors import CalolabError

MODELS = ("linear", "exponential", "sipm")
SPREADS = ("lognormal", "normal")
SIPM_EXPONENT, SIPM_SCALE = 0.65, 199.6  # CMS HGCAL SiPM-on-tile, D in krad
STREAM_SENSITIVITY, STREAM_DEAD = 11, 12  # seed streams (see calolab.effects.config.rng_for)


def linear_response(dose: np.ndarray, slope: float) -> np.ndarray:
    """``clip(1 - slope * dose, 0, 1)``; ``dose`` in krad, ``slope`` in 1/krad."""
    return np.clip(1.0 - slope * np.asarray(dose, np.float64), 0.0, 1.0)


def exponential_response(dose: np.ndarray, critical_dose: float) -> np.ndarray:
    """``exp(-dose / critical_dose)``, both in krad."""
    return np.exp(-np.asarray(dose, np.float64) / critical_dose)


def sipm_response(dose: np.ndarray) -> np.ndarray:
    """SiPM-on-tile ``exp(-dose^0.65 / 199.6)``, ``dose`` in krad."""
    return np.exp(-np.asarray(dose, np.float64) ** SIPM_EXPONENT / SIPM_SCALE)


def scintillator_critical_dose(dose_rate: float) -> float:
    """Critical dose ``Dc`` in krad of scintillator at ``dose_rate`` krad/h: ``4.0 R^0.575`` Mrad (CMS HCAL)."""
    check_range("dose rate (krad/h)", dose_rate, 0.0, low_open=True)
    return 4000.0 * dose_rate**0.575


@dataclass(frozen=True)
class AgeingConfig:
    """Ageing of every cell from its dose.

    Parameters
    ----------
    model
        ``linear``, ``exponential`` or ``sipm``.
    slope
        ``k`` of the linear model, 1/krad (linear only; or give ``target_mae``).
    critical_dose, dose_rate
        ``Dc`` in krad of the exponential model, or the dose rate in krad/h it follows from.
    target_mae
        Rescale the damage so that the mean ``|1 - c|`` over live hit cells equals this.
    spread, spread_kind
        Relative cell-to-cell spread of the radiation sensitivity, ``lognormal`` or ``normal``.
    dead_fraction
        Fraction of all cells set dead (``c = 0``).
    dose
        How the deposited energy becomes a dose (:class:`~calolab.effects.dose.DoseConfig`).
    """

    model: str = "linear"
    slope: float | None = None
    critical_dose: float | None = None
    dose_rate: float | None = None
    target_mae: float | None = None
    spread: float = 0.0
    spread_kind: str = "lognormal"
    dead_fraction: float = 0.0
    dose: DoseConfig = field(default_factory=DoseConfig)

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise CalolabError(f"ageing model {self.model!r}: expected one of {', '.join(MODELS)}")
        if self.spread_kind not in SPREADS:
            raise CalolabError(f"ageing spread_kind {self.spread_kind!r}: expected one of {', '.join(SPREADS)}")
        check_range("ageing spread", self.spread, 0.0)
        check_range("dead_fraction", self.dead_fraction, 0.0, 1.0)
        if self.target_mae is not None:
            check_range("target_mae", self.target_mae, 0.0, 1.0, high_open=True)
        if self.slope is not None:
            check_range("linear slope (1/krad)", self.slope, 0.0)
        if self.model == "linear" and (self.slope is None) == (self.target_mae is None):
            raise CalolabError("linear ageing: give exactly one of slope (1/krad) or target_mae")
        if self.model == "exponential":
            if (self.critical_dose is None) == (self.dose_rate is None):
                raise CalolabError("exponential ageing: give exactly one of critical_dose (krad) or dose_rate")
            if self.critical_dose is not None:
                check_range("critical dose (krad)", self.critical_dose, 0.0, low_open=True)
            else:
                scintillator_critical_dose(self.dose_rate)  # type: ignore[arg-type]

    def response(self, slope: float | None = None) -> Callable[[np.ndarray], np.ndarray]:
        """The model ``c(D)`` (``D`` in krad) with this config's constants; ``slope`` overrides ``k``."""
        if self.model == "linear":
            k = self.slope if slope is None else slope
            return lambda d: linear_response(d, k)  # type: ignore[arg-type]
        if self.model == "exponential":
            dc = self.critical_dose or scintillator_critical_dose(self.dose_rate)  # type: ignore[arg-type]
            return lambda d: exponential_response(d, dc)
        return sipm_response


def sensitivity(shape: tuple[int, ...], spread: float, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Per-cell radiation sensitivity with mean 1 and relative spread ``spread``, float64 ``shape``."""
    if spread == 0:
        return np.ones(shape)
    z = rng.standard_normal(shape)
    if kind == "lognormal":
        return np.exp(spread * z - 0.5 * spread**2)
    return np.maximum(1.0 + spread * z, 0.0)


def dead_cells(shape: tuple[int, ...], fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean ``shape`` mask with ``round(fraction * size)`` cells, chosen at random, set."""
    n = int(np.prod(shape))
    mask = np.zeros(n, bool)
    mask[rng.choice(n, size=int(round(fraction * n)), replace=False)] = True
    return mask.reshape(shape)


def mae_scale(response: Callable[[np.ndarray], np.ndarray], dose: np.ndarray, target: float) -> float:
    """Factor ``a`` such that ``mean(1 - response(a * dose)) == target`` (``dose``: the cells to average over)."""
    from scipy.optimize import brentq

    dose = np.asarray(dose, np.float64).ravel()
    if dose.size == 0 or not np.any(dose > 0):
        raise CalolabError("target_mae: no live cell received any dose, nothing to scale")
    if target == 0:
        return 0.0

    def excess(log_a: float) -> float:
        return float(np.mean(1.0 - response(math.exp(log_a) * dose))) - target

    lo, hi = -60.0, 0.0
    while excess(hi) < 0:
        hi += 5.0
        if hi > 200:
            raise CalolabError(f"target_mae {target} cannot be reached: too many cells without dose")
    while excess(lo) > 0:
        lo -= 20.0
    return math.exp(brentq(excess, lo, hi, xtol=1e-12, rtol=1e-12))


def linear_slope_for_mae(dose: np.ndarray, target: float, mask: np.ndarray | None = None) -> float:
    """Slope ``k`` (1/krad) of the linear model giving mean ``|1 - c|`` = ``target`` over ``dose[mask]``."""
    dose = np.asarray(dose, np.float64)
    selected = dose if mask is None else dose[np.asarray(mask, bool)]
    return mae_scale(lambda d: linear_response(d, 1.0), selected, target)


@dataclass(frozen=True)
class AgeingTruth:
    """What an ageing applied, per cell ``(layers, nx, ny)``, and how to redo it.

    Attributes
    ----------
    coefficients : float32 (layers, nx, ny)
        Response ``c`` each hit energy was multiplied by; 0 for dead cells.
    dead : bool (layers, nx, ny)
    dose : float64 (layers, nx, ny)
        Dose in krad as the model saw it (after any ``target_mae`` rescaling).
    sensitivity : float64 (layers, nx, ny)
        Radiation sensitivity of each cell (mean 1); the model was evaluated at ``sensitivity * dose``.
    parameters : dict
        Resolved constants: ``dose_scale`` and ``slope`` (1/krad) or ``critical_dose`` (krad).
    config : AgeingConfig
    seed : int
    """

    coefficients: np.ndarray
    dead: np.ndarray
    dose: np.ndarray
    sensitivity: np.ndarray
    parameters: dict[str, float]
    config: AgeingConfig
    seed: int

    def to_meta(self) -> dict[str, Any]:
        """A ``meta`` entry (arrays, numbers, strings) that every calolab format stores."""
        return {"effect": "ageing", "seed": self.seed, "config": config_to_dict(self.config),
                "parameters": dict(self.parameters), "coefficients": self.coefficients, "dead": self.dead,
                "dose_krad": self.dose, "sensitivity": self.sensitivity}

    @classmethod
    def from_meta(cls, entry: dict[str, Any]) -> AgeingTruth:
        """Inverse of :meth:`to_meta`."""
        try:
            return cls(np.asarray(entry["coefficients"]), np.asarray(entry["dead"]), np.asarray(entry["dose_krad"]),
                       np.asarray(entry["sensitivity"]), dict(entry["parameters"]),
                       config_from_dict(AgeingConfig, entry["config"]), int(entry["seed"]))
        except (KeyError, TypeError) as exc:
            raise CalolabError(f"ageing record in meta is incomplete ({exc})") from None


def ageing_truth(dose: np.ndarray, config: AgeingConfig, seed: int, hit: np.ndarray | None = None) -> AgeingTruth:
    """Per-cell ageing coefficients from a dose map (krad, ``(layers, nx, ny)``).

    ``hit`` marks the cells averaged over for ``target_mae`` (default: dose > 0); dead
    cells are left out of the average.
    """
    dose = np.asarray(dose, np.float64)
    if not np.all(np.isfinite(dose)) or np.any(dose < 0):
        raise CalolabError("dose map must be finite and >= 0 krad")
    sens = sensitivity(dose.shape, config.spread, config.spread_kind, rng_for(seed, STREAM_SENSITIVITY))
    dead = dead_cells(dose.shape, config.dead_fraction, rng_for(seed, STREAM_DEAD))
    params: dict[str, float] = {"dose_scale": 1.0}
    if config.model == "linear":
        params["slope"] = config.slope if config.slope is not None else math.nan
    elif config.model == "exponential":
        params["critical_dose"] = config.critical_dose or scintillator_critical_dose(config.dose_rate)  # type: ignore
    if config.target_mae is not None:
        live = (dose > 0 if hit is None else np.asarray(hit, bool)) & ~dead
        if config.model == "linear":
            params["slope"] = mae_scale(lambda d: linear_response(d, 1.0), (dose * sens)[live], config.target_mae)
        else:
            params["dose_scale"] = mae_scale(config.response(), (dose * sens)[live], config.target_mae)
            dose = dose * params["dose_scale"]
    coefficients = config.response(params.get("slope"))(dose * sens)
    coefficients[dead] = 0.0
    return AgeingTruth(coefficients.astype(np.float32), dead, dose, sens, params, config, seed)
