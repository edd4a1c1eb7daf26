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


class LazyGroup(click.Group):
    """A command group some of whose commands live in their own packages and are imported
    only when run; ``--help`` lists them from the short help given here."""

    def __init__(self, *args, lazy: dict[str, tuple[str, str]] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})  # name -> ("module:attribute", short help)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy:
            module, attribute = self.lazy[name][0].split(":")
            return getattr(importlib.import_module(module), attribute)
        return super().get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        limit = formatter.width - 6 - max(len(name) for name in self.list_commands(ctx))
        rows = [(name, self.lazy[name][1] if name in self.lazy else self.commands[name].get_short_help_str(limit))
                for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


COMMANDS = {
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
@click.argument("input_file", metavar="INPUT", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Aged showers (.h5, .parquet, .root); the config goes next to it as .ageing.yaml.")
@click.option("--model", type=click.Choice(["linear", "exponential", "sipm"]), help="Response model c(D).  [linear]")
@click.option("--target-mae", type=float, help="Mean |1 - c| over live hit cells (0.018 for linear by default).")
@click.option("--exposure", type=float, help="Runs like INPUT integrated: dose in krad from the deposited energy.")
@click.option("--peak-dose", type=float, help="Scale the dose map so its hottest cell gets this many krad.")
@click.option("--slope", type=float, help="Linear model k in 1/krad.")
@click.option("--critical-dose", type=float, help="Exponential model Dc in krad.")
@click.option("--dose-rate", type=float, help="Exponential model: Dc = 4.0 R^0.575 Mrad at R krad/h.")
@click.option("--spread", type=float, help="Cell-to-cell spread of the radiation sensitivity.  [0]")
@click.option("--spread-kind", type=click.Choice(["lognormal", "normal"]), help="[lognormal]")
@click.option("--dead-fraction", type=float, help="Fraction of dead cells.  [0]")
@click.option("--dose-run", type=click.Path(path_type=Path),
              help="Showers whose deposits give the dose map (a separate, longer run of the same detector).  "
                   "[INPUT]")
@click.option("-c", "--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              help="YAML AgeingConfig (or a .ageing.yaml record); options override it.")
@click.option("-s", "--seed", type=int, default=1, show_default=True)
@read_options
def age(input_file, output, model, target_mae, exposure, peak_dose, slope, critical_dose, dose_rate, spread,
        spread_kind, dead_fraction, dose_run, config_file, seed, reading) -> None:
    """Age a shower file: multiply every hit by its cell's radiation-damage coefficient.

    Prints the mean |1 - c| over hit cells, the hit cells with c = 0 (drawn dead or killed by
    the dose) and the energy-weighted response sum_c E_c c / sum_c E_c over INPUT's energy flow."""
    import numpy as np

    from calolab.effects import AgeingConfig, config_from_dict, write_record
    from calolab.effects import age as run_age
    from calolab.effects.config import load_spec, merge_spec
    from calolab.io import read_showers, write_showers
    from calolab.io.failures import require_non_negative

    spec = merge_spec(load_spec(config_file) if config_file else {}, {
        "model": model, "target_mae": target_mae, "slope": slope, "critical_dose": critical_dose,
        "dose_rate": dose_rate, "spread": spread, "spread_kind": spread_kind, "dead_fraction": dead_fraction,
        "dose": {"exposure": exposure, "peak_dose": peak_dose}})
    if spec.get("model", "linear") == "linear" and spec.get("slope") is None and spec.get("target_mae") is None:
        spec["target_mae"] = 0.018
    config = config_from_dict(AgeingConfig, spec, where="age options")
    showers = require_non_negative(read_showers(input_file, **reading), input_file,
                                   "calolab age (dose from deposited energy)")
    dose = None
    if dose_run is not None:
        from calolab.effects import dose_map

        source = require_non_negative(read_showers(dose_run, **reading), dose_run, "calolab age --dose-run")
        if source.detector.shape != showers.detector.shape:
            raise CalolabError(f"{dose_run}: detector {source.detector.name!r} {source.detector.shape} does not fit "
                               f"{input_file}'s {showers.detector.name!r} {showers.detector.shape}")
        dose = dose_map(source, config.dose)
    aged, truth = run_age(showers, config, seed=seed, dose=dose)
    path = write_showers(aged, output)
    record = write_record(output.with_name(output.stem + ".ageing.yaml"), "ageing", config, seed,
                          input=str(input_file), output=str(path), parameters=truth.parameters,
                          **({"dose_run": str(dose_run)} if dose_run is not None else {}))
    live = (truth.dose > 0) & ~truth.dead
    mae = float((1 - truth.coefficients[live]).mean()) if live.any() else 0.0
    c = np.asarray(truth.coefficients, float)
    flow = np.bincount(showers.cell, showers.energy.astype(np.float64), showers.detector.n_cells).reshape(c.shape)
    response = float((flow * c).sum() / flow.sum()) if flow.sum() > 0 else 1.0
    silent = int(((flow > 0) & (c == 0)).sum())
    click.echo(f"{path}: aged {len(aged)} events ({config.model}), mean |1 - c| {mae:.4f} over {live.sum()} hit "
               f"cells, min c {truth.coefficients[live].min(initial=1.0):.3f}, {silent} hit cells with c = 0 "
               f"({int(truth.dead.sum())} drawn dead, the others by dose), energy-weighted response {response:.4f}, "
               f"peak dose {truth.dose.max():.3g} krad; config in {record}")


@cli.command()
@click.argument("input_file", metavar="INPUT", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Suppressed showers (.h5, .parquet, .root).")
@click.option("-t", "--threshold", type=click.FloatRange(min=0), required=True,
              help="Drop the hits at or below this, in --unit.")
@click.option("--unit", type=click.Choice(["MeV", "MIP"]), default="MIP", show_default=True,
              help="MIP: the threshold times each layer's MIP MPV.")
@read_options
def suppress(input_file: Path, output: Path, threshold: float, unit: str, reading: dict) -> None:
    """Zero-suppress a shower file, as a readout does; negative (pedestal-subtracted) hits go too."""
    import numpy as np

    from calolab.effects import zero_suppress
    from calolab.io import read_showers, write_showers

    showers = read_showers(input_file, **reading)
    mev = threshold * np.asarray(showers.detector.mip_mpv, float) if unit == "MIP" else threshold
    kept = zero_suppress(showers, mev)
    negative = int(np.count_nonzero(showers.energy < 0))
    click.echo(f"{write_showers(kept, output)}: kept {kept.n_hits} of {showers.n_hits} hits "
               f"({negative} negative) above {threshold:g} {unit}")


@cli.command()
@click.argument("input_file", metavar="INPUT", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Distorted showers (.h5, .parquet, .root); the config goes next to it as .distortion.yaml.")
@click.option("--calibration-scale", type=float, help="s_c: C = s_c (2B - 1) + 1, B ~ Beta(2, 2).  [0]")
@click.option("--noise-scale", type=float, help="s_eps in MeV: eps = s_eps (2B - 1), per cell and event.  [0]")
@click.option("--bias", type=float, help="Global bias b in MeV.  [0]")
@click.option("--zero-suppression", help="Drop readings <= this (in --zs-unit), or 'none'.  [0.6]")
@click.option("--zs-unit", type=click.Choice(["MeV", "MIP"]), help="[MeV]")
@click.option("--block", help="Sub-module size in cells, NXxNY, through all layers (or --block-layers).  [2x2]")
@click.option("--block-layers", type=int, help="Sub-module depth in layers.  [all]")
@click.option("--family", type=click.Choice(["gaussian", "frank", "clayton", "independent"]),
              help="Pair copulas within sub-modules, for C and eps.  [gaussian]")
@click.option("--tau", help="Kendall tau between cells of a sub-module for C, LOW:HIGH drawn per module.  [0.1:0.5]")
@click.option("--noise-tau", help="The same for the noise eps; 0 for independent noise.  [0.1:0.5]")
@click.option("--between-tau", type=float, help="Kendall tau between neighbouring sub-modules.  [0]")
@click.option("-c", "--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              help="YAML DistortionConfig (or a .distortion.yaml record); options override it.")
@click.option("-s", "--seed", type=int, default=1, show_default=True)
@click.option("-j", "--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Threads; the output does not depend on it.")
@click.option("--progress/--no-progress", default=False, show_default=True)
@read_options
def distort(input_file, output, calibration_scale, noise_scale, bias, zero_suppression, zs_unit, block, block_layers,
            family, tau, noise_tau, between_tau, config_file, seed, workers, progress, reading) -> None:
    """Miscalibrate, bias and add noise to every cell (E~ = C E + b + eps), then zero-suppress."""
    from calolab.effects import DistortionConfig, config_from_dict, write_record
    from calolab.effects import distort as run_distort
    from calolab.effects.config import load_spec, merge_spec, parse_block, parse_range, parse_threshold
    from calolab.io import read_showers, write_showers

    copula = {"family": family, "between_tau": between_tau, "block_layers": block_layers,
              "block": parse_block(block) if block else None}
    spec = merge_spec(load_spec(config_file) if config_file else {}, {
        "calibration_scale": calibration_scale, "noise_scale": noise_scale, "bias": bias, "zs_unit": zs_unit,
        "calibration_copula": {**copula, "tau": parse_range(tau, "--tau") if tau else None},
        "noise_copula": {**copula, "tau": parse_range(noise_tau, "--noise-tau") if noise_tau else None}})
    if zero_suppression is not None:
        spec["zero_suppression"] = parse_threshold(zero_suppression)
    config = config_from_dict(DistortionConfig, spec, where="distort options")
    showers = read_showers(input_file, **reading)
    distorted, truth = run_distort(showers, config, seed=seed, workers=workers, progress=progress)
    path = write_showers(distorted, output)
    record = write_record(output.with_name(output.stem + ".distortion.yaml"), "distortion", config, seed,
                          input=str(input_file), output=str(path))
    n = max(len(distorted), 1)
    click.echo(f"{path}: distorted {len(distorted)} events, C in [{truth.calibration.min():.3f}, "
               f"{truth.calibration.max():.3f}], {showers.n_hits / n:.1f} -> {distorted.n_hits / n:.1f} hits/event, "
               f"visible sum {showers.energy_sum().mean() if len(showers) else 0:.1f} -> "
               f"{distorted.energy_sum().mean() if len(distorted) else 0:.1f} MeV/event; config in {record}")


@cli.command()
@click.argument("reference", type=click.Path(path_type=Path))
@click.argument("damaged", type=click.Path(path_type=Path))
@click.option("-m", "--method", type=click.Choice(["hierarchical", "moments", "quantile", "mip", "wgan"]),
              default="hierarchical", show_default=True, help="mip needs muon runs for both files.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="HDF5 file for the per-cell coefficients, uncertainties and calibrated mask.")
@click.option("--apply", "apply_to", type=click.Path(path_type=Path),
              help="Also write DAMAGED corrected with the coefficients to this file, or to this directory as a "
                   "sharded dataset written chunk by chunk (-m hierarchical, moments; a file needs DAMAGED in memory).")
@click.option("--threshold", type=click.FloatRange(min=0),
              help="Zero-suppression threshold of the data in MeV (quantile, hierarchical, mip).  "
                   "[the one DAMAGED records, else 0]")
@click.option("--min-hits", type=click.IntRange(min=1), help="Fewest hits for a cell's own estimate.  [10]")
@click.option("--epochs", type=click.IntRange(min=1), help="wgan: training epochs.")
@click.option("-s", "--seed", type=int, default=0, show_default=True, help="wgan: seed.")
@read_options
def calibrate(reference: Path, damaged: Path, method: str, output: Path, apply_to: Path | None,
              threshold: float | None, min_hits: int | None, epochs: int | None, seed: int, reading: dict) -> None:
    """Per-cell calibration of DAMAGED data against a REFERENCE run of the same kind of events.

    Prints the cells calibrated (of the reference's hit cells), and what the correction does
    to the energy scale: the damaged and corrected visible sums over the reference's; with
    the ageing truth DAMAGED carries (from calolab age), the MAE over the reference's hit cells,
    the energy-weighted response and the cells with c = 0. With -m hierarchical or moments,
    HDF5 files and sharded datasets are streamed chunk by chunk, never read whole (unless
    the reading options are given: then both files are read whole)."""
    import time
    import warnings

    import numpy as np

    from calolab.calibration import apply_calibration, energy_scale, score, write_calibration
    from calolab.calibration import calibrate as run_calibration
    from calolab.calibration.cellstats import CellStats
    from calolab.calibration.passes import CHUNK_EVENTS, STREAMING, open_run, over
    from calolab.effects import read_truth, readout_threshold
    from calolab.io import is_streamable, read_showers, write_sharded, write_showers
    from calolab.io.failures import require_non_negative
    from calolab.showers import Showers

    task = f"calolab calibrate -m {method}"

    def load(path: Path) -> Showers | Path:  # a path is streamed by the calibrator
        if method in STREAMING and is_streamable(path) and not reading:
            return path
        return require_non_negative(read_showers(path, **reading), path, task)

    ref, dam = load(reference), load(damaged)
    streamed = not isinstance(dam, Showers)
    dam_run = open_run(dam, "damaged")  # a path: its first chunk gives the detector and meta
    dam_meta = dam_run.meta
    ignored = [name for name, value, used in (("--threshold", threshold, method in ("quantile", "hierarchical", "mip")),
                                              ("--min-hits", min_hits, method != "wgan"),
                                              ("--epochs", epochs, method == "wgan")) if value is not None and not used]
    for name in ignored:
        click.echo(f"calolab: warning: -m {method} does not use {name}: ignored", err=True)
    options: dict = {"min_hits": 10 if min_hits is None else min_hits}
    where = ""
    if method in ("quantile", "hierarchical", "mip"):
        if threshold is None:
            recorded = readout_threshold(dam_meta)
            if recorded is not None and np.ptp(recorded) > 0:
                raise CalolabError(f"{damaged}: zero-suppressed with per-layer thresholds "
                                   f"({recorded.min():.3g}-{recorded.max():.3g} MeV): pass --threshold")
            threshold = 0.0 if recorded is None else float(recorded[0])
            where = f" (from {damaged.name})" if recorded is not None else ""
        options["threshold"] = threshold
    if method == "wgan":
        options = {"seed": seed} | ({"epochs": epochs} if epochs else {})
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:  # printed below, one line each
        warnings.simplefilter("always")
        result = run_calibration(ref, dam, method, **options)
    seconds = time.perf_counter() - start
    write_calibration(result, output)
    # the printed figures come from per-cell sums: the method's own, else one more pass over each run
    ref_sums, dam_sums = result.run_stats or tuple(
        over(run, lambda chunk, _: CellStats.of(chunk))[0] for run in (open_run(ref, "reference"), dam_run))
    cells = (ref_sums.hits > 0).reshape(result.coefficients.shape)
    line = (f"{output}: {method} calibrated {int(result.calibrated[cells].sum())} of the reference's "
            f"{int(cells.sum())} hit cells in {seconds:.1f} s")
    if "threshold" in options:
        line += f", threshold {options['threshold']:.4g} MeV{where}"
    try:
        truth = np.asarray(read_truth(dam_meta, "ageing").coefficients, float)
    except CalolabError:
        truth = None
    scale = energy_scale(ref_sums, dam_sums, result, truth)
    line += (f"; visible sum over the reference's: damaged {scale['sum_ratio_damaged']:.4f}, "
             f"corrected {scale['sum_ratio_corrected']:.4f}; {scale['dead_cells_found']} cells set dead (c = 0)")
    if truth is not None:
        found = score(result, truth, cells)
        line += (f"; against the stored ageing truth, over those hit cells: MAE {found['mae']:.4f}, "
                 f"RMSE {found['rmse']:.4f}, energy-weighted response {scale['response_damaged']:.4f} -> "
                 f"{scale['response_corrected']:.4f}, {scale['dead_cells_true']} cells with c = 0")
    click.echo(line)
    for warning in caught:
        click.echo(f"calolab: warning: {warning.message}", err=True)
    if apply_to is not None:
        if streamed and (apply_to.is_dir() or not apply_to.suffix):  # chunk by chunk, one shard each
            corrected = (apply_calibration(chunk, result) for chunk in dam_run.chunks())
            written = write_sharded(corrected, apply_to, shard_events=CHUNK_EVENTS)
        else:  # one file holds the whole run
            whole = dam if isinstance(dam, Showers) else require_non_negative(read_showers(dam, **reading), damaged,
                                                                              task)
            written = write_showers(apply_calibration(whole, result), apply_to)
        click.echo(f"{written}: corrected {dam_sums.n_events} events")


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
