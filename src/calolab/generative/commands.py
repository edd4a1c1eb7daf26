"""``calolab generate train`` and ``calolab generate sample``: the command-line face of the generative models.

Only click and the standard library are imported here; torch and the models load inside the
commands, so ``calolab --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path

import click

DEFAULT_EPOCHS = {"layerwise": 80, "wgan": 5}
THREADS_HELP = "Torch threads; on a shared machine one is fastest (more mostly wait for each other)."
DEVICE_HELP = "auto or cpu: the generative models run on the CPU (cuda is refused)."


def _torch():
    """torch, or a one-line error naming the extra that installs it."""
    from calolab.io.encoding import optional_modules

    return optional_modules(("torch",), "ml", "the generative models")[0]


@click.group("generate")
def generate() -> None:
    """Differentiable generative shower models of siw-ecal with varied absorbers (paper 004)."""


@generate.command("train")
@click.option("--model", "model_name", type=click.Choice(["layerwise", "wgan"]), default="layerwise",
              show_default=True)
@click.option("-o", "--out", "run_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Run folder: config.yaml, data.h5, checkpoint.pt, losses.json. Rerun to resume.")
@click.option("--events", type=click.IntRange(min=1), help="Training events: layouts x events per layout.  [60000]")
@click.option("--events-per-layout", type=click.IntRange(min=1), default=250, show_default=True)
@click.option("--energy-range", default="0.5GeV:150GeV", show_default=True,
              help="Log-uniform training energies, LOW:HIGH (beyond 1-100 GeV so that those are not at an edge).")
@click.option("--epochs", type=click.IntRange(min=1), help="Passes over the data.  [layerwise 80, wgan 5]")
@click.option("-s", "--seed", type=int, default=1, show_default=True, help="Seed of the data, weights and draws.")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True, help=THREADS_HELP)
@click.option("--device", default="auto", show_default=True, help=DEVICE_HELP)
@click.option("--progress/--no-progress", default=True, show_default=True)
def train_command(model_name: str, run_dir: Path, events: int | None, events_per_layout: int, energy_range: str,
                  epochs: int | None, seed: int, threads: int, device: str, progress: bool) -> None:
    """Simulate a training set of varied absorber layouts and train a model on it (resumes after a kill)."""
    _torch().set_num_threads(threads)
    from calolab.generative.data import DatasetConfig
    from calolab.generative.train import TrainConfig, train
    from calolab.units import parse_energy_range

    low, high = parse_energy_range(energy_range)
    n_layouts = max(1, round((events or 60000) / events_per_layout))
    data = DatasetConfig(n_layouts=n_layouts, events_per_layout=events_per_layout, energy_min_gev=low / 1e3,
                         energy_max_gev=high / 1e3, seed=seed)
    config = TrainConfig(model=model_name, epochs=epochs or DEFAULT_EPOCHS[model_name], seed=seed)
    _, history = train(run_dir, config, data, progress=progress, device=device)
    seconds = sum(h["seconds"] for h in history)
    click.echo(f"{run_dir}: {model_name} trained {len(history)} epochs on {n_layouts} layouts x {events_per_layout} "
               f"events ({seconds:.0f} s of training); losses in {run_dir / 'losses.json'}")


@generate.command("sample")
@click.argument("run_dir", metavar="RUN", type=click.Path(file_okay=False, path_type=Path))
@click.option("-E", "--energy", required=True, help="Fixed energy (10GeV) or a range LOW:HIGH (1GeV:100GeV).")
@click.option("--spectrum", type=click.Choice(["uniform", "log-uniform"]), default="log-uniform", show_default=True,
              help="How a range is drawn.")
@click.option("-n", "--events", type=click.IntRange(min=1), required=True)
@click.option("-d", "--detector", help="Layout to generate in (preset or YAML, the trained grid).  [the trained one]")
@click.option("-s", "--seed", type=int, default=1, show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Output file (.h5 calolab; .parquet, .root).")
@click.option("--format", "fmt", type=click.Choice(["hdf5", "calochallenge", "parquet", "root"]),
              help="Force a format (calochallenge for the CaloChallenge HDF5 layout).")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True, help=THREADS_HELP)
@click.option("--device", default="auto", show_default=True, help=DEVICE_HELP)
def sample_command(run_dir: Path, energy: str, spectrum: str, events: int, detector: str | None, seed: int,
                   output: Path, fmt: str | None, threads: int, device: str) -> None:
    """Generate showers with the model of a run folder and write them to a file."""
    import time

    _torch().set_num_threads(threads)
    from calolab.generative.sample import generate as run_generate
    from calolab.generative.sample import load_model
    from calolab.io import write_showers
    from calolab.units import parse_energy, parse_energy_range

    energies = parse_energy_range(energy) if ":" in energy else parse_energy(energy)
    model = load_model(run_dir, device=device)
    start = time.perf_counter()
    showers = run_generate(model, detector, energies, events, seed, spectrum=spectrum)
    seconds = time.perf_counter() - start
    path = write_showers(showers, output, format=fmt)
    click.echo(f"{path}: {showers.summary()} ({events / max(seconds, 1e-9):.0f} events/s)")


@generate.command("benchmark")
@click.argument("run_dir", metavar="RUN", type=click.Path(file_okay=False, path_type=Path))
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Run folder for config.yaml and metrics.json.")
@click.option("--energies", default="1,5,10,20,50,100", show_default=True, help="Comma-separated energies in GeV.")
@click.option("-n", "--events", type=click.IntRange(min=50), default=4000, show_default=True,
              help="Events per sample (reference, floor, generated) at each energy.")
@click.option("--speed-events", type=click.IntRange(min=1), default=5000, show_default=True,
              help="Events of the log-uniform speed comparison.")
@click.option("--classifiers/--no-classifiers", default=True, show_default=True,
              help="Classifier AUCs from calolab.evaluation (needs scikit-learn).")
@click.option("-s", "--seed", type=int, default=11, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True, help=THREADS_HELP)
def benchmark_command(run_dir: Path, out_dir: Path, energies: str, events: int, speed_events: int, classifiers: bool,
                      seed: int, threads: int) -> None:
    """Compare a trained model with the simulator at fixed energies: sums, hits, layers, AUCs, speed."""
    _torch().set_num_threads(threads)
    from calolab.errors import CalolabError
    from calolab.generative.benchmark import BenchmarkConfig, benchmark
    from calolab.generative.sample import load_model

    try:
        values = tuple(float(e) for e in energies.split(","))
    except ValueError:
        raise CalolabError(f"--energies {energies!r}: expected comma-separated numbers in GeV, e.g. 1,10,100") from None
    config = BenchmarkConfig(energies_gev=values, events=events, classifiers=classifiers, speed_events=speed_events,
                             seed=seed)
    benchmark(load_model(run_dir), out_dir, config, echo=click.echo)
    click.echo(f"metrics.json and config.yaml in {out_dir}")
