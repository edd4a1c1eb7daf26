"""Bare CaloChallenge files of the three datasets' shapes read, evaluate and train from the command line."""

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from calolab.cli import cli
from calolab.geometry import load_detector
from calolab.io import read_showers, write_calochallenge
from calolab.simulation import Beam, simulate

SHAPES = {"calochallenge-ds1-photons": (368, "gamma"), "calochallenge-ds2": (6480, "e-"),
          "calochallenge-ds3": (40500, "e-")}


def bare_file(preset, path, n, seed):
    """A CaloChallenge file as the challenge ships it: incident_energies (N, 1) and showers (N, voxels) only."""
    voxels, particle = SHAPES[preset]
    showers = simulate(load_detector(preset), Beam(particle, energy_min=2e3, energy_max=50e3, spectrum="log-uniform"),
                       n, seed=seed)
    full = write_calochallenge(showers, path.with_suffix(".full.h5"))
    with h5py.File(full) as src, h5py.File(path, "w") as dst:
        for name in ("incident_energies", "showers"):
            dst.create_dataset(name, data=src[name][:])
    with h5py.File(path) as f:
        assert f["showers"].shape == (n, voxels) and f["incident_energies"].shape == (n, 1)
    return showers, path


@pytest.mark.parametrize("preset", sorted(SHAPES))
def test_bare_calochallenge_files_read_and_train(preset, tmp_path):
    showers, path = bare_file(preset, tmp_path / "bare.h5", 24, seed=1)
    back = read_showers(path, detector=preset)
    np.testing.assert_array_equal(back.incident_energy, showers.incident_energy)
    np.testing.assert_allclose(back.energy_sum(), showers.energy_sum(), rtol=1e-5)  # the files' scale undone
    runner = CliRunner()
    result = runner.invoke(cli, ["info", str(path), "--detector", preset])
    assert result.exit_code == 0 and "24 events" in result.output, result.output
    result = runner.invoke(cli, ["train", str(path), "--detector", preset, "--out", str(tmp_path / "run"),
                                 "--pool", "1,1,1", "--channels", "2,4", "--epochs", "1", "--batch-size", "8",
                                 "--no-progress"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["predict", str(tmp_path / "run"), str(path), "--detector", preset,
                                 "-o", str(tmp_path / "pred.h5")])
    assert result.exit_code == 0 and "24 events" in result.output, result.output
    result = runner.invoke(cli, ["info", str(path)])
    assert result.exit_code != 0 and "carries no detector geometry" in str(result.exception)


def test_bare_dataset_2_files_evaluate_on_calochallenge_terms(tmp_path):
    _, reference = bare_file("calochallenge-ds2", tmp_path / "ref.h5", 120, seed=1)
    _, generated = bare_file("calochallenge-ds2", tmp_path / "gen.h5", 120, seed=2)
    _, floor = bare_file("calochallenge-ds2", tmp_path / "floor.h5", 120, seed=3)
    result = CliRunner().invoke(cli, ["evaluate", str(reference), str(generated), "--floor", str(floor),
                                      "--detector", "calochallenge-ds2", "-o", str(tmp_path / "eval"),
                                      "--cc-set", "cls_epochs=2", "--cc-set", "cls_n_hidden=16"])
    assert result.exit_code == 0, result.output
    table = (tmp_path / "eval" / "table.md").read_text()
    assert "AUC" in table and "FPD" in table
