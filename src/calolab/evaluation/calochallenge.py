"""The CaloChallenge metrics of a cylindrical detector, defined as in CaloChallenge's ``evaluate.py``.

CaloChallenge 2022 (github.com/CaloChallenge/homepage, ``code/evaluate.py``,
``HighLevelFeatures.py``, ``XMLHandler.py``, ``evaluate_plotting_helper.py``) evaluates a
generated file of datasets 2 and 3 against the Geant4 reference; calolab reproduces its
definitions on the voxels ``(N, layers * n_alpha * n_r)`` in CaloChallenge's order
(layer, alpha, r) and energy scale (MeV deposited in silicon / sampling fraction, see
:mod:`calolab.io.calochallenge`):

* voxels below ``min_energy`` = 0.5 keV / 0.033 = 15.15 keV are set to 0 (its readout threshold);
* per layer: the energy ``E_l``; the centre of energy in x and y (CaloChallenge's "eta" and
  "phi": ``x = r cos alpha``, ``y = r sin alpha`` at the bin centres, mm) and in ``r``:
  ``sum(x E) / (E_l + 1e-16)``; the width ``sqrt(max(sum(x^2 E) / (E_l + 1e-16) - centre^2,
  0))``; the sparsity ``1 - (fraction of voxels with E > 0)``. An empty layer has centre and width 0;
* histograms, each normalised to unit sum over its bins (``density=True`` times the bin
  widths; entries outside the range are dropped): ``E_tot / E_inc`` in 100 bins on [0.5, 1.5];
  ``E_l`` in 39 log bins from ``min_energy`` to the reference's largest ``E_l``; centres in x,
  y in 100 bins on [-30, 30] mm and widths on [0, 30] mm (the limits of datasets 2 and 3);
  every voxel energy in 49 log bins from ``min_energy`` to the reference's largest voxel;
  and, defined in ``evaluate_plotting_helper.py`` (and in the published results) though
  ``evaluate.py``'s ``hist`` mode does not draw them: sparsity in 20 bins on [0, 1], centre
  in r on [0, 42] mm and width in r on [0, 20] mm (100 bins each);
* separation power of normalised histograms ``p``, ``q``: ``0.5 sum (p - q)^2 / (p + q + 1e-16)``
  (0: same, 1: disjoint), NaN where a histogram is empty in its range;
* classifier inputs (:mod:`~calolab.evaluation.calochallenge_classifier`): low level
  ``[log10 E_inc, voxels / E_inc]``; high level ``[log10 E_inc, log10(E_l + 1e-8),
  centre x / 100, centre y / 100, width x / 100, width y / 100, log10(E_tot + 1e-8),
  sparsity, centre r / 100, width r / 100]`` (per-layer blocks; x, y only where a layer has
  more than one alpha bin); FPD and KPD (:mod:`~calolab.evaluation.jetnet_distances`) on
  the high-level vector.

>>> import numpy as np
>>> from calolab.geometry import load_detector
>>> det = load_detector("calochallenge-ds2")
>>> voxels = np.zeros((1, det.n_cells)); voxels[0, [0, 8]] = 1.0  # layer 0, alpha bin 0, r bins 0 and 8
>>> f = challenge_features(ChallengeSample(voxels, np.array([10.0]), det))
>>> float(f.e_layer[0, 0]), round(float(f.ec_r[0, 0]), 3), round(float(f.width_r[0, 0]), 3), f.high_level().shape
(2.0, 20.925, 18.6, (1, 362))
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from calolab.errors import CalolabError
from calolab.evaluation.calochallenge_classifier import DNNRecipe, dnn_classifier_test
from calolab.evaluation.jetnet_distances import fpd_jetnet, kpd_jetnet
from calolab.geometry import Detector
from calolab.showers import Showers

MIN_ENERGY = 0.5e-3 / 0.033
"""CaloChallenge's voxel threshold of datasets 2 and 3 in MeV: 0.5 keV of silicon deposit / 0.033."""
LAYERED = ("e_layer", "ec_x", "ec_y", "width_x", "width_y", "sparsity", "ec_r", "width_r")
"""Per-layer features, ``(N, layers)`` each; ``evaluate.py`` draws the first five."""


