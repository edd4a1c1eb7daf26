"""The evaluation of a generative model: every metric for the generated sample and for the floor.

The floor is the same metric for the simulator against an independent simulator sample:
a model cannot be told apart from the simulator better than the simulator from itself on
the same number of events. Without a second reference the reference is split in halves
(half as reference, half as floor). The generated and the floor sample are cut to the same
number of events (a seeded random subset of the larger), so that the two columns compare.

``evaluate`` writes one run folder: ``config.yaml``, ``metrics.json`` and the figures (with
CaloChallenge's metrics, :mod:`~calolab.evaluation.calochallenge`, also ``table.md``).
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from calolab.errors import CalolabError
from calolab.evaluation.calochallenge import (
    CaloChallengeConfig,
    calochallenge_metrics,
    challenge_sample,
    challenge_table,
    config_dict,
)
from calolab.evaluation.classifier import ClassifierResult, classifier_test
from calolab.evaluation.distances import ObservableComparison, compare_observable
from calolab.evaluation.features import (
    LAYERED,
    SCALARS,
    HighLevelFeatures,
    check_compatible,
    high_level_features,
    low_level_inputs,
)
from calolab.evaluation.physics_distances import DistanceEstimate, fpd, kpd
from calolab.showers import Showers


@dataclass(frozen=True)
class EvaluationConfig:
    """Settings of the evaluation; written as ``config.yaml`` in the run folder (with the seed and inputs).

    ``mip_fraction``: hit threshold of ``n_hits`` in units of the layer's MIP MPV; ``bins``:
    quantile bins per histogram; ``low_level_floor``: ``floor`` of
    :func:`~calolab.evaluation.features.low_level_inputs`; ``all_layer_figures``: a histogram
    figure with every layer per per-layer observable (slow); ``threads``: OpenMP/BLAS threads
    while comparing (``None``: the libraries' default; one is the fastest for samples of a few
    thousand events on a shared machine, where more threads mostly wait for each other).
    """

    mip_fraction: float = 0.5
    bins: int = 30
    split: tuple[float, float, float] = (0.6, 0.2, 0.2)
    hgb_max_iter: int = 300
    low_level: bool = True
    low_level_floor: float = 1e-7
    mlp_hidden: tuple[int, ...] = (128, 64)
    mlp_max_iter: int = 100
    threads: int | None = 1
    fpd_points: int = 10
    fpd_batches: int = 20
    fpd_min_fraction: float = 0.4
    fpd_max_size: int = 50_000
    kpd_batches: int = 10
    kpd_batch_size: int = 5000
    kpd_degree: int = 3
    all_layer_figures: bool = False


@dataclass
class Comparison:
    """Reference against one other sample: per-observable histograms, classifiers, FPD and KPD."""

    observables: dict[str, ObservableComparison]
    classifiers: dict[str, ClassifierResult]
    fpd: DistanceEstimate
    kpd: DistanceEstimate
    features: HighLevelFeatures
    timings: dict[str, float] = field(default_factory=dict)

    def group_separation(self) -> dict[str, dict[str, float]]:
        """Mean and maximum separation power and W1 over the layers of every per-layer observable."""
        out = {}
        for group in LAYERED:
            sp = np.array([c.separation_power for k, c in self.observables.items() if k.startswith(group + "_")])
            w1 = np.array([c.w1 for k, c in self.observables.items() if k.startswith(group + "_")])
            out[group] = {"separation_power_mean": float(np.nanmean(sp)), "separation_power_max": float(np.nanmax(sp)),
                          "w1_mean": float(np.nanmean(w1)), "w1_max": float(np.nanmax(w1))}
        return out

    def metrics(self) -> dict[str, Any]:
        return {
            "classifier": {name: result.summary() for name, result in self.classifiers.items()},
            "fpd": self.fpd.summary(),
            "kpd": self.kpd.summary(),
            "observables": {name: c.summary() for name, c in self.observables.items()},
            "layer_groups": self.group_separation(),
            "fpd_points": {"batch_size": self.fpd.sizes, "value": self.fpd.values},
            "kpd_batches": self.kpd.values,
            "seconds": self.timings,
        }


def limit_threads(threads: int | None):
    """A context limiting OpenMP/BLAS threads (threadpoolctl, installed with scikit-learn); a no-op for ``None``."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return nullcontext()
    return threadpool_limits(threads) if threads is not None else nullcontext()


def compare(reference: Showers, other: Showers, config: EvaluationConfig, seed: int,
            reference_features: HighLevelFeatures | None = None) -> Comparison:
    """Every metric of ``other`` against ``reference`` (same detector grid); seeded by ``seed``."""
    check_compatible(reference, other, names=("reference", "other"))
    with limit_threads(config.threads):
        return _compare(reference, other, config, seed, reference_features)


