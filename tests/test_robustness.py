"""Robustness scan (paper 002): known responses, copula marginals and ranks, sparse vs dense noise,
bitwise reproducibility, the regression of a and b, the study run folder and the CLI."""

import json

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from scipy import stats

from calolab.effects import CopulaConfig, DistortionConfig
from calolab.effects.miscalibration import noise, noise_copula
from calolab.errors import CalolabError
from calolab.geometry import Detector
from calolab.robustness import (
    FULL_TERMS,
    PAPER_TERMS,
    GridDistorter,
    GridPoint,
    RobustnessGrid,
    ScanConfig,
    SparseNoise,
    design_matrix,
    empty_cell_occupancy,
    fit_response,
    ols,
    regress,
    scan,
)
from calolab.showers import Showers
from calolab.studies.robustness import RobustnessStudyConfig, robustness_command, run_robustness_study


def _detector(layers=4, nxy=4, name="toy"):
    return Detector.from_dict({"name": name, "cells": {"nx": nxy, "ny": nxy, "pitch": 20.0},
                               "layers": [{"absorber": "Cu", "absorber_thickness": 39.7, "active": "Si",
                                           "active_thickness": 0.3, "repeat": layers}]})


class LinearSum:
    """E_hat = slope * (visible sum) + offset: linear in the inputs."""

    def __init__(self, slope=1000.0, offset=0.0, name="linear"):
        self.slope, self.offset, self.name = slope, offset, name

    def predict(self, showers):
        return self.slope * showers.energy_sum() + self.offset


class HitCounter:
    """A non-linear toy: energy from the number of hits and the hottest cell."""

    name = "counter"

    def predict(self, showers):
        hits = np.diff(showers.offsets)
        top = np.zeros(len(showers))
        if showers.n_hits:
            top = np.maximum.reduceat(np.concatenate([showers.energy, [0]]), showers.offsets[:-1])
        return 50.0 * hits + 10.0 * top


def _pattern_showers(det, n=400, cells=(5, 6, 9, 21, 22, 40), seed=0):
    """Events whose hits sit in fixed cells with fixed shares of E/1000 (MeV): the sum is E/1000 exactly."""
    rng = np.random.default_rng(seed)
    e = np.sort(rng.uniform(20e3, 100e3, n))  # the smallest share stays above 0.6 MeV
    share = np.array([0.3, 0.25, 0.2, 0.1, 0.1, 0.05])
    dense = np.zeros((n, det.n_cells), np.float32)
    dense[:, list(cells)] = (e[:, None] / 1000 * share).astype(np.float32)
    return Showers.from_dense(det, dense, particle=211, incident_energy=e), np.array(cells), share


def test_known_linear_distortions_give_the_known_response():
    det = _detector()
    test, cells, share = _pattern_showers(det)
    grid = RobustnessGrid((0.0, 0.3), (0.0,), (0.0, 0.15))
    config = ScanConfig(grid=grid, chunk_size=128, seed=7)
    result = scan({"linear": LinearSum()}, test, config)
    calibration = 1 + 0.3 * (2 * GridDistorter(det, grid, seed=7).pattern()[cells].astype(float) - 1)
    expected = {(0.0, 0.0): (1.0, 0.0), (0.0, 0.15): (1.0, 1000 * 0.15 * len(cells)),
                (0.3, 0.0): (calibration @ share, 0.0), (0.3, 0.15): (calibration @ share, 900.0)}
    assert abs(calibration @ share - 1) > 0.01  # the miscalibration does move the scale
    for point in result.points:
        fit = fit_response(result.e_true, result.predictions[0, point.index], bins=8)
        a, b = expected[point.calibration_scale, point.bias]
        assert fit.a == pytest.approx(a, rel=1e-5)
        assert fit.b == pytest.approx(b, abs=0.05)  # MeV, float32 rounding of the hits
        assert fit.ndf == 6
        assert fit.resolution_cal_overall < 1e-5  # a linear response calibrates away exactly


