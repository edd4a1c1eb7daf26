"""CLI commands ``calolab age``, ``calolab suppress`` and ``calolab distort`` (registered in :mod:`calolab.cli`).

Only click and the standard library are imported at the top of this module; the effects and
the file formats load inside the commands. :mod:`calolab.cli` imports it only when one of its
commands runs, so ``calolab --help`` stays fast.

>>> from click.testing import CliRunner
>>> "[0.6]" in CliRunner().invoke(distort, ["--help"], terminal_width=200).output
True
"""

from __future__ import annotations

from pathlib import Path

import click

from calolab.cli_options import read_options
from calolab.errors import CalolabError


@click.command()
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
