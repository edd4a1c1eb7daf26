"""Where a pion's energy goes at its first interaction, and what signal each part gives.

The energy left at the first interaction splits into an electromagnetic fraction ``f_em``
(:func:`mean_em_fraction`, Beta-distributed around it in :mod:`calolab.simulation.hadron`)
and a non-EM part, of which a share q fluctuating from event to event breaks up nuclei
(:func:`nuclear_share`). An EM-equivalent MeV of the non-EM part is seen ``h/e`` times an MeV
of electromagnetic shower (:func:`e_over_h`); :func:`hadronic_signal` divides it between the
charged tracks and the nuclear hits (neutrons in hydrogenous active layers, spallation
protons in layers without hydrogen, :func:`nuclear_responses`).

Energies in MeV.

>>> import numpy as np
>>> from calolab.geometry import load_detector
>>> det = load_detector("ahcal")
>>> round(e_over_h(det), 2), round(float(mean_em_fraction(det, np.array([10e3]))[0]), 3)
(1.35, 0.38)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from calolab.geometry import Detector

# ---- electromagnetic fraction (Wigmans, Calorimetry (2017) ch. 2; Gabriel et al., NIM A338 (1994) 336)
EM_FRACTION_K = 0.82  # exponent k of <f_em> = 1 - (E/E0)^(k-1)
# E0 (MeV), linear in Z between Cu and Pb and held constant outside (physics.md, section 3),
# so Fe (Z = 26) gets 0.7 GeV; Groom's E0 = 1 GeV fit for Fe would lower <f_em> by 0.04 and
# pi/e by 0.01 at 10 GeV.
EM_FRACTION_E0 = ((29.0, 700.0), (82.0, 1300.0))
# Width of the event-by-event f_em: Beta distribution of concentration nu = C ln(E/E0), so
# sigma(f_em) = sqrt(<f>(1-<f>)/(nu+1)) ~ 0.12 at 10 GeV and ~ 0.09 at 100 GeV in Fe, the
# spread and slow decrease with E that Groom (NIM A572 (2007) 633) finds in FLUKA/CALOR.
EM_FRACTION_CONCENTRATION = 5.8
# ---- e/h of the absorber (Wigmans ch. 4), for plastic-scintillator sampling:
# Fe/scintillator 1.3-1.4 (physics.md, CALICE AHCAL); Cu similar; Pb and W lower because
# their many spallation neutrons give signal in hydrogenous active layers; PbWO4 crystals
# ~2.4 (no sampling: the value usually quoted for the CMS ECAL, CMS combined test beam,
# EPJC 60 (2009) 359).
E_OVER_H = {"Fe": 1.35, "Cu": 1.30, "W": 1.20, "Pb": 1.20, "PbWO4": 2.4}
E_OVER_H_DEFAULT = 1.3
# An active medium without hydrogen (silicon, liquid argon) does not see the MeV neutrons
# that carry much of the hadronic energy, so e/h rises: lead/liquid argon measures
# 1.74 +- 0.04 (ATLAS barrel EM prototype, Kulchitsky et al., hep-ex/9911033), against
# ~1.2 for lead/scintillator. Lighter absorbers, with a higher e/mip than lead, cannot have
# less; the lead value is used for all of them (a lower bound for Cu/Si and Fe/Si).
E_OVER_H_WITHOUT_HYDROGEN = 1.74
HYDROGENOUS_ACTIVE = frozenset({"Scintillator"})
# ---- hadronic visible energy
# Nuclear share: of the non-EM energy a fraction q is spent breaking up nuclei (binding
# energy, recoils) and gives no signal; it fluctuates from event to event, and these
# fluctuations of invisible energy, not sampling, dominate the hadronic resolution of
# non-compensating calorimeters (Wigmans ch. 4). q is Beta-distributed with mean
# NUCLEAR_SHARE and width NUCLEAR_SHARE_SIGMA / sqrt(E_h / GeV).
# The tuned constant of the hadronic model: NUCLEAR_SHARE_SIGMA is set so that the ``ahcal``
# preset gives the CALICE AHCAL 58%/sqrt(E) for 10-80 GeV pions (JINST 7 P09017); the gain
# of software compensation there (CALICE: 58% -> 45%) is then a prediction, as are cusi and
# the other detectors.
NUCLEAR_SHARE = 0.3
NUCLEAR_SHARE_SIGMA = 0.75
# Evaporation neutrons: their number, and so their kinetic energy, goes with the binding
# energy lost (the correlation that compensating calorimeters exploit; Wigmans ch. 4). In a
# hydrogenous active medium they scatter elastically on protons and leave isolated,
# sub-MIP hits around the shower: on average this share of the hadronic signal, in
# proportion to q. Active media without hydrogen hardly see them.
# The software-compensation gain depends on it: at 0.2 the sum falls with q and the neutron
# hits tell by how much; at NEUTRON_SIGNAL_SHARE = NUCLEAR_SHARE the neutrons would make
# up for the lost energy on their own (hardware compensation of q) and leave nothing to
# weight (ahcal gain 2-5% instead of 20%).
NEUTRON_SIGNAL_SHARE = 0.2
# Spallation protons: the nucleons released in nuclear break-up carry kinetic energy in
# proportion to the binding energy lost, and most of it goes to protons that ionise densely
# before they stop. Wigmans' composition of the non-EM energy (Calorimetry ch. 2) gives, in
# lead, ionising protons 37% against 44% that silicon does not see (binding 32%, recoils 2%,
# evaporation neutrons 10%); in iron about 53% against 26%. So the protons' energy is
# r q of the non-EM energy, r = PROTON_PER_INVISIBLE (linear in Z between Fe and Pb, held
# outside), and the pions' ionisation 1 - q - r q: the sum still falls with q as (1 - q),
# and the proton hits tell how large q was. In scintillator the tuned neutron hits stand for
# all the signal that goes with q (recoil and spallation protons, quenched alike), so
# protons are simulated separately only in active media without hydrogen.
PROTON_PER_INVISIBLE = ((26.0, 2.0), (82.0, 0.85))


def _absorber_mix(detector: Detector) -> dict[str, float]:
    """Mass of each absorber material (the active material if homogeneous), g/cm2."""
    mass: dict[str, float] = {}
    for layer in detector.layers:
        for slab in layer.passive or (layer.active_slab,):
            mat = slab.material
            mass[mat.name] = mass.get(mat.name, 0.0) + mat.density * slab.thickness
    return mass


def e_over_h(detector: Detector) -> float:
    """e/h of the detector: the mass-weighted mean of :data:`E_OVER_H` over its absorbers, or
    :data:`E_OVER_H_WITHOUT_HYDROGEN` for a sampling calorimeter whose active layers have no hydrogen
    (a detector that mixes both gets the first; :func:`nuclear_responses` tells its layers apart)."""
    if not detector.homogeneous and not any(la.active_material.name in HYDROGENOUS_ACTIVE for la in detector.layers):
        return E_OVER_H_WITHOUT_HYDROGEN
    return _absorber_e_over_h(detector)


def _absorber_e_over_h(detector: Detector) -> float:
    mass = _absorber_mix(detector)
    total = sum(mass.values())
    return sum(m * E_OVER_H.get(name, E_OVER_H_DEFAULT) for name, m in mass.items()) / total


def em_fraction_scale(detector: Detector) -> float:
    """Wigmans' E0 in MeV for the detector's effective Z (Cu 0.7 GeV to Pb 1.3 GeV)."""
    (z_lo, e_lo), (z_hi, e_hi) = EM_FRACTION_E0
    return float(np.interp(detector.z_eff, [z_lo, z_hi], [e_lo, e_hi]))


def mean_em_fraction(detector: Detector, energy: np.ndarray) -> np.ndarray:
    """Mean electromagnetic fraction ``1 - (E/E0)^(k-1)`` of pion showers of ``energy`` MeV, (n,)."""
    ratio = np.maximum(np.asarray(energy, float) / em_fraction_scale(detector), 1.0)
    return 1.0 - ratio ** (EM_FRACTION_K - 1.0)


def pion_to_electron(detector: Detector, energy: np.ndarray) -> np.ndarray:
    """Wigmans' pi/e = f_em + (1 - f_em) h/e for pions of ``energy`` MeV, (n,)."""
    f_em = mean_em_fraction(detector, energy)
    return f_em + (1.0 - f_em) / e_over_h(detector)


