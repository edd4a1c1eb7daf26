"""The ``calolab`` command line: each command parses, calls one library function, writes.

Heavy libraries (matplotlib, torch, the simulators) are imported inside the commands so
that ``calolab --help`` answers at once.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import click

from calolab.cli_options import read_options
from calolab.errors import CalolabError


class Docstring(str):
    """The short help of a lazy command that is the first sentence of the command's docstring:
    ``--help`` shortens it to the terminal width as click shortens a docstring (a plain string
    is written whole)."""


class LazyGroup(click.Group):
    """A command group some of whose commands live in their own packages and are imported
    only when run; ``--help`` lists them from the short help given here."""

    def __init__(self, *args, lazy: dict[str, tuple[str, str]] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})  # name -> ("module:attribute", short help: a str or a Docstring)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy:
            module, attribute = self.lazy[name][0].split(":")
            return getattr(importlib.import_module(module), attribute)
        return super().get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        limit = formatter.width - 6 - max(len(name) for name in self.list_commands(ctx))
        rows = [(name, self.listed_help(name, limit)) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def listed_help(self, name: str, limit: int) -> str:
        """The help of command ``name`` in the list, at most ``limit`` characters unless given whole."""
        if name not in self.lazy:
            return self.commands[name].get_short_help_str(limit)
        text = self.lazy[name][1]
        return click.Command(name, help=text).get_short_help_str(limit) if isinstance(text, Docstring) else text


COMMANDS = {
    "age": ("calolab.effects.commands:age",
            Docstring("Age a shower file: multiply every hit by its cell's radiation-damage coefficient.")),
    "suppress": ("calolab.effects.commands:suppress",
                 Docstring("Zero-suppress a shower file, as a readout does; negative (pedestal-subtracted) hits "
                           "go too.")),
    "distort": ("calolab.effects.commands:distort",
                Docstring("Miscalibrate, bias and add noise to every cell (E~ = C E + b + eps), then zero-suppress.")),
    "calibrate": ("calolab.calibration.commands:calibrate",
                  Docstring("Per-cell calibration of DAMAGED data against a REFERENCE run of the same kind of "
                            "events.")),
    "train": ("calolab.ml.commands:train", "Train a CNN energy regressor (or an ensemble) on a shower file."),
    "predict": ("calolab.ml.commands:predict", "Predict energies with a trained CNN run folder."),
    "regress": ("calolab.reconstruction.commands:regress", "Fit and compare the baseline regressors."),
    "features": ("calolab.reconstruction.commands:features", "Compute high-level shower features to a file."),
    "evaluate": ("calolab.evaluation.commands:evaluate", "Compare generated showers with a reference."),
    "generate": ("calolab.generative.commands:generate", "Train generative shower models and sample from them."),
}
STUDIES = {
    "design": ("calolab.studies.design:study_design", "Optimise the siw-ecal absorber layout (paper 004)."),
    "robustness": ("calolab.studies.robustness:robustness_command",
                   "Regressor response under miscalibration, noise and bias (paper 002)."),
    "pions": ("calolab.studies.pions:study_pions", "CNN vs trees vs sums on cusi pions (paper 002)."),
    "muons": ("calolab.studies.muons:study_muons", "Muon energy from the calorimeter and a tracker (paper 003)."),
}


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
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
@click.option("--energy-spread", type=float, default=0.0, show_default=True,
              help="Relative Gaussian momentum spread of the beam, sigma_E / E (e.g. 0.005).")
@click.option("--chunk-size", type=click.IntRange(min=1), help="Events per chunk (part of the seed's meaning).")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="Output file: .h5 (calolab), .parquet, .root; a directory with --shard-events or --dask.")
@click.option("--format", "fmt", type=click.Choice(["hdf5", "calochallenge", "parquet", "root"]),
              help="Force a format (calochallenge for the CaloChallenge HDF5 layout).")
@click.option("--progress/--no-progress", default=True, show_default=True)
@click.option("-j", "--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes in parallel; the output does not depend on it.")
@click.option("--shard-events", type=click.IntRange(min=1),
              help="Write a sharded dataset (a directory) of this many events per shard.  [50000 with --dask]")
@click.option("--dask", "dask_address", metavar="ADDRESS",
              help="Simulate the shards on Dask: local, local:N (a LocalCluster) or tcp://host:port.")
def simulate(detector, particle, energy, energy_range, spectrum, events, seed, spot_sigma, position, theta, phi,
             energy_spread, chunk_size, output, fmt, progress, workers, shard_events, dask_address) -> None:
    """Simulate showers with the fast parametrised Monte Carlo and write them to a file or a sharded dataset.

    The same seed and chunk size give the same bits with -j, --shard-events and --dask."""
    from calolab.geometry import load_detector
    from calolab.io import write_showers
    from calolab.simulation import Beam
    from calolab.simulation import simulate as run_simulation
    from calolab.units import parse_energy, parse_energy_range

    if (energy is None) == (energy_range is None):
        raise CalolabError("give exactly one of --energy (e.g. 10GeV) or --energy-range (e.g. 1GeV:100GeV)")
    if energy is not None:
        beam = Beam(particle, energy=parse_energy(energy), spot_sigma=spot_sigma, position=position, theta=theta,
                    phi=phi, energy_spread=energy_spread)
    else:
        low, high = parse_energy_range(energy_range)
        beam = Beam(particle, energy_min=low, energy_max=high, spectrum=spectrum, spot_sigma=spot_sigma,
                    position=position, theta=theta, phi=phi, energy_spread=energy_spread)
    det = load_detector(detector)
    if shard_events is not None or dask_address is not None:
        from calolab.io import read_sharded
        from calolab.simulation import simulate_sharded

        if fmt == "calochallenge":
            raise CalolabError("--format calochallenge writes one file: shards are hdf5, parquet or root")
        path = simulate_sharded(det, beam, events, seed, output, chunk_size=chunk_size, shard_events=shard_events,
                                format=fmt or "hdf5", workers=workers, dask=dask_address)
        click.echo(f"{path}: {read_sharded(path).summary()} (sharded)")
        return
    if output.is_dir():
        raise CalolabError(f"{output}: a directory: pass --shard-events N to write a sharded dataset there")
    showers = run_simulation(det, beam, events, seed=seed, chunk_size=chunk_size, progress=progress, workers=workers)
    path = write_showers(showers, output, format=fmt)
    click.echo(f"{path}: {showers.summary()}")


@cli.command()
@click.argument("file", type=click.Path(path_type=Path))
@read_options
def info(file: Path, reading: dict) -> None:
    """Describe a shower file: detector, events, energies, provenance."""
    import json

    from calolab.io import read_showers

    showers = read_showers(file, **reading)
    click.echo(showers.summary())
    negative = showers.energy < 0
    if negative.any():  # pedestal-subtracted data: readable, but most commands refuse them
        click.echo(f"{int(negative.sum())} hits with negative energy (down to {float(showers.energy.min()):.3g} MeV); "
                   "the analysis commands need them suppressed (calolab suppress)")
    click.echo(showers.detector.summary())
    if showers.extras:
        click.echo("per-event truth: " + ", ".join(sorted(showers.extras)))
    if showers.meta:
        click.echo("provenance: " + json.dumps(showers.meta, default=_describe))


def _describe(value) -> str:
    """Short JSON stand-in for arrays and other objects in a file's provenance."""
    shape = getattr(value, "shape", None)
    if shape is not None and len(shape) > 0:
        return f"<array {getattr(value, 'dtype', '')} {tuple(shape)}>"
    return value.item() if hasattr(value, "item") else str(value)


