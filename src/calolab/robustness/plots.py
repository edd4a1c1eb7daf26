"""Figures of the robustness scan; each takes an ``ax=`` (a new figure if ``None``) and returns it.

>>> import matplotlib
>>> matplotlib.use("Agg")
>>> import numpy as np
>>> from calolab.robustness.response import fit_response
>>> e = np.linspace(10e3, 100e3, 200)
>>> ax = plot_response_curves({"nominal": fit_response(e, 0.9 * e + 1e3)})
>>> ax.get_xlabel()
'true energy [GeV]'
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from calolab.robustness.regression import OLSFit
from calolab.robustness.response import ResponseFit

PARAMETER_LABELS = {"s": "calibration scale s", "n": "noise scale n", "u": "bias u"}


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(6, 4.5))
    return ax


def plot_response_curves(fits: Mapping[str, ResponseFit], ax=None):
    """Mean prediction (GeV) against true energy (GeV) per bin, with the fitted lines, one curve per label."""
    ax = _axes(ax)
    top = 0.0
    for label, fit in fits.items():
        x, y = fit.e_mean / 1e3, fit.pred_mean / 1e3
        line = ax.errorbar(x, y, yerr=fit.pred_err / 1e3, fmt="o", ms=3, capsize=2,
                           label=f"{label}: a = {fit.a:.3g}, b = {fit.b / 1e3:.3g} GeV")
        grid = np.linspace(0, x.max(), 50)
        ax.plot(grid, fit.a * grid + fit.b / 1e3, "-", lw=1, color=line[0].get_color())
        top = max(top, float(x.max()))
    ax.plot([0, top], [0, top], "k:", lw=0.8, label="E_hat = E")
    ax.set(xlabel="true energy [GeV]", ylabel="mean prediction [GeV]")
    ax.legend(fontsize=7)
    return ax


def plot_against_parameter(params: np.ndarray, values: np.ndarray, which: str, errors: np.ndarray | None = None,
                           label: str | None = None, flooded: np.ndarray | None = None, ax=None):
    """A response parameter (``a`` or ``b``) at each grid point against one distortion parameter.

    ``params`` are rows ``(s, n, u)``; ``which`` is ``s``, ``n`` or ``u``. Points marked in
    ``flooded`` (bool per point: noise above the threshold swamps the signal) are drawn open.
    """
    ax = _axes(ax)
    column = {"s": 0, "n": 1, "u": 2}[which]
    x = np.asarray(params, float)[:, column]
    values = np.asarray(values, float)
    span = np.ptp(x) if len(x) else 0.0
    x = x + ((np.random.default_rng(0).uniform(-0.01, 0.01, len(x)) * span) if span > 0 else 0.0)
    open_ = np.zeros(len(x), bool) if flooded is None else np.asarray(flooded, bool)
    err = None if errors is None else np.asarray(errors, float)
    line = ax.errorbar(x[~open_], values[~open_], yerr=None if err is None else err[~open_], fmt="o", ms=3,
                       alpha=0.6, label=label)
    if open_.any():
        ax.errorbar(x[open_], values[open_], yerr=None if err is None else err[open_], fmt="o", ms=4, mfc="none",
                    alpha=0.6, color=line[0].get_color(), label=f"{label}, noise floods" if label else None)
    ax.set(xlabel=PARAMETER_LABELS[which])
    return ax


def plot_residuals(fit: OLSFit, target: str, label: str | None = None, ax=None):
    """Residuals of a regression of ``target`` against its fitted values."""
    ax = _axes(ax)
    ax.plot(fit.fitted, fit.residuals, "o", ms=3, alpha=0.7, label=label)
    ax.axhline(0, color="k", lw=0.8)
    ax.set(xlabel=f"fitted {target}", ylabel=f"residual of {target}",
           title=f"{target}: R^2 = {fit.r2:.3f}, sigma = {fit.sigma:.3g}")
    return ax


def plot_signal_survival(noise_scales: np.ndarray, hits_kept: np.ndarray, energy_kept: np.ndarray,
                         noise_cells: np.ndarray, label: str, ax=None):
    """Fraction of signal hits and of true signal energy that survive zero suppression, and noise-only
    cells per event (right axis), against the noise scale."""
    ax = _axes(ax)
    line = ax.plot(noise_scales, hits_kept, "o-", ms=3, label=f"{label}: signal hits kept")[0]
    ax.plot(noise_scales, energy_kept, "s--", ms=3, color=line.get_color(), label=f"{label}: signal energy kept")
    ax.set(xlabel="noise scale n", ylabel="fraction surviving", ylim=(0, 1.05))
    twin = getattr(ax, "_calolab_twin", None)
    if twin is None:
        twin = ax.twinx()
        ax._calolab_twin = twin
        twin.set(ylabel="noise-only cells per event", yscale="symlog")
    twin.plot(noise_scales, noise_cells, "^:", ms=3, color=line.get_color())
    ax.legend(fontsize=7, loc="center left")
    return ax
