"""The tracker's momentum measurement and its combination with the calorimeter (paper 003).

The tracker is simulated per event, Gaussian in energy: ``E_trk = E (1 + N(0, s E[GeV]))``
(:func:`tracker_energies`; ``s = 2e-4`` is 20% at 1 TeV). A tracker's extrapolation of the
muon's entry point and direction into the calorimeter is modelled by smearing the true ones
(:func:`smear_track`). A calorimeter estimate is combined with the tracker's event by event
by maximum likelihood (:func:`combine_with_tracker`, using
:func:`~calolab.reconstruction.metrics.combine_estimates`), and :func:`crossover` finds
where the calorimeter's resolution meets the tracker's.

>>> import numpy as np
>>> e = np.full(100000, 1e6)  # 1 TeV, MeV
>>> round(float(np.std(tracker_energies(e, 2e-4, seed=1) / e)), 2)
0.2
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from calolab.reconstruction import metrics as rm
from calolab.reconstruction.paired import improvement, paired_ratio
from calolab.reconstruction.response import ResponseCalibration
from calolab.showers import Showers

FIT_CHI2_PER_NDF = 3.0  # a resolution fit worse than this does not set the crossover energy


def smear_track(showers: Showers, sigma_mm: float, sigma_mrad: float, rng: np.random.Generator) -> Showers:
    """``showers`` with its entry points and directions smeared: each x and y by ``N(0, sigma_mm)``,
    each slope dx/dz and dy/dz by ``N(0, sigma_mrad / 1000)``; the hits are shared, not copied."""
    n = len(showers)
    entry = showers.entry + rng.normal(0.0, sigma_mm, (n, 2))
    slope = showers.direction[:, :2] / showers.direction[:, 2:3] + rng.normal(0.0, sigma_mrad / 1e3, (n, 2))
    direction = np.column_stack([slope, np.ones(n)])
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    return Showers(showers.detector, showers.offsets, showers.cell, showers.energy, showers.particle,
                   showers.incident_energy, entry, direction, dict(showers.extras), dict(showers.meta))


def tracker_energies(e_true: np.ndarray, slope: float, seed: int) -> np.ndarray:
    """Simulated tracker energies, MeV (N,): ``E (1 + N(0, slope E[GeV]))``, seeded."""
    e_true = np.asarray(e_true, float)
    return e_true * (1.0 + slope * e_true / 1e3 * np.random.default_rng(seed).standard_normal(len(e_true)))


def combine_with_tracker(e_true, e_cal, e_trk, calorimeter_resolution, edges, window, tracker_slope: float = 2e-4,
                         n_boot: int = 200, seed: int = 0, calibration=None,
                         response_model: str = "linear") -> dict[str, Any]:
    """Combine calorimeter and tracker energies event by event and score the combination.

    Parameters
    ----------
    e_true, e_cal, e_trk : (N,)
        True, calorimeter (response-corrected) and tracker energies, MeV.
    calorimeter_resolution
        The calorimeter's sigma/E as a function of E in GeV (the combination's weights).
    edges
        Energy bins (MeV) for the combination's ``table``.
    window
        ``(low, high)`` true energies in MeV where the combination is compared with each input.
    calibration
        Optional ``(e_true, e_cal, e_trk)`` of held-out events: the combination's response is
        fitted on them (``response_model``, see
        :class:`~calolab.reconstruction.response.ResponseCalibration`) and inverted, as for every regressor.

    Returns
    -------
    dict
        ``combined`` (N,) MeV; ``response`` (the combination's correction, or None); ``table``
        (binned metrics of the combination, as a dict);
        ``at_window``: :func:`~calolab.reconstruction.paired.paired_ratio` of the combination
        over the tracker, with ``improvement`` and ``window_gev``; ``vs_calorimeter``: the
        same over the calorimeter.
    """
    def tracker(e_gev):
        return rm.tracker_resolution(e_gev, tracker_slope)

    window = np.asarray(window, float)
    combined = rm.combine_estimates(e_cal, e_trk, calorimeter_resolution, tracker)
    response = None
    if calibration is not None:  # the combination's own response, fitted on held-out events as for every regressor
        c_true, c_cal, c_trk = (np.asarray(x, float) for x in calibration)
        response = ResponseCalibration.fit(c_true, rm.combine_estimates(c_cal, c_trk, calorimeter_resolution, tracker),
                                           bins=edges, model=response_model)
        combined = response.correct(combined)
    vs_tracker = paired_ratio(e_true, combined, e_trk, window, n_boot, seed)
    return {"combined": combined, "response": response.to_dict() if response is not None else None,
            "table": rm.binned_metrics(e_true, combined, bins=edges, n_boot=n_boot, seed=seed).to_dict(),
            "at_window": {"window_gev": (window / 1e3).tolist(), **vs_tracker, **improvement(vs_tracker)},
            "vs_calorimeter": paired_ratio(e_true, combined, e_cal, window, n_boot, seed)}


def crossover(fitted: rm.ResolutionFit | None, measured: Callable[[np.ndarray], np.ndarray],
              tracker: Callable[[np.ndarray], np.ndarray], lo_gev: float, hi_gev: float) -> dict[str, Any]:
    """Crossover energies (GeV) of the calorimeter with the tracker: on the fit, on the bins, and the one
    quoted, from the fit when it describes the bins (chi2/ndf <= FIT_CHI2_PER_NDF), else from the bins."""
    on_bins = rm.crossover_energy(measured, tracker, lo_gev, hi_gev)
    on_fit = rm.crossover_energy(fitted, tracker, lo_gev, hi_gev) if fitted is not None else float("nan")
    good_fit = fitted is not None and fitted.chi2 <= FIT_CHI2_PER_NDF * max(fitted.ndf, 1)
    return {"crossover_gev": on_fit if good_fit else on_bins, "crossover_from": "fit" if good_fit else "bins",
            "crossover_fit_gev": on_fit, "crossover_measured_gev": on_bins}
