"""The version is written once, in calolab/__init__.py; pyproject.toml reads it from there."""

import tomllib
from pathlib import Path

import calolab

ROOT = Path(__file__).resolve().parents[1]


def test_version_in_one_place():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "calolab.__version__"}
    assert calolab.__version__.count(".") == 2


def test_optional_parts_are_extras():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert "plots" in extras["all"][0] and extras["plots"] == ["mplhep>=0.3"]
    assert {"mkdocs-material>=9.5", "mkdocstrings[python]>=0.25"} <= set(extras["docs"])
    assert any(dep.startswith("mypy") for dep in extras["dev"])