def _compare(reference: Showers, other: Showers, config: EvaluationConfig, seed: int,
             reference_features: HighLevelFeatures | None) -> Comparison:
    seeds = [int(s % 2**31) for s in np.random.SeedSequence(seed).generate_state(4)]
    timings: dict[str, float] = {}
    start = time.perf_counter()
    f_ref = reference_features
    if f_ref is None:
        f_ref = high_level_features(reference, config.mip_fraction)
    f_other = high_level_features(other, config.mip_fraction)
    other_columns = f_other.observables()
    observables = {name: compare_observable(a, other_columns[name], config.bins)
                   for name, a in f_ref.observables().items()}
    observables["cell_energy"] = compare_observable(reference.energy, other.energy, config.bins)
    timings["histograms"] = time.perf_counter() - start

    x_ref, _ = f_ref.matrix()
    x_other, _ = f_other.matrix()
    x_ref = np.column_stack([x_ref, np.log10(np.maximum(reference.incident_energy, 1e-3))])
    x_other = np.column_stack([x_other, np.log10(np.maximum(other.incident_energy, 1e-3))])
    options = dict(fractions=config.split, threads=config.threads)
    start = time.perf_counter()
    classifiers = {"high": classifier_test(x_ref, x_other, "hgb", seeds[0], max_iter=config.hgb_max_iter, **options)}
    timings["classifier_high"] = time.perf_counter() - start
    if config.low_level:
        start = time.perf_counter()
        classifiers["low"] = classifier_test(low_level_inputs(reference, config.low_level_floor),
                                             low_level_inputs(other, config.low_level_floor), "mlp", seeds[1],
                                             max_iter=config.mlp_max_iter, hidden=config.mlp_hidden, **options)
        timings["classifier_low"] = time.perf_counter() - start

    start = time.perf_counter()
    fpd_estimate = fpd(x_ref, x_other, seeds[2], config.fpd_points, config.fpd_batches, config.fpd_min_fraction,
                       config.fpd_max_size)
    timings["fpd"] = time.perf_counter() - start
    start = time.perf_counter()
    kpd_estimate = kpd(x_ref, x_other, seeds[3], config.kpd_batches, config.kpd_batch_size, config.kpd_degree)
    timings["kpd"] = time.perf_counter() - start
    return Comparison(observables, classifiers, fpd_estimate, kpd_estimate, f_other, timings)


def _subset(showers: Showers, n: int, rng: np.random.Generator) -> Showers:
    return showers if len(showers) == n else showers[np.sort(rng.choice(len(showers), n, replace=False))]


def prepare_samples(reference: Showers, generated: Showers, floor: Showers | None,
                    seed: int) -> tuple[Showers, Showers, Showers]:
    """``(reference, generated, floor)``: the reference split in halves if no floor is given, and
    generated and floor cut to the same number of events (seeded)."""
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
    if floor is None:
        order = rng.permutation(len(reference))
        half = len(reference) // 2
        reference, floor = reference[np.sort(order[:half])], reference[np.sort(order[half:])]
    n = min(len(generated), len(floor))
    return reference, _subset(generated, n, rng), _subset(floor, n, rng)


SUITES = ("auto", "calolab", "calochallenge", "all")
"""``metrics=`` of :func:`evaluate`: ``auto`` is ``calochallenge`` on a cylindrical detector, else ``calolab``."""


def resolve_suite(suite: str, reference: Showers) -> str:
    """``calolab``, ``calochallenge`` or ``all`` for ``suite`` on the reference's detector."""
    if suite not in SUITES:
        raise CalolabError(f"metrics: unknown suite {suite!r}; expected one of {', '.join(SUITES)}")
    if suite == "auto":
        return "calochallenge" if reference.detector.cylinder is not None else "calolab"
    return suite


