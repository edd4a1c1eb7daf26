"""The docs' tutorials (docs/tutorials/*.py) run at their quick sizes in ``make test`` and write their run folders."""

import subprocess
import sys
from pathlib import Path

import pytest

TUTORIALS = sorted((Path(__file__).resolve().parents[1] / "docs" / "tutorials").glob("*.py"))


@pytest.mark.parametrize("script", TUTORIALS, ids=lambda p: p.stem)
def test_tutorial_runs(script, tmp_path):
    out = tmp_path / script.stem
    done = subprocess.run([sys.executable, str(script), str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (out / "metrics.json").is_file() and (out / "provenance.json").is_file()


def test_every_paper_has_a_tutorial():
    assert [p.stem for p in TUTORIALS] == ["ageing", "design", "muons", "pions"]
    pages = Path(__file__).resolve().parents[1] / "docs" / "tutorials"
    assert all((pages / f"{p.stem}.md").is_file() for p in TUTORIALS)
