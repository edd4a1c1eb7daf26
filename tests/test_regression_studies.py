"""The pion and muon regression studies: quick runs through the CLI, headline figures, combination."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from calolab.errors import CalolabError
from calolab.reconstruction.metrics import ResolutionFit, tracker_resolution
from calolab.reconstruction.paired import paired_ratio
from calolab.reconstruction.tracker import combine_with_tracker, crossover, tracker_energies
from calolab.studies.muons import study_muons
from calolab.studies.pions import study_pions
from calolab.studies.regression import split_training

FIGURES = ("response.png", "resolution.png")


def _run(command, out, *options):
    result = CliRunner().invoke(command, ["--quick", "--out", str(out), *options])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return json.loads((out / "metrics.json").read_text()), result.output


def test_pion_study_quick_end_to_end(tmp_path):
    out = tmp_path / "pions"
    metrics, output = _run(study_pions, out, "--weight-decay", "0.001", "--mirror-y", "--mirror-x")
    assert metrics["config"]["weight_decay"] == 0.001 and "weight_decay: 0.001" in (out / "config.yaml").read_text()
    assert "mirror_x: true" in (out / "cnn" / "member-0" / "config.yaml").read_text()
    for name in ("config.yaml", "table.md", "ratio.png", "truth_cnn.png", "truth_trees.png", *FIGURES):
        assert (out / name).stat().st_size > 0, name
    assert sorted(metrics["regressors"]) == ["cnn", "compensation", "layers", "sum", "trees"]
    headline = metrics["headline"]
    assert "pool 3x5x5" in headline["cnn"] and "high-level features" in headline["cnn"]
    assert headline["cnn"].endswith("2 epochs, mirrored in y and x)")
    for key in ("cnn_vs_sum", "cnn_vs_trees"):
        g = headline[key]
        assert np.isfinite(g["improvement"]) and g["improvement_err"] > 0
        assert g["improvement"] == pytest.approx(1 - g["ratio"])
        assert "met" not in g  # what was measured, no project goal
    # every regressor against the sum, on the same events and bootstrap as the headline
    assert set(metrics["vs_sum"]) == {"layers", "compensation", "trees", "cnn"}
    for g in metrics["vs_sum"].values():
        assert np.isfinite(g["improvement"]) and g["improvement_err"] > 0
        assert g["improvement"] == pytest.approx(1 - g["ratio"])
    ratio = headline["ratios"]["cnn_vs_sum"]
    assert ratio["energy_gev"][0] >= 50 and ratio["energy_gev"][-1] <= 200
    assert 0 <= headline["linearity"]["max_abs_response_minus_1"] < 0.5
    assert set(headline["inference"]["events_per_s"]) == {"sum", "layers", "compensation", "trees", "cnn"}
    assert all(v > 0 for v in headline["inference"]["events_per_s"].values())
    # the response correction is fitted on held-out training events: the linear slope is positive
    assert metrics["regressors"]["cnn"]["response"]["params"][0] > 0
    assert metrics["events"]["fit"] + metrics["events"]["calibration"] == metrics["events"]["train"]
    assert "CNN resolution better than sum at 50-200 GeV: " in output and "not met" not in output
    assert "cnn x2 (pool 3x5x5 with 4 learned hit classes, blocks 4-8," in (out / "table.md").read_text()
    # truth references: knowing the nuclear share as well as f_em can only help
    f_em, both = metrics["em_fraction_bound"], metrics["compensation_bound"]
    assert both["improvement"] > f_em["improvement"]
    assert "sum + true f_em and nuclear share (simulator truth, not a regressor)" in output
    # the true pi0 and nuclear shares of the cells' energy, on top of the trees' features
    classified = metrics["classification_bound"]
    assert np.isfinite(classified["improvement"]) and classified["vs_trees"]["improvement_err"] > 0
    assert "better than the trees" in output and "trees + true pi0 and nuclear shares" in output


def test_muon_study_quick_end_to_end(tmp_path):
    out = tmp_path / "muons"
    metrics, _ = _run(study_muons, out, "--train-range", "50,9000", "--track-sigma", "0.05,0.02")
    assert metrics["config"]["track_sigma_mm"] == 0.05 and metrics["config"]["track_sigma_mrad"] == 0.02
    assert "smeared by 0.05 mm and 0.02 mrad per coordinate" in (out / "table.md").read_text()
    assert metrics["config"]["train_range_gev"] == [50.0, 9000.0] and metrics["config"]["energy_range_gev"] == [
        50.0, 8000.0]
    assert "50-8000 GeV uniform test, 50-9000 GeV training" in (out / "table.md").read_text()
    for name in ("config.yaml", "table.md", "combination.png", "truth_cnn.png", *FIGURES):
        assert (out / name).stat().st_size > 0, name
    assert sorted(metrics["regressors"]) == ["cnn", "sum", "trees"]
    headline = metrics["headline"]
    assert "high-level + muon features without bend_x_mm" in metrics["regressors"]["cnn"]["label"]
    assert headline["regressor"] == metrics["regressors"][headline["regressor_name"]]["label"]
    assert set(headline["chosen_by"]["calibration_resolution_above"]) == {"cnn", "sum", "trees"}
    assert np.isfinite(headline["combination_vs_tracker"]["improvement"])
    assert headline["combination_vs_tracker"]["improvement_err"] > 0
    assert "met" not in headline["combination_vs_tracker"] and "met" not in headline["calorimeter_above"]
    assert np.isfinite(headline["calorimeter_above"]["resolution"]) and headline["calorimeter_above"]["rmse"] > 0
    assert "crossover_gev" in headline
    assert "goal" not in (out / "table.md").read_text().lower()
    # every regressor and every combination is corrected with the binned response (in bins of
    # the prediction), whose curve rises through its nodes
    for response in [r["response"] for r in metrics["regressors"].values()] + [
            c["response"] for c in metrics["combinations"].values()]:
        assert response["model"] == "binned" and len(response["knots"]) == len(response["params"]) >= 1
        assert np.all(np.diff(response["knots"]) > 0) and np.all(np.diff(response["params"]) > 0)
    # the simulated tracker follows its nominal curve in every bin (Gaussian in E)
    table = metrics["tracker"]["table"]
    nominal = 2e-4 * np.asarray(table["e_mean"]) / 1e3
    assert np.all(np.abs(np.asarray(table["resolution"]) / nominal - 1) < 4 * np.asarray(table["resolution_err"])
                  / nominal + 0.05)
    assert "Gaussian in energy" in (out / "table.md").read_text()


def test_muon_study_training_range_must_hold_the_test_range(tmp_path):
    result = CliRunner().invoke(study_muons, ["--quick", "--out", str(tmp_path / "m"), "--train-range", "100,9000"])
    assert isinstance(result.exception, CalolabError)
    assert "training range 100-9000 GeV must hold the test range 50-8000 GeV" in str(result.exception)
    assert not (tmp_path / "m").exists()
    result = CliRunner().invoke(study_muons, ["--quick", "--out", str(tmp_path / "m"), "--train-range", "9000"])
    assert isinstance(result.exception, CalolabError) and "LO,HI" in str(result.exception)
    for value, message in (("-0.1,0", "must be >= 0, got -0.1 and 0"), ("0.1", "MM,MRAD")):
        result = CliRunner().invoke(study_muons, ["--quick", "--out", str(tmp_path / "m"), "--track-sigma", value])
        assert isinstance(result.exception, CalolabError) and message in str(result.exception), value
        assert not (tmp_path / "m").exists()


def test_smeared_track_moves_entry_and_direction_only():
    """The regressors' track is the true one smeared by the stated widths; the hits and truth are the same."""
    from calolab.geometry import load_detector
    from calolab.reconstruction.tracker import smear_track
    from calolab.simulation import Beam, simulate

    muons = simulate(load_detector("pbwo4"), Beam("mu-", energy=1e6, spot_sigma=5.0, theta=0.01), 4000, seed=2)
    same = smear_track(muons, 0.0, 0.0, np.random.default_rng(1))
    np.testing.assert_allclose(same.entry, muons.entry)
    np.testing.assert_allclose(same.direction, muons.direction, atol=1e-15)
    smeared = smear_track(muons, 0.2, 0.05, np.random.default_rng(1))
    again = smear_track(muons, 0.2, 0.05, np.random.default_rng(1))
    assert np.array_equal(smeared.entry, again.entry) and np.array_equal(smeared.direction, again.direction)
    assert np.std(smeared.entry - muons.entry, axis=0) == pytest.approx([0.2, 0.2], rel=0.05)
    slope = smeared.direction[:, :2] / smeared.direction[:, 2:] - muons.direction[:, :2] / muons.direction[:, 2:]
    assert np.std(slope, axis=0) == pytest.approx([5e-5, 5e-5], rel=0.05)
    assert np.allclose(np.linalg.norm(smeared.direction, axis=1), 1.0)
    assert smeared.energy is muons.energy and smeared.cell is muons.cell
    assert np.array_equal(smeared.extras["exit_x"], muons.extras["exit_x"])
    # the CNN's body features: the muon features but bend_x_mm, unless asked for
    from calolab.studies.muons import cnn_inputs, muon_inputs

    x, names = muon_inputs(muons[:50])
    y, names_y = cnn_inputs(muons[:50])
    assert names_y == [n for n in names if n != "bend_x_mm"] and len(names_y) == len(names) - 1
    np.testing.assert_array_equal(y, np.delete(x, names.index("bend_x_mm"), axis=1))
    assert cnn_inputs(muons[:50], bend=True)[1] == names


