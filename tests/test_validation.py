"""calolab validate: predictions and calibrations apart; the hadron and muon checks at reduced statistics."""

import json
import math

import pytest
from click.testing import CliRunner

from calolab.cli import cli
from calolab.validation import Check, em_testbeams, hadron, muon, runner
from calolab.validation.core import kind_counts, kind_summary


def _check(name: str, measured: float, kind: str = "prediction") -> Check:
    return Check(name, measured, 1.0, 0.1, "", "test", kind=kind)


FAKE = [_check("p ok", 1.0), _check("p bad", 2.0), _check("c ok", 1.05, "calibration")]


class _FakeModule:
    @staticmethod
    def run(out_dir, scale=1.0, seed=1):
        return FAKE


def test_kinds_are_counted_apart():
    assert kind_counts(FAKE) == {"calibration": {"passed": 1, "total": 1}, "prediction": {"passed": 1, "total": 2}}
    assert kind_summary(FAKE) == "predictions: 1 of 2 agree; calibrations: 1 of 1 agree (agreement by construction)"
    with pytest.raises(ValueError, match="kind"):
        _check("x", 1.0, "tuned")


def test_checks_json_and_cli_report_predictions_and_calibrations_apart(tmp_path, monkeypatch):
    monkeypatch.setattr(runner.importlib, "import_module", lambda name: _FakeModule)
    result = CliRunner().invoke(cli, ["validate", "--out", str(tmp_path), "--only", "em"])
    assert result.exit_code == 0, result.output
    assert f"predictions: 1 of 2 agree; calibrations: 1 of 1 agree (agreement by construction); plots and " \
           f"checks.json in {tmp_path}" in result.output
    assert "FAIL pred  p bad" in result.output and "ok   calib c ok" in result.output
    report = json.loads((tmp_path / "checks.json").read_text())
    assert report["passed"] == 2 and report["failed"] == 1
    assert report["by_kind"] == {"calibration": {"passed": 1, "total": 1}, "prediction": {"passed": 1, "total": 2}}
    assert [c["kind"] for c in report["checks"]] == ["prediction", "prediction", "calibration"]


@pytest.fixture(scope="module")
def reduced(tmp_path_factory):
    """The hadron and muon checks at reduced statistics (a few seconds), by name."""
    out = tmp_path_factory.mktemp("validate")
    found = hadron.run(out, scale=0.03, seed=1) + muon.run(out, scale=0.01, seed=1)
    return {c.name: c for c in found}


# the checks on which a simulator constant was set; every other one is a prediction
CALIBRATIONS = ("ahcal pi+ stochastic term", "muon mean deposit", "muon energy loss / (a + bE)", "muon MIP peak")
NEW_PREDICTIONS = ("tilecal pi+ stochastic term", "tilecal pi+ constant term", "tilecal pi+ response rise",
                   "tilecal e/mip", "contained tilecal e/h", "muon critical energy in PbWO4")


def test_every_check_computes_and_has_its_kind(reduced):
    for name, check in reduced.items():
        assert math.isfinite(check.measured) and math.isfinite(check.tolerance), name
        assert check.kind == ("calibration" if name.startswith(CALIBRATIONS) else "prediction"), name
    for prefix in NEW_PREDICTIONS:
        assert sum(name.startswith(prefix) for name in reduced) == 1, prefix


def test_predictions_that_agree_in_a_full_run_agree_at_reduced_statistics(reduced):
    # in a full run (scale 1) the PbWO4 muon critical energy agrees with CMS; the TileCal
    # predictions do not (resolution, response rise, e/mip, e/h: see the validation report)
    check = next(c for name, c in reduced.items() if name.startswith("muon critical energy in PbWO4"))
    assert check.passed, check.line()


def test_tilecal_e_over_mip_is_gflash_e_hat_above_the_measured_value(reduced):
    """A finding, not a target: calolab's electrons give GFLASH's e/mip, 0.875 in the TileCal stack,
    against the measured 0.81 +- 0.03; the check stays in the report as a failed prediction."""
    check = next(c for name, c in reduced.items() if name.startswith("tilecal e/mip"))
    assert 0.84 < check.measured < 0.91 and not check.passed