def test_calibration_and_noise_copulas_give_the_requested_ranks_and_beta_marginals():
    det = _detector(layers=2, nxy=60)
    config = CopulaConfig(tau=(0.4, 0.4))
    grid = RobustnessGrid((0.2,), (0.0,), (0.0,))
    b = GridDistorter(det, grid, calibration_copula=config, seed=3).pattern().astype(float)
    assert stats.kstest(b, stats.beta(2, 2).cdf).pvalue > 0.01
    module = SparseNoise(config, det.shape).module
    first = np.array([np.flatnonzero(module == m)[:2] for m in range(module.max() + 1)])
    assert stats.kendalltau(b[first[:, 0]], b[first[:, 1]]).statistic == pytest.approx(0.4, abs=0.05)
    assert abs(stats.kendalltau(b[first[:-1, 0]], b[first[1:, 0]]).statistic) < 0.05  # modules independent

    small = _detector(layers=3, nxy=4)
    sampler = SparseNoise(config, small.shape, seed=1)
    rng = np.random.default_rng(5)
    n = 3000
    roots = sampler.roots(rng, n)
    cells = np.tile(np.arange(small.n_cells), n)
    noise_b = sampler.draw_cells(roots, np.repeat(np.arange(n), small.n_cells), cells, rng).reshape(n, -1)
    assert stats.kstest(noise_b[:, 0], stats.beta(2, 2).cdf).pvalue > 0.01
    same = np.flatnonzero(sampler.module == sampler.module[0])
    other = np.flatnonzero(sampler.module != sampler.module[0])
    assert stats.kendalltau(noise_b[:, same[0]], noise_b[:, same[-1]]).statistic == pytest.approx(0.4, abs=0.05)
    assert abs(stats.kendalltau(noise_b[:, same[0]], noise_b[:, other[0]]).statistic) < 0.05


@pytest.mark.parametrize("dense_above", [1.0, 0.0])  # binomial counts + rejection, and per-cell Bernoulli
def test_sparse_noise_matches_dense_noise_in_distribution(dense_above):
    shape, n = (4, 6, 6), 6000
    cfg = DistortionConfig(noise_scale=1.0, bias=0.15, zero_suppression=0.6,
                           noise_copula=CopulaConfig(tau=(0.2, 0.6)))
    copula = noise_copula(cfg, shape, 5)
    hit_cells = np.array([0, 1, 7, 50, 51, 52, 100])
    empty = np.ones(144, bool)
    empty[hit_cells] = False
    reading = 0.15 + noise(cfg, copula, 5, 0, n)  # the dense reference of calolab.effects, every cell
    dense_on = (reading > 0.6) & empty
    dense_count, dense_energy = dense_on.sum(axis=1), reading[dense_on]

    sampler = SparseNoise(copula, shape, dense_above=dense_above)
    rng = np.random.default_rng(11)
    roots = sampler.roots(rng, n)
    grid = RobustnessGrid((0.0,), (1.0,), (0.15,))
    event, cell, b = sampler.draw_empty(roots, np.repeat(np.arange(n), len(hit_cells)), np.tile(hit_cells, n),
                                        grid.b_cut(1.0, 0.15), rng)
    count, energy = np.bincount(event, minlength=n), 0.15 + (2 * b - 1)
    assert not np.isin(cell, hit_cells).any() and np.all(np.diff(event * 144 + cell) > 0)
    assert np.all(energy > 0.6)
    assert count.mean() == pytest.approx(dense_count.mean(), rel=0.03)
    assert count.var() == pytest.approx(dense_count.var(), rel=0.12)  # the correlation inflates it 5x
    assert count.var() > 3 * count.mean()
    assert energy.mean() == pytest.approx(dense_energy.mean(), abs=0.004)
    assert stats.ks_2samp(energy, dense_energy).pvalue > 0.01
    per_cell = np.bincount(cell, minlength=144)[empty]
    assert per_cell.std() < 4 * np.sqrt(per_cell.mean())  # positions uniform over the empty cells


