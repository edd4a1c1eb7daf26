"""The robustness study (paper 002): energy regressors under miscalibration, noise and bias.

``calolab study robustness`` simulates (or reads) ``cusi`` test pions, fits the baselines
on a separate training sample (the calibrated sum; the trees when asked for and scikit-learn
is installed), loads a CNN ensemble from a run folder when given, and scores every
regressor at each point of Table 1's grid on the same distorted events
(:mod:`calolab.robustness`). The default scores the sum on 20,000 events; the trees and the
CNN compute per-hit features, which are slow on the grid's noise-flooded points (noise scale
1-1.5 MeV against the 0.6 MeV threshold floods tens of thousands of cells per event), so
they are best scored on 1000-2000 events. The run folder holds::

    config.yaml        the study config (grid, copulas, seed, regressors), the Table 1 note
    provenance.json    the command line and the git commit that made the run
    points.csv/.json   per point and regressor: a, b (MeV), errors, chi2/ndf, resolutions,
                       signal hits and energy surviving, noise-only cells and energy per event
    regression.json    OLS of a and b on (s, n, u) per regressor: full and paper-002 models on
                       every point, and the linear model with interactions on the points where
                       noise does not flood the cells
    metrics.json       ranges over the grid, timing, signal survival
    predictions.npz    e_true (N,) and predictions (regressors, points, N), float32, MeV
    *.png              response curves, a and b against s, n, u, residuals, signal survival

This module imports only click and the standard library at module level, so the CLI
stays fast.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from calolab.config import check_fields
from calolab.errors import CalolabError

if TYPE_CHECKING:
    from calolab.robustness.scan import ScanConfig

REGRESSOR_NAMES = ("sum", "trees", "cnn")
UNFLOODED_TERMS = ("1", "s", "n", "u", "s:n", "s:u", "n:u")


def _scan_config_type():
    from calolab.robustness.scan import ScanConfig

    return ScanConfig


@dataclass(frozen=True)
class RobustnessStudyConfig:
    """What the study simulates, scores and fits; written as ``config.yaml``.

    Parameters
    ----------
    scan
        Grid, copulas, seed, chunking (:class:`calolab.robustness.scan.ScanConfig`).
    detector, particle, energy_min_gev, energy_max_gev
        The simulated test and training events (uniform in energy, GeV); the default range is
        the test range of ``calolab study pions``, inside its CNN's training range.
    test_events, train_events
        Sample sizes (the training sample fits the baselines).
    regressors
        Names, for the record (the study scores the regressors it is given).
    energy_bins
        Equal-width bins of true energy for the response fits.
    terms, alpha
        Terms of the regression of a and b (:mod:`calolab.robustness.regression`), significance level.
    """

    scan: ScanConfig = field(default_factory=lambda: _scan_config_type()())
    detector: str = "cusi"
    particle: str = "pi+"
    energy_min_gev: float = 10.0
    energy_max_gev: float = 200.0
    test_events: int = 20000
    train_events: int = 20000
    regressors: tuple[str, ...] = ("sum",)
    energy_bins: int = 10
    terms: tuple[str, ...] = ("1", "s", "n", "u", "s:n", "s:u", "n:u", "above", "above:n", "above:u")
    alpha: float = 0.05

    @classmethod
    def quick(cls, mip_units: bool = False) -> RobustnessStudyConfig:
        """A small version for tests: 2 x 3 x 2 points, 200 test and 300 training events, 5 bins."""
        from calolab.robustness import RobustnessGrid, ScanConfig

        grid = RobustnessGrid.quick("MIP" if mip_units else "MeV")
        return cls(scan=ScanConfig(grid=grid, chunk_size=100), test_events=200, train_events=300, energy_bins=5)

    @classmethod
    def from_dict(cls, spec: dict[str, Any], where: str = "robustness config") -> RobustnessStudyConfig:
        """Build from a mapping (e.g. a run folder's ``config.yaml``); unknown fields are errors."""
        from calolab.effects.config import config_from_dict
        from calolab.robustness.scan import ScanConfig

        spec = dict(spec)
        for extra in ("note", "test", "provenance"):  # written next to the config, not part of it
            spec.pop(extra, None)
        scan = config_from_dict(ScanConfig, spec.pop("scan", None), f"{where}.scan")
        check_fields(spec, {f.name for f in fields(cls)} - {"scan"}, where)
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()}
        return cls(scan=scan, **values)


