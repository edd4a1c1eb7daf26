"""Detector effects: dose, ageing models, vine-copula miscalibration, noise, zero suppression, CLI."""

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from scipy import stats
from scipy.special import ndtri

from calolab.cli import cli
from calolab.effects import (
    AgeingConfig,
    CopulaConfig,
    DistortionConfig,
    DoseConfig,
    SubmoduleCopula,
    age,
    beta22_ppf,
    config_from_dict,
    config_to_dict,
    distort,
    dose_map,
    exponential_response,
    linear_response,
    load_config,
    noise_occupancy,
    read_truth,
    scintillator_critical_dose,
    sipm_response,
    zero_suppress,
)
from calolab.effects.config import rng_for
from calolab.effects.copula import link_to_pair_tau, pair_to_link_tau
from calolab.effects.dose import active_mass, energy_to_dose
from calolab.effects.miscalibration import calibration_constants
from calolab.errors import CalolabError
from calolab.geometry import Detector, load_detector
from calolab.io import read_showers, write_showers
from calolab.showers import Showers
from calolab.simulation import Beam, simulate

PAPER = dict(calibration_scale=0.2, noise_scale=0.5, bias=0.15, zero_suppression=0.6)


@pytest.fixture(scope="module")
def electrons() -> Showers:
    """200 electrons of 10 GeV in the AHCAL (40 x 24 x 24 cells), with a 20 mm beam spot."""
    return simulate(load_detector("ahcal"), Beam("e-", energy=10e3, spot_sigma=20.0), 200, seed=1)


def toy(nx: int = 8, ny: int = 8, layers: int = 4) -> Detector:
    return Detector.from_dict({"name": "toy", "cells": {"nx": nx, "ny": ny, "pitch": 10.0},
                               "layers": [{"absorber": "Fe", "absorber_thickness": 20, "active": "Scintillator",
                                           "active_thickness": 5, "repeat": layers}]})


def empty(det: Detector, n: int) -> Showers:
    return Showers.from_dense(det, np.zeros((n, det.n_cells), np.float32), particle=11, incident_energy=np.ones(n))


def pairwise_tau(u: np.ndarray, a: int, b: int) -> float:
    return float(stats.kendalltau(u[:, a], u[:, b]).statistic)


# ------------------------------------------------------------------ dose and ageing
def test_sipm_law_published_values():
    assert sipm_response(np.array([10.0, 100.0, 1000.0])) == pytest.approx([0.978, 0.905, 0.64], abs=1e-3)
    assert sipm_response(0.0) == 1.0


def test_dose_in_krad_from_energy_and_active_mass():
    det = toy(2, 2, 1)
    mass = 1.06 * 1.0 * 1.0 * 0.5 / 1000  # kg: polystyrene 1.06 g/cm3, 1 x 1 x 0.5 cm3
    assert active_mass(det) == pytest.approx([mass])
    one_joule = 1 / 1.602176634e-13  # MeV
    assert energy_to_dose(det, np.full(det.shape, one_joule))[0, 0, 0] == pytest.approx(1 / mass / 10)
    dense = np.zeros((3, det.n_cells), np.float32)
    dense[:, 0], dense[0, 3] = 2.0, 1.0
    s = Showers.from_dense(det, dense, particle=11, incident_energy=np.ones(3))
    assert dose_map(s, DoseConfig(exposure=1e9)).ravel()[[0, 3]] == pytest.approx(
        1e9 * energy_to_dose(det, np.array([6.0, 0, 0, 1.0])).ravel()[[0, 3]])
    assert dose_map(s, DoseConfig(peak_dose=30.0)).ravel()[[0, 3]] == pytest.approx([30.0, 5.0])


def test_linear_scaled_to_target_mae(electrons):
    config = AgeingConfig(model="linear", target_mae=0.018, spread=0.1, dead_fraction=0.01)
    aged, truth = age(electrons, config, seed=4)
    live = (truth.dose > 0) & ~truth.dead
    assert np.mean(1 - truth.coefficients[live]) == pytest.approx(0.018, abs=1e-3)
    assert truth.parameters["slope"] > 0 and np.all((truth.coefficients >= 0) & (truth.coefficients <= 1))
    assert np.all(truth.coefficients[truth.dose == 0][~truth.dead[truth.dose == 0]] == 1)
    expected = electrons.energy * truth.coefficients.ravel()[electrons.cell]
    assert np.allclose(aged.energy_sum(), np.bincount(electrons.event_index, expected, len(electrons)), rtol=1e-5)


