"""CaloChallenge's metrics on cylindrical detectors: features, separation power, JetNet FPD/KPD, DNN, CLI."""

import json

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from calolab.errors import CalolabError
from calolab.evaluation.calochallenge import (
    MIN_ENERGY,
    CaloChallengeConfig,
    ChallengeSample,
    calochallenge_metrics,
    challenge_features,
    challenge_sample,
    config_from_options,
    file_fractions,
    low_level,
    separation_power,
)
from calolab.evaluation.calochallenge_classifier import DNNRecipe, dnn_classifier_test, ttv_split
from calolab.evaluation.commands import evaluate as evaluate_command
from calolab.evaluation.jetnet_distances import (
    fpd_batch_sizes,
    fpd_jetnet,
    kpd_jetnet,
    mmd2_poly_unbiased,
    normalise_by_reference,
)
from calolab.geometry import load_detector
from calolab.io import read_showers
from calolab.io.calochallenge import write_calochallenge
from calolab.simulation import Beam, simulate

DS2 = load_detector("calochallenge-ds2")
BEAM = Beam("e-", energy_min=1e3, energy_max=1e5, spectrum="log-uniform")
FAST = CaloChallengeConfig(classifier=DNNRecipe(n_hidden=32, epochs=2), fpd_points=3, fpd_batches=2, kpd_batches=3)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """300 ds2 electrons of 1-100 GeV for each of two seeds, written in CaloChallenge's layout."""
    out = tmp_path_factory.mktemp("cc")
    return [write_calochallenge(simulate(DS2, BEAM, 300, seed=seed), out / f"ds2_{seed}.h5") for seed in (1, 2)]


def test_features_follow_the_xml_handler_definitions():
    rng = np.random.default_rng(0)
    voxels = rng.exponential(1.0, (20, DS2.n_cells)) * (rng.random((20, DS2.n_cells)) < 0.3)  # (N, 6480) MeV
    voxels[3, : 16 * 9] = 0.0  # an empty first layer
    f = challenge_features(ChallengeSample(voxels, rng.uniform(1e3, 1e4, 20), DS2))
    # CaloChallenge's XMLHandler: alpha centres of linspace(-pi, pi, 17), r mid-points; alpha outside r
    edges = np.array([0, 4.65, 9.3, 13.95, 18.6, 23.25, 27.9, 32.55, 37.2, 41.85])
    r_mid = 0.5 * (edges[1:] + edges[:-1])
    a_mid = 0.5 * (np.linspace(-np.pi, np.pi, 17)[1:] + np.linspace(-np.pi, np.pi, 17)[:-1])
    r_list = np.array([r_mid[i] for _ in range(16) for i in range(9)])
    a_list = np.array([a_mid[j] for j in range(16) for _ in range(9)])
    eta, phi = r_list * np.cos(a_list), r_list * np.sin(a_list)
    layer = voxels[:, 144 * 7 : 144 * 8]
    e = layer.sum(1)
    ec_eta = (layer * eta).sum(1) / (e + 1e-16)
    width_phi = np.sqrt(np.clip((layer * phi**2).sum(1) / (e + 1e-16) - ((layer * phi).sum(1) / (e + 1e-16)) ** 2, 0,
                                None))
    np.testing.assert_allclose(f.e_layer[:, 7], e)
    np.testing.assert_allclose(f.ec_x[:, 7], ec_eta, atol=1e-12)
    np.testing.assert_allclose(f.width_y[:, 7], width_phi, atol=1e-9)
    np.testing.assert_allclose(f.sparsity[:, 7], 1 - (layer > 0).mean(1))
    np.testing.assert_allclose(f.e_tot, voxels.sum(1))
    assert f.ec_r[3, 0] == 0 and f.width_r[3, 0] == 0 and f.sparsity[3, 0] == 1
    h = f.high_level()  # 1 + 45 E_l + 4 x 45 (x, y) + 1 E_tot + 3 x 45 (sparsity, r centre, r width)
    assert h.shape == (20, 362)
    np.testing.assert_allclose(h[:, 0], np.log10(f.e_inc))
    np.testing.assert_allclose(h[:, 1 + 7], np.log10(e + 1e-8))
    np.testing.assert_allclose(h[:, 1 + 45 + 7], ec_eta / 100, atol=1e-14)
    np.testing.assert_allclose(h[:, 1 + 45 * 5], np.log10(voxels.sum(1) + 1e-8))
    np.testing.assert_allclose(h[:, -45 + 7], f.width_r[:, 7] / 100)


