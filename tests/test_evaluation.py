"""The generative-model evaluation suite: observables, distances, classifier test, FPD/KPD, report and CLI."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.integrate import quad
from scipy.stats import norm

from calolab.errors import CalolabError
from calolab.evaluation import (
    EvaluationConfig,
    classifier_test,
    compare,
    compare_observable,
    evaluate,
    fpd,
    frechet_distance,
    high_level_features,
    kpd,
    mmd2_unbiased,
)
from calolab.evaluation.commands import evaluate as evaluate_command
from calolab.geometry import load_detector
from calolab.io import write_showers
from calolab.showers import Showers
from calolab.simulation import Beam, simulate

FAST = EvaluationConfig(low_level=False, fpd_points=5, fpd_batches=5, kpd_batches=4, kpd_batch_size=300)


@pytest.fixture(scope="module")
def electrons() -> Showers:
    """400 siw-ecal electrons of 2-50 GeV (log-uniform) with a 3 mm beam spot."""
    beam = Beam("e-", energy_min=2e3, energy_max=5e4, spectrum="log-uniform", spot_sigma=3.0)
    return simulate(load_detector("siw-ecal"), beam, 400, seed=11)


def test_features_agree_with_dense_arrays(electrons):
    s = electrons[:50]
    det = s.detector
    f = high_level_features(s, mip_fraction=0.5)
    dense = s.dense().astype(np.float64)  # (N, L, X, Y) MeV
    x = (np.arange(det.nx) - (det.nx - 1) / 2) * det.pitch_x
    layer_e = dense.sum((2, 3))
    profile_x = dense.sum(3)  # (N, L, X)
    with np.errstate(invalid="ignore", divide="ignore"):
        cx = (profile_x * x).sum(2) / layer_e
        wx = np.sqrt((profile_x * x**2).sum(2) / layer_e - cx**2)
    np.testing.assert_allclose(f.layer_energy, layer_e, rtol=1e-6)
    np.testing.assert_allclose(f.center_x, cx, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(f.width_x, wx, rtol=1e-5, atol=1e-4)
    threshold = 0.5 * det.mip_mpv[None, :, None, None]
    np.testing.assert_array_equal(f.n_hits, (dense > threshold).sum((1, 2, 3)))
    np.testing.assert_allclose(f.energy_ratio, layer_e.sum(1) / s.incident_energy)
    assert np.all((f.depth_x0 > 0) & (f.depth_x0 < det.x0_bounds[-1]))


def test_separation_power_and_w1_of_a_known_shift():
    rng = np.random.default_rng(3)
    ref, gen = rng.normal(0.0, 1.0, 200_000), rng.normal(0.5, 1.0, 200_000)
    c = compare_observable(ref, gen, bins=30)
    # Expected binned value on the same edges, from the Gaussian CDFs (underflow and overflow included).
    edges = np.concatenate([[-np.inf], c.edges, [np.inf]])
    p, q = np.diff(norm.cdf(edges)), np.diff(norm.cdf(edges, 0.5))
    assert c.separation_power == pytest.approx(0.5 * np.sum((p - q) ** 2 / (p + q)), abs=0.002)
    continuum = quad(lambda t: 0.5 * (norm.pdf(t) - norm.pdf(t, 0.5)) ** 2 / (norm.pdf(t) + norm.pdf(t, 0.5)), -12, 12)
    assert c.separation_power == pytest.approx(continuum[0], abs=0.003)  # 0.0589
    assert c.w1 == pytest.approx(0.5, abs=0.01)  # a shift of half the reference's sigma
    disjoint = compare_observable(ref, ref + 100.0)
    assert disjoint.separation_power == pytest.approx(1.0) and disjoint.w1 == pytest.approx(100.0, rel=1e-3)
    # A generator that leaves a layer empty (NaN) in half the events is penalised through the undefined
    # bin: q = p / 2 in every defined bin and 1/2 in the undefined one, so 0.5 (1/6 + 1/2) = 1/3.
    gaps = np.where(rng.random(ref.size) < 0.5, np.nan, ref)
    assert compare_observable(ref, gaps).separation_power == pytest.approx(1 / 3, abs=0.01)


def test_frechet_distance_of_gaussians():
    rotation = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))[0]
    a, b = np.array([1.0, 4.0, 0.25]), np.array([2.0, 1.0, 1.0])
    cov_1, cov_2 = rotation @ np.diag(a) @ rotation.T, rotation @ np.diag(b) @ rotation.T
    mu_1, mu_2 = np.zeros(3), np.array([0.5, -1.0, 2.0])
    expected = 5.25 + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu_1, cov_1, mu_2, cov_2) == pytest.approx(expected, rel=1e-8)

    rng = np.random.default_rng(5)
    shift, sigma = np.array([0.3, 0.0, 0.0, 0.0]), np.array([1.0, 1.2, 1.0, 0.8])
    ref, gen = rng.normal(size=(40_000, 4)), shift + sigma * rng.normal(size=(40_000, 4))
    estimate = fpd(ref, gen, seed=1, n_points=6, n_batches=8)
    # |dmu|^2 + sum (1 - sigma)^2 = 0.17; the samples' own means and covariances scatter by about 0.004
    assert estimate.value == pytest.approx(0.09 + 0.04 + 0.04, abs=0.012)
    assert 0 < estimate.error < 0.012
    same = fpd(ref, ref, seed=1, n_points=6, n_batches=8)
    assert same.value < 1e-3 and same.value < estimate.value / 100


def test_kpd_is_zero_for_one_distribution_and_unbiased_with_repeated_events():
    rng = np.random.default_rng(8)
    ref, other = rng.normal(size=(3000, 4)), rng.normal(size=(3000, 4))
    same = kpd(ref, other, seed=2, n_batches=10, batch_size=1000)
    assert abs(same.value) < 2 * same.error + 1e-4
    shifted = kpd(ref, other + [0.5, 0, 0, 0], seed=2, n_batches=10, batch_size=1000)
    assert shifted.value > 5 * shifted.error and shifted.value > 20 * abs(same.value)
    # Counts of a batch drawn with replacement: copies of one event are never paired with each other.
    x, y = rng.normal(size=(5, 3)), rng.normal(size=(4, 3))
    cx, cy = np.array([1, 3, 1, 2, 1]), np.array([2, 1, 1, 3])
    ex, ey = np.repeat(np.arange(5), cx), np.repeat(np.arange(4), cy)

    def brute(a, idx):
        k = (a[idx] @ a[idx].T / 3 + 1) ** 3
        distinct = idx[:, None] != idx[None, :]
        return k[distinct].mean()

    expected = brute(x, ex) + brute(y, ey) - 2 * np.mean((x[ex] @ y[ey].T / 3 + 1) ** 3)
    assert mmd2_unbiased(x, y, 3, cx, cy) == pytest.approx(expected, rel=1e-10)


def test_classifier_auc_chance_and_known_shift():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(3000, 3))
    assert classifier_test(x, x, "hgb", seed=0).auc == pytest.approx(0.5, abs=0.05)
    assert classifier_test(x, rng.normal(size=(3000, 3)), "mlp", seed=0).auc == pytest.approx(0.5, abs=0.05)
    shifted = classifier_test(x, rng.normal(size=(3000, 3)) + [1.0, 0, 0], "hgb", seed=0)
    assert shifted.auc == pytest.approx(norm.cdf(1 / np.sqrt(2)), abs=0.03)  # Bayes-optimal AUC 0.760
    assert 0.05 < shifted.jsd < 0.25  # the JS divergence of the two is 0.161 bit
    with pytest.raises(CalolabError, match="unknown classifier"):
        classifier_test(x, x, "svm")


def test_identical_showers_give_chance_and_zero_distances(electrons):
    result = compare(electrons, electrons, EvaluationConfig(fpd_points=5, fpd_batches=5, kpd_batches=4,
                                                            kpd_batch_size=300), seed=0)
    assert all(c.separation_power == 0.0 and c.w1 == 0.0 for c in result.observables.values())
    assert result.classifiers["high"].auc == pytest.approx(0.5, abs=0.05)
    assert result.classifiers["low"].auc == pytest.approx(0.5, abs=0.05)
    assert result.fpd.value < 0.05
    again = compare(electrons, electrons, FAST, seed=0)
    assert again.fpd.value == compare(electrons, electrons, FAST, seed=0).fpd.value  # same seed, same bits


def test_a_miscalibrated_generator_is_told_apart(electrons):
    reference, generated = electrons[:200], electrons[200:]
    scaled = Showers(generated.detector, generated.offsets, generated.cell, generated.energy * 1.25,
                     generated.particle, generated.incident_energy, generated.entry, generated.direction)
    honest, biased = compare(reference, generated, FAST, seed=1), compare(reference, scaled, FAST, seed=1)
    assert biased.classifiers["high"].auc > 0.9 > honest.classifiers["high"].auc
    assert biased.observables["energy_ratio"].separation_power > 5 * honest.observables["energy_ratio"].separation_power
    assert biased.observables["energy_ratio"].w1 > 1.0 > honest.observables["energy_ratio"].w1
    assert abs(honest.kpd.value) < 3 * honest.kpd.error and biased.kpd.value > 5 * biased.kpd.error


def test_floor_from_reference_halves(electrons, tmp_path):
    generated = electrons[:200]
    scaled = Showers(generated.detector, generated.offsets, generated.cell, generated.energy * 1.25,
                     generated.particle, generated.incident_energy, generated.entry, generated.direction)
    metrics = evaluate(electrons, scaled, tmp_path / "run", seed=2, config=FAST, figures=False)
    assert metrics["events"] == {"reference": 200, "generated": 200, "floor": 200}
    assert metrics["generated"]["classifier"]["high"]["auc"] > 0.9 > metrics["floor"]["classifier"]["high"]["auc"]
    run = tmp_path / "run"
    assert (run / "metrics.json").exists() and "reference halves" in (run / "config.yaml").read_text()


def test_mismatched_geometries_are_refused(electrons, small_detector, tmp_path):
    other = simulate(small_detector, Beam("e-", energy=5e3), 20, seed=1)
    with pytest.raises(CalolabError, match=r"generated: detector small has shape \(6, 8, 8\), expected \(15, 32, 32\)"):
        evaluate(electrons, other, tmp_path / "run", figures=False)


def test_cli_end_to_end(tmp_path, electrons):
    det = load_detector("siw-ecal")
    beam = Beam("e-", energy=10e3)
    paths = {}
    for name, seed in (("ref", 1), ("gen", 2), ("floor", 3)):
        paths[name] = write_showers(simulate(det, beam, 300, seed=seed), tmp_path / f"{name}.h5")
    out = tmp_path / "run"
    runner = CliRunner()
    result = runner.invoke(evaluate_command, [str(paths["ref"]), str(paths["gen"]), "--floor", str(paths["floor"]),
                                              "--out", str(out), "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert "300 reference, 300 generated, 300 floor events in siw-ecal" in result.output
    assert "classifier AUC, low-level" in result.output and "KPD" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    for side in ("generated", "floor"):  # simulator against simulator: indistinguishable within the statistics
        assert abs(metrics[side]["classifier"]["high"]["auc"] - 0.5) < 0.15
        assert metrics[side]["observables"]["energy"]["separation_power"] < 0.1
    assert "seed: 3" in (out / "config.yaml").read_text()
    for png in ("observables.png", "layer_profiles.png", "layer_histograms.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"

    other = write_showers(electrons[:10], tmp_path / "mini.h5")
    small = write_showers(simulate(load_detector("cusi"), beam, 10, seed=1), tmp_path / "cusi.h5")
    failed = runner.invoke(evaluate_command, [str(other), str(small), "--out", str(tmp_path / "bad")])
    assert isinstance(failed.exception, CalolabError) and "generated" in str(failed.exception)


def test_command_module_is_light():
    """cli.py imports the command at start-up: no heavy library may load (numpy and yaml come with calolab)."""
    import subprocess
    import sys

    code = ("import sys; import calolab.evaluation.commands; "
            "print([m for m in ('scipy', 'sklearn', 'matplotlib', 'torch', 'h5py') if m in sys.modules])")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
