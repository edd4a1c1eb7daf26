"""Muons: reproducibility, mean losses against (a + bE) rho L, MIP peak, bending in 2 T, sampling detectors."""

import math

import numpy as np
import pytest

from calolab import load_detector
from calolab.geometry import Readout, get_material
from calolab.simulation import Beam, muon_pair, simulate
from calolab.simulation.muon import (
    B_ENERGIES,
    B_TABLES,
    MUON_MASS,
    RADIATIVE_CUT,
    ionisation_a,
    knock_ons,
    radiative_b,
    radiative_losses,
    sample_v,
    simulate_muons,
    spectrum_below,
    spectrum_number,
)
from calolab.simulation.sampling import LANDAU_TO_MOYAL
from calolab.validation import muon as muon_validation

PBWO4 = get_material("PbWO4")


def _beam(n, energy, theta=0.0):
    direction = np.tile([math.sin(theta), 0.0, math.cos(theta)], (n, 1))
    return np.full(n, float(energy)), np.zeros((n, 2)), direction


def test_same_seed_same_bits_different_seed_differs():
    det = load_detector("pbwo4")
    a = simulate(det, Beam("mu-", energy=2e5), 100, seed=5)
    b = simulate(det, Beam("mu-", energy=2e5), 100, seed=5)
    c = simulate(det, Beam("mu-", energy=2e5), 100, seed=6)
    assert np.array_equal(a.offsets, b.offsets) and np.array_equal(a.cell, b.cell)
    assert a.energy.tobytes() == b.energy.tobytes()
    for key in a.extras:
        assert a.extras[key].tobytes() == b.extras[key].tobytes()
    assert not np.array_equal(a.energy_sum(), c.energy_sum())


@pytest.mark.parametrize("branch", [0, 1, 2])
@pytest.mark.parametrize(("v_cut", "energy"), [(1e-5, 1e6), (1e-2, 1e6), (2e-4, 1e5), (5e-6, 4e6)])
def test_radiative_spectra_are_normalised(branch, v_cut, energy):
    """Losses above the cut times their mean v, plus the continuous part, give the whole b."""
    cut, e = np.array([v_cut]), np.array([energy])
    v = sample_v(branch, np.full(400_000, v_cut), np.full(400_000, energy), np.random.default_rng(1))
    assert v.min() >= v_cut and v.max() <= 1
    total = spectrum_number(branch, cut, e) * v.mean() + spectrum_below(branch, cut, e)
    assert total[0] == pytest.approx(1.0, rel=0.02)


@pytest.mark.parametrize(("z", "a", "row"), [(82.0, 207.2, "Pb"), (74.0, 183.84, "W")])
def test_pair_cross_section_gives_the_pumas_b_pair(z, a, row):
    """The Kelner-Kokoulin-Petrukhin cross section, integrated with its own prefactor, gives b_pair of physics.md."""
    for energy, b in zip(B_ENERGIES, B_TABLES[row][1], strict=True):
        assert muon_pair.b_pair(float(energy), z, a) == pytest.approx(b, rel=0.005)


@pytest.mark.parametrize(("material", "critical_gev"), [("PbWO4", 161.0), ("Pb", 140.0), ("Fe", 347.0)])
def test_muon_critical_energy_where_ionisation_equals_radiation(material, critical_gev):
    """a(E) = b(E) E at the muon critical energy (physics.md PbWO4 and Pb; PDG iron 347 GeV).

    Iron has no table of its own: its a(E) is PbWO4's scaled by Bethe's plateau formula and its
    b(E) comes from the brems scaling and the pair cross section, so this checks both.
    """
    from scipy.optimize import brentq

    m = get_material(material)
    crossing = brentq(lambda e: float(ionisation_a(m, e) - radiative_b(m, e).sum() * e), 1e4, 1e7) / 1e3
    assert crossing == pytest.approx(critical_gev, rel=0.05)


