"""``mip``: the classical calibration, each cell's MIP peak in a muon run, damaged over reference.

A muon crossing a cell leaves a Landau-distributed signal whose scale is the cell's
response; the ratio of a robust location of the hit spectra (the median of the hits
below the Landau tail, i.e. the lower ``core_fraction`` of the hits) in the damaged and
reference muon runs is the cell's coefficient. Its uncertainty is the asymptotic error
of a median, ``1.2533 sigma / sqrt(n)`` with sigma from the median absolute deviation.
Both runs must be muons crossing the cells (a wide beam or cosmics). Given runs whose
events are labelled as other particles, the method still runs (a physicist may want the
comparison) but says so: the result's ``diagnostics["warning"]`` holds the sentence, which
``calolab calibrate`` prints, and Python's :mod:`warnings` gets it too.

Runs in memory are measured on their sorted hits (exact). Runs given as paths (HDF5 files,
sharded datasets) are streamed chunk by chunk into per-cell quantile sketches
(:mod:`calolab.calibration.sketch`): the core median is interpolated in the cumulative
counts, the median absolute deviation on a grid of half-widths; ``sketch=True`` does the
same for runs in memory. The muon check then reads the particle codes chunk by chunk.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from calolab.calibration.base import CalibrationResult, check_pair
from calolab.calibration.cellstats import sorted_deposits
from calolab.calibration.passes import Source, open_runs, over
from calolab.calibration.sketch import QuantileSketch, Spectrum, sketch_runs
from calolab.showers import PARTICLE_NAMES, Showers


def _core_location(values: np.ndarray, core_fraction: float) -> tuple[float, float, int]:
    """Median of the lowest ``core_fraction`` of ``values`` (sorted descending) and its relative error."""
    core = np.sort(values)[: max(int(np.ceil(core_fraction * len(values))), 1)]
    median = float(np.median(core))
    mad = float(np.median(np.abs(core - median))) * 1.4826
    return median, 1.2533 * mad / max(median, 1e-30) / np.sqrt(len(core)), len(core)


def _core_of_spectrum(spectrum: Spectrum, threshold: float, core_fraction: float,
                      grid: int = 256) -> tuple[float, float, int]:
    """:func:`_core_location` of the hits above ``threshold`` MeV of one cell's sketch."""
    n = spectrum.above(threshold)
    base = spectrum.n - n  # hits at or below the threshold
    n_core = max(int(np.ceil(core_fraction * n)), 1)
    low, median, high = spectrum.from_bottom(base + np.array([0.0, n_core / 2, n_core]))
    # hits within median +- t of the core, on a grid of t, and where it crosses half the core
    t = np.linspace(0.0, max(high - median, median - low), grid)
    inside = (np.interp(np.log(np.minimum(median + t, high)), spectrum.log_energy, spectrum.below)
              - np.interp(np.log(np.maximum(median - t, low)), spectrum.log_energy, spectrum.below))
    mad = float(np.interp(n_core / 2, inside, t)) * 1.4826
    return float(median), 1.2533 * mad / max(float(median), 1e-30) / np.sqrt(n_core), n_core


def calibrate_mip(reference: Source, damaged: Source, min_hits: int = 20, core_fraction: float = 0.8,
                  threshold: float = 0.0, sketch: bool = False) -> CalibrationResult:
    """Per-cell ratio of MIP-peak locations from two muon runs (hits above ``threshold`` MeV).

    Cells with fewer than ``min_hits`` muon hits in either run are not calibrated. Each run
    is :class:`Showers` or a path, streamed into a sketch; ``sketch=True`` sketches runs in
    memory too.
    """
    if sketch or not (isinstance(reference, Showers) and isinstance(damaged, Showers)):
        ref_sketch, dam_sketch, sums, shape = sketch_runs(reference, damaged)
        warning = _not_muons_streamed(reference, damaged)
        result = mip_of_sketches(ref_sketch, dam_sketch, shape, min_hits, core_fraction, threshold, warning)
        result.run_stats = sums
        return result
    check_pair(reference, damaged)
    warning = _not_muons(reference, damaged)
    ref_e, ref_start = sorted_deposits(reference)
    dam_e, dam_start = sorted_deposits(damaged)
    n_cells = reference.detector.n_cells
    coeff, sigma = np.full(n_cells, np.nan), np.full(n_cells, np.nan)
    ok = np.zeros(n_cells, bool)
    enough = (np.diff(ref_start) >= min_hits) & (np.diff(dam_start) >= min_hits)
    for cell in np.flatnonzero(enough):
        r = ref_e[ref_start[cell]:ref_start[cell + 1]]
        d = dam_e[dam_start[cell]:dam_start[cell + 1]]
        r, d = r[r > threshold], d[d > threshold]
        if min(len(r), len(d)) < min_hits:
            continue
        loc_r, rel_r, _ = _core_location(r, core_fraction)
        loc_d, rel_d, _ = _core_location(d, core_fraction)
        coeff[cell] = loc_d / loc_r
        sigma[cell] = coeff[cell] * np.hypot(rel_r, rel_d)
        ok[cell] = True
    return _result(coeff, sigma, ok, reference.detector.shape, min_hits, core_fraction, threshold, warning)