def nuclear_share(e_had: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Share of ``e_had`` MeV of non-EM energy lost to nuclear break-up, Beta-distributed, (m,)."""
    sigma = NUCLEAR_SHARE_SIGMA / np.sqrt(np.maximum(e_had / 1e3, 1e-3))
    var_max = NUCLEAR_SHARE * (1.0 - NUCLEAR_SHARE)
    concentration = np.maximum(var_max / np.minimum(sigma**2, 0.5 * var_max) - 1.0, 1e-3)
    return rng.beta(NUCLEAR_SHARE * concentration, (1.0 - NUCLEAR_SHARE) * concentration)


class NuclearResponse(NamedTuple):
    """How a group of active layers sees the non-EM part of a shower.

    ``layers``: bool mask of the group's layers (``None``: all); ``e_over_h``; ``protons``: r of
    :data:`PROTON_PER_INVISIBLE` (active media without hydrogen, 0 otherwise); ``neutrons``:
    :data:`NEUTRON_SIGNAL_SHARE` (hydrogenous active media, 0 otherwise).
    """

    layers: np.ndarray | None
    e_over_h: float
    protons: float
    neutrons: float


def nuclear_responses(detector: Detector) -> list[NuclearResponse]:
    """One :class:`NuclearResponse` for a detector whose active layers are alike (or homogeneous), one
    per kind of active layer for a detector that mixes hydrogenous (scintillator) layers with layers
    without hydrogen (silicon): the former see neutron hits, the latter proton hits.

    >>> from calolab.geometry import load_detector
    >>> def show(name):
    ...     return [(r.layers, round(r.e_over_h, 2), round(r.protons, 2), r.neutrons)
    ...             for r in nuclear_responses(load_detector(name))]
    >>> show("ahcal"), show("cusi")
    ([(None, 1.35, 0.0, 0.2)], [(None, 1.74, 1.94, 0.0)])
    """
    hydrogenous = np.array([la.active_material.name in HYDROGENOUS_ACTIVE for la in detector.layers])
    if detector.homogeneous:
        return [NuclearResponse(None, e_over_h(detector), 0.0, 0.0)]
    if hydrogenous.all():
        return [NuclearResponse(None, e_over_h(detector), 0.0, NEUTRON_SIGNAL_SHARE)]
    if not hydrogenous.any():
        return [NuclearResponse(None, e_over_h(detector), _proton_ratio(detector), 0.0)]
    return [NuclearResponse(hydrogenous, _absorber_e_over_h(detector), 0.0, NEUTRON_SIGNAL_SHARE),
            NuclearResponse(~hydrogenous, E_OVER_H_WITHOUT_HYDROGEN, _proton_ratio(detector), 0.0)]


def _proton_ratio(detector: Detector) -> float:
    """Proton kinetic energy per MeV of invisible energy at the detector's effective Z."""
    (z_lo, r_lo), (z_hi, r_hi) = PROTON_PER_INVISIBLE
    return float(np.interp(detector.z_eff, [z_lo, z_hi], [r_lo, r_hi]))


def hadronic_signal(response: NuclearResponse, e_had: np.ndarray, share: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """EM-equivalent visible MeV of the charged tracks and of the nuclear hits (neutrons or protons) of
    the non-EM part in layers of ``response`` (as if every layer were of that kind), (m,) each.

    Their sum is ``e_had h/e`` on average. With neutron hits (scintillator) the charged part
    falls and the neutron part rises with the nuclear ``share`` q; with proton hits (active
    media without hydrogen) the visible energy falls as ``1 - q``, of which the protons carry
    ``r q`` and the pions the rest.

    >>> from calolab.geometry import load_detector
    >>> (ahcal,) = nuclear_responses(load_detector("ahcal"))
    >>> c, n = hadronic_signal(ahcal, np.array([1e4]), np.array([NUCLEAR_SHARE]))
    >>> round(float((c + n)[0] * ahcal.e_over_h))
    10000
    >>> (cusi,) = nuclear_responses(load_detector("cusi"))
    >>> c, p = hadronic_signal(cusi, np.array([1e4, 1e4]), np.array([0.2, 0.3]))
    >>> np.round(p / (c + p), 2).tolist()  # proton share of the visible hadronic energy
    [0.49, 0.83]
    """
    mean = e_had / response.e_over_h
    r = response.protons
    if r > 0:
        visible = mean * (1.0 - share) / (1.0 - NUCLEAR_SHARE)
        protons = mean * np.minimum(r * share, 1.0 - share) / (1.0 - NUCLEAR_SHARE)
        return visible - protons, protons
    eta = response.neutrons
    return mean * (1.0 - eta) * (1.0 - share) / (1.0 - NUCLEAR_SHARE), mean * eta * share / NUCLEAR_SHARE
