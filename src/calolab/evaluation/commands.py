"""``calolab evaluate``: the generative-model evaluation suite from the command line.

Only click and the standard library are imported here; the suite is imported when the
command runs. The lead registers it in ``calolab.cli`` with ``cli.add_command(evaluate)``.
"""

from __future__ import annotations

from pathlib import Path

import click

from calolab.cli_options import read_options


@click.command("evaluate")
@click.argument("reference", type=click.Path(path_type=Path))
@click.argument("generated", type=click.Path(path_type=Path))
@click.option("--floor", "floor_file", type=click.Path(path_type=Path),
              help="An independent simulator sample for the floor (default: REFERENCE split in halves).")
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Run folder for config.yaml, metrics.json and the figures.")
@click.option("-s", "--seed", type=int, default=0, show_default=True)
@read_options
def evaluate(reference: Path, generated: Path, floor_file: Path | None, out_dir: Path, seed: int,
             reading: dict) -> None:
    """Compare GENERATED showers with the REFERENCE simulation: histograms and separation power,
    W1, classifier AUC/JSD (high- and low-level), FPD and KPD, each beside the simulator floor."""
    from calolab.evaluation.report import evaluate as run_evaluation
    from calolab.evaluation.report import format_table
    from calolab.io import read_showers
    from calolab.io.failures import require_incident_energies, require_non_negative

    def read(path: Path):  # noqa: ANN202 - Showers, imported lazily
        showers = require_non_negative(read_showers(path, **reading), path, "calolab evaluate")
        return require_incident_energies(showers, path, "calolab evaluate")

    samples = {"reference": read(reference), "generated": read(generated)}
    floor = read(floor_file) if floor_file is not None else None
    sources = {"reference": str(reference), "generated": str(generated),
               "floor": str(floor_file) if floor_file is not None else f"{reference} (second half)"}
    metrics = run_evaluation(samples["reference"], samples["generated"], out_dir, floor=floor, seed=seed,
                             sources=sources)
    events = metrics["events"]
    click.echo(f"{events['reference']} reference, {events['generated']} generated, {events['floor']} floor events "
               f"in {metrics['detector']}")
    click.echo(format_table(metrics))
    click.echo(f"metrics.json, config.yaml and {len(metrics.get('figures', []))} figures in {out_dir} "
               f"({metrics['seconds']:.0f} s)")