def test_threshold_and_low_level_inputs():
    voxels = np.array([[MIN_ENERGY * 0.99, MIN_ENERGY * 1.01] + [0.0] * (DS2.n_cells - 2)])
    s = ChallengeSample(voxels, np.array([100.0]), DS2).thresholded(MIN_ENERGY)
    assert s.voxels[0, 0] == 0 and s.voxels[0, 1] > 0
    x = low_level(s)
    assert x.shape == (1, 1 + DS2.n_cells) and x[0, 0] == pytest.approx(2.0)
    assert x[0, 2] == pytest.approx(MIN_ENERGY * 1.01 / 100, rel=1e-6)


def test_separation_power():
    rng = np.random.default_rng(1)
    edges = np.linspace(-3, 3, 31)
    a = rng.normal(size=100_000)
    assert separation_power(a, a, edges) == 0.0
    assert separation_power(a, a + 10.0, np.linspace(-3, 20, 50)) == pytest.approx(1.0)
    # normalised histograms p, q: 0.5 sum (p - q)^2 / (p + q); entries outside the range are dropped
    p, q = np.array([0.25, 0.75]), np.array([0.5, 0.5])
    expected = 0.5 * np.sum((p - q) ** 2 / (p + q))
    ref = np.array([0.5, 1.5, 1.5, 1.5, 9.0])
    gen = np.array([0.5, 1.5, -4.0])
    assert separation_power(ref, gen, np.array([0.0, 1.0, 2.0])) == pytest.approx(expected)
    assert np.isnan(separation_power(ref, np.array([7.0]), np.array([0.0, 1.0, 2.0])))
    assert np.isnan(separation_power(ref, gen, np.array([2.0, 1.0])))  # no valid binning


def test_kpd_is_jetnets_unbiased_mmd_on_its_draws():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(300, 4)), rng.normal(0.3, 1.0, size=(200, 4)) * 5
    # direct quadratic estimate with full kernel matrices, k = (x.y / d + 1)^4
    k = lambda a, b: (a @ b.T / 4 + 1.0) ** 4  # noqa: E731
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    direct = ((kxx.sum() - np.trace(kxx)) / (300 * 299) + (kyy.sum() - np.trace(kyy)) / (200 * 199)
              - 2 * kxy.mean())
    assert mmd2_poly_unbiased(x, y, chunk=64) == pytest.approx(direct, rel=1e-10)
    value, error, values = kpd_jetnet(x, y, num_batches=4, batch_size=150, seed=7)
    xn, yn = normalise_by_reference(x, y)
    assert np.abs(xn).max() == pytest.approx(1.0) and np.abs(yn).max() > 1
    draw = np.random.default_rng(7 + 2 * 1000)  # batch 2's generator, as in JetNet
    ia, ib = draw.choice(300, size=150), draw.choice(200, size=150)
    assert values[2] == pytest.approx(mmd2_poly_unbiased(xn[ia], yn[ib]), rel=1e-12)
    assert value == pytest.approx(np.median(values))
    assert error == pytest.approx((np.percentile(values, 83.725) - np.percentile(values, 16.275)) / 2)


def test_fpd_extrapolates_the_frechet_distance_of_a_shift():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(20_000, 2)), rng.normal(size=(20_000, 2)) + [1.0, 0.0]
    value, error, sizes, values = fpd_jetnet(x, y, 1000, 5000, num_batches=5, num_points=5, normalise=False)
    assert sizes.tolist() == fpd_batch_sizes(1000, 5000, 5).tolist() and sizes[0] == 1000
    assert value == pytest.approx(1.0, abs=0.05) and 0 <= error < 0.05
    same, _, _, _ = fpd_jetnet(x, rng.normal(size=(20_000, 2)), 1000, 5000, num_batches=5, num_points=5)
    assert 0 <= same < 0.01


def test_dnn_classifier_recipe():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(600, 5)), rng.normal(size=(700, 5))
    train, test, val = ttv_split(a[:100], b[:100], (0.6, 0.2, 0.2), rng)
    assert (len(train), len(test), len(val)) == (120, 40, 40) and train[:, -1].sum() == 60  # reference labelled 1
    recipe = DNNRecipe(n_hidden=32, epochs=40, batch_size=100, lr=1e-3)
    state = torch.random.get_rng_state()
    shifted = dnn_classifier_test(a, b + [1.5, 0, 0, 0, 0], recipe, seed=5)
    assert torch.equal(state, torch.random.get_rng_state())
    # the best AUC of a unit-variance shift of 1.5 is Phi(1.5 / sqrt 2) = 0.856
    assert 0.78 < shifted.auc < 0.9 and shifted.jsd > 0.05 and (shifted.n_train, shifted.n_validation) == (720, 240)
    same = dnn_classifier_test(a, b, recipe, seed=5)
    assert abs(same.auc - 0.5) < 0.12 and same.jsd < 0.1
    again = dnn_classifier_test(a, b, recipe, seed=5)
    assert (again.auc, again.jsd, again.best_epoch) == (same.auc, same.jsd, same.best_epoch)
    with pytest.raises(CalolabError, match="NaN"):
        dnn_classifier_test(np.full((10, 2), np.nan), a[:10, :2], recipe)