def test_independent_noise_occupancy_is_the_beta_tail():
    sampler = SparseNoise(CopulaConfig(family="independent"), (2, 10, 10))
    grid = RobustnessGrid((0.0,), (1.5,), (0.0,))
    rng = np.random.default_rng(2)
    event, _, _ = sampler.draw_empty(sampler.roots(rng, 4000), np.zeros(0, int), np.zeros(0, int),
                                     grid.b_cut(1.5, 0.0), rng)
    assert len(event) / (4000 * 200) == pytest.approx(empty_cell_occupancy(grid, 1.5, 0.0), rel=0.01)
    assert empty_cell_occupancy(grid, 1.5, 0.0) == pytest.approx(0.216)


def test_readout_keeps_cells_sorted_unique_and_above_threshold_in_mip_units():
    det = _detector(layers=3, nxy=6)
    test, _, _ = _pattern_showers(det, n=50)
    grid = RobustnessGrid((0.3,), (0.0, 1.5), (0.15,), zero_suppression=0.6, units="MIP")
    chunk = GridDistorter(det, grid, seed=4).chunk(test, 0)
    mip = float(det.mip_mpv[0])
    for point in grid.points():
        events, sums = chunk.readout(point)
        key = events.event_index * det.n_cells + events.cell
        assert np.all(np.diff(key) > 0)
        assert np.all(events.energy > 0.6 * mip * (1 - 1e-6))
        assert sums["signal_hits_kept"] == 6 * 50  # the hits are far above a MIP
    assert sums["noise_cells"] > 0 and np.max(events.energy[~np.isin(events.cell, [5, 6, 9, 21, 22, 40])]) \
        <= 1.65 * mip * (1 + 1e-6)


@pytest.mark.parametrize("draws", ["shared", "per-point"])
def test_grid_outputs_are_reproducible_bitwise_from_the_seed(draws):
    det = _detector(layers=3, nxy=6)
    rng = np.random.default_rng(1)
    dense = (rng.random((60, *det.shape)) < 0.1) * rng.exponential(2.0, (60, *det.shape))
    test = Showers.from_dense(det, dense.astype(np.float32), particle=211, incident_energy=rng.uniform(1e4, 5e4, 60))
    grid = RobustnessGrid((0.0, 0.25), (0.0, 0.5, 1.5), (-0.15, 0.15))
    regs = {"linear": LinearSum(), "counter": HitCounter()}
    one = scan(regs, test, ScanConfig(grid=grid, seed=9, chunk_size=25, draws=draws, workers=2))
    two = scan(regs, test, ScanConfig(grid=grid, seed=9, chunk_size=25, draws=draws, workers=1))
    other = scan(regs, test, ScanConfig(grid=grid, seed=10, chunk_size=25, draws=draws))
    assert one.predictions.tobytes() == two.predictions.tobytes()
    assert all(one.stats[k].tobytes() == two.stats[k].tobytes() for k in one.stats)
    assert not np.array_equal(one.predictions, other.predictions)
    noisy = [p.index for p in grid.points() if p.noise_scale == 1.5]
    assert np.all(one.stats["noise_cells"][noisy] > 0)


def test_regression_recovers_known_coefficients():
    grid = RobustnessGrid()
    params = np.array([[p.calibration_scale, p.noise_scale, p.bias] for p in grid.points()])
    rng = np.random.default_rng(3)
    truth = {"1": 0.963, "above:n": -0.299, "above:u": -0.053, "u": 0.091}  # paper 002, equation 2.1
    x = design_matrix(params, PAPER_TERMS["a"], grid.zero_suppression)
    sigma = 0.004
    y = x @ np.array([truth[t] for t in PAPER_TERMS["a"]]) + rng.normal(0, sigma, len(x))
    fit = regress(params, y, PAPER_TERMS["a"], grid.zero_suppression)
    expected_se = sigma * np.sqrt(np.diag(np.linalg.inv(x.T @ x)))
    for k, term in enumerate(fit.terms):
        assert abs(fit.coef[k] - truth[term]) < 4 * fit.se[k]
        assert fit.se[k] == pytest.approx(expected_se[k], rel=0.25)
    assert set(fit.significant) == set(truth) and fit.r2 > 0.99 and fit.dof == 116
    full = regress(params, y, FULL_TERMS, grid.zero_suppression)  # the extra terms are not significant
    assert set(full.significant) <= set(truth) | {"above", "n"}
    assert {"above:n", "u", "1"} <= set(full.significant)
    assert fit.formula("a").startswith("a = +0.96")
    exact = ols(x, x @ np.ones(x.shape[1]), PAPER_TERMS["a"])
    assert np.allclose(exact.coef, 1) and exact.r2 == pytest.approx(1)
    with pytest.raises(CalolabError, match="degrees of freedom"):
        ols(x[:2], y[:2], PAPER_TERMS["a"])
    with pytest.raises(CalolabError, match="regression term"):
        design_matrix(params, ("1", "noise"), 0.6)


