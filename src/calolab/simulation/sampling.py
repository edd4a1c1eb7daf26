"""Visible energy in the active layers of a sampling calorimeter.

The signal of an active slab in an electromagnetic shower has two parts:

* **crossings**: charged shower tracks energetic enough to traverse the slab, each leaving a
  Landau (Moyal) loss over the path ``d / cos theta``.
* **local deposits**: electrons that start or end inside the slab and stop there:
  shower electrons below the energy ``eps`` whose CSDA range equals a crossing's mean path
  (the share ``1 - F(xi)`` of the charged track length of Amaldi's track-length cut-off,
  ``F(xi) = e^xi (1 + xi ln(xi / 1.53))``, ``xi = 4.58 <Z/A> eps / E_c``), and Compton
  electrons of soft shower photons that interact in the slab itself.

The mean visible energy per MeV of shower energy in a layer is the GFLASH value
``e_hat`` times the MIP sampling fraction of the mean loss (see :func:`delta_equilibrium`). The soft photons'
share of the signal is :data:`PHOTON_SHARE` of the shower energy, less what high-Z
absorbers photo-absorb before it reaches the slab (the deficit ``1 - e_hat``). Local
deposits are many small, nearly Gaussian-summed energies, crossings few large Landau ones:
a thick, low-Z active medium (plastic scintillator) holds most of its photon-born
electrons and samples the shower far more finely than a thin silicon diode, with the same
code and no constant per detector. Lengths in mm, energies in MeV.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from calolab.geometry import Detector
from calolab.geometry.materials import Material

# Angular spread of shower tracks crossing a layer: cos theta uniform in [COS_MIN, 1] gives
# <cos theta> = 0.575, Fabjan's value for electromagnetic showers; crossings per unit track
# length scale with it, and each crossing's path is d / cos theta.
COS_MIN = 0.15
MEAN_COS = 0.5 * (1 + COS_MIN)
MEAN_INVERSE_COS = np.log(1.0 / COS_MIN) / (1.0 - COS_MIN)  # <1 / cos theta>: mean path factor of a crossing
INV_COS_SQ_MEAN = 1.0 / COS_MIN  # <1 / cos^2 theta>
MOYAL_MEAN = 1.2703628454614782  # Euler's gamma + ln 2
MOYAL_VARIANCE = np.pi**2 / 2
LANDAU_TO_MOYAL = 4.018 / 3.590  # FWHM(Landau, in xi) / FWHM(Moyal)
# Share of an electromagnetic shower's energy deposited by electrons that soft photons set in
# motion (Compton scattering, photo-effect) rather than by the pair-produced and radiating
# charged tracks. The one tuned constant of the sampling model: set on the CALICE AHCAL positron
# resolution (JINST 6 P04003); every other detector, silicon ones included, is a prediction.
# Silicon-tungsten stacks hardly depend on it: tungsten photo-absorbs most soft photons.
PHOTON_SHARE = 0.40
# Mean kinetic energy of a Compton electron from a 1 MeV photon (Klein-Nishina mean energy
# transfer 0.440 of the photon energy): the scale of the photon-born electron spectrum, taken
# exponential.
COMPTON_ELECTRON_MEV = 0.44


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


def electron_range(kinetic_mev: np.ndarray) -> np.ndarray:
    """CSDA range of electrons in g/cm2 (Katz and Penfold, Rev. Mod. Phys. 24 (1952) 28).

    >>> round(float(electron_range(np.array([1.0]))[0]), 3)
    0.412
    """
    t = np.asarray(kinetic_mev, float)
    low = 0.412 * t ** (1.265 - 0.0954 * np.log(np.maximum(t, 1e-12)))
    return np.where(t < 2.5, low, 0.530 * t - 0.106)


def stopping_energy(material: Material, thickness: float) -> float:
    """Kinetic energy in MeV of an electron whose CSDA range equals ``thickness`` mm of ``material``.

    >>> from calolab.geometry.materials import get_material
    >>> round(stopping_energy(get_material("Scintillator"), 5.0), 2)
    1.22
    """
    grid = np.geomspace(1e-3, 1e3, 4000)
    return float(np.interp(material.density * thickness / 10.0, electron_range(grid), grid))


def track_length_above(xi: np.ndarray) -> np.ndarray:
    """Amaldi's F(xi): share of a shower's charged track length above the cut-off of ``xi``."""
    xi = np.maximum(np.asarray(xi, float), 1e-9)
    return np.clip(np.exp(xi) * (1.0 + xi * np.log(xi / 1.53)), 0.0, 1.0)


def photon_signal_share(e_hat: float) -> float:
    """Share of the visible signal that photon-born electrons leave in the active slabs.

    The photons carry :data:`PHOTON_SHARE` of the shower; the response deficit ``1 - e_hat``
    of a high-Z absorber is their photo-absorption before they reach the active slabs.
    """
    reaching = np.clip(1.0 - (1.0 - e_hat) / PHOTON_SHARE, 0.0, 1.0)
    return float(PHOTON_SHARE * reaching / e_hat)


@dataclass(frozen=True)
class SamplingModel:
    """Per active layer, per MeV of electromagnetic shower energy in that layer, arrays (layers,).

    ``visible`` MeV seen in all; ``crossings`` expected charged-track crossings; ``local`` visible
    MeV of local deposits and ``local_moment`` their ``E[X^2] / E[X]`` in MeV (the size of one
    deposit that sets the variance of their sum: Var = local * local_moment per MeV).
    """

    visible: np.ndarray
    crossings: np.ndarray
    local: np.ndarray
    local_moment: np.ndarray
    crossing_fraction: np.ndarray
    stopping_energy: np.ndarray


def _truncated_exponential_moments(scale: float, cut: float) -> tuple[float, float]:
    """Mean and second moment of min(T, cut) for T exponential of mean ``scale``."""
    x = cut / scale
    m1 = scale * (1.0 - np.exp(-x))
    # E[min(T, c)^2] = int_0^c t^2 e^(-t/s) / s dt + c^2 e^(-c/s)
    m2 = scale**2 * (2.0 - np.exp(-x) * (x**2 + 2.0 * x + 2.0)) + cut**2 * np.exp(-x)
    return float(m1), float(m2)


@lru_cache(maxsize=64)
def sampling_model(detector: Detector) -> SamplingModel:
    """The sampling model of ``detector`` (see the module docstring)."""
    n = detector.n_layers
    if detector.homogeneous:
        inf = np.full(n, np.inf)
        return SamplingModel(np.ones(n), inf, np.zeros(n), np.zeros(n), np.ones(n), inf)
    crossing_mean = mean_crossing_signal(detector)
    visible = detector.e_hat * detector.mip_sampling_fraction
    k = delta_equilibrium(detector)
    z_over_a = detector.z_eff / detector._effective["a"]
    eps = np.array([stopping_energy(la.active_material, la.active_thickness * MEAN_INVERSE_COS)
                    for la in detector.layers])
    f_cross = track_length_above(4.58 * z_over_a * eps / detector.critical_energy)
    q = photon_signal_share(detector.e_hat)
    charged_local = (1.0 - q) * (1.0 - f_cross)
    local = visible * (charged_local + q)
    moment = np.empty(n)
    for i, e in enumerate(eps):
        m1, m2 = _truncated_exponential_moments(COMPTON_ELECTRON_MEV, e)
        # stopping shower electrons: energies uniform in [0, eps]: E[X^2]/E[X] = 2 eps / 3
        moment[i] = k[i] * (charged_local[i] * 2.0 * e / 3.0 + q * m2 / m1) / (charged_local[i] + q)
    crossings = visible * (1.0 - q) * f_cross / crossing_mean
    return SamplingModel(visible, crossings, local, moment, f_cross, eps)


def crossings_per_mev(detector: Detector) -> np.ndarray:
    """Expected charged-track crossings of each active layer per MeV of EM shower energy in it."""
    return sampling_model(detector).crossings


def equivalent_crossings_per_mev(detector: Detector) -> np.ndarray:
    """Crossings per MeV that carry the whole visible energy (hadronic and muon-radiation parts)."""
    if detector.homogeneous:
        return np.full(detector.n_layers, np.inf)
    return visible_per_mev(detector) / mean_crossing_signal(detector)


def crossing_cosines(rng: np.random.Generator, size: int) -> np.ndarray:
    """cos theta of slab crossings, uniform in [COS_MIN, 1]."""
    return rng.uniform(COS_MIN, 1.0, size)


def crossing_signal(detector: Detector, layer: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Visible energy in MeV of shower-track crossings of active ``layer`` (int array)."""
    cos = crossing_cosines(rng, len(layer))
    moyal = landau_loss(rng, detector.mip_mpv[layer], detector.landau_xi[layer])
    return moyal * delta_equilibrium(detector)[layer] / cos