def run_robustness_study(out_dir: str | Path, config: RobustnessStudyConfig, regressors: dict[str, Any],
                         test, echo: Callable[[str], None] = print,
                         provenance: dict[str, Any] | None = None) -> dict[str, Any]:
    """Score ``regressors`` (name to Regressor) on ``test`` (Showers) over the grid; write the run folder.

    ``provenance`` (e.g. where a CNN was trained, and on what) is written beside the config.
    Returns the metrics written to ``metrics.json``.
    """
    import numpy as np

    from calolab.io.atomic import atomic_path
    from calolab.io.rundir import write_config, write_json
    from calolab.robustness import fit_response, regress, scan
    from calolab.robustness.regression import PAPER_TERMS
    from calolab.studies.robustness_report import (
        TABLE1_NOTE,
        draw_figures,
        fit_row,
        flooded,
        signal_table,
        study_metrics,
        summary_lines,
        write_table,
    )

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    grid = config.scan.grid
    write_config(out, {**asdict(config), "regressors": list(regressors), "note": TABLE1_NOTE,
                                     "test": test.summary(), "provenance": provenance or {}})
    echo(f"robustness scan: {len(grid.points())} points x {len(test)} {test.detector.name} events, "
         f"regressors {', '.join(regressors)}, units {grid.units}, {config.scan.draws} draws")
    result = scan(regressors, test, config.scan, progress=echo)
    params = np.array([[p.calibration_scale, p.noise_scale, p.bias] for p in result.points])
    rows, fits = [], {}
    signal = signal_table(result)
    for k, name in enumerate(result.names):
        for p, point in enumerate(result.points):
            try:
                fit = fit_response(result.e_true, result.predictions[k, p], config.energy_bins)
            except CalolabError as exc:
                echo(f"{name} at point {p}: no response fit ({exc})")
                fit = None
            fits[name, p] = fit
            rows.append({"regressor": name, **point._asdict(), **fit_row(fit), **signal[p]})
    regression = {}
    clear = ~flooded(signal)
    for name in result.names:
        regression[name] = {}
        for target in ("a", "b"):
            y = np.array([r[target] for r in rows if r["regressor"] == name], float)
            models = {"full": (tuple(config.terms), None), "paper": (PAPER_TERMS[target], None),
                      "unflooded": (UNFLOODED_TERMS, clear)}
            regression[name][target] = {}
            for model, (terms, keep) in models.items():
                keep = slice(None) if keep is None else keep
                try:
                    regression[name][target][model] = regress(params[keep], y[keep], terms,
                                                              grid.zero_suppression, config.alpha)
                except CalolabError as exc:
                    echo(f"{name}: regression of {target} ({model}) not possible: {exc}")
    write_table(out / "points.csv", rows)
    write_json(out / "points.json", {"points": rows})
    write_json(out / "regression.json", {name: {t: {m: f.to_dict() for m, f in models.items()}
                                                for t, models in targets.items()}
                                         for name, targets in regression.items()})
    with atomic_path(out / "predictions.npz") as tmp, open(tmp, "wb") as handle:
        np.savez(handle, e_true=result.e_true, predictions=result.predictions.astype(np.float32),
                 regressors=np.array(result.names), points=params)
    metrics = study_metrics(config, result, rows, regression, signal, test.detector.name)
    write_json(out / "metrics.json", metrics)
    draw_figures(out, config, result, params, fits, regression, signal)
    for line in summary_lines(metrics, regression):
        echo(line)
    echo(f"run folder: {out} (config.yaml, points.csv, regression.json, metrics.json, figures)")
    return metrics


# ---------------------------------------------------------------- the CLI command
def _fit_baselines(names: tuple[str, ...], train, seed: int, echo) -> dict[str, Any]:
    """Fit the requested baselines on ``train`` (read out as at the grid's nominal point).

    Those that cannot be built here are left out with a message.
    """
    out: dict[str, Any] = {}
    try:
        from calolab.reconstruction import baselines
    except ImportError:
        baselines = None
    if "sum" in names:
        if baselines is not None:
            out["sum"] = baselines.SumRegressor().fit(train)
        else:
            out["sum"] = _CalibratedSum().fit(train)
    if "trees" in names:
        if baselines is None:
            echo("trees: calolab.reconstruction.baselines is not available here, left out")
        else:
            try:
                out["trees"] = baselines.TreesRegressor(random_state=seed, threads=1).fit(train)
            except CalolabError as exc:
                echo(f"trees: left out ({exc})")
    return out


def _nominal_threshold(grid, detector):
    """The grid's zero-suppression threshold in MeV per layer, shape ``(layers,)``."""
    import numpy as np

    scale = detector.mip_mpv if grid.units == "MIP" else np.ones(detector.n_layers)
    return grid.zero_suppression * scale


class _CalibratedSum:
    """Fallback sum regressor: ``E = k S + c`` on the sampling-weighted sum (when baselines are missing)."""

    name = "sum"

    def fit(self, train) -> _CalibratedSum:
        import numpy as np

        from calolab.reconstruction.sums import weighted_sum

        self.k, self.c = np.polyfit(weighted_sum(train), train.incident_energy, 1)
        return self

    def predict(self, showers):
        from calolab.reconstruction.sums import weighted_sum

        return self.k * weighted_sum(showers) + self.c