def test_grid_follows_table_1_and_rejects_bad_values():
    grid = RobustnessGrid()
    assert len(grid.points()) == 120 and grid.noise_scales[2] == 0.2
    assert [grid.crosses(n, 0.0) for n in grid.noise_scales] == [False] * 6 + [True] * 2
    assert grid.b_cut(0.0, 0.7) == -np.inf and grid.b_cut(0.0, 0.0) == np.inf
    with pytest.raises(CalolabError, match="calibration scale"):
        RobustnessGrid(calibration_scales=(1.2,))
    with pytest.raises(CalolabError, match="units"):
        RobustnessGrid(units="GeV")
    with pytest.raises(CalolabError, match="sparse noise sampler"):
        SparseNoise(CopulaConfig(family="clayton"), (2, 4, 4))


def test_study_writes_a_run_folder_that_reads_back(tmp_path):
    det = _detector(layers=3, nxy=6)
    test, _, _ = _pattern_showers(det, n=120)
    grid = RobustnessGrid((0.0, 0.3), (0.0, 1.0), (0.0, 0.15))
    config = RobustnessStudyConfig(scan=ScanConfig(grid=grid, chunk_size=50), energy_bins=5,
                                   terms=("1", "s", "n", "u", "above"))
    metrics = run_robustness_study(tmp_path, config, {"linear": LinearSum(), "counter": HitCounter()}, test,
                                   echo=lambda line: None)
    rows = (tmp_path / "points.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 8 and rows[0].startswith("regressor,index,calibration_scale")
    regression = json.loads((tmp_path / "regression.json").read_text())
    assert set(regression) == {"linear", "counter"} and "table" in regression["linear"]["a"]["full"]
    assert metrics["regressors"]["linear"]["nominal"]["a"] == pytest.approx(1.0, rel=1e-5)
    assert metrics["signal"]["nominal"]["signal_hits_kept_fraction"] == 1.0
    back = RobustnessStudyConfig.from_dict(yaml.safe_load((tmp_path / "config.yaml").read_text()))
    assert back.scan.grid == grid and back.terms == config.terms
    with np.load(tmp_path / "predictions.npz") as stored:
        assert stored["predictions"].shape == (2, 8, 120)
    for figure in ("response_curves.png", "response_vs_parameters.png", "regression_residuals.png",
                   "signal_survival.png"):
        assert (tmp_path / figure).read_bytes()[:4] == b"\x89PNG"


def test_cli_quick_run_on_cusi(tmp_path):
    out = tmp_path / "rob"
    result = CliRunner().invoke(robustness_command, ["--quick", "--test-events", "200", "--train-events", "100",
                                                     "--regressors", "sum", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "signal at the nominal point" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["detector"] == "cusi" and metrics["points"] == 12 and metrics["test_events"] == 200
    # the quick grid's noise scale 1 MeV floods the cells (4 of 12 points): the clear-points model omits them
    flooded = [p["noise_energy_per_event"] > 0.1 * p["signal_reading_per_event"]
               for p in json.loads((out / "points.json").read_text())["points"]]
    assert sum(flooded) == 4
    regression = json.loads((out / "regression.json").read_text())["sum"]["a"]
    assert len(regression["unflooded"]["fitted"]) == 8 and len(regression["full"]["fitted"]) == 12
    bad = CliRunner().invoke(robustness_command, ["--regressors", "sum,forest", "-o", str(out)])
    assert isinstance(bad.exception, CalolabError) and "forest" in str(bad.exception)


def test_point_index_is_the_grid_order():
    grid = RobustnessGrid.quick()
    assert grid.points()[-1] == GridPoint(11, 0.3, 1.0, 0.15)
