"""Detector effects: radiation ageing, miscalibration, bias, noise and zero suppression.

Each effect is pure NumPy, takes an explicit seed, is configured by a frozen dataclass
(loadable from a dict or YAML) and returns the true per-cell constants it applied, which
also travel in ``showers.meta["effects"]`` into every file format.

========================  ====================================================
module                    concept
========================  ====================================================
:mod:`.dose`              dose map (krad) from the energy a run deposits
:mod:`.ageing`            response models c(D), cell spread, dead cells
:mod:`.copula`            vine copula of cells within and between sub-modules
:mod:`.miscalibration`    ``E~ = C E + b + eps`` and zero suppression
:mod:`.apply`             :func:`age`, :func:`distort`, :func:`zero_suppress`
:mod:`.config`            configs from and to dicts and YAML, seeds
========================  ====================================================

>>> from calolab.geometry import load_detector
>>> from calolab.simulation import Beam, simulate
>>> showers = simulate(load_detector("ahcal"), Beam("e-", energy=10e3), 50, seed=1)
>>> aged, truth = age(showers, AgeingConfig(model="sipm", dose=DoseConfig(peak_dose=100.0)), seed=1)
>>> round(float(truth.coefficients.min()), 3)  # the hottest cell, 100 krad
0.905
>>> cfg = DistortionConfig(calibration_scale=0.2, noise_scale=0.5, bias=0.15, zero_suppression=0.6)
>>> distorted, dtruth = distort(aged, cfg, seed=2)
>>> dtruth.calibration.shape
(40, 24, 24)
"""

from calolab.effects.ageing import (
    AgeingConfig,
    AgeingTruth,
    ageing_truth,
    exponential_response,
    linear_response,
    linear_slope_for_mae,
    scintillator_critical_dose,
    sipm_response,
)
from calolab.effects.apply import age, distort, effect_records, read_truth, readout_threshold, zero_suppress
from calolab.effects.config import config_from_dict, config_to_dict, load_config, write_record
from calolab.effects.copula import CopulaConfig, SubmoduleCopula, beta22_ppf
from calolab.effects.dose import DoseConfig, cumulative_energy, dose_map
from calolab.effects.miscalibration import DistortionConfig, DistortionTruth, distortion_truth, noise_occupancy

__all__ = [
    "AgeingConfig",
    "AgeingTruth",
    "CopulaConfig",
    "DistortionConfig",
    "DistortionTruth",
    "DoseConfig",
    "SubmoduleCopula",
    "age",
    "ageing_truth",
    "beta22_ppf",
    "config_from_dict",
    "config_to_dict",
    "cumulative_energy",
    "distort",
    "distortion_truth",
    "dose_map",
    "effect_records",
    "exponential_response",
    "linear_response",
    "linear_slope_for_mae",
    "load_config",
    "noise_occupancy",
    "read_truth",
    "readout_threshold",
    "scintillator_critical_dose",
    "sipm_response",
    "write_record",
    "zero_suppress",
]