@cli.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("-e", "--event", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="PNG to write (default: FILE with .png).")
@read_options
def plot(file: Path, event: int, output: Path | None, reading: dict) -> None:
    """Event display and mean profiles of a shower file, as a PNG."""
    from calolab.io import read_showers
    from calolab.io.failures import require_non_negative
    from calolab.plotting import overview

    showers = require_non_negative(read_showers(file, **reading), file, "calolab plot")
    if event >= len(showers):
        raise CalolabError(f"{file}: event {event} requested, the file holds {len(showers)}")
    click.echo(overview(showers, output or file.with_suffix(".png"), event))


@cli.command()
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/validate"),
              show_default=True, help="Run folder for checks.json and plots.")
@click.option("--scale", type=click.FloatRange(min=0.01), default=1.0, show_default=True,
              help="Multiply the number of events per point (1 = 2000).")
@click.option("-s", "--seed", type=int, default=1, show_default=True)
@click.option("--only", multiple=True, type=click.Choice(["em", "em_testbeams", "hadron", "muon"]),
              help="Run only these.")
@click.option("--strict/--no-strict", default=False, help="Exit non-zero if a check fails.")
def validate(out_dir: Path, scale: float, seed: int, only: tuple[str, ...], strict: bool) -> None:
    """Compare the simulator with published measurements; print and plot every check."""
    from calolab.validation.core import kind_summary
    from calolab.validation.runner import MODULES, run_validation

    checks = run_validation(out_dir, scale=scale, seed=seed, only=only or MODULES, echo=click.echo)
    failed = [c for c in checks if not c.passed]
    click.echo(f"{kind_summary(checks)}; plots and checks.json in {out_dir}")
    if strict and failed:
        sys.exit(1)


