"""`calolab report`: run folders rendered into a Markdown and a self-contained HTML results page."""

import base64
import json
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from calolab.errors import CalolabError  # noqa: E402
from calolab.io.rundir import git_commit, provenance, save_figure, write_config, write_json  # noqa: E402
from calolab.report import read_run, write_report  # noqa: E402

CLI = [sys.executable, "-c", "from calolab.cli import main; main()"]


def _figure(path):
    fig, ax = plt.subplots()
    ax.plot([1, 2, 3], [1, 4, 9], label="data")
    ax.legend(loc="best")
    return save_figure(fig, path)


@pytest.fixture
def runs(tmp_path):
    """Two small run folders: a study (table, PNG and PDF) and a validation (checks, no table)."""
    study = tmp_path / "runs" / "ageing"
    write_config(study, {"events": 100, "seed": 1}, argv=["/usr/bin/calolab", "study", "ageing", "--quick"])
    write_json(study / "metrics.json", {"mae": 0.0123})
    (study / "table.md").write_text("# Ageing\n\n| method | MAE |\n|---|---|\n| moments | 0.0123 |\n")
    _figure(study / "mae.png")
    _figure(study / "mae.pdf")
    validate = tmp_path / "runs" / "validate"
    write_json(validate / "checks.json", {
        "passed": 1, "failed": 0,
        "by_kind": {"calibration": {"passed": 0, "total": 0}, "prediction": {"passed": 1, "total": 1}},
        "checks": [{"name": "EM stochastic term", "measured": 16.9, "reference": 16.6, "tolerance": 1.0,
                    "unit": "%", "source": "CALICE", "uncertainty": 0.2, "kind": "prediction", "passed": True}]})
    write_json(validate / "metrics.json", {"nested": {"value": 2.5, "label": "x"}, "list": [1, 2]})
    return study, validate


def test_save_figure_format_follows_extension(tmp_path):
    assert _figure(tmp_path / "f.pdf").read_bytes()[:4] == b"%PDF"
    assert _figure(tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(CalolabError, match="unknown figure format"):
        _figure(tmp_path / "f.jpeg")


def test_provenance_names_command_and_commit(tmp_path):
    found = provenance(["/some/where/calolab", "study", "pions", "--out", "my runs"])
    assert found["command"] == "calolab study pions --out 'my runs'"
    assert found["commit"] == git_commit()
    assert git_commit(tmp_path) == "unknown"  # not a git checkout


def test_report_markdown_and_html(runs, tmp_path):
    study, validate = runs
    out = tmp_path / "results"
    written = write_report([study, validate], out)
    assert written[:2] == [out / "index.md", out / "index.html"]
    md = (out / "index.md").read_text()
    commit = json.loads((study / "provenance.json").read_text())["commit"]
    assert "`calolab study ageing --quick`" in md and f"commit: `{commit}`" in md
    assert "| moments | 0.0123 |" in md and "### Ageing" in md  # table.md, headings demoted
    assert "![mae](figures/ageing/mae.png)" in md and "[mae.pdf](figures/ageing/mae.pdf)" in md
    assert (out / "figures" / "ageing" / "mae.png").read_bytes() == (study / "mae.png").read_bytes()
    assert "| EM stochastic term | prediction | 16.9 ± 0.2 | 16.6 | 1 | % | yes | CALICE |" in md
    assert "predictions: 1 of 1 agree; calibrations: 0 of 0 agree (agreement by construction)." in md
    assert "| nested.value | 2.5 |" in md and "command: `not recorded`" in md  # validate: no provenance
    page = (out / "index.html").read_text()
    png = base64.b64encode((study / "mae.png").read_bytes()).decode()
    assert f'src="data:image/png;base64,{png}"' in page
    assert 'href="data:application/pdf;base64,' in page
    assert "<td>moments</td><td>0.0123</td>" in page and "calolab study ageing --quick" in page
    assert "figures/" not in page.replace('download="', "")  # nothing refers outside the page
    assert sorted(p.name for p in out.iterdir()) == ["figures", "index.html", "index.md"]  # no temporary files


def test_cli_report_and_not_a_run_folder(runs, tmp_path):
    study, _ = runs
    out = tmp_path / "page"
    done = subprocess.run([*CLI, "report", str(study), "-o", str(out)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "1 runs, 2 figures" in done.stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    done = subprocess.run([*CLI, "report", str(study), str(empty), "-o", str(tmp_path / "none")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"calolab: error: {empty}: not a run folder "
                                                "(expected config.yaml, metrics.json, checks.json)"]
    assert not (tmp_path / "none").exists()
    with pytest.raises(CalolabError, match="no such run folder"):
        read_run(tmp_path / "missing")


def test_figure_style_without_mplhep(tmp_path, monkeypatch):
    """Without the plots extra the figures are plain matplotlib, and still written."""
    from calolab.plotting import figure_style

    monkeypatch.setitem(sys.modules, "mplhep", None)  # import mplhep raises ImportError
    with figure_style():
        assert plt.rcParams["legend.loc"] == "best"
        assert _figure(tmp_path / "plain.pdf").read_bytes()[:4] == b"%PDF"