@pytest.fixture(scope="module")
def testbeams(tmp_path_factory):
    """The Pb and Cu electron test-beam predictions at reduced statistics (a few seconds), by name."""
    out = tmp_path_factory.mktemp("validate_testbeams")
    found = em_testbeams.run(out, scale=0.05, seed=1)
    assert (out / "em_testbeams_validation.png").stat().st_size > 0
    return {c.name: c for c in found}


# each prediction, and a loose physical range its value must fall in (not the published value)
TESTBEAM_RANGES = {
    "atlas-emb e- stochastic term": (0.05, 0.20),
    "atlas-emb e- constant term": (0.0, 0.03),
    "atlas-emb e- linearity": (0.0, 0.05),
    "alice-emcal e- stochastic term": (0.05, 0.25),
    "alice-emcal e- constant term": (0.0, 0.05),
    "atlas-hec e- mean sigma/E sqrt(E)": (0.12, 0.45),
    "pbsci-compensating e- stochastic term": (0.12, 0.45),
    "pbsci-compensating e- constant term": (0.0, 0.05),
    "pbsci-compensating e/mip": (0.3, 1.2),
}


def test_testbeam_predictions_run_and_are_physical(testbeams):
    assert len(testbeams) == len(TESTBEAM_RANGES)
    for prefix, (lo, hi) in TESTBEAM_RANGES.items():
        matches = [c for name, c in testbeams.items() if name.startswith(prefix)]
        assert len(matches) == 1, prefix
        check = matches[0]
        assert check.kind == "prediction", prefix
        assert math.isfinite(check.measured) and math.isfinite(check.tolerance) and check.tolerance > 0, check.line()
        assert lo <= check.measured <= hi, check.line()
        assert check.source, prefix


def test_testbeam_presets_cover_lead_and_copper_with_lar_and_scintillator():
    from calolab.geometry import load_detector

    pairs = {(layer.absorber, layer.active) for name in ("atlas-emb", "alice-emcal", "atlas-hec", "pbsci-compensating")
             for layer in load_detector(name).layers if layer.absorber}
    assert pairs == {("Pb", "LAr"), ("Pb", "Scintillator"), ("Cu", "LAr")}


def test_hec_reference_is_the_scaled_weighted_mean_of_the_published_points():
    mean, error = em_testbeams.hec_reference()
    points = [p[1] / 100 for p in em_testbeams.HEC_POINTS]
    assert min(points) < mean < max(points)
    unscaled = em_testbeams.weighted_mean([p[1] for p in em_testbeams.HEC_POINTS],
                                          [p[2] - p[1] for p in em_testbeams.HEC_POINTS], scale_factor=False)[1]
    assert error > unscaled / 100  # the points scatter beyond their errors: chi2/ndf > 1


def test_validate_cli_accepts_em_testbeams(tmp_path, monkeypatch):
    monkeypatch.setattr(runner.importlib, "import_module", lambda name: _FakeModule)
    result = CliRunner().invoke(cli, ["validate", "--out", str(tmp_path), "--only", "em_testbeams"])
    assert result.exit_code == 0, result.output
    assert "em_testbeams" in runner.MODULES


EM_CALIBRATIONS = ("e- shower maximum in PbWO4", "ahcal e+ stochastic term", "siw-ecal e- linearity",
                   "siw-ecal e- stochastic term")


def test_em_checks_run_at_reduced_statistics(tmp_path):
    from calolab.validation import em

    found = {c.name: c for c in em.run(tmp_path, scale=0.05, seed=1)}
    for name, check in found.items():
        assert math.isfinite(check.measured) and math.isfinite(check.tolerance), name
        assert check.kind == ("calibration" if name.startswith(EM_CALIBRATIONS) else "prediction"), name
    hgcal = [c for name, c in found.items() if name.startswith("hgcal-ce-e-tb e+ stochastic term")]
    assert len(hgcal) == 1 and 0.15 < hgcal[0].measured < 0.30, hgcal
