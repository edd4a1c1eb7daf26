"""The muon study (paper 003): multi-TeV muon energy from the calorimeter and a tracker.

mu- with energies uniform over ``energy_range_gev`` (50 GeV-8 TeV, as in paper 003;
``spectrum="log-uniform"`` weights the low energies more) cross the homogeneous PbWO4 block
(``pbwo4``, 2 T along y); their energy shows only in the rare radiative losses
(bremsstrahlung, pair production, photo-nuclear) that shower in the crystals, and in the
muon's bend in the field. Calorimeter regressors: the calibrated sum, the boosted trees on
the high-level and muon features (:mod:`calolab.reconstruction.muon_features`, ``bend_x_mm``
included), and an ensemble of CNNs with both feature sets in the body (without ``bend_x_mm``
unless ``cnn_bend``). Each is response-corrected on held-out training events
(:mod:`calolab.studies.regression`) with the median true energy in bins of its prediction
(``response_model="binned"``, see :class:`~calolab.reconstruction.response.ResponseCalibration`):
over this range a regressor's response need not be linear, and a linear fit is pulled by the
many high-energy events. The regressors read the muon's entry point and direction: exact
(the pencil beam's) or smeared by ``track_sigma_mm`` and ``track_sigma_mrad``, as a
tracker's extrapolation would give them.

The tracker is simulated per event, Gaussian in energy: ``E_trk = E (1 + N(0, s E[GeV]))``
with ``s = tracker_slope`` (paper 003: 20% at 1 TeV, ``s = 2e-4``), from its own seed. (A
curvature measurement is Gaussian in 1/p instead; in energy that gives the same 68% width at
low energies and a long tail above a few TeV. The Gaussian keeps the tracker's binned
resolution equal to its nominal curve.) Each calorimeter estimate is combined with the
tracker's event by event by maximum likelihood
(:func:`~calolab.reconstruction.metrics.combine_estimates`: the inverse-variance average with
both variances taken at the combined energy), then response-corrected on held-out events
with their own tracker draws. The calorimeter's sigma/E in the likelihood is measured in bins
of the calibration events, so that no test event sets a weight: its RMSE about the true
energy, ``sqrt(<(E_cal/E - 1)^2>)`` (``combination_width="rmse"``, bias and tails included), or
its 68% width about its own median (``"resolution"``); interpolated in log E. Per bin, the two
measured resolutions are also combined directly. The crossover energy is where the
calorimeter's resolution (test set) meets the tracker's for the last time: on the fitted
``a/sqrt(E) ⊕ b/E ⊕ c`` curve when that fit describes the bins (chi2/ndf <=
FIT_CHI2_PER_NDF), otherwise on the interpolated bins (``crossover_from`` says which;
``crossover_fit_gev`` and ``crossover_measured_gev`` keep both).

Outputs, in the run folder: ``config.yaml`` and ``provenance.json``; ``metrics.json`` with every
regressor's binned resolution and RMSE, response, fit, tracker combination and crossover, and
under ``headline`` (for the regressor with the best resolution above ``high_energy_gev`` on the
calibration events) the combination's 68% resolution over the tracker's for true energies
within ``headline_window`` of ``headline_energy_gev`` (paired bootstrap) and the calorimeter's
68% resolution pooled above ``high_energy_gev``; ``predictions.npz`` (test events, MeV);
``table.md``; the figures ``response.png``, ``resolution.png``, ``combination.png`` and
``truth_<regressor>.png``; the CNN run folders under ``cnn/``. Energies in the config in GeV,
in the arrays in MeV. ``calolab report runs/muons`` renders a run's results.

Example (``calolab study muons --quick`` on the command line is a smoke test):

>>> from calolab.studies.muons import MuonStudyConfig
>>> MuonStudyConfig().energy_range_gev, MuonStudyConfig().tracker_slope
((50.0, 8000.0), 0.0002)

Module-level imports are stdlib and click only, so that ``calolab --help`` stays fast.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click

from calolab.config import with_overrides
from calolab.studies.pions import as_option, cnn_label


@dataclass(frozen=True)
class MuonStudyConfig:
    """What the muon study simulates, fits and scores; written as ``config.yaml`` in the run folder.

    Energies in GeV; the test muons span ``energy_range_gev``, the training muons (and the
    held-out calibration events among them) ``train_range_gev``, which must hold it (paper
    003's ranges are equal); ``bins`` log-spaced bins over ``energy_range_gev``; the headline
    combination figure uses the events with ``|E / headline_energy_gev - 1| < headline_window``. ``response_model``: see
    :class:`~calolab.reconstruction.response.ResponseCalibration`. ``combination_width``: the
    calorimeter's sigma/E in the likelihood combination with the tracker, per bin of the
    calibration events: ``"rmse"`` (``sqrt(<(E_cal/E - 1)^2>)``, its bias and tails included) or
    ``"resolution"`` (the 68% width around its median). ``track_sigma_mm`` and
    ``track_sigma_mrad``: the muon's entry point and direction that the calorimeter regressors
    read (the straight track of the muon features) are the true ones smeared by these Gaussian
    widths per coordinate, as a tracker's extrapolation would give them, in the training and test
    events alike; 0: exact (the beam's). ``cnn_bend``: the CNN's body gets ``bend_x_mm`` too
    (the trees always do; the CNN can read the bend from the cells itself). See
    :class:`~calolab.studies.pions.PionStudyConfig` for the shared fields.
    """

    detector: str = "pbwo4"
    particle: str = "mu-"
    train_events: int = 80000
    test_events: int = 20000
    energy_range_gev: tuple[float, float] = (50.0, 8000.0)
    train_range_gev: tuple[float, float] = (50.0, 8000.0)
    spectrum: str = "uniform"
    bins: int = 12
    headline_energy_gev: float = 4000.0
    headline_window: float = 0.1
    high_energy_gev: float = 2000.0
    tracker_slope: float = 2e-4
    track_sigma_mm: float = 0.0
    track_sigma_mrad: float = 0.0
    calibration_fraction: float = 0.2
    response_model: str = "binned"
    combination_width: str = "rmse"
    resolution_terms: str = "abc"
    methods: tuple[str, ...] = ("sum", "trees", "cnn")
    segments: int = 10
    trees_max_iter: int = 300
    ensemble: int = 4
    epochs: int = 30
    batch_size: int = 64
    lr_max: float = 3e-3
    patience: int = 4
    weight_decay: float = 1e-4
    pool: tuple[int, int, int] = (1, 4, 4)
    hit_classes: int = 0
    channels: tuple[int, ...] = (8, 16, 32, 64)
    hidden: tuple[int, ...] = (64, 32)
    features: bool = True
    cnn_bend: bool = False
    feature_transform: str = "signed-log"
    mirror_y: bool = True
    threads: int | None = 1
    workers: int = 2
    n_boot: int = 200
    seed: int = 1

    @classmethod
    def quick(cls) -> MuonStudyConfig:
        """A small version for tests: 800 + 600 events, 5 energy bins, 2 small CNNs of 2 epochs."""
        return cls(train_events=800, test_events=600, bins=5, headline_window=0.25, trees_max_iter=40, ensemble=2,
                   epochs=2, channels=(4, 8), hidden=(16,), workers=1, n_boot=30)

    @property
    def edges_mev(self):
        import numpy as np

        return np.geomspace(*self.energy_range_gev, self.bins + 1) * 1e3


def muon_inputs(showers):
    """High-level and muon features side by side, float32 (N, F), and their names."""
    import numpy as np

    from calolab.reconstruction.features import high_level_features
    from calolab.reconstruction.muon_features import muon_features

    (x, names), (xm, names_m) = high_level_features(showers), muon_features(showers)
    return np.hstack([x, xm]), names + names_m


def cnn_inputs(showers, bend: bool = False):
    """:func:`muon_inputs` for the CNN's body: without ``bend_x_mm`` unless ``bend``."""
    import numpy as np

    x, names = muon_inputs(showers)
    if bend:
        return x, names
    keep = [i for i, name in enumerate(names) if name != "bend_x_mm"]
    return np.ascontiguousarray(x[:, keep]), [names[i] for i in keep]


def run_muon_study(out_dir: str | Path, config: MuonStudyConfig = MuonStudyConfig(),
                   echo: Callable[[str], None] = print, progress: bool = False) -> dict[str, Any]:
    """Simulate, fit the calorimeter regressors, combine with the tracker, write the run folder; returns metrics."""
    import numpy as np

    from calolab.errors import CalolabError
    from calolab.geometry import load_detector
    from calolab.io.atomic import atomic_path
    from calolab.io.rundir import write_config, write_json
    from calolab.ml.fit import fit_cnn
    from calolab.reconstruction.tracker import smear_track, tracker_energies
    from calolab.simulation import Beam, simulate
    from calolab.studies import regression as reg
    from calolab.studies.muon_report import plot_combination, report_table, study_metrics, summary_lines

    if config.combination_width not in ("rmse", "resolution"):
        raise CalolabError(f"muon study: combination_width must be 'rmse' or 'resolution', "
                           f"got {config.combination_width!r}")
    (lo, hi), (tr_lo, tr_hi) = config.energy_range_gev, config.train_range_gev
    if not 0 < tr_lo <= lo < hi <= tr_hi:
        raise CalolabError(f"muon study: the training range {tr_lo:g}-{tr_hi:g} GeV must hold the test range "
                           f"{lo:g}-{hi:g} GeV")
    if config.track_sigma_mm < 0 or config.track_sigma_mrad < 0:
        raise CalolabError(f"muon study: track_sigma_mm and track_sigma_mrad must be >= 0, got "
                           f"{config.track_sigma_mm:g} and {config.track_sigma_mrad:g}")
    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_config(out, asdict(config))
    det = load_detector(config.detector)
    seeds = [int(s) for s in np.random.SeedSequence(config.seed).generate_state(8)]
    beam = Beam(config.particle, energy_min=lo * 1e3, energy_max=hi * 1e3, spectrum=config.spectrum)
    train_beam = Beam(config.particle, energy_min=tr_lo * 1e3, energy_max=tr_hi * 1e3, spectrum=config.spectrum)
    echo(f"simulating {config.train_events} training ({tr_lo:g}-{tr_hi:g} GeV) and {config.test_events} test "
         f"({lo:g}-{hi:g} GeV) {config.particle}, {config.spectrum}, in {det.name}")
    train = simulate(det, train_beam, config.train_events, seed=seeds[0])
    test = simulate(det, beam, config.test_events, seed=seeds[1])
    if config.track_sigma_mm or config.track_sigma_mrad:
        rng = np.random.default_rng(seeds[7])
        train, test = (smear_track(s, config.track_sigma_mm, config.track_sigma_mrad, rng) for s in (train, test))
    fit_set, cal_set = reg.split_training(train, config.calibration_fraction, seeds[2])
    edges = config.edges_mev
    common = {"response_model": config.response_model, "terms": config.resolution_terms, "n_boot": config.n_boot,
              "seed": seeds[3]}
    with reg.torch_threads(config.threads if "cnn" in config.methods else None):
        scored = reg.fit_baselines(config, fit_set, cal_set, test, edges, common, seeds[4], echo,
                                   labels={"trees": "trees (high-level + muon features)"})
        if "cnn" in config.methods:
            def features(showers):
                return cnn_inputs(showers, config.cnn_bend)

            muon = "high-level + muon features" + ("" if config.cnn_bend else " without bend_x_mm")
            scored["cnn"] = fit_cnn(config, cnn_label(config).replace("high-level features", muon),
                                    features if config.features else None, fit_set, cal_set, test, edges,
                                    common, out / "cnn", seeds[5], echo, progress)
    e_trk = tracker_energies(test.incident_energy, config.tracker_slope, seeds[6])
    e_trk_cal = tracker_energies(cal_set.incident_energy, config.tracker_slope, seeds[6] + 1)
    metrics = study_metrics(config, scored, test.incident_energy, e_trk, edges, seeds[3], cal_set.incident_energy,
                            len(fit_set), e_trk_cal)
    with atomic_path(out / "predictions.npz") as tmp, open(tmp, "wb") as handle:  # test events, MeV
        np.savez_compressed(handle, e_true=test.incident_energy, e_trk=e_trk,
                            **{f"e_{name}": s.test_pred for name, s in scored.items()},
                            **{f"e_{name}_tracker": c["combined"] for name, c in metrics.pop("_combined").items()})
    metrics["seconds"] = time.perf_counter() - started
    write_json(out / "metrics.json", metrics)
    (out / "table.md").write_text(report_table(config, metrics, scored))
    reg.draw_figures(out, scored, test.incident_energy, log_x=True,
                     extra={"combination": lambda ax: plot_combination(metrics, config, ax=ax)},
                     note=metrics["cnn"] or "")
    for line in summary_lines(metrics):
        echo(line)
    echo(f"run folder: {out} (config.yaml, metrics.json, table.md, predictions.npz, figures) "
         f"in {metrics['seconds']:.0f} s")
    return metrics


@click.command("muons")
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("runs/muons"), show_default=True)
@click.option("--quick", is_flag=True, help="800 + 600 events, 2 small CNNs of 2 epochs (for tests).")
@click.option("--train-events", type=click.IntRange(min=200),
              help=f"Training muons [{MuonStudyConfig.train_events}].")
@click.option("--test-events", type=click.IntRange(min=100), help=f"Test muons [{MuonStudyConfig.test_events}].")
@click.option("--epochs", type=click.IntRange(min=1), help=f"CNN training epochs [{MuonStudyConfig.epochs}].")
@click.option("--ensemble", type=click.IntRange(min=1), help=f"CNNs in the ensemble [{MuonStudyConfig.ensemble}].")
@click.option("--pool", help=f"Cells summed per CNN input voxel: LAYER,X,Y [{as_option(MuonStudyConfig.pool)}].")
@click.option("--channels", help=f"Channels of the CNN's residual blocks [{as_option(MuonStudyConfig.channels)}].")
@click.option("--threads", type=click.IntRange(min=1), help=f"torch and tree threads [{MuonStudyConfig.threads}].")
@click.option("--workers", type=click.IntRange(min=1),
              help=f"CNNs trained at once, in separate processes, threads / workers each [{MuonStudyConfig.workers}].")
@click.option("--spectrum", type=click.Choice(["uniform", "log-uniform"]),
              help=f"Energies of the training and test muons [{MuonStudyConfig.spectrum}; paper 003's is uniform].")
@click.option("--mirror-y/--no-mirror-y", default=None,
              help=f"Mirror half of each CNN training batch in y [{MuonStudyConfig.mirror_y}].")
@click.option("--train-range", help="Energies of the training muons, GeV: LO,HI "
                                    f"[{as_option(MuonStudyConfig.train_range_gev)}; the test's are "
                                    f"{as_option(MuonStudyConfig.energy_range_gev)}].")
@click.option("--cnn-bend/--no-cnn-bend", default=None,
              help=f"Give the CNN's body bend_x_mm too [{MuonStudyConfig.cnn_bend}; the trees always get it].")
@click.option("--track-sigma", help="Smear the muon's entry point (mm) and direction (mrad) that the calorimeter "
                                    "regressors read, per coordinate: MM,MRAD [0,0: exact].")
@click.option("-s", "--seed", type=int, default=1, show_default=True)
def study_muons(out_dir: Path, quick: bool, train_events: int | None, test_events: int | None, epochs: int | None,
                ensemble: int | None, pool: str | None, channels: str | None, threads: int | None,
                workers: int | None, spectrum: str | None, mirror_y: bool | None, train_range: str | None,
                cnn_bend: bool | None, track_sigma: str | None, seed: int) -> None:
    """Muon energy from the pbwo4 calorimeter, a tracker and their combination, 50 GeV-8 TeV (paper 003)."""
    from calolab.ml.commands import _ints, _triple

    config = MuonStudyConfig.quick() if quick else MuonStudyConfig()
    config = with_overrides(config, train_events=train_events, test_events=test_events, epochs=epochs,
                            ensemble=ensemble, pool=_triple(pool) if pool else None,
                            channels=_ints(channels, "--channels") if channels else None, threads=threads,
                            workers=workers, spectrum=spectrum, mirror_y=mirror_y, cnn_bend=cnn_bend,
                            train_range_gev=_range(train_range, "--train-range") if train_range else None,
                            seed=seed)
    if track_sigma:
        mm, mrad = _range(track_sigma, "--track-sigma")
        config = with_overrides(config, track_sigma_mm=mm, track_sigma_mrad=mrad)
    run_muon_study(out_dir, config, echo=click.echo, progress=not quick)


def _range(text: str, option: str) -> tuple[float, float]:
    """``--train-range LO,HI`` (GeV) or ``--track-sigma MM,MRAD`` as a pair of floats."""
    from calolab.errors import CalolabError

    example = {"--train-range": "two energies in GeV, LO,HI (e.g. 50,10000)",
               "--track-sigma": "two widths, MM,MRAD (e.g. 0.05,0.02)"}[option]
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise CalolabError(f"{option} must be {example}, got {text!r}") from None
    return lo, hi
