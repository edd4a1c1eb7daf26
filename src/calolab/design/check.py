"""Check absorber layouts with the full simulator: resolution with bootstrap errors, paired comparisons.

Each layout is a copy of a template detector with new absorber thicknesses (built through
:meth:`Detector.from_dict`). Electrons of each energy are simulated with
:func:`calolab.simulation.simulate` and reconstructed with
:func:`calolab.reconstruction.weighted_sum`. Per layout, a straight-line fit of the mean
response against the beam energy calibrates the linearity; the resolution at each energy
is the 68% half-width of the reconstructed energy (half the distance between its 16% and
84% quantiles) over the calibrated mean, ``sigma68 / (mean - offset)``.

All layouts at one energy are simulated with the same seed: with the total absorber fixed,
the effective medium and hence the GFLASH profile draws (T, alpha) of event ``i`` are the
same in every layout (common random numbers), so differences between layouts are measured
with a *paired* bootstrap (the same resampled event indices for every layout). The
unpaired standard error (the layouts' errors added in quadrature) is reported as well.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from calolab.geometry import Detector
from calolab.reconstruction import weighted_sum
from calolab.reconstruction.metrics import fit_resolution
from calolab.simulation import Beam, simulate
from calolab.validation.core import linearity_fit


def layout_detector(template: Detector, thickness_mm: np.ndarray, name: str | None = None) -> Detector:
    """``template`` with absorber thickness ``thickness_mm[L]`` (mm, (layers,)) in layer L.

    >>> from calolab.geometry import load_detector
    >>> det = layout_detector(load_detector("siw-ecal"), np.full(15, 72.8 / 15), "uniform")
    >>> round(float(det.x0_bounds[-1]), 2), det.name
    (20.85, 'uniform')
    """
    thickness_mm = np.asarray(thickness_mm, float)
    return dataclasses.replace(template.with_absorber_thickness(thickness_mm), name=name or f"{template.name}-layout")


def sigma68(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """Half the distance between the 16% and 84% quantiles along ``axis`` (sigma for a Gaussian).

    >>> x = np.random.default_rng(1).normal(0.0, 2.0, 100_000)
    >>> round(float(sigma68(x)), 1)
    2.0
    """
    low, high = np.percentile(values, [15.865525, 84.134475], axis=axis)
    return 0.5 * (high - low)


@dataclass
class LayoutMeasurement:
    """Simulated response and resolution of one layout; arrays are (energies,) unless stated."""

    name: str
    thickness_mm: np.ndarray
    energies_gev: np.ndarray
    mean_mev: np.ndarray  # mean reconstructed energy, MIP scale
    sigma68_mev: np.ndarray
    slope: float  # linearity fit: mean = slope * E[MeV] + offset
    offset: float
    linearity: np.ndarray  # (mean - offset) / slope / E - 1
    resolution: np.ndarray  # sigma68 / (mean - offset)
    resolution_err: np.ndarray  # bootstrap standard error
    boot: np.ndarray = field(repr=False)  # (bootstrap, energies) resolution replicates

    @property
    def objective(self) -> float:
        """Mean (sigma/E)^2 over the energies (the optimiser's objective, measured)."""
        return float(np.mean(self.resolution**2))

    @property
    def objective_err(self) -> float:
        return float(np.std(np.mean(self.boot**2, axis=1), ddof=1))

    def terms(self) -> tuple[np.ndarray, np.ndarray]:
        """(a, c) of ``a/sqrt(E) ⊕ c`` (E in GeV) fitted to the resolution, and their bootstrap errors."""
        fit = fit_resolution(self.energies_gev, self.resolution, self.resolution_err, terms="ac")
        return np.array([fit.a, fit.c]), np.std(self.boot_terms, axis=0, ddof=1)

    @cached_property
    def boot_terms(self) -> np.ndarray:
        """(a, c) fitted to each bootstrap replicate, (bootstrap, 2)."""
        fits = [fit_resolution(self.energies_gev, b, self.resolution_err, terms="ac") for b in self.boot]
        return np.array([[f.a, f.c] for f in fits])

    def to_dict(self) -> dict:
        (a, c), (da, dc) = self.terms()
        return {"thickness_mm": self.thickness_mm, "energies_gev": self.energies_gev, "mean_mev": self.mean_mev,
                "sigma68_mev": self.sigma68_mev, "linearity_slope": self.slope, "linearity_offset_mev": self.offset,
                "linearity_deviation": self.linearity, "resolution": self.resolution,
                "resolution_err": self.resolution_err, "objective": self.objective,
                "objective_err": self.objective_err, "stochastic_term": a, "stochastic_term_err": da,
                "constant_term": c, "constant_term_err": dc}


def simulate_responses(detector: Detector, energies_gev: np.ndarray, n_events: int, seeds: list[int],
                       rear_leakage: bool = True) -> list[np.ndarray]:
    """Reconstructed energy (MeV, MIP scale, (n_events,)) of electrons at each energy, seed ``seeds[k]``."""
    return [weighted_sum(simulate(detector, Beam("e-", energy=float(e) * 1e3), n_events, seed=int(s)),
                         rear_leakage=rear_leakage)
            for e, s in zip(energies_gev, seeds, strict=True)]


def bootstrap_indices(n_events: int, n_energies: int, n_boot: int, seed: int) -> list[np.ndarray]:
    """Resampled event indices, (n_boot, n_events) per energy; shared by all layouts (paired)."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, n_events, (n_boot, n_events), dtype=np.int32) for _ in range(n_energies)]


def measure_layout(name: str, thickness_mm: np.ndarray, energies_gev: np.ndarray, responses: list[np.ndarray],
                   indices: list[np.ndarray]) -> LayoutMeasurement:
    """Linearity fit and resolution (with bootstrap replicates) from the simulated ``responses``."""
    energies_gev = np.asarray(energies_gev, float)
    mean = np.array([r.mean() for r in responses])
    err = np.array([r.std(ddof=1) / np.sqrt(len(r)) for r in responses])
    slope, offset = linearity_fit(energies_gev * 1e3, mean, err)
    width = np.array([sigma68(r) for r in responses])
    boot = np.column_stack([sigma68(r[idx], axis=1) / (r[idx].mean(axis=1) - offset)
                            for r, idx in zip(responses, indices, strict=True)])
    return LayoutMeasurement(name=name, thickness_mm=np.asarray(thickness_mm, float), energies_gev=energies_gev,
                             mean_mev=mean, sigma68_mev=width, slope=slope, offset=offset,
                             linearity=(mean - offset) / slope / (energies_gev * 1e3) - 1,
                             resolution=width / (mean - offset), resolution_err=np.std(boot, axis=0, ddof=1),
                             boot=boot)


def compare(layout: LayoutMeasurement, reference: LayoutMeasurement) -> dict:
    """``layout - reference``: resolution per energy, objective and fitted terms, in units of their errors.

    ``se`` is the paired-bootstrap standard error of the difference, ``se_unpaired`` the two
    standard errors added in quadrature; ``z = difference / se`` (negative: ``layout`` is better).
    """
    diff = layout.resolution - reference.resolution
    se = np.std(layout.boot - reference.boot, axis=0, ddof=1)
    obj_diff = layout.objective - reference.objective
    obj_se = float(np.std(np.mean(layout.boot**2, 1) - np.mean(reference.boot**2, 1), ddof=1))
    (a1, c1), _ = layout.terms()
    (a0, c0), _ = reference.terms()
    boot_terms = layout.boot_terms - reference.boot_terms
    term_se = np.std(boot_terms, axis=0, ddof=1)
    return {
        "resolution_diff": diff, "resolution_diff_se": se, "resolution_diff_se_unpaired":
            np.hypot(layout.resolution_err, reference.resolution_err), "resolution_diff_z": diff / se,
        "relative_change": diff / reference.resolution,
        "objective_diff": obj_diff, "objective_diff_se": obj_se,
        "objective_diff_se_unpaired": float(np.hypot(layout.objective_err, reference.objective_err)),
        "objective_diff_z": obj_diff / obj_se, "objective_relative_change": obj_diff / reference.objective,
        "stochastic_term_diff": float(a1 - a0), "stochastic_term_diff_se": float(term_se[0]),
        "constant_term_diff": float(c1 - c0), "constant_term_diff_se": float(term_se[1]),
    }