def test_combination_beats_both_inputs_where_equal():
    """Calorimeter with a flat 30% meets the tracker (2e-4 E) at 1.5 TeV: there inverse variance gives 30%/sqrt(2).

    The likelihood combination also reads the tracker's energy-dependent width, so it does at least as well.
    """
    rng = np.random.default_rng(7)
    e_true = np.exp(rng.uniform(np.log(50e3), np.log(8e6), 60000))
    e_cal = e_true * (1 + 0.3 * rng.standard_normal(len(e_true)))
    e_trk = tracker_energies(e_true, 2e-4, seed=8)
    window = np.array([1.35e6, 1.65e6])
    found = combine_with_tracker(e_true, e_cal, e_trk, lambda e: np.full_like(e, 0.3), np.geomspace(50e3, 8e6, 7),
                                 window, n_boot=100, seed=1)
    to_tracker, to_calorimeter = found["at_window"], found["vs_calorimeter"]
    assert to_tracker["resolution_b"] == pytest.approx(0.3, rel=0.1)  # the two inputs are equal here
    assert to_calorimeter["resolution_b"] == pytest.approx(0.3, rel=0.1)
    for ratio in (to_tracker, to_calorimeter):
        assert ratio["overall"] + 3 * ratio["overall_err"] < 0.78
        assert 0.55 < ratio["overall"] < 2**-0.5 + 0.03
    assert to_tracker["improvement"] == pytest.approx(1 - to_tracker["overall"])
    # far below the crossing the tracker dominates and the combination follows it
    low = paired_ratio(e_true, found["combined"], e_trk, np.array([50e3, 100e3]), n_boot=20)
    assert low["overall"] == pytest.approx(1.0, abs=0.03)