def mip_of_sketches(reference: QuantileSketch, damaged: QuantileSketch, shape: tuple[int, ...], min_hits: int = 20,
                    core_fraction: float = 0.8, threshold: float = 0.0, warning: str = "") -> CalibrationResult:
    """:func:`calibrate_mip` on the per-cell sketches of two runs, cells of ``shape`` (layers, nx, ny).

    ``warning`` is the muon check's sentence ("" if both runs are muons).
    """
    n_cells = reference.n_cells
    coeff, sigma = np.full(n_cells, np.nan), np.full(n_cells, np.nan)
    ok = np.zeros(n_cells, bool)
    ref_starts, dam_starts = reference.starts, damaged.starts
    for cell in np.flatnonzero((reference.hits >= min_hits) & (damaged.hits >= min_hits)):
        r, d = reference.spectrum(cell, ref_starts), damaged.spectrum(cell, dam_starts)
        if min(r.above(threshold), d.above(threshold)) < min_hits:
            continue
        loc_r, rel_r, _ = _core_of_spectrum(r, threshold, core_fraction)
        loc_d, rel_d, _ = _core_of_spectrum(d, threshold, core_fraction)
        coeff[cell] = loc_d / loc_r
        sigma[cell] = coeff[cell] * np.hypot(rel_r, rel_d)
        ok[cell] = True
    return _result(coeff, sigma, ok, shape, min_hits, core_fraction, threshold, warning,
                   sketch=reference.binning.relative_width)


def _result(coeff: np.ndarray, sigma: np.ndarray, ok: np.ndarray, shape: tuple[int, ...], min_hits: int,
            core_fraction: float, threshold: float, warning: str, **extra: float) -> CalibrationResult:
    """The result, with the warning (if any) in its diagnostics and passed to :mod:`warnings`."""
    diagnostics = {"min_hits": min_hits, "core_fraction": core_fraction, "threshold": threshold} | extra
    if warning:
        warning += f"; {int(ok.sum())} cells calibrated, the others left as they are"
        warnings.warn(warning, stacklevel=3)
        diagnostics["warning"] = warning
    return CalibrationResult(coeff.reshape(shape), sigma.reshape(shape), ok.reshape(shape), "mip", diagnostics)


def _not_muons(reference: Showers, damaged: Showers) -> str:
    """A sentence naming the runs whose events are labelled as particles other than muons ("" if none).

    Events of unknown particle (code 0, e.g. CaloChallenge files from elsewhere) count as muons.
    """
    found = []
    for name, showers in (("reference", reference), ("damaged", damaged)):
        other = (np.abs(showers.particle) != 13) & (showers.particle != 0)
        if other.any():
            names = sorted({showers.particle_names[i] for i in np.flatnonzero(other)[:1000]})
            found.append(f"the {name} run holds {int(other.sum())} of {len(showers)} events of {', '.join(names)}")
    if not found:
        return ""
    return "the mip method measures MIP peaks in muon runs, but " + " and ".join(found)



@dataclass(frozen=True)
class _Labels:
    """Events of a batch and the codes of those labelled as particles other than muons (mergeable with ``+``)."""

    n_events: int
    n_other: int
    codes: frozenset[int]

    @classmethod
    def of(cls, showers: Showers) -> _Labels:
        other = (np.abs(showers.particle) != 13) & (showers.particle != 0)
        return cls(len(showers), int(other.sum()), frozenset(int(c) for c in np.unique(showers.particle[other])))

    def __add__(self, other: _Labels) -> _Labels:
        return _Labels(self.n_events + other.n_events, self.n_other + other.n_other, self.codes | other.codes)


def _not_muons_streamed(reference: Source, damaged: Source) -> str:
    """:func:`_not_muons` of two runs in memory or on disk, reading their particle codes chunk by chunk."""
    found = []
    for name, run in zip(("reference", "damaged"), open_runs(reference, damaged), strict=True):
        [labels] = over(run, lambda chunk, _: _Labels.of(chunk))
        if labels.n_other:
            names = sorted({PARTICLE_NAMES.get(c, str(c)) for c in labels.codes})
            found.append(f"the {name} run holds {labels.n_other} of {labels.n_events} events of {', '.join(names)}")
    if not found:
        return ""
    return "the mip method measures MIP peaks in muon runs, but " + " and ".join(found)