@cli.command()
@click.argument("run_dirs", metavar="RUN_DIR...", nargs=-1, required=True,
                type=click.Path(file_okay=False, path_type=Path))
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("docs/results"), show_default=True, help="Folder for index.md, index.html and figures/.")
@click.option("--title", default="calolab results", show_default=True)
def report(run_dirs: tuple[Path, ...], out_dir: Path, title: str) -> None:
    """Render run folders into a results page: Markdown and self-contained HTML."""
    from calolab.report import write_report

    written = write_report(run_dirs, out_dir, title=title)
    click.echo(f"{written[0]}, {written[1]}: {len(run_dirs)} runs, {len(written) - 2} figures")


@cli.group(cls=LazyGroup, lazy=STUDIES)
def study() -> None:
    """Studies that write one run folder each (config, metrics JSON, tables, figures)."""


@study.command("ageing")
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("runs/ageing"), show_default=True)
@click.option("--quick", is_flag=True, help="1000 events, a short scan, two WGAN epochs (for tests).")
@click.option("--events", type=click.IntRange(min=50), help="Events per state for the method comparison [5000].")
@click.option("--methods", help="Comma-separated subset of moments,quantile,mip,hierarchical,wgan.")
@click.option("--wgan-epochs", type=click.IntRange(min=1), help="WGAN epochs for the comparison.")
@click.option("--repeats", type=click.IntRange(min=1),
              help="Independent draws of the linear scenario for the fast methods' mean, median and worst MAE [3].")
@click.option("-s", "--seed", type=int, default=1, show_default=True)
def study_ageing(out_dir: Path, quick: bool, events: int | None, methods: str | None, wgan_epochs: int | None,
                 repeats: int | None, seed: int) -> None:
    """Recover per-cell ageing coefficients of ahcal with every calibrator (papers 000/001)."""
    from calolab.config import with_overrides
    from calolab.studies.ageing import AgeingStudyConfig, run_ageing_study

    config = AgeingStudyConfig.quick() if quick else AgeingStudyConfig()
    chosen = tuple(m.strip() for m in methods.split(",")) if methods else None
    if chosen:
        unknown = set(chosen) - set(AgeingStudyConfig().methods)
        if unknown:
            raise CalolabError(f"unknown method(s) {', '.join(sorted(unknown))}: expected some of "
                               f"{', '.join(AgeingStudyConfig().methods)}")
    config = with_overrides(config, events=events, methods=chosen, wgan_epochs=wgan_epochs, repeats=repeats,
                            seed=seed)
    run_ageing_study(out_dir, config, echo=click.echo)

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
