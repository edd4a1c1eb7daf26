"""WGAN calibration (papers 000/001): the generator's per-cell weights learn the ageing coefficients."""

import subprocess
import sys

import numpy as np
import pytest

from calolab import CalolabError, Showers, load_detector
from calolab.calibration import calibrate, hit_cells, read_calibration, score, write_calibration
from calolab.geometry import Detector

torch = pytest.importorskip("torch")

FAST = {"critic": "mlp", "epochs": 20, "batch_size": 32, "generator_lr": 3e-3}  # 500 events: larger steps


@pytest.fixture(scope="module")
def toy():
    """6 x 8 x 8 cells; hits where a shower is likely, log-normal energies; the core loses up to 40%."""
    det = Detector.from_dict({
        "name": "small", "cells": {"nx": 8, "ny": 8, "pitch": 20.0},
        "layers": [{"absorber": "Fe", "absorber_thickness": 20, "active": "Scintillator",
                    "active_thickness": 5, "repeat": 6}],
    })
    layer, x, y = np.meshgrid(*(np.arange(n) for n in det.shape), indexing="ij")
    occupancy = 0.8 * np.exp(-((x - 3.5) ** 2 + (y - 3.5) ** 2) / 6 - (layer - 2) ** 2 / 8)
    truth = 1 - 0.4 * occupancy / occupancy.max()  # dose ~ occupancy

    def run(seed, c=1.0):
        rng = np.random.default_rng(seed)
        energy = rng.lognormal(0.0, 0.6, (500, *det.shape)) * (rng.random((500, *det.shape)) < occupancy) * c
        return Showers.from_dense(det, energy.astype(np.float32), particle=211, incident_energy=np.full(500, 1e4))

    return run(1), run(2, truth), truth


def test_wgan_learns_the_coefficients_and_reports_its_training(toy, tmp_path):
    reference, damaged, truth = toy
    result = calibrate(reference, damaged, "wgan", truth=truth, **FAST)
    cells = hit_cells(reference)
    assert result.method == "wgan" and result.coefficients.shape == reference.detector.shape
    assert np.array_equal(result.calibrated, cells)
    d = result.diagnostics
    assert d["critic"] == "mlp" and d["loss"] == "clip" and d["critic_parameters"] > 0
    for key in ("epoch_time_s", "critic_loss", "wasserstein", "generator_lr"):
        assert len(d[key]) == FAST["epochs"] and np.all(np.isfinite(d[key]))
    # the weights start at 1: the MAE before training is the uncorrected mean |1 - c|
    assert len(d["mae"]) == FAST["epochs"] + 1
    assert d["mae"][0] == pytest.approx(np.mean(np.abs(1 - truth[cells])))
    assert d["mae"][-1] == pytest.approx(score(result, truth, cells)["mae"])
    assert d["mae"][-1] < 0.6 * d["mae"][0]
    assert np.all(np.isnan(result.uncertainty)) and "not estimated" in d["uncertainty"]
    back = read_calibration(write_calibration(result, tmp_path / "wgan.h5"))
    assert back.diagnostics["config"]["critic"] == "mlp" and back.diagnostics["mae"] == pytest.approx(d["mae"])


def test_wgan_is_reproducible_and_leaves_the_global_seed_alone(toy):
    reference, damaged, _ = toy
    state = torch.random.get_rng_state()
    first, again, other = (calibrate(reference, damaged, "wgan", seed=s, **dict(FAST, epochs=3)) for s in (3, 3, 4))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert np.array_equal(first.coefficients, again.coefficients, equal_nan=True)
    assert not np.array_equal(first.coefficients, other.coefficients, equal_nan=True)


