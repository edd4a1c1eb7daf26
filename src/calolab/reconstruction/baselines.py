"""Baseline energy regressors: the calibrated sum, layer weights, software compensation, and boosted trees.

Each follows :class:`~calolab.reconstruction.regressor.Regressor` (``name``, ``predict``)
and adds ``fit(train) -> self``. The sum and the layer weights store their few numbers
with ``to_dict`` / ``from_dict`` (JSON, see :func:`save_regressor`); the trees stay in
memory (scikit-learn models have no pickle-free format unless skops is installed, and it
is not a calolab dependency): refit them from the training set, which is seeded.

>>> import numpy as np
>>> from calolab.geometry import load_detector
>>> from calolab.simulation import Beam, simulate
>>> det = load_detector("ahcal")
>>> train = simulate(det, Beam("pi+", energy_min=10e3, energy_max=50e3, spectrum="uniform"), 100, seed=1)
>>> model = SumRegressor().fit(train)
>>> bool(abs(np.median(model.predict(train) / train.incident_energy) - 1) < 0.05)
True
>>> SumRegressor.from_dict(model.to_dict()).predict(train[:2]).tolist() == model.predict(train[:2]).tolist()
True
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from calolab.errors import CalolabError
from calolab.reconstruction.features import DEFAULT_SEGMENTS, DEFAULT_THRESHOLDS_MIP, high_level_features, segment_sums
from calolab.reconstruction.sums import weighted_sum
from calolab.showers import Showers

MUON_CODES = (13, -13)


def _check_train(train: Showers, minimum: int, who: str) -> np.ndarray:
    if len(train) < minimum:
        raise CalolabError(f"{who}: need at least {minimum} training events, got {len(train)}")
    return train.incident_energy


def _from_dict(cls, data: dict, kind: str):
    if data.get("kind") != kind:
        raise CalolabError(f"expected a {kind!r} regressor, got kind {data.get('kind')!r}")
    return cls(**{k: v for k, v in data.items() if k != "kind"})


@dataclass
class SumRegressor:
    """``E = slope * S + offset`` with ``S`` the sampling-weighted sum (MeV), least squares on the training set.

    ``rear_leakage`` adds the leakage estimate of :func:`~calolab.reconstruction.sums.weighted_sum`.
    """

    name: str = "sum"
    rear_leakage: bool = False
    slope: float = float("nan")
    offset: float = float("nan")  # MeV

    def fit(self, train: Showers) -> SumRegressor:
        e_true = _check_train(train, 2, self.name)
        s = weighted_sum(train, rear_leakage=self.rear_leakage)
        self.slope, self.offset = (float(v) for v in np.polyfit(s, e_true, 1))
        return self

    def predict(self, showers: Showers) -> np.ndarray:
        """Estimated energy per event, MeV, float64 (N,)."""
        if not np.isfinite(self.slope):
            raise CalolabError(f"{self.name}: fit the regressor before predicting")
        return self.slope * weighted_sum(showers, rear_leakage=self.rear_leakage) + self.offset

    def to_dict(self) -> dict:
        return {"kind": "sum", "name": self.name, "rear_leakage": self.rear_leakage, "slope": self.slope,
                "offset": self.offset}

    @classmethod
    def from_dict(cls, data: dict) -> SumRegressor:
        return _from_dict(cls, data, "sum")


@dataclass
class LayerWeightedRegressor:
    """``E = sum_k w_k S_k + offset`` over depth-segment sums ``S_k`` (sampling-weighted, MeV).

    Ridge-regularised towards the common weight of the calibrated sum: minimises
    ``|E - S w - offset|^2 + lam |w - w_sum|^2`` with ``lam = alpha * mean_k(S_k . S_k)``,
    so ``alpha -> inf`` gives back :class:`SumRegressor` and ``alpha = 0`` plain least
    squares. With ``non_negative`` the weights are kept >= 0 (bounded least squares).
    """

    name: str = "layers"
    segments: int = DEFAULT_SEGMENTS
    alpha: float = 1e-3
    non_negative: bool = False
    weights: list[float] = field(default_factory=list)
    offset: float = float("nan")  # MeV

    def fit(self, train: Showers) -> LayerWeightedRegressor:
        from scipy.optimize import lsq_linear

        if self.alpha < 0:
            raise CalolabError(f"{self.name}: alpha must be >= 0, got {self.alpha}")
        e_true = _check_train(train, 2, self.name)
        s = segment_sums(train, self.segments)  # (N, K) MeV
        k = s.shape[1]
        common = np.polyfit(s.sum(axis=1), e_true, 1)[0]
        lam = self.alpha * float(np.mean(np.sum(s**2, axis=0)))
        design = np.vstack([np.column_stack([s, np.ones(len(s))]),
                            np.column_stack([np.sqrt(lam) * np.eye(k), np.zeros(k)])])
        target = np.concatenate([e_true, np.full(k, np.sqrt(lam) * common)])
        scale = np.concatenate([np.full(k, 1.0), [max(float(np.mean(e_true)), 1.0)]])  # condition the offset column
        lower = np.concatenate([np.full(k, 0.0 if self.non_negative else -np.inf), [-np.inf]])
        result = lsq_linear(design * scale, target, bounds=(lower, np.inf), method="bvls" if k < 200 else "trf")
        coef = result.x * scale
        self.weights, self.offset = [float(v) for v in coef[:k]], float(coef[k])
        return self

    def predict(self, showers: Showers) -> np.ndarray:
        """Estimated energy per event, MeV, float64 (N,)."""
        if not self.weights:
            raise CalolabError(f"{self.name}: fit the regressor before predicting")
        return segment_sums(showers, self.segments) @ np.asarray(self.weights) + self.offset

    def to_dict(self) -> dict:
        return {"kind": "layers", "name": self.name, "segments": self.segments, "alpha": self.alpha,
                "non_negative": self.non_negative, "weights": list(self.weights), "offset": self.offset}

    @classmethod
    def from_dict(cls, data: dict) -> LayerWeightedRegressor:
        return _from_dict(cls, data, "layers")


# Hit amplitudes (MIPs) that bound the density bins of software compensation: MIP-like
# tracks, a few overlapping tracks, and ever denser electromagnetic cores.
COMPENSATION_BINS_MIP = (1.5, 3.0, 5.0, 8.0, 12.0, 20.0, 35.0)


def density_sums(showers: Showers, bins_mip: tuple[float, ...] = COMPENSATION_BINS_MIP) -> np.ndarray:
    """Sampling-weighted energy (MeV) per event in hits of each amplitude bin, (N, len(bins_mip) + 1).

    A hit's amplitude is its energy in MIPs of its layer (most probable value); the bins are
    ``[0, b0), [b0, b1), ..., [b_last, inf)``. The rows add up to :func:`weighted_sum`.
    """
    from calolab.reconstruction.sums import layer_weights

    det = showers.detector
    layer = showers.cell // (det.shape[1] * det.shape[2])
    edges = np.asarray(bins_mip, float)
    if edges.ndim != 1 or np.any(np.diff(edges) <= 0) or np.any(edges <= 0):
        raise CalolabError(f"density bins must be increasing positive MIP amplitudes, got {list(bins_mip)}")
    k = np.searchsorted(edges, showers.energy / det.mip_mpv[layer], side="right")
    out = np.zeros((len(showers), len(edges) + 1))
    np.add.at(out, (showers.event_index, k), showers.energy * layer_weights(det)[layer])
    return out


@dataclass
class CompensationRegressor:
    """Software compensation with local energy-density weights (CALICE, JINST 7 P09017).

    ``E = sum_k w_k(S) S_k + offset``: ``S_k`` is the sampling-weighted energy in hits of
    amplitude bin ``k`` (:func:`density_sums`), and each weight is a polynomial of degree
    ``degree`` in the event's weighted sum ``S`` (so the weights follow the shower energy
    without knowing it), fitted by least squares on the training set. Dense hits, which
    electromagnetic sub-showers make, get lower weights than sparse hadronic ones: that is
    how a non-compensating calorimeter (``e/h > 1``) is compensated in software.
    """

    name: str = "compensation"
    bins_mip: tuple[float, ...] = COMPENSATION_BINS_MIP
    degree: int = 2
    scale: float = float("nan")  # MeV: S is used as S / scale in the polynomials
    coefficients: list[float] = field(default_factory=list)

    def n_coefficients(self) -> int:
        """A weight polynomial per density bin and the offset."""
        return (len(self.bins_mip) + 1) * (self.degree + 1) + 1

    def _design(self, showers: Showers) -> np.ndarray:
        parts = density_sums(showers, self.bins_mip)
        s = parts.sum(axis=1, keepdims=True) / self.scale
        return np.hstack([parts * s**d for d in range(self.degree + 1)] + [np.ones((len(parts), 1))])

    def fit(self, train: Showers) -> CompensationRegressor:
        self.bins_mip = tuple(float(b) for b in self.bins_mip)
        if self.degree < 0:
            raise CalolabError(f"{self.name}: degree must be >= 0, got {self.degree}")
        e_true = _check_train(train, 2 * self.n_coefficients(), self.name)
        self.scale = max(float(np.mean(weighted_sum(train))), 1.0)
        design = self._design(train)
        norm = np.maximum(np.abs(design).max(axis=0), 1e-12)  # condition the columns
        coef = np.linalg.lstsq(design / norm, e_true, rcond=None)[0] / norm
        self.coefficients = [float(v) for v in coef]
        return self

    def predict(self, showers: Showers) -> np.ndarray:
        """Estimated energy per event, MeV, float64 (N,)."""
        if not self.coefficients:
            raise CalolabError(f"{self.name}: fit the regressor before predicting")
        return self._design(showers) @ np.asarray(self.coefficients)

    def weights(self, weighted_sum_mev: float) -> np.ndarray:
        """The density-bin weights at an event weighted sum of ``weighted_sum_mev``, (bins,)."""
        k = len(self.bins_mip) + 1
        coef = np.asarray(self.coefficients[:-1]).reshape(self.degree + 1, k)
        s = weighted_sum_mev / self.scale
        return sum(coef[d] * s**d for d in range(self.degree + 1))

    def to_dict(self) -> dict:
        return {"kind": "compensation", "name": self.name, "bins_mip": list(self.bins_mip), "degree": self.degree,
                "scale": self.scale, "coefficients": list(self.coefficients)}

    @classmethod
    def from_dict(cls, data: dict) -> CompensationRegressor:
        model = _from_dict(cls, data, "compensation")
        model.bins_mip = tuple(float(b) for b in model.bins_mip)
        if len(model.coefficients) != model.n_coefficients():
            raise CalolabError(f"compensation regressor: expected {model.n_coefficients()} coefficients, got "
                               f"{len(model.coefficients)}")
        return model


@dataclass
class TreesRegressor:
    """scikit-learn ``HistGradientBoostingRegressor`` on high-level (and muon) features.

    Parameters
    ----------
    target
        ``"energy"`` (MeV) or ``"log"`` (ln E, predictions exponentiated).
    muon_features
        Add :func:`~calolab.reconstruction.muon_features.muon_features`; ``None``: when all
        training events are muons.
    max_iter, learning_rate, max_leaf_nodes, min_samples_leaf, l2_regularization
        Passed to scikit-learn; no early stopping, so the fit uses every training event.
    random_state
        Seed of the trees (the same seed gives the same predictions).
    threads
        OpenMP threads for scikit-learn (``None``: its default, all cores); 1 is fastest on a
        busy shared machine.

    The fitted model is kept in memory only (see the module docstring).
    """

    name: str = "trees"
    target: str = "log"
    muon_features: bool | None = None
    thresholds_mip: tuple[float, ...] = DEFAULT_THRESHOLDS_MIP
    segments: int = DEFAULT_SEGMENTS
    max_iter: int = 300
    learning_rate: float = 0.05
    max_leaf_nodes: int = 31
    min_samples_leaf: int = 20
    l2_regularization: float = 0.0
    random_state: int = 0
    threads: int | None = None
    feature_names: list[str] = field(default_factory=list, init=False)
    _model: Any = field(default=None, init=False, repr=False)  # a fitted scikit-learn regressor
    _use_muon: bool = field(default=False, init=False, repr=False)

    def features(self, showers: Showers) -> np.ndarray:
        """The feature matrix the trees see, float32 (N, F); names in ``feature_names`` after ``fit``."""
        x, names = high_level_features(showers, self.thresholds_mip, self.segments)
        if self._use_muon:
            from calolab.reconstruction.muon_features import muon_features

            xm, names_m = muon_features(showers)
            x, names = np.hstack([x, xm]), names + names_m
        self.feature_names = names
        return x

    def fit(self, train: Showers) -> TreesRegressor:
        from calolab.io.encoding import optional_modules

        if self.target not in ("energy", "log"):
            raise CalolabError(f"{self.name}: target must be energy or log, got {self.target!r}")
        (ensemble,) = optional_modules(("sklearn.ensemble",), "ml", "the trees regressor")
        e_true = _check_train(train, 10, self.name)
        self._use_muon = bool(np.all(np.isin(train.particle, MUON_CODES))) if self.muon_features is None \
            else bool(self.muon_features)
        x = self.features(train)
        self._model = ensemble.HistGradientBoostingRegressor(
            max_iter=self.max_iter, learning_rate=self.learning_rate, max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf, l2_regularization=self.l2_regularization, early_stopping=False,
            random_state=self.random_state)
        y = np.log(np.maximum(e_true, 1e-3)) if self.target == "log" else e_true
        with self._threads():
            self._model.fit(x, y)
        return self

    def _threads(self):
        from threadpoolctl import threadpool_limits

        return threadpool_limits(limits=self.threads, user_api="openmp")

    def predict(self, showers: Showers) -> np.ndarray:
        """Estimated energy per event, MeV, float64 (N,)."""
        if self._model is None:
            raise CalolabError(f"{self.name}: fit the regressor before predicting")
        x = self.features(showers)
        with self._threads():
            y = self._model.predict(x).astype(np.float64)
        return np.exp(y) if self.target == "log" else y

    def params(self) -> dict:
        """The hyper-parameters (for the run folder's config), not the fitted trees."""
        keys = ("name", "target", "muon_features", "segments", "max_iter", "learning_rate", "max_leaf_nodes",
                "min_samples_leaf", "l2_regularization", "random_state", "threads")
        return {"kind": "trees", **{k: getattr(self, k) for k in keys}, "thresholds_mip": list(self.thresholds_mip)}


STORABLE: dict[str, Any] = {"sum": SumRegressor, "layers": LayerWeightedRegressor,
                            "compensation": CompensationRegressor}


def save_regressor(regressor: SumRegressor | LayerWeightedRegressor | CompensationRegressor, path: str | Path) -> Path:
    """Write a fitted sum, layer-weighted or compensation regressor as JSON (atomically); the trees cannot be stored."""
    from calolab.io.atomic import atomic_path  # calolab.io loads h5py: keep it out of the CLI's start-up

    if not hasattr(regressor, "to_dict"):
        raise CalolabError(f"{path}: {type(regressor).__name__} is kept in memory only; refit it from its seed")
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(regressor.to_dict(), indent=2))
    return path


def load_regressor(path: str | Path) -> SumRegressor | LayerWeightedRegressor | CompensationRegressor:
    """Read a regressor written by :func:`save_regressor`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CalolabError(f"{path}: cannot read a regressor ({exc.__class__.__name__})") from None
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind not in STORABLE:
        raise CalolabError(f"{path}: expected a JSON object with kind in {sorted(STORABLE)}, got {kind!r}")
    try:
        return STORABLE[kind].from_dict(data)
    except TypeError as exc:
        raise CalolabError(f"{path}: bad {kind} regressor ({exc})") from None
