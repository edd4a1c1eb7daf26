"""The ``calolab`` command line: each command parses, calls one library function, writes.

Heavy libraries (matplotlib, torch, the simulators) are imported inside the commands so
that ``calolab --help`` answers at once.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from calolab.errors import CalolabError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="calolab")
def cli() -> None:
    """calolab: simulate, age, calibrate and reconstruct highly granular calorimeters.

    Energies take units (10GeV, 500MeV, 1TeV); lengths are in mm.
    """


@cli.command()
def presets() -> None:
    """List the detector presets."""
    from calolab.geometry import load_detector, preset_names

    for name in preset_names():
        click.echo(load_detector(name).summary())


@cli.command()
@click.option("-d", "--detector", default="siw-ecal", show_default=True, help="Preset name or YAML file.")
@click.option("-p", "--particle", default="e-", show_default=True, help="e-, e+, gamma, pi+, pi-, mu-, mu+.")
@click.option("-E", "--energy", help="Fixed energy, e.g. 10GeV.")
@click.option("--energy-range", help="LOW:HIGH, e.g. 1GeV:100GeV, drawn per --spectrum.")
@click.option("--spectrum", type=click.Choice(["uniform", "log-uniform"]), default="uniform", show_default=True)
@click.option("-n", "--events", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("-s", "--seed", type=int, default=1, show_default=True)
@click.option("--spot-sigma", type=float, default=0.0, show_default=True, help="Gaussian beam spot in mm.")
@click.option("--position", type=(float, float), default=(0.0, 0.0), show_default=True, help="Beam centre x y, mm.")
@click.option("--theta", type=float, default=0.0, show_default=True, help="Incidence angle in degrees.")
@click.option("--phi", type=float, default=0.0, show_default=True, help="Azimuth of the incidence, degrees.")
@click.option("--chunk-size", type=click.IntRange(min=1), help="Events per chunk (part of the seed's meaning).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Output file: .h5 (calolab), .parquet, .root.")
@click.option("--format", "fmt", type=click.Choice(["hdf5", "calochallenge", "parquet", "root"]),
              help="Force a format (calochallenge for the CaloChallenge HDF5 layout).")
@click.option("--progress/--no-progress", default=True, show_default=True)
@click.option("-j", "--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes in parallel; the output does not depend on it.")
def simulate(detector, particle, energy, energy_range, spectrum, events, seed, spot_sigma, position, theta, phi,
             chunk_size, output, fmt, progress, workers) -> None:
    """Simulate showers with the fast parametrised Monte Carlo and write them to a file."""
    from calolab.geometry import load_detector
    from calolab.io import write_showers
    from calolab.simulation import Beam
    from calolab.simulation import simulate as run_simulation
    from calolab.units import parse_energy, parse_energy_range

    if (energy is None) == (energy_range is None):
        raise CalolabError("give exactly one of --energy (e.g. 10GeV) or --energy-range (e.g. 1GeV:100GeV)")
    if energy is not None:
        beam = Beam(particle, energy=parse_energy(energy), spot_sigma=spot_sigma, position=position, theta=theta,
                    phi=phi)
    else:
        low, high = parse_energy_range(energy_range)
        beam = Beam(particle, energy_min=low, energy_max=high, spectrum=spectrum, spot_sigma=spot_sigma,
                    position=position, theta=theta, phi=phi)
    det = load_detector(detector)
    showers = run_simulation(det, beam, events, seed=seed, chunk_size=chunk_size, progress=progress, workers=workers)
    path = write_showers(showers, output, format=fmt)
    click.echo(f"{path}: {showers.summary()}")


@cli.command()
@click.argument("file", type=click.Path(path_type=Path))
def info(file: Path) -> None:
    """Describe a shower file: detector, events, energies, provenance."""
    import json

    from calolab.io import read_showers

    showers = read_showers(file)
    click.echo(showers.summary())
    click.echo(showers.detector.summary())
    if showers.extras:
        click.echo("per-event truth: " + ", ".join(sorted(showers.extras)))
    if showers.meta:
        click.echo("provenance: " + json.dumps(showers.meta, default=str))


@cli.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("-e", "--event", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="PNG to write (default: FILE with .png).")
def plot(file: Path, event: int, output: Path | None) -> None:
    """Event display and mean profiles of a shower file, as a PNG."""
    from calolab.io import read_showers
    from calolab.plotting import overview

    showers = read_showers(file)
    if event >= len(showers):
        raise CalolabError(f"{file}: event {event} requested, the file holds {len(showers)}")
    click.echo(overview(showers, output or file.with_suffix(".png"), event))


@cli.command()
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/validate"),
              show_default=True, help="Run folder for checks.json and plots.")
@click.option("--scale", type=click.FloatRange(min=0.01), default=1.0, show_default=True,
              help="Multiply the number of events per point (1 = 2000).")
@click.option("-s", "--seed", type=int, default=1, show_default=True)
@click.option("--only", multiple=True, type=click.Choice(["em", "hadron", "muon"]), help="Run only these.")
@click.option("--strict/--no-strict", default=False, help="Exit non-zero if a check fails.")
def validate(out_dir: Path, scale: float, seed: int, only: tuple[str, ...], strict: bool) -> None:
    """Compare the simulator with published measurements; print and plot every check."""
    from calolab.validation.runner import MODULES, run_validation

    checks = run_validation(out_dir, scale=scale, seed=seed, only=only or MODULES, echo=click.echo)
    failed = [c for c in checks if not c.passed]
    click.echo(f"{len(checks) - len(failed)} of {len(checks)} checks agree with the references; "
               f"plots and checks.json in {out_dir}")
    if strict and failed:
        sys.exit(1)


def main() -> None:
    """Entry point: user errors print one line and exit with status 2, without a traceback."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except CalolabError as exc:
        click.echo(f"calolab: error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
