"""One-dimensional distances between a reference and a generated observable.

Histograms share quantile-based edges taken from the reference, with an underflow, an
overflow and an "undefined" (NaN) bin, so that generated values outside the reference
range, or a layer that the generator leaves empty, count against it. On these:

* the separation power of the CaloChallenge, ``0.5 * sum (p - q)^2 / (p + q)`` over the
  normalised histograms ``p`` and ``q`` (0 for identical histograms, 1 for disjoint ones);
* the Wasserstein-1 distance of the defined values, divided by the reference's standard deviation.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> ref, gen = rng.normal(0, 1, 20000), rng.normal(0.5, 1, 20000)
>>> c = compare_observable(ref, ref)
>>> c.separation_power, c.w1
(0.0, 0.0)
>>> round(compare_observable(ref, gen).w1, 1)   # W1 of a shift is the shift, in units of the reference sigma
0.5
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def quantile_edges(reference: np.ndarray, bins: int = 30) -> np.ndarray:
    """Bin edges ``(<= bins + 1,)`` at equally spaced quantiles of the finite reference values (duplicates merged).

    A constant (or empty) reference gets one bin of width 1 around its value.
    """
    finite = reference[np.isfinite(reference)]
    if finite.size == 0:
        return np.array([-0.5, 0.5])
    edges = np.unique(np.quantile(finite, np.linspace(0.0, 1.0, bins + 1)))
    if len(edges) < 2:
        edges = np.array([edges[0] - 0.5, edges[0] + 0.5])
    return edges


def histogram(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts ``(len(edges) + 2,)``: underflow, the ``len(edges) - 1`` bins (last one closed), overflow, NaN."""
    values = np.asarray(values, np.float64)
    undefined = np.isnan(values)
    defined = values[~undefined]
    inner, _ = np.histogram(defined, edges)
    return np.concatenate([[np.sum(defined < edges[0])], inner, [np.sum(defined > edges[-1]), undefined.sum()]])


def separation_power(counts_1: np.ndarray, counts_2: np.ndarray) -> float:
    """``0.5 * sum (p - q)^2 / (p + q)`` of the two histograms normalised to unit sum; in [0, 1]."""
    p = np.asarray(counts_1, np.float64)
    q = np.asarray(counts_2, np.float64)
    if p.sum() == 0 or q.sum() == 0:
        return float("nan")
    p, q = p / p.sum(), q / q.sum()
    both = (p + q) > 0
    return float(0.5 * np.sum((p[both] - q[both]) ** 2 / (p[both] + q[both])))


def standardised_w1(reference: np.ndarray, generated: np.ndarray) -> float:
    """Wasserstein-1 distance of the finite values over the reference's standard deviation (raw if that is 0)."""
    from scipy.stats import wasserstein_distance

    ref = reference[np.isfinite(reference)]
    gen = generated[np.isfinite(generated)]
    if ref.size == 0 or gen.size == 0:
        return float("nan")
    scale = float(np.std(ref))
    return float(wasserstein_distance(ref, gen) / (scale if scale > 0 else 1.0))


@dataclass(frozen=True)
class ObservableComparison:
    """Reference against generated for one observable.

    ``edges`` are the inner bin edges; ``reference``/``generated`` the counts of
    :func:`histogram` (underflow, bins, overflow, NaN).
    """

    edges: np.ndarray
    reference: np.ndarray
    generated: np.ndarray
    separation_power: float
    w1: float

    def summary(self) -> dict[str, float]:
        return {"separation_power": self.separation_power, "w1": self.w1}


def compare_observable(reference: np.ndarray, generated: np.ndarray, bins: int = 30,
                       edges: np.ndarray | None = None) -> ObservableComparison:
    """Histograms on common edges (quantiles of ``reference`` unless given), separation power and W1.

    Parameters
    ----------
    reference, generated
        Values of one observable, (N_ref,) and (N_gen,); NaN means undefined (an empty layer).
    bins
        Number of quantile bins (fewer if the reference has repeated values).
    """
    reference = np.asarray(reference, np.float64)
    generated = np.asarray(generated, np.float64)
    edges = quantile_edges(reference, bins) if edges is None else np.asarray(edges, np.float64)
    h_ref, h_gen = histogram(reference, edges), histogram(generated, edges)
    return ObservableComparison(edges, h_ref, h_gen, separation_power(h_ref, h_gen),
                                standardised_w1(reference, generated))
