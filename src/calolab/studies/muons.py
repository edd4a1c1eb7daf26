"""The muon study (paper 003, calolab issue 4): multi-TeV muon energy from the calorimeter and a tracker.

mu- with energies uniform from 50 GeV to 8 TeV, as in paper 003 (76% of them above 2 TeV;
``spectrum="log-uniform"`` puts 27% there), cross the
homogeneous PbWO4 block (``pbwo4``, 2 T); their energy shows only in the rare radiative
losses (bremsstrahlung, pair production, photo-nuclear) that shower in the crystals. Calorimeter regressors: the
calibrated sum, the boosted trees on the high-level and muon features, and an ensemble of
CNNs with both feature sets in the body (without ``bend_x_mm`` unless ``cnn_bend``). Each is
response-corrected on held-out training events (:mod:`calolab.studies.regression`) with the
median true energy in bins of its prediction (``response_model="binned"``, see
:class:`~calolab.reconstruction.response.ResponseCalibration`): over 50 GeV-8 TeV the
regressors' response is far from linear (trained on the uniform spectrum, the trees' median
prediction is 1.6 E near 1 TeV and 0.7 E near 7 TeV), and the paper's linear fit
(``"linear"``), pulled by the many high-energy events, sent the medians of the uniform
spectrum's few muons below 100 GeV to 0.3 E (trees) or below zero (CNN).

The tracker is simulated per event, Gaussian in energy: ``E_trk = E (1 + N(0, s E[GeV]))``
with ``s = 2e-4`` (20% at 1 TeV), from its own seed. (A curvature measurement is Gaussian in
1/p instead; in energy that gives the same 68% width at low energies and a long tail above
a few TeV. The Gaussian keeps the tracker's binned resolution equal to its nominal curve.)
Each calorimeter estimate is combined with the tracker's event by event by maximum likelihood
(:func:`~calolab.reconstruction.metrics.combine_estimates`: the inverse-variance average with
both variances taken at the combined energy), then response-corrected on held-out events
with their own tracker draws. The calorimeter's sigma/E in the likelihood is its RMSE about
the true energy, ``sqrt(<(E_cal/E - 1)^2>)``, measured in bins of the calibration events
(``combination_width="rmse"``; interpolated in log E; no test event sets a weight, and
``a/sqrt(E) ⊕ b/E ⊕ c`` need not describe a muon calorimeter). With the uniform spectrum the
calorimeter reads 1.09-1.24 E at 0.3-1 TeV after the binned correction, with a long upper tail
(the trees' RMSE about E is 0.83-1.01 there, their 68% width 0.43-0.53); its 68% width about its
own median (``combination_width="resolution"``) hides both, and the likelihood then
followed it away from the tracker (linear correction, 68% weights: trees + tracker 144% at
0.4-0.6 TeV, where the tracker has 10.4%; binned correction, RMSE weights: 11.4% trees, 11.1% CNN).
Per bin, the two measured resolutions are also combined directly. The crossover energy is
where the calorimeter's resolution (test set) meets the tracker's for the last time (a
measured curve that dips below the tracker's at low energy does not set it): on the fitted
``a/sqrt(E) ⊕ b/E ⊕ c`` curve when that fit describes the bins (chi2/ndf <= FIT_CHI2_PER_NDF),
otherwise on the interpolated bins (``crossover_from`` says which; a muon calorimeter's
resolution first grows with E and then falls, which that form cannot follow).
``crossover_fit_gev`` and ``crossover_measured_gev`` keep both.

Measured with this code (seed 1, default sizes: 80,000 training muons, 4 CNNs of four residual
blocks (8, 16, 32, 64 channels) and 30 epochs on inputs pooled (1, 4, 4), mirrored in y,
trained two at once with one thread each, ``--threads 2``, 40 minutes): pooled above 2 TeV the
calorimeter reaches 27.0% (trees) and 25.7 ± 0.2% (CNN), and 31, 26, 18% (CNN) in the bins
2.2-3.4, 3.4-5.2, 5.2-8 TeV, whose medians run from 1.12 E to 0.91 E: a regressor pulls its
predictions towards the middle of its training spectrum, and no correction of the prediction
alone undoes that without widening every bin (divided by their bins' medians, the same
predictions have a 68% width of 23.2%). Above 2 TeV the energy shows less in the radiative
losses than in the muon's sub-millimetre bend in the field, which the muon feature ``bend_x_mm``
reads from the share of the showers' energy on either side of the cell boundary next to the
track (see :mod:`calolab.reconstruction.muon_features`): the trees reach 34.4% without it, and
the CNN, which reads the bend from the cells itself, reaches 26.8% with it in its body
(``cnn_bend``; 2 of its 4 members stopped early, at 12 and 16 epochs). The bend needs the
track's entry point and direction, exact for this pencil beam; smeared as a tracker's
extrapolation would give them (``track_sigma_mm``, ``track_sigma_mrad``), the trees on 6,000
training muons go from 27.2% (exact) to 31.9% (0.05 mm), 32.1% (0.02 mrad) and 33.9% (0.1 mm
and 0.05 mrad), against 34.9% without the feature. The four CNNs alone reach 25.8, 26.1, 26.2 and
26.4%; three CNNs of three blocks (8, 16, 32), the previous default, 26.2, 26.6, 26.2% and together
25.9%; one of three wider blocks (16, 32, 64), 25.9%; all eight together, 25.5%. A CNN whose output
is a constant times ``exp(h)`` instead of the sum times it (so that it predicts log E itself and
the sum enters only through its body) learns the bend sooner (validation loss 357 at epoch 3,
against 444) but ends no better: 26.2% and 26.0% with the seeds of the first two members. Earlier
defaults: 4 CNNs pooled (2, 4, 4), 26.7%; 5 CNNs on 40,000 muons, 28.0%. One CNN of 30 epochs
pooled (2, 4, 4) reaches 29.5% above 2 TeV with 40,000 training muons, 27.5% with 80,000 and
27.5% with 120,000 (paper 003 trains on about 850,000); pooled (1, 4, 4) it reaches 26.3% with
80,000. Two CNNs of the default on 160,000 muons, the same CNN training time as the default's
four (``--train-events 160000 --ensemble 2``, 49 minutes in all), reach 26.2% (trees 27.1%).
Mirroring in y (training on a random half of each batch mirrored, predicting the mean
of each event and its mirror image) lowers one CNN's validation loss (233.0 against 239.8) but
not its resolution above 2 TeV (26.2%); the ensemble gives 25.9% with or without averaging the
mirror images. Training on muons up to 10 TeV (``--train-range 50,10000``), so that the top of
the test range is not the edge of the training spectrum, is worse above 2 TeV: 27.9% (bins 34,
32, 23%; trees 35.5%), because the edge also narrows the predictions there (7.5-8 TeV: median
0.84 E, 68% width 12.6% when training stops at 8 TeV). Changes of one CNN pooled (2, 4, 4) on
40,000 muons: ``lr_max`` 1e-3, 30.4%; channels (16, 32, 64), 30.7%; 50 epochs without early
stopping, 29.1%. With 10 epochs five CNNs on 40,000 muons reached 34.0% (their validation loss
was still falling). Log-uniform (40,000 muons, 5 CNNs, 26 minutes): 40.9% (trees) and 32.0%
(CNN).

Goal figures (metrics.json, ``goals``, for the CNN): the 68% resolution of the combination
over the tracker's for true energies within ``goal_window`` of 4 TeV (paired bootstrap;
goal: 20% better), and the calorimeter's 68% resolution pooled over 2-8 TeV (goal: <= 25%).

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
    003's ranges are equal; see the module docstring for training up to 10 TeV); ``bins``
    log-spaced bins over ``energy_range_gev``; the 4 TeV goal uses
    the events with ``|E / goal_energy_gev - 1| < goal_window``. ``response_model``: see
    :class:`~calolab.reconstruction.response.ResponseCalibration`. ``combination_width``: the
    calorimeter's sigma/E in the likelihood combination with the tracker, per bin of the
    calibration events: ``"rmse"`` (``sqrt(<(E_cal/E - 1)^2>)``, its bias and tails included) or
    ``"resolution"`` (the 68% width around its median). ``track_sigma_mm`` and
    ``track_sigma_mrad``: the muon's entry point and direction that the calorimeter regressors
    read (the straight track of the muon features) are the true ones smeared by these Gaussian
    widths per coordinate, as a tracker's extrapolation would give them, in the training and test
    events alike; 0: exact (the beam's). ``cnn_bend``: the CNN's body gets ``bend_x_mm`` too
    (the trees always do); the CNN reads the bend from the cells itself, and the measured
    figures of the module docstring are better without it. See
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
    goal_energy_gev: float = 4000.0
    goal_window: float = 0.1
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
        return cls(train_events=800, test_events=600, bins=5, goal_window=0.25, trees_max_iter=40, ensemble=2,
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