@dataclass(frozen=True)
class CaloChallengeConfig:
    """Settings of the CaloChallenge metrics; defaults are ``evaluate.py``'s for dataset 2.

    ``fpd_min_samples``, ``fpd_max_samples``, ``kpd_batch_size``: ``None`` takes
    ``evaluate.py``'s 10,000, 50,000 and 10,000 of 100,000-event files scaled to the events
    compared (``N / 10``, ``N / 2``, ``N / 10``); ``fpd_kpd_seed`` is JetNet's default 42.
    ``classifier`` is the DNN recipe; ``low_level`` / ``high_level`` switch the two tests.
    """

    min_energy: float = MIN_ENERGY
    low_level: bool = True
    high_level: bool = True
    classifier: DNNRecipe = DNNRecipe()
    fpd_min_samples: int | None = None
    fpd_max_samples: int | None = None
    fpd_batches: int = 20
    fpd_points: int = 10
    kpd_batches: int = 10
    kpd_batch_size: int | None = None
    kpd_degree: int = 4
    fpd_kpd_seed: int = 42


@dataclass(frozen=True)
class ChallengeSample:
    """Voxels ``(N, C)`` MeV on CaloChallenge's scale (order layer, alpha, r), incident energies ``(N,)`` MeV."""

    voxels: np.ndarray
    incident: np.ndarray
    detector: Detector

    def __post_init__(self) -> None:
        if self.detector.cylinder is None:
            raise CalolabError(f"CaloChallenge metrics: detector {self.detector.name!r} is not cylindrical "
                               "(layer, alpha, r); use calolab's own metrics")
        if self.voxels.shape != (len(self.incident), self.detector.n_cells):
            raise CalolabError(f"CaloChallenge metrics: voxels {self.voxels.shape}, expected ({len(self.incident)}, "
                               f"{self.detector.n_cells})")

    def __len__(self) -> int:
        return len(self.incident)

    def thresholded(self, min_energy: float) -> ChallengeSample:
        """Voxels below ``min_energy`` (MeV) set to 0, as ``evaluate.py`` does on reading."""
        return ChallengeSample(np.where(self.voxels < min_energy, 0.0, self.voxels).astype(np.float32),
                               self.incident, self.detector)

    def subset(self, index: np.ndarray) -> ChallengeSample:
        return ChallengeSample(self.voxels[index], self.incident[index], self.detector)


def challenge_sample(showers: Showers, fraction: np.ndarray | None = None) -> ChallengeSample:
    """The CaloChallenge view of calolab showers: visible energies divided by each layer's sampling fraction.

    ``fraction`` ``(layers,)``: what the file's reader multiplied by (see
    :func:`calolab.io.calochallenge.read_calochallenge`); default: the detector's own
    electromagnetic visible fraction, the scale :func:`~calolab.io.calochallenge.write_calochallenge`
    writes, so that the voxels are the numbers in the file.
    """
    from calolab.io.calochallenge import sampling_fractions

    det = showers.detector
    if det.cylinder is None:
        raise CalolabError(f"CaloChallenge metrics: detector {det.name!r} is not cylindrical (layer, alpha, r); "
                           "use calolab's own metrics")
    fraction = sampling_fractions(det, "calochallenge") if fraction is None else np.asarray(fraction, np.float64)
    voxels = np.empty((len(showers), det.n_cells), np.float32)
    for start, dense in showers.iter_dense(4096):  # (B, layers, n_alpha, n_r) visible MeV
        voxels[start : start + len(dense)] = (dense / fraction[None, :, None, None]).reshape(len(dense), -1)
    return ChallengeSample(voxels, np.asarray(showers.incident_energy, np.float64), det)


