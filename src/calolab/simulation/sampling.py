"""Visible energy in the active layers: Landau losses of charged-track crossings.

A sampling calorimeter sees a shower through the charged tracks that cross its active
layers. The number of crossings of layer ``L`` per MeV deposited in that layer is
``f e_hat <cos theta> / dE_mip(L)``, with ``dE_mip(L)`` the energy a MIP loses in the whole
layer and ``e_hat`` the GFLASH e/mip ratio (soft electrons that stop in the absorber never
cross). Each crossing at angle theta deposits a Landau-distributed energy over a path
``d / cos theta``. The stochastic term of the resolution follows from these counts
(Poisson) and from the Landau and path-length spreads, as in Amaldi's and Fabjan's
sampling-fluctuation estimates: nothing here types in a resolution.
"""

from __future__ import annotations

import numpy as np

from calolab.geometry import Detector

# Angular spread of shower tracks crossing a layer: cos theta uniform in [COS_MIN, 1]
# gives <cos theta> = 0.575, Fabjan's value for electromagnetic showers.
COS_MIN = 0.15
MEAN_COS = 0.5 * (1 + COS_MIN)
MEAN_INVERSE_COS = np.log(1.0 / COS_MIN) / (1.0 - COS_MIN)  # <1 / cos theta>: mean path factor of a crossing
# Fraction of the e_hat-weighted track length carried by tracks energetic enough to cross
# an active layer. The one tuned constant of the sampling model: set once so that the
# CALICE SiW-ECAL physics prototype (preset ``calice-siw``) gives its published
# 16.6%/sqrt(E); every other detector is then a prediction.
CROSSING_TRACK_FRACTION = 0.72
MOYAL_MEAN = 1.2703628454614782  # Euler's gamma + ln 2
LANDAU_TO_MOYAL = 4.018 / 3.590  # FWHM(Landau, in xi) / FWHM(Moyal)


def moyal(rng: np.random.Generator, size: int) -> np.ndarray:
    """Standard Moyal variates (mode 0), the closed-form stand-in for the Landau distribution."""
    z = rng.standard_normal(size)
    return -np.log(z * z + 1e-300)


def landau_loss(rng: np.random.Generator, mpv: np.ndarray, xi: np.ndarray) -> np.ndarray:
    """Energy losses with most probable value ``mpv`` and Landau width ``xi`` (MeV), elementwise."""
    return mpv + xi * LANDAU_TO_MOYAL * moyal(rng, len(mpv))


def mean_landau_loss(mpv: np.ndarray, xi: np.ndarray) -> np.ndarray:
    """Mean of :func:`landau_loss` (the Moyal stand-in has a finite mean)."""
    return mpv + xi * LANDAU_TO_MOYAL * MOYAL_MEAN


def crossings_per_mev(detector: Detector) -> np.ndarray:
    """Expected charged-track crossings of each active layer per MeV of shower energy in that layer."""
    if detector.homogeneous:
        return np.full(detector.n_layers, np.inf)
    return CROSSING_TRACK_FRACTION * detector.e_hat * MEAN_COS / detector.mip_loss


def crossing_signal(detector: Detector, layer: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Visible energy in MeV of shower-track crossings of active ``layer`` (int array)."""
    cos = rng.uniform(COS_MIN, 1.0, len(layer))
    return landau_loss(rng, detector.mip_mpv[layer], detector.landau_xi[layer]) / cos


def mip_signal(detector: Detector, layer: np.ndarray, path_factor: np.ndarray | float,
               rng: np.random.Generator) -> np.ndarray:
    """Visible MeV of one minimum-ionising track crossing active ``layer`` over a path ``d * path_factor``."""
    return landau_loss(rng, detector.mip_mpv[layer], detector.landau_xi[layer]) * path_factor


def mean_crossing_signal(detector: Detector) -> np.ndarray:
    """Mean visible MeV of one shower-track crossing of each active layer (:func:`crossing_signal`), (layers,)."""
    return mean_landau_loss(detector.mip_mpv, detector.landau_xi) * MEAN_INVERSE_COS


def visible_per_mev(detector: Detector) -> np.ndarray:
    """Mean visible MeV in each active layer per MeV of electromagnetic shower energy in that layer.

    Crossings per MeV times the mean crossing signal, a Landau loss over ``d / cos theta``
    (:data:`MEAN_INVERSE_COS`).
    """
    return crossings_per_mev(detector) * mean_crossing_signal(detector)