def test_conv_linear_and_gradient_penalty_variants(toy):
    reference, damaged, truth = toy
    conv = calibrate(reference, damaged, "wgan", truth=truth, **dict(FAST, critic="conv", epochs=4, generator_lr=0.01))
    assert conv.diagnostics["critic"] == "conv" and conv.diagnostics["mae"][-1] < 0.6 * conv.diagnostics["mae"][0]
    assert np.all((conv.coefficients[conv.calibrated] >= 0) & (conv.coefficients[conv.calibrated] <= 1.5))
    linear = calibrate(reference, damaged, "wgan", truth=truth, **dict(FAST, critic="linear"))
    assert linear.diagnostics["mae"][-1] < 0.6 * linear.diagnostics["mae"][0]
    gp = calibrate(reference, damaged, "wgan", gradient_penalty=10.0, **dict(FAST, epochs=2))
    assert gp.diagnostics["loss"] == "gp" and np.all(np.isfinite(gp.coefficients[gp.calibrated]))
    assert linear.diagnostics["critic_parameters"] < conv.diagnostics["critic_parameters"] < \
        gp.diagnostics["critic_parameters"]


def test_wgan_rejects_bad_options(toy):
    reference, damaged, truth = toy
    with pytest.raises(CalolabError, match="unknown WGAN critic"):
        calibrate(reference, damaged, "wgan", critic="transformer")
    with pytest.raises(CalolabError, match="epochs"):
        calibrate(reference, damaged, "wgan", epochs=0)
    with pytest.raises(CalolabError, match="unknown wgan option 'min_hits'"):
        calibrate(reference, damaged, "wgan", min_hits=10)
    assert calibrate(reference[:8], damaged[:8], "wgan", epochs=1).diagnostics["config"]["filters"] == (32, 64, 64, 32)
    with pytest.raises(CalolabError, match="truth coefficients"):
        calibrate(reference, damaged, "wgan", truth=truth[:2])
    with pytest.raises(CalolabError, match="different geometries"):
        calibrate(reference, _other_detector_run(), "wgan")


def _other_detector_run():
    det = load_detector("siw-ecal")
    return Showers.from_dense(det, np.ones((1, *det.shape), np.float32), particle=11, incident_energy=np.ones(1))


def test_importing_calibration_does_not_import_torch():
    code = "import sys, calolab.calibration; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.slow
def test_wgan_reaches_the_papers_mae_on_ahcal_pions():
    """ahcal 10 GeV pions, 5000 + 5000 events, linear ageing with mean |1 - c| = 0.018 over hit cells.

    The papers go from 0.018 to 0.0074 in 100 epochs. Measured here (CPU, 2 threads): the
    default conv critic 0.0041 after 10 epochs (17-19 s each), the linear critic 0.0073 after
    40 (0.13 s each; 0.0073 for seeds 0-3), the mlp critic 0.0079 after 40 (1.2 s each).
    Bounds: 0.0050, 0.0074, 0.0082.
    """
    from calolab.effects import AgeingConfig, DoseConfig, age, dose_map
    from calolab.simulation import Beam, simulate

    det, beam = load_detector("ahcal"), Beam("pi+", energy=10e3)
    reference = simulate(det, beam, 5000, seed=1)
    dose = dose_map(simulate(det, beam, 5000, seed=2), DoseConfig())
    damaged, aged = age(simulate(det, beam, 5000, seed=3), AgeingConfig(model="linear", target_mae=0.018), seed=1,
                        dose=dose)
    truth, cells = aged.coefficients.astype(float), hit_cells(reference)
    assert np.mean(np.abs(1 - truth[cells])) == pytest.approx(0.018, rel=0.05)
    conv = calibrate(reference, damaged, "wgan", truth=truth)
    assert conv.diagnostics["mae"][0] == pytest.approx(0.018, rel=0.05)
    assert score(conv, truth, cells)["mae"] <= 0.0050
    linear = calibrate(reference, damaged, "wgan", critic="linear")
    assert score(linear, truth, cells)["mae"] <= 0.0074
    mlp = calibrate(reference, damaged, "wgan", critic="mlp")
    assert score(mlp, truth, cells)["mae"] <= 0.0082
