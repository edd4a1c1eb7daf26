"""Calibrated energy sums: hits in MIP units times the sampling weight of their layer.

As in CALICE and HGCAL practice, each active layer is first calibrated to its MIP peak
(most probable value), then weighted by the energy a MIP loses in the whole sampling
layer. The result is an energy in MeV on the MIP scale; one global factor (from a
linearity fit, see :mod:`calolab.validation`) brings it to the electron scale.
"""

from __future__ import annotations

import numpy as np

from calolab.geometry import Detector
from calolab.showers import Showers


def layer_weights(detector: Detector) -> np.ndarray:
    """MeV deposited per MeV seen, for a MIP, in each layer: ``mip_loss / mip_mpv``, (layers,)."""
    return detector.mip_loss / detector.mip_mpv


# Slope of the exponential tail of electromagnetic showers beyond the maximum, per X0
# (GFLASH: beta = (alpha - 1) / T is about 0.5 from 1 to 100 GeV).
EM_TAIL_SLOPE = 0.5


def weighted_sum(showers: Showers, rear_leakage: bool = False) -> np.ndarray:
    """Sampling-weighted visible energy per event, MeV on the MIP scale, (N,).

    With ``rear_leakage``, the energy leaking out of the back of an electromagnetic
    calorimeter is estimated from the last layer: the profile falls as exp(-beta t), so
    the leak is ``E_last / (beta * dt_last)`` with dt_last the last layer's depth in X0.
    """
    layers = showers.layer_sums() * layer_weights(showers.detector)
    total = layers.sum(axis=1)
    if rear_leakage:
        det = showers.detector
        total = total + layers[:, -1] / (EM_TAIL_SLOPE * (det.x0_bounds[-1] - det.x0_bounds[-2]))
    return total
