"""calolab validate: predictions and calibrations apart; the hadron and muon checks at reduced statistics."""

import json
import math

import pytest
from click.testing import CliRunner

from calolab.cli import cli
from calolab.validation import Check, hadron, muon, runner
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


def test_tilecal_e_over_mip_is_below_the_measured_value(reduced):
    """A finding, not a target: calolab's electrons give e/mip ~0.67 in the TileCal stack against the
    measured 0.81 +- 0.03; the check stays in the report as a failed prediction."""
    check = next(c for name, c in reduced.items() if name.startswith("tilecal e/mip"))
    assert 0.6 < check.measured < 0.75 and not check.passed