def file_fractions(path: str | Path, detector: Detector, reading: dict[str, Any] | None = None) -> np.ndarray | None:
    """The sampling fractions ``(layers,)`` calolab's reader multiplied the energies of ``path`` by.

    For a CaloChallenge-layout HDF5 file on a cylindrical detector: what its attributes say
    (or, without them, the detector's own fraction); ``None`` otherwise (the file holds
    visible energies, and :func:`challenge_sample` divides by the detector's own fraction).
    """
    import h5py

    from calolab.io.calochallenge import _stored_scale
    from calolab.io.hdf5 import layout

    path = Path(path)
    if detector.cylinder is None or not path.is_file() or not h5py.is_hdf5(path):
        return None
    with h5py.File(path, "r") as f:
        if layout(f) != "calochallenge":
            return None
        return _stored_scale(f, path, detector, (reading or {}).get("layout"), (reading or {}).get("sampling_fraction"))


@dataclass(frozen=True)
class ChallengeFeatures:
    """CaloChallenge's high-level features of ``N`` events in ``L`` layers (MeV and mm).

    ``e_inc``, ``e_tot`` ``(N,)``; every name of :data:`LAYERED` ``(N, L)``; ``alpha_binned``
    says which layers have centre and width in x and y.
    """

    e_inc: np.ndarray
    e_tot: np.ndarray
    e_layer: np.ndarray
    ec_x: np.ndarray
    ec_y: np.ndarray
    width_x: np.ndarray
    width_y: np.ndarray
    sparsity: np.ndarray
    ec_r: np.ndarray
    width_r: np.ndarray
    alpha_binned: np.ndarray

    def high_level(self) -> np.ndarray:
        """The classifier's and FPD/KPD's features ``(N, 2 + 4 L + 4 L_alpha)``; ``L_alpha``: alpha-binned layers."""
        xy = [a[:, self.alpha_binned] / 1e2 for a in (self.ec_x, self.ec_y, self.width_x, self.width_y)]
        return np.column_stack([np.log10(self.e_inc), np.log10(self.e_layer + 1e-8), *xy,
                                np.log10(self.e_tot + 1e-8), self.sparsity, self.ec_r / 1e2, self.width_r / 1e2])


def challenge_features(sample: ChallengeSample, chunk: int = 4096) -> ChallengeFeatures:
    """CaloChallenge's per-layer features of a (thresholded) sample, ``chunk`` events at a time."""
    det, grid = sample.detector, sample.detector.cylinder
    alpha, r = np.meshgrid(grid.alpha_centres, grid.r_centres, indexing="ij")  # (n_alpha, n_r)
    coords = {"x": (r * np.cos(alpha)).ravel(), "y": (r * np.sin(alpha)).ravel(), "r": r.ravel()}  # (A * R,) mm
    n, layers = len(sample), det.n_layers
    out = {name: np.zeros((n, layers)) for name in LAYERED}
    e_tot = np.zeros(n)
    for lo in range(0, n, chunk):
        v = sample.voxels[lo : lo + chunk].astype(np.float64).reshape(-1, layers, grid.n_alpha * grid.n_r)
        e = v.sum(-1)  # (B, L)
        out["e_layer"][lo : lo + chunk] = e
        e_tot[lo : lo + chunk] = e.sum(-1)
        out["sparsity"][lo : lo + chunk] = 1.0 - (v > 0).mean(-1)
        for axis, c in coords.items():
            centre = (v * c).sum(-1) / (e + 1e-16)
            second = (v * c * c).sum(-1) / (e + 1e-16)
            out[f"ec_{axis}"][lo : lo + chunk] = centre
            out[f"width_{axis}"][lo : lo + chunk] = np.sqrt(np.clip(second - centre**2, 0.0, None))
    return ChallengeFeatures(e_inc=sample.incident, e_tot=e_tot, **out,
                             alpha_binned=np.full(layers, grid.n_alpha > 1))


def low_level(sample: ChallengeSample) -> np.ndarray:
    """The low-level classifier's input ``(N, 1 + C)``: ``[log10 E_inc, voxels / E_inc]``."""
    return np.column_stack([np.log10(sample.incident), sample.voxels / sample.incident[:, None]])


