"""CaloChallenge's binary classifier test: the DNN recipe of its ``evaluate.py``, in torch.

``code/evaluate.py`` of github.com/CaloChallenge/homepage (modes ``cls-low`` and
``cls-high``) trains a fully connected network to tell generated showers (label 0) from the
reference (label 1):

* network: ``Linear(d, H)``, LeakyReLU, Dropout, then ``n_layer`` times ``Linear(H, H)``,
  LeakyReLU, Dropout, and ``Linear(H, 1)`` (a logit); defaults ``H = 2048``, ``n_layer = 2``,
  dropout 0; float64 throughout;
* data: both samples of equal size, each shuffled and split 60 / 20 / 20 % into train, test
  and validation (dataset 2: 60,000 / 20,000 / 20,000 events per class), merged and shuffled;
* training: ``BCEWithLogitsLoss``, Adam with learning rate 2e-4, batches of 1000, 50 epochs;
  after each epoch the accuracy (sigmoid rounded) on the test part; the epoch with the best
  test accuracy is kept, and training stops early if it reaches 1;
* result: the kept network's sigmoid outputs on the validation part, calibrated by isotonic
  regression fitted on the test part (clipped to [1e-6, 1 - 1e-6]); the AUC of the
  calibrated outputs and the JSD score ``(ln 2 - BCE) / ln 2`` of them are what
  ``evaluate.py`` reports ("Final result of classifier test (AUC / JSD)").

Shuffles, the network's initial weights and the batch order come from ``seed``; torch's
global random state is left as it was.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> recipe = DNNRecipe(n_hidden=16, epochs=30, batch_size=100)
>>> result = dnn_classifier_test(rng.normal(size=(500, 3)), rng.normal(size=(500, 3)) + 2.0, recipe, seed=1)
>>> result.auc > 0.85, result.n_train, result.n_test, result.n_validation
(True, 600, 200, 200)
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import numpy as np

from calolab.errors import CalolabError


@dataclass(frozen=True)
class DNNRecipe:
    """The classifier of CaloChallenge's ``evaluate.py`` (its ``--cls_*`` options and their defaults).

    ``n_layer``: hidden ``H x H`` layers after the input layer; ``n_hidden``: ``H``;
    ``split``: fractions of each class for train, test (epoch choice and calibration) and
    validation (the result); ``threads``: torch CPU threads (``None``: torch's default).
    """

    n_layer: int = 2
    n_hidden: int = 2048
    dropout: float = 0.0
    batch_size: int = 1000
    epochs: int = 50
    lr: float = 2e-4
    split: tuple[float, float, float] = (0.6, 0.2, 0.2)
    threads: int | None = 1

    def __post_init__(self) -> None:
        if self.n_layer < 0 or self.n_hidden < 1 or self.batch_size < 1 or self.epochs < 1 or not self.lr > 0:
            raise CalolabError(f"classifier recipe: expected n_layer >= 0, n_hidden, batch_size, epochs >= 1 and "
                               f"lr > 0, got {asdict(self)}")
        if len(self.split) != 3 or min(self.split) <= 0 or sum(self.split) > 1 + 1e-9:
            raise CalolabError(f"classifier recipe: split must be three fractions > 0 summing to <= 1, "
                               f"got {self.split}")


@dataclass(frozen=True)
class DNNResult:
    """The validation-set AUC and JSD after calibration (what ``evaluate.py`` reports) and before it."""

    auc: float
    jsd: float
    accuracy: float
    auc_uncalibrated: float
    jsd_uncalibrated: float
    best_epoch: int
    epochs_run: int
    n_train: int
    n_test: int
    n_validation: int
    seconds: float

    def summary(self) -> dict[str, float | int]:
        return asdict(self)


def ttv_split(generated: np.ndarray, reference: np.ndarray, split: tuple[float, float, float],
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(train, test, validation)`` arrays ``(n, d + 1)``, label last (generated 0, reference 1), shuffled.

    Both inputs must have the same length ``N``; train and test take ``int(N * fraction)``
    events of each class, validation the rest.
    """
    n = len(generated)
    counts = (n * np.asarray(split)).astype(int)
    parts = []
    for data, label in ((generated, 0.0), (reference, 1.0)):
        labelled = np.column_stack([data, np.full(n, label)])[rng.permutation(n)]
        parts.append(np.split(labelled, counts.cumsum()[:-1]))
    train, test, val = (np.concatenate([g, r])[rng.permutation(len(g) + len(r))] for g, r in zip(*parts, strict=True))
    return train, test, val


def dnn_classifier_test(reference: np.ndarray, generated: np.ndarray, recipe: DNNRecipe | None = None,
                        seed: int = 0) -> DNNResult:
    """Train CaloChallenge's classifier on ``reference (N, d)`` against ``generated (M, d)`` (see the module docstring).

    The larger sample is cut to the size of the smaller (a seeded random subset). Inputs
    must be finite (CaloChallenge's inputs are: logarithms carry ``+1e-8``).
    """
    import torch

    recipe = recipe or DNNRecipe()
    reference, generated = np.asarray(reference, np.float64), np.asarray(generated, np.float64)
    if reference.ndim != 2 or generated.shape[1:] != reference.shape[1:]:
        raise CalolabError(f"classifier: expected (N, d) inputs with the same d, got {reference.shape} and "
                           f"{generated.shape}")
    if not (np.all(np.isfinite(reference)) and np.all(np.isfinite(generated))):
        raise CalolabError("classifier: inputs contain NaN or infinite values")
    rng = np.random.default_rng(seed)
    n = min(len(reference), len(generated))
    reference, generated = (a[np.sort(rng.choice(len(a), n, replace=False))] for a in (reference, generated))
    train, test, val = ttv_split(generated, reference, recipe.split, rng)
    if min(len(train), len(test), len(val)) < 2:
        raise CalolabError(f"classifier: {n} events per class give train/test/validation {len(train)}/{len(test)}/"
                           f"{len(val)}: need at least 2 in each")
    start = time.perf_counter()
    threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(rng.integers(2**31)))
        if recipe.threads is not None:
            torch.set_num_threads(recipe.threads)
        try:
            result = _train_and_evaluate(train, test, val, recipe)
        finally:
            torch.set_num_threads(threads)
    return DNNResult(**result, n_train=len(train), n_test=len(test), n_validation=len(val),
                     seconds=time.perf_counter() - start)