def evaluate(reference: Showers, generated: Showers, out_dir: str | Path, floor: Showers | None = None,
             seed: int = 0, config: EvaluationConfig | None = None, sources: dict[str, str] | None = None,
             figures: bool = True, metrics: str = "calolab", calochallenge: CaloChallengeConfig | None = None,
             fractions: dict[str, np.ndarray | None] | None = None) -> dict[str, Any]:
    """Compare ``generated`` with ``reference`` (and the floor) and write the run folder ``out_dir``.

    Parameters
    ----------
    reference, generated
        Showers of the same detector grid (a :class:`~calolab.errors.CalolabError` otherwise).
    floor
        An independent simulator sample; ``None`` splits ``reference`` in halves.
    sources
        Where the samples came from (file names), recorded in ``config.yaml``.
    metrics
        One of :data:`SUITES`: calolab's metrics (this module), CaloChallenge's
        (:mod:`~calolab.evaluation.calochallenge`, cylindrical detectors, also written as
        ``table.md``), or both.
    calochallenge, fractions
        Settings of the CaloChallenge metrics, and the sampling fractions ``(layers,)`` the
        readers of ``reference``, ``generated`` and ``floor`` multiplied the files' energies
        by (see :func:`~calolab.evaluation.calochallenge.challenge_sample`; default: the
        detector's own).

    Returns
    -------
    dict
        The content of ``metrics.json``: ``generated`` and ``floor`` metrics (calolab's),
        ``calochallenge`` (its own ``generated`` and ``floor``), ``events``, ``seconds``.
    """
    from calolab.io.rundir import write_config, write_json

    config = config or EvaluationConfig()
    names = ("reference", "generated", "floor")
    check_compatible(*(s for s in (reference, generated, floor) if s is not None),
                     names=names if floor is not None else names[:2])
    suite = resolve_suite(metrics, reference)
    start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fractions = dict(fractions or {})
    if floor is None:
        fractions["floor"] = fractions.get("reference")
    challenge = None
    if suite != "calolab":
        challenge = calochallenge or CaloChallengeConfig()
    write_config(out, {"seed": seed, "floor": "given" if floor is not None else "reference halves",
                       "inputs": sources or {}, "metrics": suite,
                       **(asdict(config) if suite != "calochallenge" else {}),
                       **({"calochallenge": config_dict(challenge)} if challenge is not None else {})})
    reference, generated, floor = prepare_samples(reference, generated, floor, seed)
    metrics_out: dict[str, Any] = {}
    if suite != "calochallenge":
        metrics_out = _calolab_metrics(reference, generated, floor, config, seed, out, figures)
    metrics_out["events"] = {"reference": len(reference), "generated": len(generated), "floor": len(floor)}
    metrics_out["detector"] = reference.detector.name
    if challenge is not None:
        from calolab.io.atomic import atomic_path

        samples = {name: challenge_sample(s, fractions.get(name))
                   for name, s in zip(names, (reference, generated, floor), strict=True)}
        with limit_threads(challenge.classifier.threads):
            metrics_out["calochallenge"] = calochallenge_metrics(*samples.values(), config=challenge, seed=seed)
        with atomic_path(out / "table.md") as tmp:
            tmp.write_text(challenge_table(metrics_out["calochallenge"], metrics_out["events"]))
    metrics_out["seconds"] = time.perf_counter() - start
    write_json(out / "metrics.json", metrics_out)
    return metrics_out


def _calolab_metrics(reference: Showers, generated: Showers, floor: Showers, config: EvaluationConfig, seed: int,
                     out: Path, figures: bool) -> dict[str, Any]:
    f_ref = high_level_features(reference, config.mip_fraction)
    results = {"generated": compare(reference, generated, config, seed, f_ref),
               "floor": compare(reference, floor, config, seed, f_ref)}
    metrics: dict[str, Any] = {name: c.metrics() for name, c in results.items()}
    if figures:
        from calolab.evaluation.plots import write_figures

        plot_start = time.perf_counter()
        metrics["figures"] = [p.name for p in write_figures(out, f_ref, results, config.all_layer_figures)]
        metrics["seconds_figures"] = time.perf_counter() - plot_start
    return metrics


TABLE_ROWS = (
    ("classifier AUC, high-level", ("classifier", "high", "auc")),
    ("classifier AUC, low-level", ("classifier", "low", "auc")),
    ("classifier JSD, high-level", ("classifier", "high", "jsd")),
    ("classifier JSD, low-level", ("classifier", "low", "jsd")),
    ("FPD", ("fpd", "value")),
    ("KPD", ("kpd", "value")),
)


def summary_rows(metrics: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``(metric, generated, floor)`` strings for the headline metrics and the mean separation powers."""

    def get(side: str, path: tuple[str, ...]) -> float | None:
        node: Any = metrics[side]
        for key in path:
            if not isinstance(node, dict) or key not in node:
                return None
            node = node[key]
        return node

    def fmt(side: str, path: tuple[str, ...]) -> str:
        value = get(side, path)
        if value is None:
            return "-"
        if path[0] in ("fpd", "kpd"):
            return f"{value:.3g} +- {get(side, (path[0], 'error')):.2g}"
        if path[0] == "classifier":
            return f"{value:.4f}"
        return f"{value:.2g}"

    rows = [(label, fmt("generated", path), fmt("floor", path)) for label, path in TABLE_ROWS]
    for name in (*SCALARS, "cell_energy"):
        path = ("observables", name, "separation_power")
        rows.append((f"separation power, {name}", fmt("generated", path), fmt("floor", path)))
    for group in LAYERED:
        path = ("layer_groups", group, "separation_power_mean")
        rows.append((f"separation power, {group} (layer mean)", fmt("generated", path), fmt("floor", path)))
    return rows


def format_table(metrics: dict[str, Any]) -> str:
    """The summary rows as an aligned text table: metric / generated / floor."""
    rows = [("metric", "generated", "floor"), *summary_rows(metrics)]
    widths = [max(len(r[k]) for r in rows) for k in range(3)]
    return "\n".join(f"{a:<{widths[0]}}  {b:>{widths[1]}}  {c:>{widths[2]}}" for a, b, c in rows)