def separation_power(reference: np.ndarray, other: np.ndarray, edges: np.ndarray) -> float:
    """CaloChallenge's separation power of two samples histogrammed on ``edges`` (each normalised to unit sum).

    >>> edges = np.linspace(0.0, 2.0, 3)
    >>> separation_power(np.array([0.5, 0.5]), np.array([1.5, 1.5]), edges), separation_power(edges, edges, edges)
    (1.0, 0.0)
    """
    edges = np.asarray(edges, np.float64)
    if edges.ndim != 1 or len(edges) < 2 or not np.all(np.diff(edges) > 0):
        return float("nan")
    p, q = (np.histogram(np.ravel(a), edges)[0].astype(np.float64) for a in (reference, other))
    if p.sum() == 0 or q.sum() == 0:
        return float("nan")
    p, q = p / p.sum(), q / q.sum()
    return float(0.5 * np.sum((p - q) ** 2 / (p + q + 1e-16)))


def _log_edges(low: float, high: float, n: int) -> np.ndarray:
    return np.logspace(np.log10(low), np.log10(high), n) if high > low > 0 else np.array([])


def separation_powers(ref: ChallengeFeatures, other: ChallengeFeatures, ref_voxels: np.ndarray,
                      other_voxels: np.ndarray, min_energy: float = MIN_ENERGY) -> dict[str, Any]:
    """Separation power of every histogram: ``{"etot_einc": x, "voxel": x, "e_layer": [per layer], ...}``."""
    lin = {"ec_x": (-30.0, 30.0, 101), "ec_y": (-30.0, 30.0, 101), "width_x": (0.0, 30.0, 101),
           "width_y": (0.0, 30.0, 101), "sparsity": (0.0, 1.0, 21), "ec_r": (0.0, 42.0, 101),
           "width_r": (0.0, 20.0, 101)}
    out: dict[str, Any] = {
        "etot_einc": separation_power(ref.e_tot / ref.e_inc, other.e_tot / other.e_inc, np.linspace(0.5, 1.5, 101)),
        "voxel": separation_power(ref_voxels, other_voxels, _log_edges(min_energy, float(np.max(ref_voxels)), 50)),
        "e_layer": [separation_power(ref.e_layer[:, k], other.e_layer[:, k],
                                     _log_edges(min_energy, float(ref.e_layer[:, k].max()), 40))
                    for k in range(ref.e_layer.shape[1])],
    }
    for name, (lo, hi, n) in lin.items():
        in_xy = name in ("ec_x", "ec_y", "width_x", "width_y")  # only layers with more than one alpha bin
        layers = np.flatnonzero(ref.alpha_binned) if in_xy else range(ref.e_layer.shape[1])
        out[name] = [separation_power(getattr(ref, name)[:, k], getattr(other, name)[:, k], np.linspace(lo, hi, n))
                     for k in layers]
    return out


