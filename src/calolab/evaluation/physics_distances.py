"""Frechet and kernel physics distances (FPD, KPD) on high-level features (Kansal et al. 2023).

Both work on features standardised by the reference (mean 0, standard deviation 1 per
column; undefined values, such as the centre of an empty layer, are set to the reference
mean, i.e. 0):

* FPD: the Frechet distance between Gaussians fitted to the two samples,
  ``|mu_1 - mu_2|^2 + tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))``, measured on random batches
  (drawn with replacement) at several batch sizes ``N`` spaced evenly in ``1/N``, averaged
  per size, and extrapolated to ``N -> infinity`` by a straight-line fit in ``1/N`` with a
  non-negative intercept and slope. The error is the fit's error on the intercept.
* KPD: the unbiased estimator of the squared maximum mean discrepancy with the polynomial
  kernel ``k(x, y) = (x.y / d + 1)^3``, on batches drawn with replacement; the median over
  batches and half the 16-84 % inter-quantile range as its error. A batch drawn with
  replacement holds copies of some events; pairing a copy with itself would bias the
  "unbiased" estimator upwards by about ``(k(x, x) - k(x, x')) / N`` per sample, so such
  pairs are left out like the diagonal.

>>> import numpy as np
>>> frechet_distance(np.zeros(2), np.eye(2), np.array([3.0, 4.0]), 4 * np.eye(2))  # |dmu|^2 + sum (1 - 2)^2
27.0
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from calolab.errors import CalolabError


@dataclass(frozen=True)
class DistanceEstimate:
    """A distance with its error; ``sizes``/``values`` are the batch sizes and the value at each (FPD) or
    the value of each batch (KPD)."""

    value: float
    error: float
    sizes: np.ndarray
    values: np.ndarray

    def summary(self) -> dict[str, float]:
        return {"value": self.value, "error": self.error}


def standardise(reference: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Feature matrices ``(N, d)`` shifted and scaled by the reference's finite mean and standard deviation.

    Columns constant in the reference are only shifted; NaN becomes 0 (the reference mean).
    """
    reference = np.asarray(reference, np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column: mean and std are NaN, handled below
        mean = np.nanmean(reference, axis=0)
        std = np.nanstd(reference, axis=0)
    mean = np.where(np.isfinite(mean), mean, 0.0)
    std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
    return [np.nan_to_num((np.asarray(x, np.float64) - mean) / std, nan=0.0) for x in (reference, *others)]


def frechet_distance(mu_1: np.ndarray, cov_1: np.ndarray, mu_2: np.ndarray, cov_2: np.ndarray) -> float:
    """Frechet (2-Wasserstein squared) distance between ``N(mu_1, cov_1)`` and ``N(mu_2, cov_2)`` in ``d`` dims.

    ``mu`` are ``(d,)``, ``cov`` are ``(d, d)``. The matrix square root is ``scipy.linalg.sqrtm``
    (real part kept); if it is not finite, ``1e-6`` is added to both diagonals.
    """
    from scipy.linalg import sqrtm

    mu_1, mu_2 = np.atleast_1d(mu_1), np.atleast_1d(mu_2)
    cov_1, cov_2 = np.atleast_2d(cov_1), np.atleast_2d(cov_2)
    diff = mu_1 - mu_2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a nearly singular product; checked below
        root = sqrtm(cov_1 @ cov_2)
        if not np.all(np.isfinite(root)):
            eps = 1e-6 * np.eye(len(cov_1))
            root = sqrtm((cov_1 + eps) @ (cov_2 + eps))
    return float(diff @ diff + np.trace(cov_1) + np.trace(cov_2) - 2.0 * np.trace(np.real(root)))


def fpd(reference: np.ndarray, generated: np.ndarray, seed: int, n_points: int = 10, n_batches: int = 20,
        min_fraction: float = 0.4, max_size: int = 50_000, standardised: bool = True) -> DistanceEstimate:
    """Frechet physics distance extrapolated to infinite batch size (see the module docstring).

    Parameters
    ----------
    reference, generated
        Feature matrices ``(N_ref, d)`` and ``(N_gen, d)``.
    n_points, n_batches
        Batch sizes, evenly spaced in ``1/N`` from ``min_fraction * N_max`` to ``N_max =
        min(N_ref, N_gen, max_size)``, and random batches averaged at each size.
    standardised
        Standardise both by the reference first (as for calolab's high-level features).
    """
    x, y = standardise(reference, generated) if standardised else (np.asarray(reference), np.asarray(generated))
    n_max = min(len(x), len(y), max_size)
    n_min = max(int(min_fraction * n_max), 2)
    if n_max < 4 or n_points < 2:
        raise CalolabError(f"FPD needs at least 4 events per sample and 2 batch sizes, got {n_max} and {n_points}")
    sizes = np.unique((1.0 / np.linspace(1.0 / n_min, 1.0 / n_max, n_points)).round().astype(int))
    rng = np.random.default_rng(seed)
    values = []
    for size in sizes:
        per_batch = []
        for _ in range(n_batches):
            a = x[rng.integers(0, len(x), size)]
            b = y[rng.integers(0, len(y), size)]
            per_batch.append(frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)))
        values.append(np.mean(per_batch))
    values = np.asarray(values)
    intercept, error = _line_intercept(1.0 / sizes, values)
    return DistanceEstimate(intercept, error, sizes, values)


