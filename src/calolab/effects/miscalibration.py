"""Miscalibration, bias, noise and zero suppression (paper 002, equations 1.1-1.3).

Every cell ``i`` of every event ``j``, hit or not, reads::

    E~_ij = C_i E_ij + b + eps_ij,   C_i = s_c (2 B_i - 1) + 1,   eps_ij = s_eps (2 B_ij - 1)

with ``B ~ Beta(2, 2)`` (so ``C`` lies in ``[1 - s_c, 1 + s_c]`` and ``eps`` in
``[-s_eps, s_eps]`` MeV, without tails), a global bias ``b`` in MeV, and the ``B`` of the
cells of one sub-module correlated through a vine copula
(:class:`~calolab.effects.copula.SubmoduleCopula`). ``C`` is drawn once per cell; ``eps``
anew for every event, from a Generator of its own per event, so the result does not
depend on how events are grouped. Readings at or below the zero-suppression threshold
(in MeV, or in units of each layer's most probable MIP signal) are dropped afterwards.

>>> import numpy as np
>>> cfg = DistortionConfig(calibration_scale=0.2, noise_scale=0.0, bias=0.0, zero_suppression=None)
>>> c, _ = calibration_constants(cfg, (4, 6, 6), seed=3)
>>> c.shape, bool((np.abs(c - 1) <= 0.2).all())
((4, 6, 6), True)
>>> noise_occupancy(DistortionConfig(noise_scale=0.5, bias=0.15, zero_suppression=0.6))  # empty cells kept
0.00725
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from calolab.effects.config import check_range, config_from_dict, config_to_dict, rng_for
from calolab.effects.copula import CopulaConfig, SubmoduleCopula, beta22_ppf
from calolab.errors import CalolabError
from calolab.geometry import Detector

ZS_UNITS = ("MeV", "MIP")
STREAM_CALIBRATION, STREAM_NOISE = 31, 32
STREAM_CAL_COPULA, STREAM_NOISE_COPULA = 33, 34


@dataclass(frozen=True)
class DistortionConfig:
    """Parameters of ``E~ = C E + b + eps`` and of the zero suppression.

    Parameters
    ----------
    calibration_scale
        ``s_c`` in [0, 1): ``C`` spans ``[1 - s_c, 1 + s_c]``.
    noise_scale
        ``s_eps`` in MeV: ``eps`` spans ``[-s_eps, s_eps]``.
    bias
        ``b`` in MeV, added to every cell.
    zero_suppression
        Threshold in ``zs_unit``: readings ``<=`` it are dropped; ``None`` keeps every
        non-zero reading (with noise: every cell of every event).
    zs_unit
        ``MeV``, or ``MIP`` for multiples of each layer's most probable MIP signal.
    calibration_copula, noise_copula
        Correlation of ``C`` and of ``eps`` within and between sub-modules.
    """

    calibration_scale: float = 0.0
    noise_scale: float = 0.0
    bias: float = 0.0
    zero_suppression: float | None = 0.6
    zs_unit: str = "MeV"
    calibration_copula: CopulaConfig = field(default_factory=CopulaConfig)
    noise_copula: CopulaConfig = field(default_factory=CopulaConfig)

    def __post_init__(self) -> None:
        check_range("calibration scale", self.calibration_scale, 0.0, 1.0, high_open=True)
        check_range("noise scale (MeV)", self.noise_scale, 0.0)
        check_range("bias (MeV)", self.bias)
        if self.zero_suppression is not None:
            check_range("zero-suppression threshold", self.zero_suppression)
        if self.zs_unit not in ZS_UNITS:
            raise CalolabError(f"zero-suppression unit {self.zs_unit!r}: expected MeV or MIP")


def calibration_constants(config: DistortionConfig, shape: tuple[int, int, int],
                          seed: int) -> tuple[np.ndarray, SubmoduleCopula]:
    """Miscalibration ``C`` per cell, float32 ``(layers, nx, ny)`` in ``[1 - s_c, 1 + s_c]``, and its copula."""
    copula = SubmoduleCopula(config.calibration_copula, shape, int(rng_for(seed, STREAM_CAL_COPULA).integers(2**63)))
    if config.calibration_scale == 0:
        return np.ones(shape, np.float32), copula
    b = beta22_ppf(copula.sample([rng_for(seed, STREAM_CALIBRATION)])[0])
    return (config.calibration_scale * (2 * b - 1) + 1).astype(np.float32).reshape(shape), copula


def noise_copula(config: DistortionConfig, shape: tuple[int, int, int], seed: int) -> SubmoduleCopula:
    """The copula of the per-event noise (its per-module Kendall taus are drawn from ``seed``)."""
    return SubmoduleCopula(config.noise_copula, shape, int(rng_for(seed, STREAM_NOISE_COPULA).integers(2**63)))


def noise(config: DistortionConfig, copula: SubmoduleCopula, seed: int, first_event: int, n: int) -> np.ndarray:
    """Noise ``eps`` in MeV of events ``first_event ... first_event + n - 1``, float32 ``(n, n_cells)``."""
    rngs = [rng_for(seed, STREAM_NOISE, first_event + i) for i in range(n)]
    eps = copula.sample(rngs, np.float32)
    beta22_ppf(eps, out=eps)  # B in [0, 1]
    eps *= np.float32(2 * config.noise_scale)
    eps -= np.float32(config.noise_scale)
    return eps


def layer_thresholds(config: DistortionConfig, detector: Detector) -> np.ndarray | None:
    """Zero-suppression threshold of each layer in MeV, float64 ``(layers,)``, or ``None``."""
    if config.zero_suppression is None:
        return None
    per_layer = np.full(detector.n_layers, config.zero_suppression, np.float64)
    return per_layer * detector.mip_mpv if config.zs_unit == "MIP" else per_layer


def noise_occupancy(config: DistortionConfig, threshold: float | None = None) -> float:
    """Probability that an empty cell survives zero suppression, ``P(b + eps > threshold)``.

    ``threshold`` in MeV defaults to ``config.zero_suppression`` (read as MeV).
    """
    threshold = config.zero_suppression if threshold is None else threshold
    if threshold is None:
        return float(config.noise_scale > 0 or config.bias != 0)
    if config.noise_scale == 0:
        return float(config.bias > threshold)
    x = float(np.clip((1 + (threshold - config.bias) / config.noise_scale) / 2, 0, 1))
    return round(1 - (3 * x**2 - 2 * x**3), 12)


@dataclass(frozen=True)
class DistortionTruth:
    """What a distortion applied, and how to regenerate its per-event noise.

    Attributes
    ----------
    calibration : float32 (layers, nx, ny)
        Miscalibration ``C`` of each cell.
    calibration_tau, noise_tau : float64 (n_modules,)
        Kendall tau between cells of each sub-module, for ``C`` and for ``eps``.
    threshold : float64 (layers,) or None
        Zero-suppression threshold of each layer in MeV.
    config : DistortionConfig
    seed : int
    """

    calibration: np.ndarray
    calibration_tau: np.ndarray
    noise_tau: np.ndarray
    threshold: np.ndarray | None
    config: DistortionConfig
    seed: int

    def noise(self, first_event: int, n: int) -> np.ndarray:
        """The noise ``eps`` (MeV) that events ``first_event ...`` received, float32 ``(n, layers, nx, ny)``."""
        shape = self.calibration.shape
        eps = noise(self.config, noise_copula(self.config, shape, self.seed), self.seed, first_event, n)
        return eps.reshape(n, *shape)

    def to_meta(self) -> dict[str, Any]:
        """A ``meta`` entry (arrays, numbers, strings) that every calolab format stores."""
        return {"effect": "distortion", "seed": self.seed, "config": config_to_dict(self.config),
                "calibration": self.calibration, "calibration_tau": self.calibration_tau,
                "noise_tau": self.noise_tau, "threshold_mev": self.threshold}

    @classmethod
    def from_meta(cls, entry: dict[str, Any]) -> DistortionTruth:
        """Inverse of :meth:`to_meta`."""
        try:
            threshold = entry["threshold_mev"]
            return cls(np.asarray(entry["calibration"]), np.asarray(entry["calibration_tau"]),
                       np.asarray(entry["noise_tau"]), None if threshold is None else np.asarray(threshold),
                       config_from_dict(DistortionConfig, entry["config"]), int(entry["seed"]))
        except (KeyError, TypeError) as exc:
            raise CalolabError(f"distortion record in meta is incomplete ({exc})") from None


def distortion_truth(config: DistortionConfig, detector: Detector, seed: int) -> DistortionTruth:
    """Draw the per-cell constants of a distortion of ``detector``."""
    calibration, cal_copula = calibration_constants(config, detector.shape, seed)
    noise_tau = noise_copula(config, detector.shape, seed).module_tau
    return DistortionTruth(calibration, cal_copula.module_tau, noise_tau, layer_thresholds(config, detector),
                           config, seed)


def distort_chunk(dense: np.ndarray, first_event: int, truth: DistortionTruth, copula: SubmoduleCopula,
                  threshold: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distort a dense float32 chunk ``(n, n_cells)`` of events ``first_event ...`` (MeV), in place.

    ``threshold`` is per cell in MeV, ``(n_cells,)``. Returns the kept readings sparse:
    ``(event in chunk, flat cell, energy)``, in event then cell order.
    """
    n, n_cells = dense.shape
    dense *= truth.calibration.reshape(1, -1)
    if truth.config.bias:
        dense += np.float32(truth.config.bias)
    if truth.config.noise_scale:
        dense += noise(truth.config, copula, truth.seed, first_event, n)
    keep = dense != 0 if threshold is None else dense > threshold
    flat = np.flatnonzero(keep)
    event, cell = np.divmod(flat, n_cells)
    return event, cell, dense.ravel()[flat]