def compare_challenge(reference: ChallengeSample, other: ChallengeSample, config: CaloChallengeConfig, seed: int,
                      reference_features: ChallengeFeatures | None = None) -> dict[str, Any]:
    """Every CaloChallenge metric of ``other`` against ``reference`` (both thresholded); seeded by ``seed``."""
    seeds = [int(s % 2**31) for s in np.random.SeedSequence(seed).generate_state(2)]
    timings: dict[str, float] = {}
    start = time.perf_counter()
    f_ref = reference_features or challenge_features(reference)
    f_other = challenge_features(other)
    powers = separation_powers(f_ref, f_other, reference.voxels, other.voxels, config.min_energy)
    timings["histograms"] = time.perf_counter() - start
    h_ref, h_other = f_ref.high_level(), f_other.high_level()
    classifiers: dict[str, Any] = {}
    if config.low_level:
        start = time.perf_counter()
        classifiers["low"] = dnn_classifier_test(low_level(reference), low_level(other), config.classifier,
                                                 seeds[0]).summary()
        timings["classifier_low"] = time.perf_counter() - start
    if config.high_level:
        start = time.perf_counter()
        classifiers["high"] = dnn_classifier_test(h_ref, h_other, config.classifier, seeds[1]).summary()
        timings["classifier_high"] = time.perf_counter() - start
    n = min(len(reference), len(other))
    sizes = {"min_samples": config.fpd_min_samples or max(n // 10, 2),
             "max_samples": config.fpd_max_samples or max(n // 2, 2),
             "batch_size": config.kpd_batch_size or max(n // 10, 2)}
    start = time.perf_counter()
    fpd, fpd_err, fpd_sizes, fpd_values = fpd_jetnet(h_ref, h_other, sizes["min_samples"], sizes["max_samples"],
                                                     config.fpd_batches, config.fpd_points, config.fpd_kpd_seed)
    timings["fpd"] = time.perf_counter() - start
    start = time.perf_counter()
    kpd, kpd_err, kpd_values = kpd_jetnet(h_ref, h_other, config.kpd_batches, sizes["batch_size"],
                                          config.fpd_kpd_seed, config.kpd_degree)
    timings["kpd"] = time.perf_counter() - start
    groups = {k: {"mean": float(np.nanmean(v)), "max": float(np.nanmax(v))}
              for k, v in powers.items() if isinstance(v, list) and np.any(np.isfinite(v))}
    return {"classifier": classifiers, "fpd": {"value": fpd, "error": fpd_err},
            "kpd": {"value": kpd, "error": kpd_err}, "separation_power": powers, "separation_power_layers": groups,
            "fpd_points": {"batch_size": fpd_sizes, "value": fpd_values}, "kpd_batches": kpd_values,
            "sizes": sizes, "seconds": timings}


def calochallenge_metrics(reference: ChallengeSample, generated: ChallengeSample, floor: ChallengeSample,
                          config: CaloChallengeConfig | None = None, seed: int = 0) -> dict[str, Any]:
    """The CaloChallenge metrics of ``generated`` and of the ``floor`` sample, both against ``reference``.

    The three samples are thresholded at ``config.min_energy`` first; the floor is an
    independent reference sample of the generated sample's size (see
    :func:`calolab.evaluation.report.prepare_samples`).
    """
    config = config or CaloChallengeConfig()
    reference, generated, floor = (s.thresholded(config.min_energy) for s in (reference, generated, floor))
    f_ref = challenge_features(reference)
    return {"generated": compare_challenge(reference, generated, config, seed, f_ref),
            "floor": compare_challenge(reference, floor, config, seed, f_ref),
            "config": config_dict(config)}


def config_dict(config: CaloChallengeConfig) -> dict[str, Any]:
    return asdict(config)


def config_from_options(options: dict[str, str], base: CaloChallengeConfig | None = None) -> CaloChallengeConfig:
    """``base`` with ``KEY=VALUE`` options applied: fields of :class:`CaloChallengeConfig`, or ``cls_<field>``
    for the classifier recipe (:class:`~calolab.evaluation.calochallenge_classifier.DNNRecipe`).

    >>> config_from_options({"cls_epochs": "5", "kpd_batch_size": "200", "low_level": "false"}).classifier.epochs
    5
    """
    base = base or CaloChallengeConfig()
    top = {f.name: f for f in fields(CaloChallengeConfig) if f.name != "classifier"}
    recipe = {f"cls_{f.name}": f for f in fields(DNNRecipe)}
    changes: dict[str, Any] = {}
    recipe_changes: dict[str, Any] = {}
    for key, text in options.items():
        if key not in top and key not in recipe:
            raise CalolabError(f"--cc-set {key}: unknown setting; expected one of {', '.join([*top, *recipe])}")
        current = getattr(base.classifier, key[4:]) if key in recipe else getattr(base, key)
        (recipe_changes if key in recipe else changes)[key[4:] if key in recipe else key] = _parse(key, text, current)
    import dataclasses

    return dataclasses.replace(base, classifier=dataclasses.replace(base.classifier, **recipe_changes), **changes)


def _parse(key: str, text: str, current: Any) -> Any:
    try:
        if isinstance(current, bool):
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return text.lower() in ("true", "1", "yes")
        if isinstance(current, tuple):
            return tuple(float(t) for t in text.split(","))
        if text.lower() == "none":
            return None
        if isinstance(current, float):
            return float(text)
        return int(text)
    except ValueError:
        raise CalolabError(f"--cc-set {key}={text}: expected a value like {current!r}") from None


TABLE_ROWS = (
    ("classifier AUC, low-level", ("classifier", "low", "auc")),
    ("classifier AUC, high-level", ("classifier", "high", "auc")),
    ("classifier JSD, low-level", ("classifier", "low", "jsd")),
    ("classifier JSD, high-level", ("classifier", "high", "jsd")),
    ("FPD x 10^3", ("fpd",)),
    ("KPD x 10^3", ("kpd",)),
    ("separation power, E_tot / E_inc", ("separation_power", "etot_einc")),
    ("separation power, voxel energy", ("separation_power", "voxel")),
    *((f"separation power, {name} (mean / max over layers)", ("separation_power_layers", name)) for name in LAYERED),
)
PUBLISHED = """\
Comparing with the published table: CaloChallenge's results (arXiv:2410.21611; the numbers in
`final_results/CaloChallenge_results_ds2.hdf` of github.com/CaloChallenge/homepage) were computed
on 100,000 generated against 100,000 Geant4 showers of dataset 2, with the classifier trained on
60,000 / 20,000 / 20,000 events per class, 2048 hidden units and 50 epochs. There the Geant4 against
Geant4 row reads AUC 0.500 (low level) and 0.499 (high level), FPD x 10^3 = 10.8 +- 0.8 and
KPD x 10^3 = -0.03 +- 0.02, and the best submission AUC 0.53 (low level) and 0.52 (high level).
A model is set beside that table by evaluating 100,000 of its showers against the dataset-2
reference file with the default settings; on fewer events, or with a smaller classifier, every
number moves away from the ideal (AUC 0.5, separation power 0), and the floor column says how far
the simulator itself lies at the same size and settings.
"""


def _cell(side: dict[str, Any], path: tuple[str, ...]) -> str:
    node: Any = side
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return "-"
        node = node[key]
    if path[0] in ("fpd", "kpd"):
        return f"{node['value'] * 1e3:.3f} +- {node['error'] * 1e3:.3f}"
    if path[0] == "separation_power_layers":
        return f"{node['mean']:.3g} / {node['max']:.3g}"
    return f"{node:.4f}" if path[0] == "classifier" else f"{node:.3g}"


def challenge_rows(metrics: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``(metric, generated, floor)`` strings of the CaloChallenge section of ``metrics.json``."""
    return [(label, _cell(metrics["generated"], path), _cell(metrics["floor"], path)) for label, path in TABLE_ROWS]


def challenge_table(metrics: dict[str, Any], events: dict[str, int] | None = None) -> str:
    """A Markdown table of the CaloChallenge metrics, the floor beside each, and how to read it."""
    lines = ["| metric | generated | floor (reference vs reference) |", "| --- | ---: | ---: |"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in challenge_rows(metrics)]
    head = "# CaloChallenge metrics\n\n"
    if events:
        head += (f"{events['reference']} reference, {events['generated']} generated and {events['floor']} floor "
                 "events; separation powers per layer, and sizes and timings, are in metrics.json.\n\n")
    recipe, sizes = metrics["config"]["classifier"], metrics["generated"]["sizes"]
    settings = (f"Classifier: {recipe['n_layer'] + 1} hidden layers of {recipe['n_hidden']}, {recipe['epochs']} "
                f"epochs, learning rate {recipe['lr']:g}, batch {recipe['batch_size']}, split "
                f"{'/'.join(f'{s:g}' for s in recipe['split'])}; FPD on batches of {sizes['min_samples']} to "
                f"{sizes['max_samples']} events, KPD on batches of {sizes['batch_size']}.\n\n")
    return head + "\n".join(lines) + "\n\n" + settings + PUBLISHED