def _line_intercept(u: np.ndarray, values: np.ndarray) -> tuple[float, float]:
    """Least-squares ``values = a + b u`` with ``a, b >= 0``; ``a`` and its error from the residual variance."""
    from scipy.optimize import lsq_linear

    design = np.column_stack([np.ones_like(u), u])
    fit = lsq_linear(design, values, bounds=(0.0, np.inf))
    dof = max(len(u) - 2, 1)
    sigma2 = float(np.sum((values - design @ fit.x) ** 2)) / dof
    cov = sigma2 * np.linalg.pinv(design.T @ design)
    return float(fit.x[0]), float(np.sqrt(max(cov[0, 0], 0.0)))


def mmd2_unbiased(x: np.ndarray, y: np.ndarray, degree: int = 3, counts_x: np.ndarray | None = None,
                  counts_y: np.ndarray | None = None, chunk: int = 1024) -> float:
    """Unbiased squared MMD of samples ``x (m, d)`` and ``y (n, d)`` with ``k = (x.y / d + 1)^degree``.

    ``counts_x``/``counts_y`` say how often each row was drawn (a batch drawn with replacement,
    stored once per distinct event); pairs of copies of one event are left out of the
    within-sample sums like the diagonal, so that the estimator stays unbiased. Kernel
    matrices are summed ``chunk`` rows at a time.
    """
    d = x.shape[1]
    cx = np.ones(len(x)) if counts_x is None else np.asarray(counts_x, np.float64)
    cy = np.ones(len(y)) if counts_y is None else np.asarray(counts_y, np.float64)
    m, n = cx.sum(), cy.sum()
    if m < 2 or n < 2:
        raise CalolabError(f"the unbiased MMD needs at least 2 events per sample, got {m:.0f} and {n:.0f}")

    def weighted_sum(a: np.ndarray, ca: np.ndarray, b: np.ndarray, cb: np.ndarray) -> float:
        return sum(float(ca[i : i + chunk] @ ((a[i : i + chunk] @ b.T / d + 1.0) ** degree @ cb))
                   for i in range(0, len(a), chunk))

    def within(a: np.ndarray, ca: np.ndarray) -> float:
        self_pairs = ca**2 * (np.einsum("ij,ij->i", a, a) / d + 1.0) ** degree
        return (weighted_sum(a, ca, a, ca) - float(self_pairs.sum())) / (ca.sum() ** 2 - float(np.sum(ca**2)))

    return within(x, cx) + within(y, cy) - 2.0 * weighted_sum(x, cx, y, cy) / (m * n)


def kpd(reference: np.ndarray, generated: np.ndarray, seed: int, n_batches: int = 10, batch_size: int = 5000,
        degree: int = 3, standardised: bool = True) -> DistanceEstimate:
    """Kernel physics distance: median and half the 16-84 % range of the unbiased MMD^2 over batches.

    Each batch draws ``batch_size`` events with replacement from each sample (as JetNet does);
    copies of one event are not paired with each other (see :func:`mmd2_unbiased`).
    """
    x, y = standardise(reference, generated) if standardised else (np.asarray(reference), np.asarray(generated))
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_batches):
        (ix, cx), (iy, cy) = (np.unique(rng.integers(0, len(a), batch_size), return_counts=True) for a in (x, y))
        values.append(mmd2_unbiased(x[ix], y[iy], degree, cx, cy))
    values = np.asarray(values)
    low, high = np.percentile(values, [16.0, 84.0])
    return DistanceEstimate(float(np.median(values)), float(high - low) / 2.0, np.full(n_batches, batch_size), values)