def test_paired_ratio_cancels_shared_fluctuations_and_split_is_disjoint():
    rng = np.random.default_rng(2)
    e = rng.uniform(10e3, 200e3, 5000)
    z = rng.standard_normal(len(e))
    found = paired_ratio(e, e * (1 + 0.05 * z), e * (1 + 0.1 * z), np.array([10e3, 100e3, 200e3]), n_boot=50)
    assert found["ratio"] == pytest.approx([0.5, 0.5], rel=0.02) and found["overall_err"] < 0.01

    from calolab.geometry import load_detector
    from calolab.simulation import Beam, simulate

    showers = simulate(load_detector("pbwo4"), Beam("mu-", energy=100e3), 50, seed=3)
    fit, cal = split_training(showers, 0.2, seed=4)
    assert len(fit) == 40 and len(cal) == 10
    assert not set(fit.energy_sum().tolist()) & set(cal.energy_sum().tolist())


def test_rmse_weights_keep_a_biased_calorimeter_from_spoiling_the_tracker():
    """A calorimeter 40% high with a long upper tail (as a regressor pulled towards a harder spectrum)
    at 0.3-1 TeV, where the tracker (7-17%) is far better: weighted by its RMSE about the truth
    the combination stays within 6% of the tracker in every bin; weighted by its 68% width
    (about its own median) it drags the combination 10-35% above the tracker somewhere."""
    from calolab.reconstruction.metrics import binned_metrics
    from calolab.studies.muon_report import binned_curve

    rng = np.random.default_rng(21)
    edges = np.geomspace(300e3, 1000e3, 4)
    e_cal, e_test = rng.uniform(300e3, 1000e3, 4000), rng.uniform(300e3, 1000e3, 4000)
    c_cal, c_test = (1.4 * e * np.exp(0.5 * rng.standard_normal(len(e))) for e in (e_cal, e_test))
    t_cal, t_test = tracker_energies(e_cal, 2e-4, 1), tracker_energies(e_test, 2e-4, 2)
    table = binned_metrics(e_cal, c_cal, bins=edges, n_boot=0)
    tracker = binned_metrics(e_test, t_test, bins=edges, n_boot=0).resolution
    ratio = {}
    for field in ("resolution", "rmse"):
        found = combine_with_tracker(e_test, c_test, t_test, binned_curve(table, field), edges, edges[[0, -1]],
                                     n_boot=10, calibration=(e_cal, c_cal, t_cal), response_model="binned")
        ratio[field] = binned_metrics(e_test, found["combined"], bins=edges, n_boot=0).resolution / tracker
    assert np.all(ratio["rmse"] < 1.06), ratio
    assert np.max(ratio["resolution"]) > 1.1, ratio


def test_crossover_comes_from_the_bins_when_the_fit_does_not_describe_them():
    """A muon calorimeter's resolution rises, then falls with E; a poor a/sqrt(E) ⊕ c fit must not set the crossover."""
    def measured(e):  # crosses the tracker (2e-4 E) at 1842 GeV
        return 0.5 * (np.asarray(e) / 1000.0) ** -0.5

    good = ResolutionFit(0.5 * 1000**0.5, 0.0, 0.0, 0.1, 0.0, 0.0, chi2=8.0, ndf=9)
    bad = ResolutionFit(2.75, 0.0, 0.262, 0.1, 0.0, 0.01, chi2=1417.0, ndf=9)
    with_good = crossover(good, measured, tracker_resolution, 50.0, 8000.0)
    with_bad = crossover(bad, measured, tracker_resolution, 50.0, 8000.0)
    assert with_good["crossover_from"] == "fit" and with_good["crossover_gev"] == pytest.approx(1842, rel=0.01)
    assert with_bad["crossover_from"] == "bins" and with_bad["crossover_gev"] == pytest.approx(1842, rel=0.01)
    assert with_bad["crossover_fit_gev"] == pytest.approx(1362, rel=0.01)  # 2.75/sqrt(E) ⊕ 26.2% meets 2e-4 E there
