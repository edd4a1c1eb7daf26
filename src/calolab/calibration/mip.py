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
"""

from __future__ import annotations

import warnings

import numpy as np

from calolab.calibration.base import CalibrationResult, check_pair
from calolab.calibration.cellstats import sorted_deposits
from calolab.calibration.passes import require_in_memory
from calolab.showers import Showers


def _core_location(values: np.ndarray, core_fraction: float) -> tuple[float, float, int]:
    """Median of the lowest ``core_fraction`` of ``values`` (sorted descending) and its relative error."""
    core = np.sort(values)[: max(int(np.ceil(core_fraction * len(values))), 1)]
    median = float(np.median(core))
    mad = float(np.median(np.abs(core - median))) * 1.4826
    return median, 1.2533 * mad / max(median, 1e-30) / np.sqrt(len(core)), len(core)


def calibrate_mip(reference: Showers, damaged: Showers, min_hits: int = 20, core_fraction: float = 0.8,
                  threshold: float = 0.0) -> CalibrationResult:
    """Per-cell ratio of MIP-peak locations from two muon runs (hits above ``threshold`` MeV).

    Cells with fewer than ``min_hits`` muon hits in either run are not calibrated.
    """
    require_in_memory("mip", reference, damaged)
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
    shape = reference.detector.shape
    diagnostics = {"min_hits": min_hits, "core_fraction": core_fraction, "threshold": threshold}
    if warning:
        warning += f"; {int(ok.sum())} cells calibrated, the others left as they are"
        warnings.warn(warning, stacklevel=2)
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