def test_exponential_and_sipm_scaled_to_target_mae(electrons):
    for config in (AgeingConfig(model="exponential", dose_rate=1.0, target_mae=0.05), AgeingConfig(model="sipm",
                                                                                                 target_mae=0.05)):
        _, truth = age(electrons, config, seed=1)
        assert np.mean(1 - truth.coefficients[truth.dose > 0]) == pytest.approx(0.05, abs=1e-6)
    assert scintillator_critical_dose(1.0) == 4000.0


def test_dead_cells_fraction(electrons):
    aged, truth = age(electrons, AgeingConfig(model="sipm", dead_fraction=0.05), seed=2)
    n_cells = electrons.detector.n_cells
    assert truth.dead.sum() == round(0.05 * n_cells) and np.all(truth.coefficients[truth.dead] == 0)
    assert not np.any(truth.dead.ravel()[aged.cell]) and np.all(aged.energy > 0)
    _, other = age(electrons, AgeingConfig(model="sipm", dead_fraction=0.05), seed=3)
    assert not np.array_equal(truth.dead, other.dead)


def test_exponential_agrees_with_linear_at_small_dose():
    dc, dose = 500.0, np.linspace(0.0, 5.0, 11)
    lin, exp = linear_response(dose, 1 / dc), exponential_response(dose, dc)
    assert np.all(np.abs(exp - lin) <= 0.5 * (dose / dc) ** 2 + 1e-12)
    big = np.array([250.0])
    assert exponential_response(big, dc) - linear_response(big, 1 / dc) > 0.1  # and not at large dose


def test_ageing_rejects_bad_input(electrons):
    bad = electrons[:3]
    bad.energy[0] = -1.0
    with pytest.raises(CalolabError, match=">= 0"):
        age(bad, AgeingConfig(model="sipm"), seed=1)
    with pytest.raises(CalolabError, match=">= 0"):
        distort(bad, DistortionConfig(**PAPER), seed=1)
    bad.energy[0] = np.nan
    with pytest.raises(CalolabError, match="NaN"):
        age(bad, AgeingConfig(model="sipm"), seed=1)
    with pytest.raises(CalolabError, match="exactly one"):
        AgeingConfig(model="linear")
    with pytest.raises(CalolabError, match="unknown field 'slop'"):
        config_from_dict(AgeingConfig, {"model": "linear", "slop": 1.0})


# ------------------------------------------------------------------ copula and miscalibration
def test_beta22_ppf_is_scipy_beta_ppf():
    u = np.linspace(0, 1, 1001)
    assert np.allclose(beta22_ppf(u), stats.beta(2, 2).ppf(u), atol=1e-12)
    assert np.allclose(beta22_ppf(u.astype(np.float32)), stats.beta(2, 2).ppf(u), atol=2e-6)


def test_calibration_marginals_are_beta22():
    det = toy(64, 64, 2)  # 1024 sub-modules of 2 x 2 x 2 cells
    config = DistortionConfig(calibration_scale=0.25)
    c, copula = calibration_constants(config, det.shape, seed=5)
    assert np.abs(c - 1).max() <= 0.25
    first_cell = np.unique(copula.module, return_index=True)[1]  # one cell per module: independent draws
    b = (c.ravel()[first_cell] - 1) / (2 * 0.25) + 0.5
    assert stats.kstest(b, stats.beta(2, 2).cdf).pvalue > 0.01


@pytest.mark.parametrize("family", ["gaussian", "frank", "clayton"])
def test_within_module_tau_reproduced_between_modules_independent(family):
    copula = SubmoduleCopula(CopulaConfig(family=family, tau=(0.4, 0.4), block=(2, 2)), (3, 4, 2), seed=1)
    u = copula.sample([rng_for(9, i) for i in range(1500)])  # 1500 joint draws of 24 cells, 2 modules
    mod0, mod1 = np.flatnonzero(copula.module == 0), np.flatnonzero(copula.module == 1)
    within = [pairwise_tau(u, a, b) for a, b in [(mod0[0], mod0[1]), (mod0[2], mod0[-1]), (mod1[0], mod1[3])]]
    assert np.allclose(within, 0.4, atol=0.05)
    assert abs(pairwise_tau(u, mod0[0], mod1[0])) < 0.05 and abs(pairwise_tau(u, mod0[3], mod1[5])) < 0.05
    assert stats.kstest(u[:, 0], "uniform").pvalue > 0.01


def test_calibration_tau_across_modules():
    det = toy(60, 60, 1)  # 900 sub-modules of 2 x 2 cells: one draw each, compared across modules
    config = DistortionConfig(calibration_scale=0.2, calibration_copula=CopulaConfig(tau=(0.3, 0.3)))
    c, copula = calibration_constants(config, det.shape, seed=2)
    pairs = np.array([np.flatnonzero(copula.module == m) for m in range(copula.n_modules)])  # (900, 4)
    flat = c.ravel()
    assert stats.kendalltau(flat[pairs[:, 0]], flat[pairs[:, 3]]).statistic == pytest.approx(0.3, abs=0.05)
    assert abs(stats.kendalltau(flat[pairs[:-1, 0]], flat[pairs[1:, 0]]).statistic) < 0.05


