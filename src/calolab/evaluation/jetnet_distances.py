"""FPD and KPD as JetNet's ``jetnet.evaluation.fpd`` / ``kpd`` compute them (CaloChallenge's ``evaluate.py``).

CaloChallenge's evaluation (github.com/CaloChallenge/homepage, ``code/evaluate.py``) calls
JetNet (github.com/jet-net/JetNet, ``jetnet/evaluation/gen_metrics.py``) on its high-level
feature vectors; calolab reproduces those estimators without depending on JetNet:

* both samples are divided, feature by feature, by the largest ``|x|`` of the reference
  (a feature that is 0 throughout is left as it is);
* FPD: batch sizes ``N = int(1 / u)`` for ``u`` evenly spaced from ``1 / min_samples`` to
  ``1 / max_samples`` (``num_points`` of them); at each, ``num_batches`` pairs of batches
  drawn with replacement, the Frechet distance of Gaussians fitted to each pair
  (:func:`~calolab.evaluation.physics_distances.frechet_distance`) averaged; then a
  least-squares line ``a + b / N`` with ``a, b >= 0`` (``scipy.optimize.curve_fit``):
  the value is ``a`` (N -> infinity), the error the square root of its variance from the fit;
* KPD: the unbiased squared MMD with JetNet's polynomial kernel
  ``k(x, y) = (x.y / d + 1)^4`` on ``num_batches`` pairs of batches drawn with replacement
  (batch ``i`` from ``numpy.random.default_rng(seed + 1000 i)``; only the diagonal is left
  out of the within-sample sums, as in JetNet); the value is the median over batches, the
  error half the 16.275-83.725 % inter-percentile range.

The random draws are JetNet's (``default_rng(seed).choice``), so that the same arrays give
JetNet's numbers. Where JetNet stops on a matrix square root with large imaginary parts,
calolab keeps the real part.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> x, y = rng.normal(size=(2000, 3)), rng.normal(size=(2000, 3))
>>> value, error, values = kpd_jetnet(x, y, num_batches=5, batch_size=500)
>>> abs(value) < 1e-2, values.shape
(True, (5,))
"""

from __future__ import annotations

import warnings

import numpy as np

from calolab.errors import CalolabError
from calolab.evaluation.physics_distances import frechet_distance


def normalise_by_reference(reference: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Feature matrices ``(N, d)`` divided per column by the reference's largest ``|x|`` (1 where that is 0)."""
    reference = np.asarray(reference, np.float64)
    maxes = np.max(np.abs(reference), axis=0)
    maxes[maxes == 0] = 1.0
    return [reference / maxes, *(np.asarray(x, np.float64) / maxes for x in others)]


def fpd_batch_sizes(min_samples: int, max_samples: int, num_points: int) -> np.ndarray:
    """JetNet's FPD batch sizes: ``int(1 / u)`` for ``u`` evenly spaced in ``[1/min_samples, 1/max_samples]``.

    >>> fpd_batch_sizes(10_000, 50_000, 3).tolist()  # int() truncates 1 / 2e-5 = 49999.99...
    [10000, 16666, 49999]
    """
    return (1 / np.linspace(1.0 / min_samples, 1.0 / max_samples, num_points)).astype("int32")


def _check(real: np.ndarray, gen: np.ndarray, name: str) -> None:
    if real.ndim != 2 or gen.ndim != 2 or real.shape[1] != gen.shape[1]:
        raise CalolabError(f"{name}: expected feature matrices (N, d) with the same d, got {real.shape} and "
                           f"{gen.shape}")
    if len(real) < 2 or len(gen) < 2:
        raise CalolabError(f"{name}: needs at least 2 events per sample, got {len(real)} and {len(gen)}")


def fpd_jetnet(real: np.ndarray, gen: np.ndarray, min_samples: int = 20_000, max_samples: int = 50_000,
               num_batches: int = 20, num_points: int = 10, seed: int = 42,
               normalise: bool = True) -> tuple[float, float, np.ndarray, np.ndarray]:
    """Frechet physics distance of features ``real (N, d)`` and ``gen (M, d)``, extrapolated to infinite N.

    Returns
    -------
    value, error, sizes, values
        The intercept and its error, and the batch sizes with the mean distance at each.
    """
    from scipy.optimize import OptimizeWarning, curve_fit

    _check(real, gen, "FPD")
    if min_samples < 2 or max_samples < 2 or num_points < 2:
        raise CalolabError(f"FPD: batch sizes must be >= 2 and num_points >= 2, got {min_samples}, {max_samples}, "
                           f"{num_points}")
    x, y = normalise_by_reference(real, gen) if normalise else (np.asarray(real), np.asarray(gen))
    sizes = fpd_batch_sizes(min_samples, max_samples, num_points)
    rng = np.random.default_rng(seed)
    means = []
    for size in sizes:
        per_batch = []
        for _ in range(num_batches):
            a, b = x[rng.choice(len(x), size=size)], y[rng.choice(len(y), size=size)]
            per_batch.append(frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)))
        means.append(np.mean(per_batch))
    values = np.asarray(means, np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimizeWarning)  # a covariance that cannot be estimated is inf
        params, cov = curve_fit(lambda u, a, b: a + b * u, 1 / sizes, values, bounds=([0, 0], [np.inf, np.inf]))
    return float(params[0]), float(np.sqrt(np.diag(cov)[0])), sizes, values


def mmd2_poly_unbiased(x: np.ndarray, y: np.ndarray, degree: int = 4, chunk: int = 2048) -> float:
    """JetNet's unbiased squared MMD of ``x (m, d)`` and ``y (n, d)`` with ``k = (x.y / d + 1)^degree``.

    Kernel matrices are summed ``chunk`` rows at a time, never held whole.
    """
    d = x.shape[1]

    def total(a: np.ndarray, b: np.ndarray) -> float:
        return sum(float((((a[i : i + chunk] @ b.T) / d + 1.0) ** degree).sum()) for i in range(0, len(a), chunk))

    def diagonal(a: np.ndarray) -> float:
        return float(((np.einsum("ij,ij->i", a, a) / d + 1.0) ** degree).sum())

    m, n = len(x), len(y)
    return ((total(x, x) - diagonal(x)) / (m * (m - 1)) + (total(y, y) - diagonal(y)) / (n * (n - 1))
            - 2.0 * total(x, y) / (m * n))


def kpd_jetnet(real: np.ndarray, gen: np.ndarray, num_batches: int = 10, batch_size: int = 5_000, seed: int = 42,
               degree: int = 4, normalise: bool = True) -> tuple[float, float, np.ndarray]:
    """Kernel physics distance of ``real (N, d)`` and ``gen (M, d)``: median, error, and the value of each batch."""
    from scipy.stats import iqr

    _check(real, gen, "KPD")
    if batch_size < 2 or num_batches < 1:
        raise CalolabError(f"KPD: batch_size must be >= 2 and num_batches >= 1, got {batch_size}, {num_batches}")
    x, y = normalise_by_reference(real, gen) if normalise else (np.asarray(real), np.asarray(gen))
    batches = []
    for i in range(num_batches):
        rng = np.random.default_rng(seed + i * 1000)
        a, b = x[rng.choice(len(x), size=batch_size)], y[rng.choice(len(y), size=batch_size)]
        batches.append(mmd2_poly_unbiased(a, b, degree))
    values = np.asarray(batches, np.float64)
    return float(np.median(values)), float(iqr(values, rng=(16.275, 83.725)) / 2), values
