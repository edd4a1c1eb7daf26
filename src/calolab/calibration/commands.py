"""CLI command ``calolab calibrate`` (registered in :mod:`calolab.cli`).

The defaults the options state are read from the library: ``-m`` from
:func:`calolab.calibration.calibrate` and ``--min-hits`` from the default method's
:func:`~calolab.calibration.hierarchical.calibrate_hierarchical` (passed to every method
that takes it, mip included), so that help and behaviour cannot drift from them.
Importing this module imports :mod:`calolab.calibration` (NumPy); :mod:`calolab.cli` imports
it only when the command runs, so ``calolab --help`` stays fast.

>>> from click.testing import CliRunner
>>> METHOD, MIN_HITS
('hierarchical', 10)
>>> "[default: hierarchical]" in CliRunner().invoke(calibrate, ["--help"], terminal_width=200).output
True
"""

from __future__ import annotations

import inspect
from pathlib import Path

import click

from calolab.calibration import calibrate as run_calibration
from calolab.calibration.hierarchical import calibrate_hierarchical
from calolab.cli_options import read_options
from calolab.errors import CalolabError

METHOD = inspect.signature(run_calibration).parameters["method"].default
MIN_HITS = inspect.signature(calibrate_hierarchical).parameters["min_hits"].default


@click.command()
@click.argument("reference", type=click.Path(path_type=Path))
@click.argument("damaged", type=click.Path(path_type=Path))
@click.option("-m", "--method", type=click.Choice(["hierarchical", "moments", "quantile", "mip", "wgan"]),
              default=METHOD, show_default=True, help="mip needs muon runs for both files.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="HDF5 file for the per-cell coefficients, uncertainties and calibrated mask.")
@click.option("--apply", "apply_to", type=click.Path(path_type=Path),
              help="Also write DAMAGED corrected with the coefficients to this file, or to this directory as a "
                   "sharded dataset written chunk by chunk (-m hierarchical, moments, quantile, mip; a file needs "
                   "DAMAGED in memory).")
@click.option("--threshold", type=click.FloatRange(min=0),
              help="Zero-suppression threshold of the data in MeV (quantile, hierarchical, mip).  "
                   "[the one DAMAGED records, else 0]")
@click.option("--min-hits", type=click.IntRange(min=1), help=f"Fewest hits for a cell's own estimate.  [{MIN_HITS}]")
@click.option("--epochs", type=click.IntRange(min=1), help="wgan: training epochs.")
@click.option("-s", "--seed", type=int, default=0, show_default=True, help="wgan: seed.")
@read_options
def calibrate(reference: Path, damaged: Path, method: str, output: Path, apply_to: Path | None,
              threshold: float | None, min_hits: int | None, epochs: int | None, seed: int, reading: dict) -> None:
    """Per-cell calibration of DAMAGED data against a REFERENCE run of the same kind of events.

    Prints the cells calibrated (of the reference's hit cells), and what the correction does
    to the energy scale: the damaged and corrected visible sums over the reference's; with
    the ageing truth DAMAGED carries (from calolab age), the MAE over the reference's hit cells,
    the energy-weighted response and the cells with c = 0. With -m hierarchical, moments,
    quantile or mip, HDF5 files and sharded datasets are streamed chunk by chunk, never read
    whole (unless the reading options are given: then both files are read whole); quantile
    and mip then match per-cell quantile sketches (log bins of 3.7 %), not every hit."""
    import time
    import warnings

    import numpy as np

    from calolab.calibration import apply_calibration, energy_scale, score, write_calibration
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
    options: dict = {"min_hits": MIN_HITS if min_hits is None else min_hits}
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