@click.command("robustness")
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("runs/robustness"), show_default=True)
@click.option("--quick", is_flag=True, help="2 x 3 x 2 points, 200 test and 300 training events (for tests).")
@click.option("--test-events", type=click.IntRange(min=20), help="Test pions to simulate [20000].")
@click.option("--train-events", type=click.IntRange(min=20), help="Training pions for the baselines [20000].")
@click.option("--test", "test_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Read the test events from this file instead of simulating them.")
@click.option("--regressors", default="sum", show_default=True,
              help="Comma-separated: sum, trees, cnn. Trees and CNN compute per-hit features at every grid "
                   "point, slow where noise floods the cells: give them --test-events 1000-2000.")
@click.option("--cnn", "cnn_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Run folder of a trained CNN (ensemble), for the cnn regressor.")
@click.option("--mip-units", is_flag=True, help="Noise, bias and threshold in MIPs of each layer, not MeV.")
@click.option("--draws", type=click.Choice(["shared", "per-point"]), default="shared", show_default=True,
              help="shared: one draw of miscalibration and noise serves every point (scaled).")
@click.option("-s", "--seed", type=int, default=1, show_default=True)
def robustness_command(out_dir: Path, quick: bool, test_events: int | None, train_events: int | None,
                       test_file: Path | None, regressors: str, cnn_dir: Path | None, mip_units: bool, draws: str,
                       seed: int) -> None:
    """Response of energy regressors to miscalibration, noise and bias over paper 002's grid (cusi pions)."""
    import numpy as np

    from calolab.effects import zero_suppress
    from calolab.geometry import load_detector
    from calolab.robustness import RobustnessGrid
    from calolab.simulation import Beam, simulate

    names = tuple(r.strip() for r in regressors.split(",") if r.strip())
    unknown = sorted(set(names) - set(REGRESSOR_NAMES))
    if unknown or not names:
        raise CalolabError(f"--regressors: unknown {', '.join(unknown) or '(none)'}; expected some of "
                           f"{', '.join(REGRESSOR_NAMES)}")
    if "cnn" in names and cnn_dir is None:
        raise CalolabError("--regressors cnn needs --cnn RUN_DIR (a trained CNN run folder)")
    config = RobustnessStudyConfig.quick(mip_units) if quick else RobustnessStudyConfig()
    grid = config.scan.grid if quick else (RobustnessGrid(units="MIP") if mip_units else config.scan.grid)
    config = replace(config, scan=replace(config.scan, grid=grid, seed=seed, draws=draws), regressors=names,
                     test_events=test_events or config.test_events, train_events=train_events or config.train_events)
    det = load_detector(config.detector)
    beam = Beam(config.particle, energy_min=config.energy_min_gev * 1e3, energy_max=config.energy_max_gev * 1e3,
                spectrum="uniform")
    seeds = np.random.SeedSequence(seed).generate_state(2)
    start = time.perf_counter()
    if test_file is not None:
        from calolab.io import read_showers
        from calolab.io.failures import require_non_negative

        test = require_non_negative(read_showers(test_file), test_file, "calolab study robustness")
        click.echo(f"{test_file}: {test.summary()}")
    else:
        click.echo(f"simulating {config.test_events} test {config.particle} in {det.name}")
        test = simulate(det, beam, config.test_events, seed=int(seeds[0]))
    chosen: dict[str, Any] = {}
    provenance: dict[str, Any] = {"baselines": f"trained on {config.train_events} simulated events read out at the "
                                                f"grid's nominal point (zero suppression only)"}
    baseline_names = tuple(n for n in names if n in ("sum", "trees"))
    if baseline_names:
        click.echo(f"simulating {config.train_events} training {config.particle} for {', '.join(baseline_names)}")
        train = simulate(test.detector, beam, config.train_events, seed=int(seeds[1]))
        train = zero_suppress(train, _nominal_threshold(grid, test.detector))  # the readout at s = n = u = 0
        chosen.update(_fit_baselines(baseline_names, train, seed, click.echo))
    if "cnn" in names:
        from calolab.ml.ensemble import CNNEnsemble

        chosen["cnn"] = CNNEnsemble.load(cnn_dir)
        provenance["cnn"] = {"run": str(cnn_dir), **{k: chosen["cnn"].info.get(k) for k in
                                                     ("detector", "source", "events", "feature_names")}}
        study = cnn_dir.parent / "config.yaml"  # a CNN trained by ``calolab study pions``: its readout and range
        if study.is_file():
            import yaml

            trained = yaml.safe_load(study.read_text()) or {}
            provenance["cnn"].update({k: trained[k] for k in ("zero_suppression_mev", "train_range_gev")
                                      if k in trained})
        shown = {k: v for k, v in provenance["cnn"].items() if k not in ("run", "feature_names")}
        click.echo(f"cnn: {cnn_dir}, trained on {shown}")
    if not chosen:
        raise CalolabError("no regressor could be built: nothing to score")
    click.echo(f"data and regressors ready in {time.perf_counter() - start:.0f} s")
    run_robustness_study(out_dir, replace(config, regressors=tuple(chosen)), chosen, test, echo=click.echo,
                         provenance=provenance)
