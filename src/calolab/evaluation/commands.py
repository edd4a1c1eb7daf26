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
@click.option("--metrics", "suite", type=click.Choice(["auto", "calolab", "calochallenge", "all"]), default="auto",
              show_default=True,
              help="calolab's metrics, CaloChallenge's (as its evaluate.py; cylindrical detectors; also table.md), "
                   "or both; auto: calochallenge for a cylindrical detector, else calolab.")
@click.option("--cc-set", "cc_settings", multiple=True, metavar="KEY=VALUE",
              help="A CaloChallenge setting, e.g. cls_epochs=10, cls_n_hidden=256, kpd_batch_size=1000, "
                   "low_level=false (repeatable).")
@read_options
def evaluate(reference: Path, generated: Path, floor_file: Path | None, out_dir: Path, seed: int, suite: str,
             cc_settings: tuple[str, ...], reading: dict) -> None:
    """Compare GENERATED showers with the REFERENCE simulation, each metric beside the simulator floor:
    calolab's histograms and separation power, W1, classifier AUC/JSD (high- and low-level), FPD and
    KPD, or CaloChallenge's metrics computed as its evaluate.py does."""
    from calolab.evaluation.calochallenge import config_from_options, file_fractions
    from calolab.evaluation.report import evaluate as run_evaluation
    from calolab.evaluation.report import format_table
    from calolab.io import read_showers
    from calolab.io.failures import require_incident_energies, require_non_negative

    options = {}
    for item in cc_settings:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--cc-set")
        options[key.strip()] = value.strip()
    challenge = config_from_options(options)

    def read(path: Path):  # noqa: ANN202 - Showers, imported lazily
        showers = require_non_negative(read_showers(path, **reading), path, "calolab evaluate")
        return require_incident_energies(showers, path, "calolab evaluate")

    samples = {"reference": read(reference), "generated": read(generated)}
    floor = read(floor_file) if floor_file is not None else None
    sources = {"reference": str(reference), "generated": str(generated),
               "floor": str(floor_file) if floor_file is not None else f"{reference} (second half)"}
    paths = {"reference": reference, "generated": generated, "floor": floor_file}
    fractions = {name: file_fractions(path, samples["reference"].detector, reading)
                 for name, path in paths.items() if path is not None}
    metrics = run_evaluation(samples["reference"], samples["generated"], out_dir, floor=floor, seed=seed,
                             sources=sources, metrics=suite, calochallenge=challenge, fractions=fractions)
    events = metrics["events"]
    click.echo(f"{events['reference']} reference, {events['generated']} generated, {events['floor']} floor events "
               f"in {metrics['detector']}")
    if "generated" in metrics:
        click.echo(format_table(metrics))
    if "calochallenge" in metrics:
        from calolab.evaluation.calochallenge import challenge_rows

        rows = [("CaloChallenge metric", "generated", "floor"), *challenge_rows(metrics["calochallenge"])]
        widths = [max(len(r[k]) for r in rows) for k in range(3)]
        click.echo("\n".join(f"{a:<{widths[0]}}  {b:>{widths[1]}}  {c:>{widths[2]}}" for a, b, c in rows))
    written = "metrics.json, config.yaml" + (", table.md" if "calochallenge" in metrics else "")
    click.echo(f"{written} and {len(metrics.get('figures', []))} figures in {out_dir} ({metrics['seconds']:.0f} s)")
