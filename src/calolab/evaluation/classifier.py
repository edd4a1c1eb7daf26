"""Classifier two-sample test: can a classifier tell generated showers from the reference?

Both samples are cut to the same size (a seeded random subset of the larger), each is split
into train / validation / test (60 / 20 / 20 % by default), and a classifier learns to
label reference 0 and generated 1:

* high-level features: ``HistGradientBoostingClassifier`` (undefined values, NaN, handled natively);
* low-level cells: an ``MLPClassifier`` on the sparse log-scaled cell energies of
  :func:`~calolab.evaluation.features.low_level_inputs`.

On the held-out test set we report the ROC AUC of the raw scores (0.5: indistinguishable,
1: perfectly separated) and the CaloChallenge JSD score ``1 - BCE / ln 2`` of the
probabilities after isotonic calibration on the validation set (0: indistinguishable, 1:
perfectly separated). Calibration is monotone, so it would not change the AUC beyond ties:
it only matters for the JSD.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(2000, 3))
>>> result = classifier_test(x, rng.normal(size=(2000, 3)) + [1.0, 0, 0], model="hgb", seed=1)
>>> 0.70 < result.auc < 0.80     # the best possible AUC of a unit shift is Phi(1 / sqrt 2) = 0.760
True
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from calolab.errors import CalolabError

MODELS = ("hgb", "mlp")


@dataclass(frozen=True)
class ClassifierResult:
    """Outcome of :func:`classifier_test`; ``fpr``/``tpr`` is the test-set ROC curve."""

    model: str
    auc: float
    jsd: float
    accuracy: float
    n_train: int
    n_validation: int
    n_test: int
    iterations: int
    fpr: np.ndarray
    tpr: np.ndarray

    def summary(self) -> dict[str, float | int | str]:
        return {"model": self.model, "auc": self.auc, "jsd": self.jsd, "accuracy": self.accuracy,
                "n_train": self.n_train, "n_validation": self.n_validation, "n_test": self.n_test,
                "iterations": self.iterations}


def balanced_split(n_reference: int, n_generated: int, seed: int,
                   fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)) -> list[tuple[np.ndarray, np.ndarray]]:
    """Indices ``[(ref, gen) for train, validation, test]``, each pair of equal length, from a seeded permutation."""
    if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1.0) > 1e-9:
        raise CalolabError(f"classifier split fractions must be three positive numbers summing to 1, got {fractions}")
    n = min(n_reference, n_generated)
    n_val, n_test = int(round(fractions[1] * n)), int(round(fractions[2] * n))
    if min(n - n_val - n_test, n_val, n_test) < 2:
        raise CalolabError(f"the classifier test needs more events: {n} per sample gives too small splits")
    rng = np.random.default_rng(seed)
    # A random subset of the larger sample, then one permutation for both: when the two
    # inputs are the same events, an event and its copy land in the same split.
    ref = np.sort(rng.choice(n_reference, n, replace=False))
    gen = np.sort(rng.choice(n_generated, n, replace=False))
    order = rng.permutation(n)
    ref, gen = ref[order], gen[order]
    cuts = [0, n - n_val - n_test, n - n_test, n]
    return [(ref[a:b], gen[a:b]) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]


def _stack(reference, generated, pair: tuple[np.ndarray, np.ndarray]):
    from scipy.sparse import issparse, vstack

    parts = [reference[pair[0]], generated[pair[1]]]
    x = vstack(parts, format="csr") if issparse(reference) else np.concatenate(parts)
    y = np.concatenate([np.zeros(len(pair[0])), np.ones(len(pair[1]))])
    return x, y


def _make_model(model: str, seed: int, max_iter: int, hidden: tuple[int, ...]):
    from calolab.io.encoding import optional_modules

    if model == "hgb":
        (ensemble,) = optional_modules(("sklearn.ensemble",), "ml", "the high-level classifier test")
        return ensemble.HistGradientBoostingClassifier(max_iter=max_iter, early_stopping=True,
                                                       validation_fraction=0.15, n_iter_no_change=15,
                                                       random_state=seed)
    (network,) = optional_modules(("sklearn.neural_network",), "ml", "the low-level classifier test")
    return network.MLPClassifier(hidden_layer_sizes=hidden, alpha=1e-3, batch_size=256, learning_rate_init=1e-3,
                                 max_iter=max_iter, early_stopping=True, validation_fraction=0.15,
                                 n_iter_no_change=8, random_state=seed)


def classifier_test(reference, generated, model: str = "hgb", seed: int = 0,
                    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2), max_iter: int = 200,
                    hidden: tuple[int, ...] = (128, 64), threads: int | None = 1) -> ClassifierResult:
    """Train ``model`` to separate ``generated`` (label 1) from ``reference`` (label 0); score on the test split.

    Parameters
    ----------
    reference, generated
        ``(N_ref, F)`` and ``(N_gen, F)`` inputs: dense arrays (NaN allowed for ``hgb``; for
        ``mlp`` dense inputs are standardised on the training split and NaN set to 0) or
        scipy CSR matrices (``mlp`` only).
    model
        ``"hgb"`` (gradient-boosted trees) or ``"mlp"`` (multi-layer perceptron, ``hidden`` units).
    seed
        Seeds the subsampling, the split and the classifier.
    max_iter
        Boosting iterations or MLP epochs (both stop early on an internal 15 % of the training split).
    threads
        OpenMP/BLAS threads while training (``None``: the libraries' default). One is the
        fastest for the small samples of an evaluation on a busy machine.
    """
    from scipy.sparse import issparse

    from calolab.io.encoding import optional_modules

    if model not in MODELS:
        raise CalolabError(f"unknown classifier {model!r}: expected one of {', '.join(MODELS)}")
    if reference.shape[1] != generated.shape[1]:
        raise CalolabError(f"classifier inputs differ in width: {reference.shape[1]} and {generated.shape[1]}")
    if model == "hgb" and issparse(reference):
        raise CalolabError("the hgb classifier takes dense features; use mlp for sparse cell inputs")
    (metrics, isotonic) = optional_modules(("sklearn.metrics", "sklearn.isotonic"), "ml", "the classifier test")
    split_seed, model_seed = np.random.SeedSequence(seed).generate_state(2)
    train, val, test = (_stack(reference, generated, pair)
                        for pair in balanced_split(reference.shape[0], generated.shape[0], int(split_seed), fractions))
    if model == "mlp" and not issparse(reference):
        mean, std = np.nanmean(train[0], 0), np.nanstd(train[0], 0)
        std = np.where(std > 0, std, 1.0)
        train, val, test = ((np.nan_to_num((x - mean) / std), y) for x, y in (train, val, test))
    clf = _make_model(model, int(model_seed % 2**31), max_iter, hidden)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(threads), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(Maximum iterations|Stochastic Optimizer).*")
        clf.fit(*train)
        score_val, score_test = clf.predict_proba(val[0])[:, 1], clf.predict_proba(test[0])[:, 1]
    # Isotonic calibration on the validation split; its end steps can hold a handful of events
    # of one class, so probabilities are kept within 1 / n_validation of 0 and 1.
    eps = 1.0 / len(val[1])
    calibrator = isotonic.IsotonicRegression(y_min=eps, y_max=1 - eps, out_of_bounds="clip").fit(score_val, val[1])
    p = calibrator.predict(score_test)
    y = test[1]
    bce = -float(np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    fpr, tpr, _ = metrics.roc_curve(y, score_test)
    iterations = int(getattr(clf, "n_iter_", 0))
    return ClassifierResult(model, float(metrics.roc_auc_score(y, score_test)), float(1.0 - bce / np.log(2.0)),
                            float(np.mean((p > 0.5) == y)), len(train[1]), len(val[1]), len(y), iterations, fpr, tpr)
