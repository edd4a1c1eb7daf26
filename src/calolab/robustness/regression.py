"""Ordinary least squares of the response parameters on the distortion parameters (paper 002, eqs. 2.1-2.2).

Paper 002 regresses the slope ``a`` and the intercept ``b`` of the response on the
calibration scale ``s``, the noise scale ``n`` and the bias ``u``, with interactions and a
threshold term ``(n > 0.5)``: noise only matters once it can push empty cells over the
zero suppression. Here a model is a list of terms, each a product of base columns joined
by ``:``:

==========  ==============================================================
``1``       intercept
``s``       calibration scale
``n``       noise scale (grid units)
``u``       bias (grid units)
``above``   ``1[n + u > t]``: noise and bias can push an empty cell over the threshold ``t``
``excess``  ``max(0, n + u - t)``: a hinge at that threshold
==========  ==============================================================

e.g. ``("1", "s", "n", "u", "n:u", "above", "above:n", "above:u")``. The fit is plain
NumPy: ``lstsq`` for the coefficients, ``sigma^2 (X^T X)^-1`` for their covariance
(pseudo-inverse if columns are collinear, reported in ``rank``), t-values and two-sided
p-values from Student's t with ``N - rank`` degrees of freedom (``scipy.stats.t``), and
``R^2``.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> params = rng.uniform(0, 1, (60, 3))  # s, n, u
>>> y = 1.0 - 0.3 * params[:, 1] + 0.1 * params[:, 2] + rng.normal(0, 0.01, 60)
>>> fit = ols(design_matrix(params, ("1", "n", "u", "s"), threshold=0.6), y, ("1", "n", "u", "s"))
>>> np.round(fit.coef, 2).tolist(), fit.significant
([1.0, -0.3, 0.1, 0.0], ['1', 'n', 'u'])
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from calolab.errors import CalolabError

BASE = ("1", "s", "n", "u", "above", "excess")
FULL_TERMS = ("1", "s", "n", "u", "s:n", "s:u", "n:u", "above", "above:n", "above:u")
PAPER_TERMS = {  # the terms of paper 002's final models, with its (n > 0.5) read as "above"
    "a": ("1", "above:n", "above:u", "u"),
    "b": ("above", "above:n", "above:u"),
}


def design_matrix(params: np.ndarray, terms: tuple[str, ...], threshold: float) -> np.ndarray:
    """Columns of ``terms`` for rows of ``(s, n, u)``: float64 ``(N, len(terms))``.

    ``threshold`` is the zero-suppression threshold ``t`` in the units of ``n`` and ``u``.
    """
    params = np.atleast_2d(np.asarray(params, float))
    if params.shape[1] != 3:
        raise CalolabError(f"distortion parameters must be rows of (s, n, u), got shape {params.shape}")
    s, n, u = params.T
    base = {"1": np.ones(len(params)), "s": s, "n": n, "u": u, "above": (n + u > threshold).astype(float),
            "excess": np.maximum(0.0, n + u - threshold)}
    columns = []
    for term in terms:
        factors = term.split(":")
        unknown = [f for f in factors if f not in base]
        if unknown or not term:
            raise CalolabError(f"regression term {term!r}: factors must be among {', '.join(BASE)} joined by ':'")
        columns.append(np.prod([base[f] for f in factors], axis=0))
    return np.column_stack(columns) if columns else np.zeros((len(params), 0))


@dataclass(frozen=True)
class OLSFit:
    """An ordinary least-squares fit; arrays are float64 ``(terms,)`` in the order of ``terms``.

    Attributes
    ----------
    terms, coef, se, t, p
        Term names, coefficients, standard errors, t-values, two-sided p-values.
    significant
        Terms with ``p < alpha``.
    r2, r2_adjusted, sigma
        Coefficient of determination, adjusted for the degrees of freedom, residual standard deviation.
    dof, rank
        Residual degrees of freedom ``N - rank``, and the rank of the design.
    fitted, residuals
        Per row, float64 ``(N,)``.
    """

    terms: tuple[str, ...]
    coef: np.ndarray
    se: np.ndarray
    t: np.ndarray
    p: np.ndarray
    significant: list[str]
    r2: float
    r2_adjusted: float
    sigma: float
    dof: int
    rank: int
    alpha: float
    fitted: np.ndarray
    residuals: np.ndarray

    def to_dict(self) -> dict:
        """Plain numbers and lists, the table as ``{term: {coef, se, t, p}}``."""
        out = {k: v for k, v in asdict(self).items() if k not in ("coef", "se", "t", "p")}
        out = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in out.items()}
        out["terms"] = list(self.terms)
        out["table"] = {term: {"coef": float(c), "se": float(e), "t": float(t), "p": float(p)}
                        for term, c, e, t, p in zip(self.terms, self.coef, self.se, self.t, self.p, strict=True)}
        return out

    def formula(self, target: str, digits: int = 3) -> str:
        """``target = c0 + c1 * term1 + ...`` with the significant terms only."""
        parts = []
        for term, c in zip(self.terms, self.coef, strict=True):
            if term in self.significant:
                parts.append(f"{c:+.{digits}g}" + ("" if term == "1" else f" * {term}"))
        return f"{target} = " + (" ".join(parts) if parts else "0")


def ols(x: np.ndarray, y: np.ndarray, terms: tuple[str, ...], alpha: float = 0.05) -> OLSFit:
    """Ordinary least squares of ``y`` (N,) on the columns of ``x`` (N, P) named ``terms``."""
    from scipy.stats import t as student

    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.ndim != 2 or y.shape != (x.shape[0],) or x.shape[1] != len(terms):
        raise CalolabError(f"regression: design {x.shape}, response {y.shape} and {len(terms)} terms do not match")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise CalolabError("regression: the design or the response has NaN or infinite values")
    coef, _, rank, _ = np.linalg.lstsq(x, y, rcond=None)
    fitted = x @ coef
    resid = y - fitted
    dof = len(y) - int(rank)
    if dof <= 0:
        raise CalolabError(f"regression: {len(y)} points for {rank} independent terms leaves no degrees of freedom")
    rss = float(resid @ resid)
    sigma2 = rss / dof
    se = np.sqrt(np.clip(np.diag(np.linalg.pinv(x.T @ x)) * sigma2, 0.0, None))
    tval = np.divide(coef, se, out=np.where(coef == 0, 0.0, np.copysign(np.inf, coef)), where=se > 0)
    p = 2 * student.sf(np.abs(tval), dof)
    tss = float(np.sum((y - y.mean()) ** 2)) if "1" in terms else float(y @ y)
    r2 = 1 - rss / tss if tss > 0 else 1.0
    n_free = int(rank) - (1 if "1" in terms else 0)
    r2_adj = 1 - (1 - r2) * (len(y) - (1 if "1" in terms else 0)) / dof if n_free >= 0 else r2
    significant = [term for term, pv in zip(terms, p, strict=True) if pv < alpha]
    return OLSFit(tuple(terms), coef, se, tval, p, significant, float(r2), float(r2_adj), float(np.sqrt(sigma2)),
                  dof, int(rank), alpha, fitted, resid)


def regress(params: np.ndarray, y: np.ndarray, terms: tuple[str, ...], threshold: float,
            alpha: float = 0.05) -> OLSFit:
    """:func:`ols` of ``y`` on the ``terms`` of the ``(s, n, u)`` rows ``params``, finite rows only."""
    params, y = np.asarray(params, float), np.asarray(y, float)
    ok = np.isfinite(y)
    return ols(design_matrix(params[ok], terms, threshold), y[ok], terms, alpha)
