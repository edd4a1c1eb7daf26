"""Baseline energy regressors: the calibrated sum, layer weights, and boosted trees on features.

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
    _model: object = field(default=None, init=False, repr=False)
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


STORABLE = {"sum": SumRegressor, "layers": LayerWeightedRegressor}


def save_regressor(regressor: SumRegressor | LayerWeightedRegressor, path: str | Path) -> Path:
    """Write a fitted sum or layer-weighted regressor as JSON (atomically); the trees cannot be stored."""
    from calolab.io.atomic import atomic_path  # calolab.io loads h5py: keep it out of the CLI's start-up

    if not hasattr(regressor, "to_dict"):
        raise CalolabError(f"{path}: {type(regressor).__name__} is kept in memory only; refit it from its seed")
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(regressor.to_dict(), indent=2))
    return path


def load_regressor(path: str | Path) -> SumRegressor | LayerWeightedRegressor:
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
