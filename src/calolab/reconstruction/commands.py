"""Command-line entries for energy reconstruction, registered by ``calolab.cli`` with ``cli.add_command``.

Each command parses, calls one library function and writes; everything heavy is imported
inside it.
"""

from __future__ import annotations

from pathlib import Path

import click

from calolab.cli_options import read_options
from calolab.errors import CalolabError

CHUNK_EVENTS = 20_000  # events read and featurised at a time by calolab features

@click.command()
@click.argument("train_file", metavar="TRAIN", type=click.Path(path_type=Path))
@click.argument("test_file", metavar="TEST", type=click.Path(path_type=Path))
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/regress"),
              show_default=True, help="Run folder.")
@click.option("-m", "--method", "methods", multiple=True, type=click.Choice(["sum", "layers", "compensation", "trees"]),
              help="Regressors to compare (repeat); default all.")
@click.option("--bins", type=click.IntRange(min=3), default=10, show_default=True, help="Bins of true energy.")
@click.option("--segments", type=click.IntRange(min=1), default=10, show_default=True,
              help="Depth segments for the layer weights and the features.")
@click.option("--alpha", type=click.FloatRange(min=0), default=1e-3, show_default=True,
              help="Ridge strength of the layer weights, towards the common weight.")
@click.option("--non-negative/--signed", default=False, show_default=True, help="Keep layer weights >= 0.")
@click.option("--target", type=click.Choice(["log", "energy"]), default="log", show_default=True,
              help="What the trees learn.")
@click.option("--calibration-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.2, show_default=True,
              help="Training events held out for the response calibration.")
@click.option("-s", "--seed", type=int, default=0, show_default=True)
@read_options
def regress(train_file, test_file, out_dir, methods, bins, segments, alpha, non_negative, target,
            calibration_fraction, seed, reading) -> None:
    """Fit the sum, layer-weight, software-compensation and tree regressors on TRAIN, score them on TEST, write a
    run folder."""
    from calolab.io import read_showers
    from calolab.reconstruction.compare import METHODS, RegressionConfig, run_regression

    config = RegressionConfig(methods=tuple(methods) or METHODS, bins=bins, segments=segments,
                              alpha=alpha, non_negative=non_negative, trees_target=target,
                              calibration_fraction=calibration_fraction, seed=seed)
    from calolab.io.failures import require_incident_energies, require_non_negative

    train, test = (require_incident_energies(require_non_negative(read_showers(f, **reading), f, "calolab regress"),
                                             f, "calolab regress") for f in (train_file, test_file))
    out = run_regression(train, test, out_dir, config, sources={"train": str(train_file), "test": str(test_file)},
                         echo=click.echo)
    click.echo(f"{out}: config.yaml, metrics.json, response.png, resolution.png")


@click.command()
@click.argument("input_file", metavar="INPUT", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Output .npz with features (N, F) float32, names, incident_energy (MeV).")
@click.option("--muon/--no-muon", default=None, help="Add the muon features (default: when all events are muons).")
@click.option("--segments", type=click.IntRange(min=1), default=10, show_default=True)
@read_options
def features(input_file, output, muon, segments, reading) -> None:
    """Compute the high-level (and muon) features of every event of INPUT.

    HDF5 files and sharded datasets are read a chunk of events at a time (the features are
    per event), so INPUT may be larger than memory; with the reading options it is read whole."""
    import numpy as np

    from calolab.io import is_streamable, iter_showers, read_showers
    from calolab.io.atomic import atomic_path
    from calolab.io.failures import require_non_negative
    from calolab.reconstruction.features import high_level_features
    from calolab.reconstruction.muon_features import muon_features

    streamed = is_streamable(input_file) and not reading
    chunks = iter_showers(input_file, CHUNK_EVENTS) if streamed else iter([read_showers(input_file, **reading)])
    auto = muon is None
    parts, energies, names = [], [], []
    for chunk in chunks:
        require_non_negative(chunk, input_file, "calolab features")
        all_muons = bool(len(chunk)) and bool(np.all(np.abs(chunk.particle) == 13))
        if auto and muon is None:
            muon = all_muons
        elif auto and len(chunk) and all_muons != muon:
            raise CalolabError(f"{input_file}: mixes muons with other particles: pass --muon or --no-muon")
        x, names = high_level_features(chunk, segments=segments)
        if muon:
            xm, names_m = muon_features(chunk)
            x, names = np.hstack([x, xm]), names + names_m
        parts.append(x)
        energies.append(chunk.incident_energy)
    x = np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)
    energies = energies or [np.zeros(0)]
    with atomic_path(output) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, features=x, names=np.array(names), incident_energy=np.concatenate(energies))
    click.echo(f"{output}: {x.shape[0]} events x {x.shape[1]} features")