def test_a_miscalibrated_model_stands_out_above_the_floor(files):
    reference, other = (challenge_sample(read_showers(p)) for p in files)
    half = np.arange(150)
    ref, floor = reference.subset(half), reference.subset(half + 150)
    scaled = ChallengeSample(other.voxels[:150] * 1.3, other.incident[:150], DS2)
    config = CaloChallengeConfig(low_level=False, high_level=False, fpd_points=3, fpd_batches=2, kpd_batches=3)
    m = calochallenge_metrics(ref, scaled, floor, config, seed=0)
    gen, fl = m["generated"], m["floor"]
    assert gen["separation_power"]["etot_einc"] > 0.5 > 3 * fl["separation_power"]["etot_einc"]
    assert gen["separation_power"]["voxel"] > 3 * fl["separation_power"]["voxel"]  # 10^5 voxels: 0.11 dex shift
    assert gen["fpd"]["value"] >= 0 and np.isfinite(gen["kpd"]["value"])  # 150 events in 362 dimensions: noise
    assert len(gen["separation_power"]["ec_x"]) == 45 and gen["sizes"] == {"min_samples": 15, "max_samples": 75,
                                                                         "batch_size": 15}


def test_voxels_are_the_numbers_in_the_file(files, tmp_path):
    raw = h5py.File(files[0], "r")["showers"][:]
    s = read_showers(files[0])
    np.testing.assert_allclose(challenge_sample(s, file_fractions(files[0], s.detector)).voxels, raw, rtol=2e-6)
    other = write_calochallenge(s, tmp_path / "cc033.h5", sampling_fraction=0.033)
    back = read_showers(other)
    np.testing.assert_allclose(challenge_sample(back, file_fractions(other, back.detector)).voxels,
                               h5py.File(other, "r")["showers"][:], rtol=2e-6)
    assert file_fractions(files[0], load_detector("siw-ecal")) is None


def test_cli_writes_metrics_and_table(files, tmp_path):
    out = tmp_path / "run"
    args = [str(files[0]), str(files[1]), "-o", str(out), "--cc-set", "cls_epochs=2", "--cc-set", "cls_n_hidden=16",
            "--cc-set", "fpd_points=3", "--cc-set", "fpd_batches=2", "--cc-set", "kpd_batches=2"]
    result = CliRunner().invoke(evaluate_command, args)
    assert result.exit_code == 0, result.output
    assert "classifier AUC, low-level" in result.output and "table.md" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert "generated" not in metrics and metrics["events"] == {"reference": 150, "generated": 150, "floor": 150}
    cc = metrics["calochallenge"]
    for side in ("generated", "floor"):
        assert set(cc[side]["classifier"]) == {"low", "high"}
        assert 0 <= cc[side]["classifier"]["high"]["auc"] <= 1 and cc[side]["classifier"]["low"]["n_validation"] == 60
        assert np.isfinite(cc[side]["kpd"]["value"]) and cc[side]["fpd"]["value"] >= 0
    assert cc["config"]["classifier"]["epochs"] == 2 and cc["config"]["classifier"]["n_hidden"] == 16
    table = (out / "table.md").read_text()
    assert "| classifier AUC, high-level |" in table and "floor" in table and "0.52 (high level)" in table
    bad = CliRunner().invoke(evaluate_command, [*args[:4], "--cc-set", "cls_epochz=3"])
    assert bad.exit_code != 0 and "cls_epochz" in str(bad.exception) + bad.output


def test_config_options_and_non_cylindrical_detectors(tmp_path):
    config = config_from_options({"cls_n_hidden": "64", "low_level": "no", "fpd_min_samples": "500",
                                  "cls_split": "0.5,0.25,0.25"})
    assert config.classifier.n_hidden == 64 and not config.low_level and config.fpd_min_samples == 500
    assert config.classifier.split == (0.5, 0.25, 0.25)
    with pytest.raises(CalolabError, match="low_level=maybe"):
        config_from_options({"low_level": "maybe"})
    with pytest.raises(CalolabError, match="not cylindrical"):
        challenge_sample(simulate(load_detector("siw-ecal"), BEAM, 3, seed=0))
    siw = write_calochallenge(simulate(load_detector("siw-ecal"), BEAM, 20, seed=0), tmp_path / "siw.h5")
    result = CliRunner().invoke(evaluate_command, [str(siw), str(siw), "-o", str(tmp_path / "r"),
                                                   "--metrics", "calochallenge"])
    assert result.exit_code != 0 and "not cylindrical" in str(result.exception)
