"""Electromagnetic showers: reproducibility, geometry of the deposits, and physics on small samples."""

import math

import numpy as np
import pytest

from calolab import CalolabError, load_detector
from calolab.reconstruction import weighted_sum
from calolab.simulation import Beam, simulate
from calolab.simulation import em as em_sim
from calolab.validation import em, gaussian_core


def test_same_seed_same_bits_different_seed_differs():
    det = load_detector("siw-ecal")
    a = simulate(det, Beam("e-", energy=5e3), 300, seed=7)
    b = simulate(det, Beam("e-", energy=5e3), 300, seed=7)
    c = simulate(det, Beam("e-", energy=5e3), 300, seed=8)
    assert np.array_equal(a.offsets, b.offsets) and np.array_equal(a.cell, b.cell)
    assert a.energy.tobytes() == b.energy.tobytes()
    assert not np.array_equal(a.energy_sum(), c.energy_sum())


def test_deposits_are_finite_positive_and_in_the_grid():
    det = load_detector("ahcal")
    s = simulate(det, Beam("gamma", energy_min=1e3, energy_max=5e4, spectrum="log-uniform"), 200, seed=1)
    assert np.all(np.isfinite(s.energy)) and np.all(s.energy > 0)
    assert s.cell.min() >= 0 and s.cell.max() < det.n_cells


def test_photons_start_later_than_electrons():
    det = load_detector("calice-siw")
    depth = np.arange(det.n_layers)
    mean_depth = {}
    for particle in ("e-", "gamma"):
        s = simulate(det, Beam(particle, energy=2e4), 500, seed=3)
        profile = s.layer_sums().mean(0)
        mean_depth[particle] = (profile * depth).sum() / profile.sum()
    # mean conversion depth 9/7 X0; calice-siw layers are 0.4-1.2 X0 deep
    assert 1.0 < mean_depth["gamma"] - mean_depth["e-"] < 3.5


def test_inclined_beam_and_spot_move_the_centroid():
    det = load_detector("siw-ecal")
    s = simulate(det, Beam("e-", energy=1e4, theta=20, position=(10.0, -5.0), spot_sigma=2.0), 400, seed=2)
    layer, ix, _ = s.cell_coordinates()
    x = (ix + 0.5) * det.pitch_x + det.x_edges[0]
    front, back = layer < 3, (layer >= 6) & (layer < 10)
    x_front = np.average(x[front], weights=s.energy[front])
    x_back = np.average(x[back], weights=s.energy[back])
    dz = np.average(det.z_active[layer[back]], weights=s.energy[back]) - np.average(
        det.z_active[layer[front]], weights=s.energy[front])
    assert x_front == pytest.approx(10.0 + math.tan(math.radians(20)) * det.z_active[1], abs=3.0)
    assert (x_back - x_front) / dz == pytest.approx(math.tan(math.radians(20)), abs=0.08)
    assert np.std(s.entry[:, 1]) == pytest.approx(2.0, rel=0.15)


def test_shower_maximum_in_pbwo4_follows_gflash():
    det = em.fine_pbwo4()
    (e, t_max, _, _), = em.shower_maximum(det, [50.0], 150, seed=4)
    assert t_max == pytest.approx(math.log(50e3 / det.critical_energy) - 0.858, abs=0.5)


def test_calice_prototype_resolution_and_linearity():
    """CALICE SiW-ECAL: 16.6%/sqrt(E) (+) 1.1%: at 10 GeV sigma/E = 5.4%; 500 events give +-0.2%."""
    det = load_detector("calice-siw")
    rows = em.energy_scan(det, [10.0, 30.0], 500, seed=5)
    rel10 = rows[0, 1] / rows[0, 0]
    assert rel10 == pytest.approx(math.hypot(0.166 / math.sqrt(10), 0.011), abs=0.006)
    assert rows[1, 4] / rows[0, 4] == pytest.approx(3.0, rel=0.01)


def test_pbwo4_is_much_better_than_a_sampling_calorimeter():
    s = simulate(load_detector("pbwo4"), Beam("e-", energy=5e4), 200, seed=6)
    _, sigma, _, _ = gaussian_core(weighted_sum(s))
    assert sigma / weighted_sum(s).mean() < 0.01  # CMS ECAL: 2.8%/sqrt(E) (+) 0.3% = 0.5% at 50 GeV


def test_negative_event_count_is_an_error():
    with pytest.raises(CalolabError):
        simulate(load_detector("siw-ecal"), Beam("e-", energy=1e3), -1, seed=1)


def test_parallel_workers_give_the_same_bits():
    det = load_detector("siw-ecal")
    serial = simulate(det, Beam("e-", energy=2e3), 120, seed=9, chunk_size=40)
    parallel = simulate(det, Beam("e-", energy=2e3), 120, seed=9, chunk_size=40, workers=2)
    assert serial.energy.tobytes() == parallel.energy.tobytes()
    assert np.array_equal(serial.cell, parallel.cell) and np.array_equal(serial.offsets, parallel.offsets)


def _central_showers(det, e_mev, n, seed):
    """Deposits of ``n`` electrons on the centre of ``det`` and the same showers' T and alpha."""
    energy = np.full(n, e_mev)
    t_max, alpha = em_sim.longitudinal_parameters(det, energy, np.random.default_rng(seed))  # the first draws
    dep = em_sim.em_showers(det, np.arange(n), energy, np.zeros((n, 3)), np.zeros((n, 2)), np.random.default_rng(seed))
    return energy, t_max, alpha, dep


def test_homogeneous_layers_hold_exactly_their_share_of_the_profile():
    det = load_detector("cms-ecal-tb")
    energy, t_max, alpha, dep = _central_showers(det, 2e4, 20, seed=11)
    frac = em_sim.layer_fractions(det, t_max, alpha, np.zeros(20), np.ones(20))
    layer_sum = np.zeros((20, det.n_layers))
    np.add.at(layer_sum, (dep.event, dep.layer), dep.energy)
    np.testing.assert_allclose(layer_sum, energy[:, None] * frac, rtol=1e-9, atol=1e-9)


def test_pbwo4_3x3_containment_hardly_fluctuates():
    """Shower-to-shower spread of the 3x3 share of the deposits, 50 GeV e- on the centre of a 22 mm
    crystal; 300 showers measure its rms to about 5%."""
    det = load_detector("cms-ecal-tb")
    energy, _, _, dep = _central_showers(det, 5e4, 300, seed=12)
    inside = (np.abs(dep.x) < 1.5 * det.pitch_x) & (np.abs(dep.y) < 1.5 * det.pitch_y)
    share = np.bincount(dep.event, dep.energy * inside, 300) / np.bincount(dep.event, dep.energy, 300)
    assert 0.93 < share.mean() < 0.96
    assert share.std() / share.mean() < 0.005
