"""The command line end to end, through the installed entry point."""

import subprocess
import sys

import numpy as np

from calolab.io import read_showers

CLI = [sys.executable, "-c", "from calolab.cli import main; main()"]


def run(*args, check=True):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, check=check, timeout=120)


def test_help_is_light():
    """`calolab --help` must not import the heavy libraries."""
    code = ("import sys; from calolab.cli import cli; "
            "heavy = [m for m in ('torch', 'matplotlib', 'scipy', 'h5py') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert "simulate" in run("--help").stdout


def test_simulate_info_plot(tmp_path):
    out = tmp_path / "e.h5"
    result = run("simulate", "-d", "siw-ecal", "-E", "5GeV", "-n", "50", "-s", "3", "-o", str(out), "--no-progress")
    assert "50 events of e-" in result.stdout
    showers = read_showers(out)
    assert len(showers) == 50 and showers.meta["seed"] == 3
    assert np.all(showers.incident_energy == 5000.0)
    assert "siw-ecal" in run("info", str(out)).stdout
    png = tmp_path / "e.png"
    run("plot", str(out), "-o", str(png))
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_energy_range_and_yaml_detector(tmp_path):
    yaml_file = tmp_path / "det.yaml"
    yaml_file.write_text("name: mini\ncells: {nx: 8, ny: 8, pitch: 10}\nlayers:\n"
                         "  - {absorber: Pb, absorber_thickness: 5, active: Scintillator, active_thickness: 3,"
                         " repeat: 10}\n")
    out = tmp_path / "g.h5"
    run("simulate", "-d", str(yaml_file), "-p", "gamma", "--energy-range", "1GeV:10GeV", "--spectrum", "log-uniform",
        "-n", "40", "-o", str(out), "--no-progress")
    e = read_showers(out).incident_energy
    assert e.min() >= 1e3 and e.max() <= 1e4 and len(np.unique(e)) == 40


def test_user_errors_are_one_line_without_traceback(tmp_path):
    cases = [
        ("simulate", "-d", "nope", "-E", "1GeV", "-o", str(tmp_path / "x.h5")),
        ("simulate", "-E", "ten", "-o", str(tmp_path / "x.h5")),
        ("simulate", "-o", str(tmp_path / "x.h5")),
        ("info", str(tmp_path / "missing.h5")),
    ]
    for args in cases:
        result = run(*args, check=False)
        assert result.returncode == 2, args
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "x.h5").exists()


def test_every_lazy_command_loads():
    """Each command registered by name resolves to a click command whose help prints."""
    import click
    from click.testing import CliRunner

    from calolab.cli import COMMANDS, STUDIES, cli

    for group, names in ((cli, COMMANDS), (cli.commands["study"], STUDIES)):
        for name in names:
            command = group.get_command(click.Context(group), name)
            assert isinstance(command, click.Command), name
            assert CliRunner().invoke(command, ["--help"]).exit_code == 0, name



def test_lazy_docstring_help_is_the_commands_first_sentence():
    """A Docstring short help in COMMANDS is what click would list for the loaded command, at any width."""
    import click

    from calolab.cli import COMMANDS, Docstring, cli

    names = [name for name, (_, text) in COMMANDS.items() if isinstance(text, Docstring)]
    assert {"age", "suppress", "distort", "calibrate"} <= set(names)
    for name in names:
        command = cli.get_command(click.Context(cli), name)
        for limit in (20, 45, 63, 200):
            assert cli.listed_help(name, limit) == command.get_short_help_str(limit), (name, limit)


def test_effects_help_states_the_config_defaults():
    """The bracketed defaults of `calolab age` and `calolab distort` are the config dataclasses' field defaults."""
    import dataclasses

    import click
    from click.testing import CliRunner

    from calolab.cli import cli
    from calolab.effects import AgeingConfig, DistortionConfig

    ageing = {f.name: f.default for f in dataclasses.fields(AgeingConfig)}
    distortion = DistortionConfig()
    copula = distortion.calibration_copula
    expected = {
        "age": {"--model": ageing["model"], "--spread": f"{ageing['spread']:g}", "--spread-kind": ageing["spread_kind"],
                "--dead-fraction": f"{ageing['dead_fraction']:g}"},
        "distort": {"--calibration-scale": f"{distortion.calibration_scale:g}", "--bias": f"{distortion.bias:g}",
                    "--noise-scale": f"{distortion.noise_scale:g}", "--zs-unit": distortion.zs_unit,
                    "--zero-suppression": f"{distortion.zero_suppression:g}", "--family": copula.family,
                    "--block": "x".join(str(n) for n in copula.block), "--between-tau": f"{copula.between_tau:g}",
                    "--tau": ":".join(f"{t:g}" for t in copula.tau),
                    "--noise-tau": ":".join(f"{t:g}" for t in distortion.noise_copula.tau)},
    }
    for name, options in expected.items():
        command = cli.get_command(click.Context(cli), name)
        helps = {opt: param.help for param in command.params for opt in param.opts}
        for option, shown in options.items():
            assert helps[option].endswith(f"[{shown}]"), (name, option, helps[option])
        assert CliRunner().invoke(command, ["--help"]).exit_code == 0