def test_ionisation_scales_with_electrons_per_nucleon():
    """Polystyrene has more electrons per gram than PbWO4; its <Z/A> is PDG's, not z / a of the mass-weighted atom."""
    scint = get_material("Scintillator")
    assert scint.z_over_a == pytest.approx(0.53768) and scint.z / scint.a == pytest.approx(0.503, abs=1e-3)
    ratio = float(ionisation_a(scint, 1e6) / ionisation_a(PBWO4, 1e6))
    # the electron count gives 1.30; the lower plasma energy of the lighter material adds 5%
    # (2 ln(53.4 eV / 21.8 eV) on a plateau logarithm of 39)
    assert 0.53768 / 0.41315 * 1.03 < ratio < 0.53768 / 0.41315 * 1.07


def test_iron_loss_spectrum_matches_the_150_gev_measurement():
    """Losses 0.01 < v < 0.95 per X0 in iron/scintillator, against Berger et al.'s 1.610 +- 0.106e-3."""
    prob, err = muon_validation.loss_probability_per_x0(150e3, (0.01, 0.95), 300_000, seed=5)
    assert err / prob < 0.06
    assert prob == pytest.approx(muon_validation.LOSS_SPECTRUM_REF,
                                 abs=math.hypot(muon_validation.LOSS_SPECTRUM_ERR, 2 * err))


def test_pair_losses_above_a_fixed_energy_grow_with_the_muon_energy():
    """The low-v tail of the pair spectrum: more losses above 100 MeV at 4 TeV than at 1 TeV, drawn as tabulated."""
    e = np.array([1e6, 4e6])
    per_b = muon_pair.number_above(100.0 / e, e)
    assert per_b[1] / per_b[0] == pytest.approx(914 / 556, rel=0.01)  # 1 / v at small v would give 1.0
    rng = np.random.default_rng(3)
    v = muon_pair.sample(np.full(200_000, 20.0 / 4e6), np.full(200_000, 4e6), rng)
    drawn = np.mean(v * 4e6 > 100.0) * muon_pair.number_above(np.array([20.0 / 4e6]), np.array([4e6]))[0]
    assert drawn == pytest.approx(per_b[1], rel=0.02)
    # half of the pair loss below v = 6.1e-3, a tenth below 5.2e-4 at 4 TeV
    assert muon_pair.fraction_below(np.array([6.1e-3, 5.2e-4]), np.full(2, 4e6)) == pytest.approx([0.5, 0.1], abs=0.01)


def test_slab_losses_have_the_mean_of_the_tables():
    """Drawn radiative and knock-on losses of one thick slab average to b E rho L and a rho L."""
    rng = np.random.default_rng(2)
    n, mass = 20_000, 8.30 * 203.2  # the whole block as one slab
    e = np.full(n, 1e6)
    cont, event, eps, branch = radiative_losses(PBWO4, e, np.full(n, mass), rng)
    radiated = cont.mean() + eps.sum() / n
    assert radiated == pytest.approx(radiative_b(PBWO4, 1e6).sum() * 1e6 * mass, rel=0.06)
    assert eps.min() >= RADIATIVE_CUT and set(np.unique(branch)) == {0, 1, 2}
    restricted = np.full(n, 500.0)  # MeV, as if the Landau part were 500 MeV
    soft, event, kinetic = knock_ons(PBWO4, e, np.full(n, mass), restricted, rng)
    assert kinetic.min() >= 10.0 and kinetic.max() <= 1e6
    ionisation = 500.0 + soft.mean() + kinetic.sum() / n
    assert ionisation == pytest.approx(float(ionisation_a(PBWO4, 1e6)) * mass, rel=0.08)


def test_mean_deposit_at_1tev_matches_a_plus_bE():
    det = load_detector("pbwo4")
    n = 500
    s = simulate(det, Beam("mu-", energy=1e6), n, seed=11)
    ref = muon_validation.reference_deposit(1e6)
    tolerance = 0.10 * ref + 3 * muon_validation.expected_sigma(1e6) / math.sqrt(n)
    assert abs(s.energy_sum().mean() - ref) < tolerance
    loss = 1e6 - s.extras["exit_energy"]
    assert abs(loss.mean() - ref) < tolerance
    # the muon loses more than the block shows (leakage), never less
    assert s.energy_sum().mean() < loss.mean()


