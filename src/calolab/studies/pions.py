"""The pion study (paper 002): a CNN ensemble against trees and sums on ``cusi`` pi+.

Single pi+ with uniform energies hit the Cu/Si module; the training sample spans a wider
range (``train_range_gev``, 5-250 GeV) than the test sample (``test_range_gev``, 10-200 GeV),
so that no regressor's behaviour at the edge of its training range is scored. Every event
the regressors see is read out with zero suppression (``zero_suppression_mev``, paper 002:
0.6 MeV). The baselines (calibrated sum, layer weights, CALICE-style software compensation
with hit-density weights, boosted trees on the high-level features) and an ensemble of CNNs
(residual 3D CNN on the pooled grid, correcting the calibrated sum, with the high-level
features in its body) are fitted on the same events; a seeded share of the training sample
is held out to fit every regressor's response, which is then inverted on the test sample
(:mod:`calolab.studies.regression`).

Outputs, in the run folder: ``config.yaml`` and ``provenance.json``; ``metrics.json`` with
every regressor's binned resolution (68%, half the 16-84% width of E_pred/E over its median),
response and a/sqrt(E) ⊕ b/E ⊕ c fit, and under ``headline`` the CNN's resolution over that
of the calibrated sum and of the trees in ``headline_range_gev`` (per bin and pooled, paired
bootstrap errors), the largest ``|<E_pred>/E - 1|`` over the test bins after the correction,
and every regressor's inference speed (events/s); ``table.md``; the figures ``response.png``,
``resolution.png``, ``ratio.png`` and ``truth_<regressor>.png``; the CNN run folders under
``cnn/``. Energies in the config in GeV, in the arrays in MeV.

As physics references, not reconstructions, the study also fits the calibrated sum together
with the simulator's truth of each shower: its electromagnetic fraction
(``em_fraction_bound``), and that fraction with the nuclear share of the non-EM energy
(``compensation_bound``), what perfect compensation of both invisible-energy fluctuations
would reach (sampling fluctuations and leakage stay). A third reference adds to the trees'
features the true shares of the cells' energy left by the pi0 showers and by the nuclear
hits (``classification_bound``): what a perfect classification of every cell's energy would
add to the features (the CNN's learned hit classes are such a classification).

Mirroring the CNNs' training batches (``mirror_y``, ``mirror_x``: the module has no field) is
off by default. ``calolab report runs/pions`` renders a run's results.

Example (``calolab study pions --quick`` on the command line is a smoke test: 1000 + 600 events):

>>> from calolab.studies.pions import PionStudyConfig
>>> PionStudyConfig.quick().train_events, PionStudyConfig().zero_suppression_mev
(1000, 0.6)

Module-level imports are stdlib and click only, so that ``calolab --help`` stays fast.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import click

from calolab.config import with_overrides
from calolab.errors import CalolabError


@dataclass(frozen=True)
class PionStudyConfig:
    """What the pion study simulates, fits and scores; written as ``config.yaml`` in the run folder.

    Energies in GeV. ``zero_suppression_mev``: the readout drops cells at or below it in
    every event the regressors see, training and test (paper 002: 0.6 MeV, about one MIP of
    ``cusi``; ``None`` keeps every deposit). ``threads`` limits torch and the trees (1 is fastest on a busy shared
    machine; ``None``: the libraries' defaults). The CNN fields are those of
    :class:`~calolab.ml.model.RegressorConfig` and :class:`~calolab.ml.train.TrainConfig`.
    """

    detector: str = "cusi"
    particle: str = "pi+"
    train_events: int = 50000
    test_events: int = 20000
    train_range_gev: tuple[float, float] = (5.0, 250.0)
    test_range_gev: tuple[float, float] = (10.0, 200.0)
    zero_suppression_mev: float | None = 0.6
    bin_width_gev: float = 10.0
    headline_range_gev: tuple[float, float] = (50.0, 200.0)
    calibration_fraction: float = 0.2
    response_model: str = "linear"
    resolution_terms: str = "abc"
    methods: tuple[str, ...] = ("sum", "layers", "compensation", "trees", "cnn")
    segments: int = 10
    trees_max_iter: int = 300
    ensemble: int = 5
    epochs: int = 12
    batch_size: int = 64
    lr_max: float = 3e-3
    patience: int = 4
    weight_decay: float = 1e-4
    pool: tuple[int, int, int] = (3, 5, 5)
    hit_classes: int = 4
    channels: tuple[int, ...] = (8, 16, 32, 64)
    hidden: tuple[int, ...] = (64, 32)
    features: bool = True
    feature_transform: str = "none"
    mirror_y: bool = False
    mirror_x: bool = False
    threads: int | None = 1
    workers: int = 2
    em_fraction_bound: bool = True
    n_boot: int = 200
    seed: int = 1

    @classmethod
    def quick(cls) -> PionStudyConfig:
        """A small version for tests: 1000 + 600 events, 4 energy bins, 2 small CNNs of 2 epochs."""
        return cls(train_events=1000, test_events=600, bin_width_gev=47.5, trees_max_iter=40, ensemble=2, epochs=2,
                   channels=(4, 8), hidden=(16,), workers=1, n_boot=30)

    @property
    def edges_mev(self):
        """Bin edges of the test range, MeV."""
        import numpy as np

        lo, hi = self.test_range_gev
        n = max(1, int(round((hi - lo) / self.bin_width_gev)))
        return np.linspace(lo, hi, n + 1) * 1e3


def as_option(values) -> str:
    """A tuple default as the command line spells it: ``(3, 5, 5)`` -> ``3,5,5``."""
    return ",".join(str(v) for v in values)



def cnn_label(config) -> str:
    """What the CNN is, stated beside every CNN result."""
    pool = "x".join(str(p) for p in config.pool)
    if config.hit_classes:
        pool = f"{pool} with {config.hit_classes} learned hit classes"
    body = "high-level features in the body" if config.features else "no features"
    if config.features and config.feature_transform != "none":
        body = f"{config.feature_transform} {body}"
    from calolab.ml.fit import mirror_x
    from calolab.ml.train import mirror_axes

    axes = " and ".join(mirror_axes(config.mirror_y, mirror_x(config)))
    mirrored = f", mirrored in {axes}" if axes else ""
    blocks = "-".join(str(c) for c in config.channels)
    return f"cnn x{config.ensemble} (pool {pool}, blocks {blocks}, {body}, {config.epochs} epochs{mirrored})"


def run_pion_study(out_dir: str | Path, config: PionStudyConfig = PionStudyConfig(),
                   echo: Callable[[str], None] = print, progress: bool = False) -> dict[str, Any]:
    """Simulate, fit every regressor, calibrate, score, and write the run folder; returns the metrics."""
    import numpy as np

    from calolab.effects import zero_suppress
    from calolab.geometry import load_detector
    from calolab.io.rundir import write_config, write_json
    from calolab.ml.fit import fit_cnn
    from calolab.reconstruction.features import high_level_features
    from calolab.simulation import Beam, simulate
    from calolab.studies import regression as reg

    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_config(out, asdict(config))
    det = load_detector(config.detector)
    seeds = [int(s) for s in np.random.SeedSequence(config.seed).generate_state(6)]
    (tr_lo, tr_hi), (te_lo, te_hi) = config.train_range_gev, config.test_range_gev
    echo(f"simulating {config.train_events} training ({tr_lo:g}-{tr_hi:g} GeV) and {config.test_events} test "
         f"({te_lo:g}-{te_hi:g} GeV) {config.particle} in {det.name}")
    train = simulate(det, Beam(config.particle, energy_min=tr_lo * 1e3, energy_max=tr_hi * 1e3, spectrum="uniform"),
                     config.train_events, seed=seeds[0])
    test = simulate(det, Beam(config.particle, energy_min=te_lo * 1e3, energy_max=te_hi * 1e3, spectrum="uniform"),
                    config.test_events, seed=seeds[1])
    if config.zero_suppression_mev is not None:
        train, test = (zero_suppress(s, config.zero_suppression_mev) for s in (train, test))
    fit_set, cal_set = reg.split_training(train, config.calibration_fraction, seeds[2])
    edges = config.edges_mev
    common = {"response_model": config.response_model, "terms": config.resolution_terms, "n_boot": config.n_boot,
              "seed": seeds[3]}
    with reg.torch_threads(config.threads if "cnn" in config.methods else None):
        scored = reg.fit_baselines(config, fit_set, cal_set, test, edges, common, seeds[4], echo)
        if "cnn" in config.methods:
            def features(showers):
                return high_level_features(showers)

            scored["cnn"] = fit_cnn(config, cnn_label(config), features if config.features else None, fit_set,
                                    cal_set, test, edges, common, out / "cnn", seeds[5], echo, progress)
    references = {}
    if config.em_fraction_bound:
        for key, truth in TRUTH_REFERENCES.items():
            references[key] = _truth_reference(key, truth, fit_set, cal_set, test, edges, common, config, seeds[4])
    metrics = _metrics(config, scored, references, test, edges, seeds[3], len(fit_set), len(cal_set))
    metrics["seconds"] = time.perf_counter() - started
    write_json(out / "metrics.json", metrics)
    (out / "table.md").write_text(_table(config, metrics, scored))
    headline = metrics["headline"]
    extra = {"ratio": lambda ax: reg.plot_ratios(headline["ratios"], ax=ax)} if headline else None
    reg.draw_figures(out, scored, test.incident_energy, log_x=True, extra=extra, note=metrics["cnn"] or "")
    for line in _summary(metrics):
        echo(line)
    echo(f"run folder: {out} (config.yaml, metrics.json, table.md, figures) in {metrics['seconds']:.0f} s")
    return metrics


class TruthReference(NamedTuple):
    """A physics reference: boosted trees on log S (S the calibrated sum) and per-event simulator
    truth ``extras``, or, if ``features``, the study's trees with those truths added to their
    features (same settings and seed). Truths in MeV (``*_mev``) enter as shares of the event's
    cell energy."""

    label: str
    extras: tuple[str, ...]
    features: bool = False


# metrics key -> reference. The last one asks what a perfect classification of every cell's
# energy (pi0 showers, nuclear hits, the rest) would add to the trees' features.
TRUTH_REFERENCES = {
    "em_fraction_bound": TruthReference("sum + true f_em", ("em_fraction",)),
    "compensation_bound": TruthReference("sum + true f_em and nuclear share", ("em_fraction", "nuclear_share")),
    "classification_bound": TruthReference("trees + true pi0 and nuclear shares of the cell energy",
                                           ("em_visible_mev", "nuclear_visible_mev"), features=True)}


def _truth_reference(key, truth, fit_set, cal_set, test, edges, common, config, seed):
    """Fit and score the :class:`TruthReference` ``truth`` like a regressor."""
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    from calolab.reconstruction.baselines import TreesRegressor
    from calolab.reconstruction.scoring import score
    from calolab.reconstruction.sums import weighted_sum

    def truths(showers):
        cells = np.maximum(showers.energy_sum(), 1e-9)
        return np.column_stack([showers.extras[name] / cells if name.endswith("_mev") else showers.extras[name]
                                for name in truth.extras])

    start = time.perf_counter()
    if truth.features:
        class TreesWithTruth(TreesRegressor):
            def features(self, showers):
                return np.hstack([super().features(showers), truths(showers)])

        trees = TreesWithTruth(max_iter=config.trees_max_iter, segments=config.segments, random_state=seed,
                               threads=config.threads).fit(fit_set)
        predict = trees.predict
    else:
        def inputs(showers):
            return np.column_stack([np.log(np.maximum(weighted_sum(showers), 1.0)), truths(showers)])

        model = HistGradientBoostingRegressor(max_iter=config.trees_max_iter, early_stopping=False, random_state=seed)
        with threadpool_limits(limits=config.threads, user_api="openmp"):
            model.fit(inputs(fit_set), np.log(fit_set.incident_energy))

        def predict(showers):
            with threadpool_limits(limits=config.threads, user_api="openmp"):
                return np.exp(model.predict(inputs(showers)))

    return score(key, f"{truth.label} (simulator truth)", predict, cal_set, test, edges,
                 time.perf_counter() - start, **common)


def _metrics(config, scored, references, test, edges, seed, n_fit, n_cal) -> dict[str, Any]:
    import numpy as np

    from calolab.reconstruction.paired import improvement, paired_ratio
    from calolab.reconstruction.scoring import linearity

    metrics: dict[str, Any] = {
        "config": asdict(config), "detector": config.detector,
        "events": {"train": config.train_events, "fit": n_fit, "calibration": n_cal, "test": config.test_events},
        "cnn": cnn_label(config) if "cnn" in scored else None,
        "readout": (f"zero suppression at {config.zero_suppression_mev:g} MeV" if config.zero_suppression_mev
                    is not None else "every deposit, no zero suppression"),
        "resolution_definition": "half the 16-84% width of E_pred/E_true over its median, after the response "
                                 "correction fitted on the held-out calibration events",
        "regressors": {name: s.to_dict() for name, s in scored.items()}, "headline": None}
    lo, hi = (g * 1e3 for g in config.headline_range_gev)
    headline_edges = np.unique(np.concatenate([[lo], edges[(edges > lo) & (edges < hi)], [hi]]))
    if "sum" in scored:
        for key, reference in references.items():
            ratio = paired_ratio(test.incident_energy, reference.test_pred, scored["sum"].test_pred, headline_edges,
                                 config.n_boot, seed)
            metrics[key] = {**reference.to_dict(), "vs_sum": ratio, **improvement(ratio)}
            if TRUTH_REFERENCES[key].features and "trees" in scored:  # what the truth adds to the same features
                ratio = paired_ratio(test.incident_energy, reference.test_pred, scored["trees"].test_pred,
                                     headline_edges, config.n_boot, seed)
                metrics[key]["vs_trees"] = {"ratio": ratio["overall"], "ratio_err": ratio["overall_err"],
                                            **improvement(ratio)}
    vs_sum: dict[str, dict[str, Any]] = {}  # every regressor against the sum on the same events and range
    if "sum" in scored:
        for name, s in scored.items():
            if name != "sum":
                vs_sum[name] = paired_ratio(test.incident_energy, s.test_pred, scored["sum"].test_pred,
                                            headline_edges, config.n_boot, seed)
        metrics["vs_sum"] = {name: {"ratio": r["overall"], "ratio_err": r["overall_err"], **improvement(r)}
                             for name, r in vs_sum.items()}
    if "cnn" not in scored:
        return metrics
    cnn = scored["cnn"]
    lo_gev, hi_gev = config.headline_range_gev
    headline: dict[str, Any] = {"range_gev": list(config.headline_range_gev), "cnn": cnn.label, "ratios": {}}
    for other, key in (("sum", "cnn_vs_sum"), ("trees", "cnn_vs_trees")):
        if other in scored:
            ratio = vs_sum["cnn"] if other == "sum" else paired_ratio(
                test.incident_energy, cnn.test_pred, scored[other].test_pred, headline_edges, config.n_boot, seed)
            headline["ratios"][key] = ratio
            headline[key] = {"statement": f"CNN resolution better than {other} at {lo_gev:g}-{hi_gev:g} GeV",
                             "ratio": ratio["overall"], "ratio_err": ratio["overall_err"], **improvement(ratio)}
    headline["linearity"] = {"statement": "CNN largest |<E_pred>/E - 1| over the test bins after the correction",
                             "max_abs_response_minus_1": linearity(cnn.table)["max_abs_mean_minus_1"]}
    headline["inference"] = {"statement": "inference (features included, one run)",
                             "events_per_s": {n: s.events_per_s for n, s in scored.items()},
                             "threads": config.threads}
    metrics["headline"] = headline
    return metrics


def _summary(metrics: dict[str, Any]) -> list[str]:
    lines = [f"{s['label']:60s} {s['fit_label'] or 'no fit'}" for s in metrics["regressors"].values()]
    for key, reference in TRUTH_REFERENCES.items():
        if key in metrics:
            b = metrics[key]
            line = (f"{reference.label} (simulator truth, not a regressor): {100 * b['improvement']:.1f} ± "
                    f"{100 * b['improvement_err']:.1f}% better than the sum")
            if "vs_trees" in b:
                line += (f", {100 * b['vs_trees']['improvement']:.1f} ± {100 * b['vs_trees']['improvement_err']:.1f}%"
                         " better than the trees")
            lines.append(line)
    if metrics.get("vs_sum"):
        lo, hi = metrics["config"]["headline_range_gev"]
        lines.append(f"better than the sum at {lo:g}-{hi:g} GeV: " + ", ".join(
            f"{name} {100 * g['improvement']:.1f} ± {100 * g['improvement_err']:.1f}%"
            for name, g in metrics["vs_sum"].items()))
    headline = metrics["headline"] or {}
    for key in ("cnn_vs_sum", "cnn_vs_trees"):
        if key in headline:
            h = headline[key]
            lines.append(f"{h['statement']}: {100 * h['improvement']:.1f} ± {100 * h['improvement_err']:.1f}%")
    if "linearity" in headline:
        lines.append(f"{headline['linearity']['statement']}: "
                     f"{100 * headline['linearity']['max_abs_response_minus_1']:.2f}%")
        speed = headline["inference"]["events_per_s"]
        lines.append(f"{headline['inference']['statement']} [events/s]: "
                     + ", ".join(f"{k} {v:.0f}" for k, v in speed.items()))
    return lines


def _table(config, metrics, scored) -> str:
    from calolab.studies import regression as reg

    lines = [f"# Pions in {config.detector}: {config.test_range_gev[0]:g}-{config.test_range_gev[1]:g} GeV test, "
             f"{config.train_range_gev[0]:g}-{config.train_range_gev[1]:g} GeV training", "",
             f"Readout: {metrics['readout']}.", ""]
    if metrics["cnn"]:
        lines += [f"CNN: {metrics['cnn']}.", ""]
    tables = {s.label: s.table for s in scored.values()}
    lines += ["## Resolution (68%, percent) per bin of true energy", "", *reg.per_bin_table(tables), "",
              "## Regressors", "", *reg.summary_rows(scored), "", "## Measured", ""]
    lines += [f"- {line}" for line in _summary(metrics)[len(scored):]]
    return "\n".join(lines) + "\n"


@click.command("pions")
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("runs/pions"), show_default=True)
@click.option("--quick", is_flag=True, help="1000 + 600 events, 2 small CNNs of 2 epochs (for tests).")
@click.option("--train-events", type=click.IntRange(min=200),
              help=f"Training pions, 5-250 GeV [{PionStudyConfig.train_events}].")
@click.option("--test-events", type=click.IntRange(min=100),
              help=f"Test pions, 10-200 GeV [{PionStudyConfig.test_events}].")
@click.option("--epochs", type=click.IntRange(min=1), help=f"CNN training epochs [{PionStudyConfig.epochs}].")
@click.option("--ensemble", type=click.IntRange(min=1), help=f"CNNs in the ensemble [{PionStudyConfig.ensemble}].")
@click.option("--pool", help=f"Cells summed per CNN input voxel: LAYER,X,Y [{as_option(PionStudyConfig.pool)}].")
@click.option("--channels", help=f"Channels of the CNN's residual blocks [{as_option(PionStudyConfig.channels)}].")
@click.option("--hit-classes", type=click.IntRange(min=0),
              help=f"Learned hit classes of the CNN, 0 for none [{PionStudyConfig.hit_classes}].")
@click.option("--zero-suppression", "zs", default="0.6", show_default=True,
              help="Readout threshold in MeV applied to every event, or 'none'.")
@click.option("--weight-decay", type=click.FloatRange(min=0),
              help=f"CNN AdamW weight decay [{PionStudyConfig.weight_decay}].")
@click.option("--threads", type=click.IntRange(min=1), help=f"torch and tree threads [{PionStudyConfig.threads}].")
@click.option("--workers", type=click.IntRange(min=1),
              help=f"CNNs trained at once, in separate processes, threads / workers each [{PionStudyConfig.workers}].")
@click.option("--mirror-y/--no-mirror-y", default=None,
              help=f"Mirror half of each CNN training batch in y [{PionStudyConfig.mirror_y}].")
@click.option("--mirror-x/--no-mirror-x", default=None,
              help=f"And in x, drawn apart from y [{PionStudyConfig.mirror_x}].")
@click.option("-s", "--seed", type=int, default=1, show_default=True)
def study_pions(out_dir: Path, quick: bool, train_events: int | None, test_events: int | None, epochs: int | None,
                ensemble: int | None, pool: str | None, channels: str | None, hit_classes: int | None, zs: str,
                weight_decay: float | None, threads: int | None, workers: int | None, mirror_y: bool | None,
                mirror_x: bool | None, seed: int) -> None:
    """CNN ensemble vs trees vs calibrated sums on cusi pi+ (paper 002)."""
    from calolab.effects.config import parse_threshold
    from calolab.ml.commands import _ints, _triple

    config = PionStudyConfig.quick() if quick else PionStudyConfig()
    config = with_overrides(config, train_events=train_events, test_events=test_events, epochs=epochs,
                            ensemble=ensemble, pool=_triple(pool) if pool else None,
                            channels=_ints(channels, "--channels") if channels else None, hit_classes=hit_classes,
                            weight_decay=weight_decay, threads=threads, workers=workers, mirror_y=mirror_y,
                            mirror_x=mirror_x, seed=seed)
    threshold = parse_threshold(zs)
    if threshold is not None and threshold < 0:
        raise CalolabError(f"--zero-suppression: expected a threshold >= 0 MeV or 'none', got {zs!r}")
    config = replace(config, zero_suppression_mev=threshold)
    run_pion_study(out_dir, config, echo=click.echo, progress=not quick)