def _network(d: int, recipe: DNNRecipe):  # noqa: ANN202 - torch.nn.Sequential, imported lazily
    import torch

    layers = [torch.nn.Linear(d, recipe.n_hidden), torch.nn.LeakyReLU(), torch.nn.Dropout(recipe.dropout)]
    for _ in range(recipe.n_layer):
        layers += [torch.nn.Linear(recipe.n_hidden, recipe.n_hidden), torch.nn.LeakyReLU(),
                   torch.nn.Dropout(recipe.dropout)]
    layers.append(torch.nn.Linear(recipe.n_hidden, 1))
    return torch.nn.Sequential(*layers).to(torch.float64)


def _train_and_evaluate(train: np.ndarray, test: np.ndarray, val: np.ndarray, recipe: DNNRecipe) -> dict:
    import torch
    from sklearn.isotonic import IsotonicRegression
    from sklearn.metrics import roc_auc_score

    x_train, y_train = (torch.from_numpy(np.ascontiguousarray(a)) for a in (train[:, :-1], train[:, -1]))
    model = _network(x_train.shape[1], recipe)
    optimiser = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def probabilities(data: np.ndarray) -> np.ndarray:
        model.eval()
        with torch.no_grad():
            logits = torch.cat([model(torch.from_numpy(np.ascontiguousarray(data[i : i + recipe.batch_size, :-1])))
                                for i in range(0, len(data), recipe.batch_size)])
        return torch.sigmoid(logits).reshape(-1).numpy()

    best_accuracy, best_epoch, best_state, epochs_run = -math.inf, 0, None, 0
    for epoch in range(recipe.epochs):
        model.train()
        for batch in torch.randperm(len(x_train)).split(recipe.batch_size):
            loss = loss_fn(model(x_train[batch]), y_train[batch].unsqueeze(1))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        epochs_run = epoch + 1
        accuracy = float(np.mean(np.round(probabilities(test)) == test[:, -1]))
        if accuracy > best_accuracy:
            best_accuracy, best_epoch = accuracy, epoch + 1
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        if accuracy == 1.0:
            break
    model.load_state_dict(best_state)
    p_val, p_test = probabilities(val), probabilities(test)
    y_val = val[:, -1]
    calibrator = IsotonicRegression(out_of_bounds="clip", y_min=1e-6, y_max=1 - 1e-6).fit(p_test, test[:, -1])
    p_cal = calibrator.predict(p_val)
    return {"auc": float(roc_auc_score(y_val, p_cal)), "jsd": _jsd(y_val, p_cal),
            "accuracy": float(np.mean(np.round(p_cal) == y_val)),
            "auc_uncalibrated": float(roc_auc_score(y_val, p_val)), "jsd_uncalibrated": _jsd(y_val, p_val),
            "best_epoch": best_epoch, "epochs_run": epochs_run}


def _jsd(label: np.ndarray, p: np.ndarray) -> float:
    """``(ln 2 - BCE) / ln 2`` of probabilities ``p`` for labels 0/1, with torch's ``BCELoss`` log clamp at -100."""
    log_p = np.maximum(np.log(np.maximum(p, 0.0), where=p > 0, out=np.full_like(p, -np.inf)), -100.0)
    log_q = np.maximum(np.log(np.maximum(1 - p, 0.0), where=p < 1, out=np.full_like(p, -np.inf)), -100.0)
    bce = -float(np.mean(label * log_p + (1 - label) * log_q))
    return (math.log(2.0) - bce) / math.log(2.0)