def local_signal(detector: Detector, energy: np.ndarray, layer: np.ndarray,
                 rng: np.random.Generator) -> np.ndarray:
    """Visible MeV of the local deposits of ``energy`` MeV of EM shower in active ``layer``, elementwise.

    The sum of many small deposits: a Gamma variate with the compound-Poisson mean and variance.
    """
    model = sampling_model(detector)
    return gamma_sum(energy * model.local[layer], model.local_moment[layer], rng)


def gamma_sum(mean: np.ndarray, scale: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gamma variates of ``mean`` and variance ``mean * scale`` (the sum of many small parts of size
    ``scale``), elementwise; 0 where ``mean`` is not positive (nothing is drawn there)."""
    out = np.zeros(len(mean))
    positive = mean > 0
    out[positive] = rng.gamma(mean[positive] / scale[positive], scale[positive])
    return out


def mip_signal(detector: Detector, layer: np.ndarray, path_factor: np.ndarray | float,
               rng: np.random.Generator) -> np.ndarray:
    """Visible MeV of one minimum-ionising track crossing active ``layer`` over a path ``d * path_factor``."""
    return landau_loss(rng, detector.mip_mpv[layer], detector.landau_xi[layer]) * path_factor


def mean_crossing_signal(detector: Detector) -> np.ndarray:
    """Mean visible MeV of one shower-track crossing of each active layer (:func:`crossing_signal`), (layers,)."""
    return detector.mip_mean * MEAN_INVERSE_COS


@lru_cache(maxsize=64)
def delta_equilibrium(detector: Detector) -> np.ndarray:
    """Mean MIP loss over the restricted (Moyal) one in each active layer, (layers,).

    A lone MIP keeps the restricted loss in a thin slab (its energetic knock-on electrons
    escape), but inside a shower as many knock-ons enter the slab from the material around
    it as leave: a shower track's crossing leaves the mean loss on average. Crossing signals
    are Moyal draws scaled by this ratio, so the electromagnetic response is GFLASH's e/mip
    times the MIP sampling fraction of the mean loss, and the relative fluctuations keep the
    Moyal shape.
    """
    return detector.mip_mean / mean_landau_loss(detector.mip_mpv, detector.landau_xi)


def visible_per_mev(detector: Detector) -> np.ndarray:
    """Mean visible MeV in each active layer per MeV of electromagnetic shower energy in that layer."""
    return sampling_model(detector).visible