def test_mip_peak_at_the_landau_most_probable_value():
    det = load_detector("pbwo4").with_readout(Readout())
    per_layer = muon_validation.layer_deposits(det, 10.0, 400, seed=3)
    mpv = det.mip_mpv[0]
    peak, _ = muon_validation.peak_position(per_layer, mpv, det.landau_xi[0] * LANDAU_TO_MOYAL)
    assert peak == pytest.approx(mpv, rel=0.03)
    # for scale: on the Fermi plateau the Bichsel MPV sits 6.6% above physics.md's mean loss at minimum
    assert 10.2 * 4.064 == pytest.approx(mpv, rel=0.08)


def test_mu_minus_and_mu_plus_bend_opposite_ways_in_2_tesla():
    det = load_detector("pbwo4")
    n, energy = 200, 1e5
    kappa = 0.299792458 * det.field_tesla / energy  # 1/mm
    expected = kappa * det.z_bounds[-1] ** 2 / 2  # displacement at the back face, 12.4 mm
    exit_x = {}
    for pdg in (13, -13):
        _, truth = simulate_muons(det, *_beam(n, energy), pdg, np.random.default_rng(4))
        exit_x[pdg] = truth["exit_x"].mean()
    assert exit_x[13] > 0 > exit_x[-13]
    assert exit_x[13] == pytest.approx(expected, rel=0.15)
    assert -exit_x[-13] == pytest.approx(expected, rel=0.15)
    # and the cells see it: hits in the last layers sit on the bent side
    s = simulate(det, Beam("mu-", energy=energy), 100, seed=2)
    layer, ix, _ = s.cell_coordinates()
    x = det.x_edges[0] + (ix + 0.5) * det.pitch_x
    back = layer >= det.n_layers - 5
    assert np.average(x[back], weights=s.energy[back]) > 0.5 * expected


def test_radiated_energy_grows_with_energy():
    det = load_detector("pbwo4")
    radiated = []
    for energy in (5e4, 5e5, 5e6):
        _, truth = simulate_muons(det, *_beam(300, energy), 13, np.random.default_rng(7))
        radiated.append(truth["radiated_energy"].mean())
    assert radiated[0] < radiated[1] < radiated[2]
    assert radiated[2] / radiated[1] > 5  # b E grows faster than E


@pytest.mark.parametrize("preset", ["pbwo4", "ahcal", "siw-ecal"])
def test_no_nan_from_stopping_to_tev_muons_at_angles(preset):
    det = load_detector(preset)
    rng = np.random.default_rng(9)
    n = 120
    energy = np.exp(rng.uniform(np.log(150.0), np.log(5e6), n))
    theta = rng.uniform(0, 0.8, n)
    direction = np.column_stack([np.sin(theta), np.zeros(n), np.cos(theta)])
    entry = rng.normal(0, 20, (n, 2))
    deposits, truth = simulate_muons(det, energy, entry, direction, -13, rng)
    for arr in (deposits.x, deposits.y, deposits.energy, *truth.values()):
        assert np.all(np.isfinite(arr))
    assert np.all(deposits.energy >= 0) and deposits.event.min() >= 0 and deposits.event.max() < n
    assert np.all(truth["exit_energy"] <= energy)
    assert np.all((truth["exit_energy"] == 0) | (truth["exit_energy"] >= MUON_MASS))
    assert np.all(truth["ionisation_energy"] + truth["radiated_energy"] <= energy - MUON_MASS + 1e-6)


def test_sampling_calorimeter_sees_mips_in_its_active_layers():
    det = load_detector("ahcal")
    s = simulate(det, Beam("mu-", energy=1e4), 200, seed=1)
    per_layer = s.layer_sums().ravel()
    mpv = det.mip_mpv[0]  # 5 mm scintillator, about 0.8 MeV
    peak, _ = muon_validation.peak_position(per_layer, mpv, det.landau_xi[0] * LANDAU_TO_MOYAL)
    assert peak == pytest.approx(mpv, rel=0.03)
    assert np.median(s.hits_per_event()) >= det.n_layers  # one MIP per layer, a few shower hits
    # the visible energy is a small fraction of the loss, as the steel is not read out
    loss = 1e4 - s.extras["exit_energy"]
    assert 0.01 < s.energy_sum().mean() / loss.mean() < 0.1
