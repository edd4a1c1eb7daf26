"""CLI commands ``calolab age``, ``calolab suppress`` and ``calolab distort`` (registered in :mod:`calolab.cli`).

The defaults the options' help states in brackets are read from the fields of the effects'
config dataclasses (:class:`~calolab.effects.AgeingConfig`, :class:`~calolab.effects.DistortionConfig`
and their :class:`~calolab.effects.CopulaConfig`), so that help and behaviour cannot drift
apart: an option left out takes the field's default through :func:`config_from_dict`.
Importing this module imports :mod:`calolab.effects` (NumPy); :mod:`calolab.cli` imports
it only when one of its commands runs, so ``calolab --help`` stays fast.

>>> from click.testing import CliRunner
>>> DISTORTION.zero_suppression  # MeV (zs_unit)
0.6
>>> "[0.6]" in CliRunner().invoke(distort, ["--help"], terminal_width=200).output
True
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import click

from calolab.cli_options import read_options
from calolab.effects.ageing import AgeingConfig
from calolab.effects.miscalibration import DistortionConfig
from calolab.errors import CalolabError


def field_defaults(cls: type) -> SimpleNamespace:
    """The default of every field of the config dataclass ``cls``, by name (``default_factory()`` called)."""
    values = {}
    for f in dataclasses.fields(cls):
        if f.default_factory is not dataclasses.MISSING:
            values[f.name] = f.default_factory()
        elif f.default is not dataclasses.MISSING:
            values[f.name] = f.default
    return SimpleNamespace(**values)


AGEING = field_defaults(AgeingConfig)
DISTORTION = field_defaults(DistortionConfig)
COPULA = DISTORTION.calibration_copula  # --family, --block, --block-layers, --between-tau set both copulas
LINEAR_TARGET_MAE = 0.018
"""Mean ``|1 - c|`` over live hit cells that ``calolab age`` scales the linear model to when
neither ``--slope`` nor ``--target-mae`` is given (papers 000/001)."""


@click.command()
@click.argument("input_file", metavar="INPUT", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Aged showers (.h5, .parquet, .root); the config goes next to it as .ageing.yaml.")
@click.option("--model", type=click.Choice(["linear", "exponential", "sipm"]),
              help=f"Response model c(D).  [{AGEING.model}]")
@click.option("--target-mae", type=float,
              help=f"Mean |1 - c| over live hit cells ({LINEAR_TARGET_MAE:g} for linear by default).")
@click.option("--exposure", type=float, help="Runs like INPUT integrated: dose in krad from the deposited energy.")
@click.option("--peak-dose", type=float, help="Scale the dose map so its hottest cell gets this many krad.")
@click.option("--slope", type=float, help="Linear model k in 1/krad.")
@click.option("--critical-dose", type=float, help="Exponential model Dc in krad.")
@click.option("--dose-rate", type=float, help="Exponential model: Dc = 4.0 R^0.575 Mrad at R krad/h.")
@click.option("--spread", type=float, help=f"Cell-to-cell spread of the radiation sensitivity.  [{AGEING.spread:g}]")
@click.option("--spread-kind", type=click.Choice(["lognormal", "normal"]), help=f"[{AGEING.spread_kind}]")
@click.option("--dead-fraction", type=float, help=f"Fraction of dead cells.  [{AGEING.dead_fraction:g}]")
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

    from calolab.effects import age as run_age
    from calolab.effects import config_from_dict, write_record
    from calolab.effects.config import load_spec, merge_spec
    from calolab.io import read_showers, write_showers
    from calolab.io.failures import require_non_negative

    spec = merge_spec(load_spec(config_file) if config_file else {}, {
        "model": model, "target_mae": target_mae, "slope": slope, "critical_dose": critical_dose,
        "dose_rate": dose_rate, "spread": spread, "spread_kind": spread_kind, "dead_fraction": dead_fraction,
        "dose": {"exposure": exposure, "peak_dose": peak_dose}})
    if spec.get("model", AGEING.model) == "linear" and spec.get("slope") is None and spec.get("target_mae") is None:
        spec["target_mae"] = LINEAR_TARGET_MAE
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


@click.command()
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


@click.command()
@click.argument("input_file", metavar="INPUT", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Distorted showers (.h5, .parquet, .root); the config goes next to it as .distortion.yaml.")
@click.option("--calibration-scale", type=float,
              help=f"s_c: C = s_c (2B - 1) + 1, B ~ Beta(2, 2).  [{DISTORTION.calibration_scale:g}]")
@click.option("--noise-scale", type=float,
              help=f"s_eps in MeV: eps = s_eps (2B - 1), per cell and event.  [{DISTORTION.noise_scale:g}]")
@click.option("--bias", type=float, help=f"Global bias b in MeV.  [{DISTORTION.bias:g}]")
@click.option("--zero-suppression", help="Drop readings <= this (in --zs-unit), or 'none'.  "
              f"[{'none' if DISTORTION.zero_suppression is None else f'{DISTORTION.zero_suppression:g}'}]")
@click.option("--zs-unit", type=click.Choice(["MeV", "MIP"]), help=f"[{DISTORTION.zs_unit}]")
@click.option("--block", help="Sub-module size in cells, NXxNY, through all layers (or --block-layers).  "
              f"[{COPULA.block[0]}x{COPULA.block[1]}]")
@click.option("--block-layers", type=int,
              help=f"Sub-module depth in layers.  [{'all' if COPULA.block_layers is None else COPULA.block_layers}]")
@click.option("--family", type=click.Choice(["gaussian", "frank", "clayton", "independent"]),
              help=f"Pair copulas within sub-modules, for C and eps.  [{COPULA.family}]")
@click.option("--tau", help="Kendall tau between cells of a sub-module for C, LOW:HIGH drawn per module.  "
              f"[{COPULA.tau[0]:g}:{COPULA.tau[1]:g}]")
@click.option("--noise-tau", help="The same for the noise eps; 0 for independent noise.  "
              f"[{DISTORTION.noise_copula.tau[0]:g}:{DISTORTION.noise_copula.tau[1]:g}]")
@click.option("--between-tau", type=float,
              help=f"Kendall tau between neighbouring sub-modules.  [{COPULA.between_tau:g}]")
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
    from calolab.effects import config_from_dict, write_record
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