def test_fast_paths_equal_pyvinecopulib_vines():
    shape = (2, 4, 4)
    rng = np.random.default_rng(3)
    for between in (0.0, -0.2):
        copula = SubmoduleCopula(CopulaConfig(family="gaussian", between_tau=between), shape, seed=4)
        w_root, w_cells = rng.random((5, copula.n_modules)), rng.random((5, copula.n_cells))
        vine = copula.from_uniforms(w_root, w_cells)  # pyvinecopulib h-inverses
        assert np.allclose(copula.from_normals(ndtri(w_root), ndtri(w_cells)), vine, atol=1e-9)
    copula = SubmoduleCopula(CopulaConfig(family="frank"), shape, seed=4)
    u = copula.from_uniforms(w_root, w_cells)
    for m in range(copula.n_modules):
        cells = np.flatnonzero(copula.module == m)
        full = copula.module_vine(m).inverse_rosenblatt(np.column_stack([w_root[:, m], w_cells[:, cells]]))
        assert np.allclose(full[:, 1:], u[:, cells], atol=1e-7)
    roots = SubmoduleCopula(CopulaConfig(family="clayton", between_tau=-0.3), shape, seed=4).root_vine()
    assert roots.dim == copula.n_modules and roots.get_tau(0, 0) == pytest.approx(-0.3)
    for family in ("frank", "clayton"):
        assert link_to_pair_tau(family, float(pair_to_link_tau(family, 0.35))) == pytest.approx(0.35, abs=2e-3)


# ------------------------------------------------------------------ distortion of showers
def test_known_miscalibration_scales_energy_by_hit_weighted_mean_c(electrons):
    config = DistortionConfig(calibration_scale=0.2, zero_suppression=None)
    out, truth = distort(electrons, config, seed=6)
    c = truth.calibration.ravel()[electrons.cell].astype(np.float64)
    assert out.n_hits == electrons.n_hits
    total, weighted_mean_c = electrons.energy.sum(dtype=np.float64), np.average(c, weights=electrons.energy)
    assert out.energy.sum(dtype=np.float64) == pytest.approx(weighted_mean_c * total, rel=1e-5)
    assert np.allclose(out.energy_sum(), np.bincount(electrons.event_index, electrons.energy * c), rtol=1e-5)


@pytest.mark.parametrize("unit", ["MeV", "MIP"])
def test_zero_suppression_removes_everything_below_threshold(electrons, unit):
    config = DistortionConfig(**{**PAPER, "zero_suppression": 0.6 if unit == "MeV" else 0.5}, zs_unit=unit)
    out, truth = distort(electrons[:50], config, seed=7)
    layer = out.cell_coordinates()[0]
    assert out.n_hits > 0 and np.all(out.energy > truth.threshold[layer])
    if unit == "MIP":
        assert truth.threshold == pytest.approx(0.5 * electrons.detector.mip_mpv)


def test_sparse_zero_suppression_equals_the_undistorted_readout(electrons):
    config = DistortionConfig(calibration_scale=0.0, noise_scale=0.0, bias=0.0, zero_suppression=2.0, zs_unit="MIP")
    dense_path, truth = distort(electrons[:40], config, seed=3)
    sparse = zero_suppress(electrons[:40], truth.threshold)
    assert 0 < sparse.n_hits < electrons[:40].n_hits
    assert np.array_equal(sparse.offsets, dense_path.offsets) and np.array_equal(sparse.cell, dense_path.cell)
    assert np.array_equal(sparse.energy, dense_path.energy)
    assert sparse.meta["effects"][-1]["threshold_mev"] == pytest.approx(truth.threshold)
    with pytest.raises(CalolabError, match="threshold"):
        zero_suppress(electrons[:40], -1.0)


@pytest.mark.parametrize("family", ["independent", "gaussian"])
def test_noise_occupancy_of_empty_events(family):
    det = toy(16, 16, 10)
    config = DistortionConfig(**PAPER, noise_copula=CopulaConfig(family=family))
    out, _ = distort(empty(det, 200), config, seed=8)
    p = noise_occupancy(config)
    assert p == pytest.approx(1 - (3 * 0.95**2 - 2 * 0.95**3))
    n = 200 * det.n_cells
    sigma = np.sqrt(n * p * (1 - p)) * (1 if family == "independent" else 3)  # correlation inflates the spread
    assert abs(out.n_hits - n * p) < 4 * sigma
    assert np.all((out.energy > 0.6) & (out.energy <= 0.65 + 1e-6))


