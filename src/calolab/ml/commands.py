"""CLI commands ``calolab train`` and ``calolab predict`` (registered in :mod:`calolab.cli`).

Only click and the standard library are imported here; torch and the rest load inside.
"""

from __future__ import annotations

from pathlib import Path

import click

from calolab.cli_options import read_options
from calolab.errors import CalolabError


def _triple(text: str) -> tuple[int, int, int]:
    try:
        values = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) < 1:
        raise CalolabError(f"--pool must be three positive integers LAYER,X,Y (e.g. 1,5,5), got {text!r}")
    return values


DEVICE_HELP = "auto (CUDA if available, else the CPU), cpu, cuda or cuda:N."


def _ints(text: str, option: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise CalolabError(f"{option} must be comma-separated integers (e.g. 8,16,32), got {text!r}") from None


@click.command()
@click.argument("data", type=click.Path(path_type=Path))
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Run folder (resumed if it holds a checkpoint of the same run).")
@click.option("--features/--no-features", default=False, show_default=True,
              help="Feed the high-level features (and, when every event is a muon, paper 003's muon "
                   "features) to the network body.")
@click.option("--pool", default="3,5,5", show_default=True, help="Cells summed per voxel: LAYER,X,Y.")
@click.option("--channels", default="8,16,32", show_default=True, help="Channels of the residual blocks.")
@click.option("--hit-classes", type=click.IntRange(min=0), default=0, show_default=True,
              help="Learned hit classes, each an extra energy channel built from the hits at the native cell size.")
@click.option("--epochs", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=3e-3, show_default=True,
              help="Peak learning rate of the 1-cycle schedule.")
@click.option("--ensemble", "k", type=click.IntRange(min=1), default=1, show_default=True,
              help="Models trained with seeds SEED, SEED+1, ...")
@click.option("--loss", type=click.Choice(["mse", "mfse", "huber"]), default="huber", show_default=True,
              help="huber: paper 003's binned Huberised mean fractional squared error.")
@click.option("--validation-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.2,
              show_default=True)
@click.option("--patience", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--weight-decay", type=click.FloatRange(min=0), default=1e-4, show_default=True,
              help="Decoupled weight decay of AdamW.")
@click.option("--mirror-y/--no-mirror-y", default=False, show_default=True,
              help="Mirror a random half of each training batch in y (y -> -y), a symmetry of calolab's detectors.")
@click.option("--mirror-x/--no-mirror-x", default=False, show_default=True,
              help="Mirror a random half of each training batch in x too (x -> -x): detectors without a field only.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Models of the ensemble trained at once, each in its own process with its share of the threads.")
@click.option("--device", default="auto", show_default=True, help=DEVICE_HELP)
@click.option("--bf16/--no-bf16", default=False, show_default=True,
              help="bfloat16 autocast of the forward passes (CUDA only; an error on the CPU).")
@click.option("--loader-workers", type=click.IntRange(min=0), default=0, show_default=True,
              help="Processes densifying the batches (0: the training process); same batches, same bits.")
@click.option("--distributed/--no-distributed", default=False, show_default=True,
              help="Train one model data-parallel over the processes of torchrun (implied when torchrun starts "
                   "several): torchrun --nproc-per-node N -m calolab train ...")
@click.option("-s", "--seed", type=int, default=0, show_default=True)
@click.option("--progress/--no-progress", default=True, show_default=True)
@read_options
def train(data, out_dir, features, pool, channels, hit_classes, epochs, batch_size, lr, k, loss, validation_fraction,
          patience, weight_decay, mirror_y, mirror_x, workers, device, bf16, loader_workers, distributed, seed,
          progress, reading) -> None:
    """Train a CNN (or an ensemble) to regress the incident energy of the showers in DATA (.h5).

    With --distributed (under torchrun) --batch-size is the global batch: each of the N processes
    takes its share, and rank 0 alone writes the run folder and prints.
    """
    from calolab.ml.distributed import launched, process_rank
    from calolab.ml.ensemble import source_features, train_ensemble
    from calolab.ml.model import RegressorConfig
    from calolab.ml.train import TrainConfig

    distributed = distributed or launched()
    if reading:  # a file that needs reading options (no geometry, other columns) is read whole
        from calolab.io import read_showers

        data = read_showers(data, **reading)

    model_config = RegressorConfig(pool=_triple(pool), channels=_ints(channels, "--channels"), hit_classes=hit_classes)
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr_max=lr, loss=loss, weight_decay=weight_decay,
                         validation_fraction=validation_fraction, patience=patience, mirror_y=mirror_y,
                         mirror_x=mirror_x, seed=seed, split_seed=seed, bf16=bf16)
    values, names = source_features(data) if features else (None, None)
    ensemble = train_ensemble(data, out_dir, k, model_config, config, values, names, progress=progress,
                              workers=workers, device=device, loader_workers=loader_workers, distributed=distributed)
    if process_rank() != 0:
        return
    info, weights = ensemble.info, ", ".join(f"{w:.3f}" for w in ensemble.weights)
    click.echo(f"{out_dir}: {len(ensemble.models)} model(s) trained on {info['train_events']} events "
               f"({info['validation_events']} for validation), weights {weights}")


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.argument("data", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="HDF5 file: event, true_energy, predicted_energy (MeV).")
@click.option("--batch-size", type=click.IntRange(min=1), default=512, show_default=True)
@click.option("--device", default="auto", show_default=True, help=DEVICE_HELP)
@click.option("--detector", metavar="PRESET|YAML|XML",
              help="Detector of DATA where it carries none (a CaloChallenge file from elsewhere).")
def predict(run_dir, data, output, batch_size, device, detector) -> None:
    """Predict the incident energy of the events in DATA with the CNN(s) trained in RUN_DIR."""
    from calolab.ml.predict import predict_file

    summary = predict_file(run_dir, data, output, batch_size=batch_size, device=device, detector=detector)
    click.echo(f"{output}: {summary['events']} events, median E_pred/E_true {summary['median_response']:.4f}, "
               f"relative RMS {summary['relative_rms']:.4f}")
