"""Validation checks: a measured value, a published reference, a tolerance and a source."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

KINDS = ("calibration", "prediction")


@dataclass(frozen=True)
class Check:
    """One comparison of the simulator with a published number.

    ``passed`` holds when ``|measured - reference| <= tolerance`` (absolute, in ``unit``).
    ``kind`` says what the check proves: ``"calibration"`` when a simulator constant was set
    on this measurement (agreement is by construction), ``"prediction"`` when the measurement
    played no part in setting any constant.
    """

    name: str
    measured: float
    reference: float
    tolerance: float
    unit: str
    source: str
    uncertainty: float = float("nan")
    kind: str = "prediction"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Check.kind must be one of {KINDS}, got {self.kind!r}")

    @property
    def passed(self) -> bool:
        return bool(abs(self.measured - self.reference) <= self.tolerance)

    def to_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}

    def line(self) -> str:
        unc = f" ± {self.uncertainty:.3g}" if math.isfinite(self.uncertainty) else ""
        mark = "ok  " if self.passed else "FAIL"
        tag = "calib" if self.kind == "calibration" else "pred "
        return (f"{mark} {tag} {self.name}: {self.measured:.4g}{unc} {self.unit} vs {self.reference:.4g} "
                f"± {self.tolerance:.3g} ({self.source})")


def kind_counts(checks: list[Check]) -> dict[str, dict[str, int]]:
    """Checks that agree and checks in all, per kind: ``{"prediction": {"passed": p, "total": n}, ...}``.

    >>> kind_counts([Check("a", 1.0, 1.0, 0.1, "", "s"), Check("b", 2.0, 1.0, 0.1, "", "s", kind="calibration")])
    {'calibration': {'passed': 0, 'total': 1}, 'prediction': {'passed': 1, 'total': 1}}
    """
    return {kind: {"passed": sum(c.passed for c in checks if c.kind == kind),
                   "total": sum(c.kind == kind for c in checks)} for kind in KINDS}


def kind_summary(checks: list[Check]) -> str:
    """Predictions and calibrations that agree, apart: what the validation proves, then what it reproduces.

    >>> kind_summary([Check("a", 1.0, 1.0, 0.1, "", "s"), Check("b", 1.0, 1.0, 0.1, "", "s", kind="calibration")])
    'predictions: 1 of 1 agree; calibrations: 1 of 1 agree (agreement by construction)'
    """
    counts = kind_counts(checks)
    pred, calib = counts["prediction"], counts["calibration"]
    return (f"predictions: {pred['passed']} of {pred['total']} agree; "
            f"calibrations: {calib['passed']} of {calib['total']} agree (agreement by construction)")


def gaussian_core(values: np.ndarray, n_sigma: float = 2.0, iterations: int = 5) -> tuple[float, float, float, float]:
    """Mean and sigma of the Gaussian core (iterative ±n_sigma truncation), with their errors.

    Each step cuts at ``n_sigma`` times the current estimate of the Gaussian's sigma, the
    truncated standard deviation divided by its truncation factor, so a Gaussian is a fixed
    point (without the correction inside the loop every step would narrow the cut further).

    >>> x = np.random.default_rng(0).normal(3.0, 2.0, 200_000)
    >>> [round(v, 2) for v in gaussian_core(x)[:2]]
    [3.0, 2.0]
    """
    from scipy.stats import norm

    values = np.asarray(values, float)
    # standard deviation of a unit Gaussian truncated at +-n_sigma
    shrink = math.sqrt(1.0 - 2.0 * n_sigma * norm.pdf(n_sigma) / (2.0 * norm.cdf(n_sigma) - 1.0))
    mean, sigma = np.mean(values), np.std(values)
    core = values
    for _ in range(iterations):
        core = values[np.abs(values - mean) < n_sigma * sigma]
        mean, sigma = np.mean(core), np.std(core) / shrink
    n = max(len(core), 2)
    return float(mean), float(sigma), float(sigma / math.sqrt(n)), float(sigma / math.sqrt(2 * n))


def linearity_fit(energy: np.ndarray, response: np.ndarray, error: np.ndarray) -> tuple[float, float]:
    """Weighted straight-line fit ``response = slope * energy + offset``; returns (slope, offset)."""
    slope, offset = np.polyfit(energy, response, 1, w=1 / error)
    return float(slope), float(offset)


def tolerance(published: float, simulated: float) -> float:
    """Two standard deviations of the published and the simulated errors in quadrature.

    A simulated error that is not finite (a term fitted at its bound) adds nothing.

    >>> round(tolerance(0.003, 0.004), 4)
    0.01
    """
    return 2.0 * math.hypot(published, simulated if math.isfinite(simulated) else 0.0)


def resolution_checks(label: str, fitted: tuple[float, float], errors: tuple[float, float],
                      stochastic: tuple[float, float], constant: tuple[float, float], source: str,
                      kind: str = "prediction") -> list[Check]:
    """The stochastic- and constant-term checks of a resolution fit against a publication's.

    ``label`` names the pair (e.g. ``"calice-siw e- {term} term, 6-45 GeV"``, with ``{term}``
    replaced by ``stochastic`` and ``constant``); ``fitted`` and ``errors`` are the simulated
    ``(a, c)`` and their errors, ``stochastic`` and ``constant`` the published values with
    their errors; each tolerance is :func:`tolerance`.

    >>> a, c = resolution_checks("toy e- {term} term", (0.17, 0.01), (0.002, 0.001), (0.166, 0.002),
    ...                          (0.011, 0.001), "a paper")
    >>> a.name, a.passed, c.name, c.passed
    ('toy e- stochastic term', True, 'toy e- constant term', True)
    """
    return [Check(label.format(term=term), value, ref, tolerance(ref_err, err), "", source, err, kind=kind)
            for term, value, err, (ref, ref_err) in (("stochastic", fitted[0], errors[0], stochastic),
                                                     ("constant", fitted[1], errors[1], constant))]