def test_noise_marginal_is_beta22():
    det = toy(8, 8, 2)
    config = DistortionConfig(noise_scale=0.5, zero_suppression=None, noise_copula=CopulaConfig(tau=(0.5, 0.5)))
    out, truth = distort(empty(det, 300), config, seed=3)
    eps = out.dense().reshape(300, -1)
    assert np.array_equal(eps, truth.noise(0, 300).reshape(300, -1))
    assert stats.kstest(eps[:, 0] / 1.0 + 0.5, stats.beta(2, 2).cdf).pvalue > 0.01


def test_same_seed_same_bits_whatever_the_chunks(electrons):
    sample = electrons[:30]
    a, ta = distort(sample, DistortionConfig(**PAPER), seed=11, chunk_size=7)
    b, tb = distort(sample, DistortionConfig(**PAPER), seed=11, chunk_size=30, workers=2)
    c, _ = distort(sample, DistortionConfig(**PAPER), seed=12)
    assert np.array_equal(a.offsets, b.offsets) and np.array_equal(a.cell, b.cell)
    assert np.array_equal(a.energy, b.energy) and np.array_equal(ta.calibration, tb.calibration)
    assert not np.array_equal(a.energy, c.energy[: len(a.energy)]) or a.n_hits != c.n_hits
    aged_a, _ = age(sample, AgeingConfig(model="sipm", spread=0.1, dead_fraction=0.1), seed=np.random.default_rng(1))
    aged_b, _ = age(sample, AgeingConfig(model="sipm", spread=0.1, dead_fraction=0.1), seed=np.random.default_rng(1))
    assert np.array_equal(aged_a.energy, aged_b.energy)


def test_truth_round_trips_through_formats(electrons, tmp_path):
    aged, atruth = age(electrons[:20], AgeingConfig(model="linear", target_mae=0.018, dead_fraction=0.01), seed=1)
    out, dtruth = distort(aged, DistortionConfig(**PAPER), seed=2)
    for name in ("run.h5", "run.parquet"):
        back = read_showers(write_showers(out, tmp_path / name))
        assert np.array_equal(back.energy, out.energy)
        got_a, got_d = read_truth(back, "ageing"), read_truth(back, "distortion")
        assert np.array_equal(got_a.coefficients, atruth.coefficients) and np.array_equal(got_a.dead, atruth.dead)
        assert got_a.config == atruth.config and got_d.config == dtruth.config
        assert np.array_equal(got_d.calibration, dtruth.calibration)
    assert config_from_dict(DistortionConfig, config_to_dict(dtruth.config)) == dtruth.config


# ------------------------------------------------------------------ command line
def test_cli_age_and_distort_round_trip(electrons, tmp_path):
    raw, aged_file, dist_file = tmp_path / "raw.h5", tmp_path / "aged.h5", tmp_path / "dist.h5"
    write_showers(electrons[:40], raw)
    runner = CliRunner()
    result = runner.invoke(cli, ["age", str(raw), "-o", str(aged_file), "--target-mae", "0.018", "--spread", "0.05",
                                 "--dead-fraction", "0.01", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert "mean |1 - c| 0.0180" in result.output and len(result.output.strip().splitlines()) == 1
    result = runner.invoke(cli, ["distort", str(aged_file), "-o", str(dist_file), "--calibration-scale", "0.2",
                                 "--noise-scale", "0.5", "--bias", "0.15", "--zero-suppression", "0.6",
                                 "--block", "2x2", "--seed", "4"])
    assert result.exit_code == 0, result.output
    back = read_showers(dist_file)
    config = load_config(AgeingConfig, tmp_path / "aged.ageing.yaml")
    _, atruth = age(electrons[:40], config, seed=3)
    assert np.array_equal(read_truth(back, "ageing").coefficients, atruth.coefficients)
    record = yaml.safe_load((tmp_path / "dist.distortion.yaml").read_text())
    assert record["seed"] == 4 and record["config"]["calibration_copula"]["block"] == [2, 2]
    config = load_config(DistortionConfig, tmp_path / "dist.distortion.yaml")
    expected, dtruth = distort(read_showers(aged_file), config, seed=4)
    assert np.array_equal(read_truth(back, "distortion").calibration, dtruth.calibration)
    assert np.array_equal(back.energy, expected.energy)
    result = runner.invoke(cli, ["distort", str(raw), "-o", str(dist_file), "--zs-unit", "MIP", "--tau", "0.5:0.2"])
    assert isinstance(result.exception, CalolabError) and "upper end" in str(result.exception)