def test_age_takes_a_separate_dose_run(tmp_path):
    """--dose-run: the dose map comes from another run's deposits, as the ageing study's long dose run."""
    from calolab.effects import AgeingConfig, DoseConfig, age, dose_map, read_truth
    from calolab.geometry import load_detector
    from calolab.io import write_showers
    from calolab.simulation import Beam, simulate

    det, beam = load_detector("ahcal"), Beam("pi+", energy=10e3)
    data = write_showers(simulate(det, beam, 200, seed=1), tmp_path / "data.h5")
    dose_run = write_showers(simulate(det, beam, 600, seed=2), tmp_path / "dose.h5")
    result = run("age", str(data), "-o", str(tmp_path / "aged.h5"), "--dose-run", str(dose_run), "-s", "4")
    assert "hit cells with c = 0" in result.stdout and "energy-weighted response" in result.stdout
    found = read_truth(read_showers(tmp_path / "aged.h5"), "ageing").coefficients
    _, expected = age(read_showers(data), AgeingConfig(slope=None, target_mae=0.018), seed=4,
                      dose=dose_map(read_showers(dose_run), DoseConfig()))
    assert np.array_equal(found, expected.coefficients)
    _, own = age(read_showers(data), AgeingConfig(slope=None, target_mae=0.018), seed=4)
    assert not np.array_equal(found, own.coefficients)  # the dose run's map, not the input's


def test_reading_commands_take_a_foreign_hit_table(tmp_path):
    """--detector, --columns and --energy-unit: a hit table with its own names, in GeV, through info,
    suppress and features; a missing column is one line and exit 2."""
    import h5py

    from calolab.effects import zero_suppress
    from calolab.geometry import load_detector
    from calolab.simulation import Beam, simulate

    showers = simulate(load_detector("siw-ecal"), Beam("e-", energy=5e3), 30, seed=2)
    layer, ix, iy = showers.cell_coordinates()
    table = tmp_path / "table.h5"
    with h5py.File(table, "w") as f:
        f["evt"], f["z"], f["i"], f["j"] = showers.event_index + 100, layer, ix, iy
        f["e"] = showers.energy.astype(np.float64) / 1e3
        f["E0"] = showers.incident_energy / 1e3  # one per event
    mapping = "event=evt,layer=z,ix=i,iy=j,energy_mev=e,incident_energy_mev=E0"
    options = ["--detector", "siw-ecal", "--columns", mapping, "--energy-unit", "GeV"]
    assert "30 events of 0 in siw-ecal, E = 5-5 GeV" in run("info", str(table), *options).stdout
    run("suppress", str(table), "-o", str(tmp_path / "clean.h5"), "--threshold", "0.5", "--unit", "MeV", *options)
    clean, want = read_showers(tmp_path / "clean.h5"), zero_suppress(showers, 0.5)
    assert np.array_equal(clean.cell, want.cell) and np.allclose(clean.energy, want.energy, rtol=1e-6)
    assert clean.extras["event_id"].tolist() == list(range(100, 130))
    run("features", str(table), "-o", str(tmp_path / "f.npz"), *options)
    with np.load(tmp_path / "f.npz") as f:
        assert f["features"].shape[0] == 30 and np.all(f["incident_energy"] == 5e3)
    no_truth = ["--detector", "siw-ecal", "--columns", "event=evt,layer=z,ix=i,iy=j,energy_mev=e"]
    result = run("regress", str(table), str(table), "-o", str(tmp_path / "regress"), *no_truth, check=False)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "30 of 30 events have no incident energy (NaN): calolab regress needs them" in result.stderr
    assert not (tmp_path / "regress").exists()
    result = run("info", str(table), "--detector", "siw-ecal", "--columns", "event=evt,layer=zz", check=False)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "no dataset 'zz' (for layer)" in result.stderr


def test_every_reading_command_has_the_reading_options():
    import click
    from click.testing import CliRunner

    from calolab.cli import cli

    for name in ("info", "plot", "age", "suppress", "distort", "calibrate", "evaluate", "regress", "features"):
        command = cli.get_command(click.Context(cli), name)
        text = CliRunner().invoke(command, ["--help"], terminal_width=200).output
        for option in ("--detector PRESET|YAML", "--columns NAME=COLUMN,...", "--energy-unit", "--tree NAME"):
            assert option in text, (name, option)
