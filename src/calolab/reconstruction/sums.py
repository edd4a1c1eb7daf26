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


def weighted_sum(showers: Showers) -> np.ndarray:
    """Sampling-weighted visible energy per event, MeV on the MIP scale, (N,)."""
    return showers.layer_sums() @ layer_weights(showers.detector)
