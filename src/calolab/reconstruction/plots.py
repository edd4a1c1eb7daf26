"""Plots of energy regression: response and resolution against energy, prediction against truth.

Each function takes ``ax=`` (the current axes if ``None``) and returns it; several
regressors go on one axes as a ``{name: table}`` mapping. Energies are shown in GeV.
matplotlib is imported inside the functions.

>>> import matplotlib
>>> matplotlib.use("Agg")
>>> import numpy as np
>>> from calolab.reconstruction.metrics import binned_metrics
>>> rng = np.random.default_rng(1)
>>> e = rng.uniform(10e3, 100e3, 2000)
>>> table = binned_metrics(e, e * (1 + 0.1 * rng.standard_normal(2000)), bins=5, n_boot=20)
>>> ax = plot_resolution({"toy": table})
>>> ax.get_ylabel()
'resolution σ/E'
>>> import matplotlib.pyplot as plt
>>> plt.close("all")
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from calolab.reconstruction.metrics import ResolutionFit, ResolutionTable

RESPONSES = {"median": ("response_median", "median E_pred / E_true"), "mean": ("response_mean", "mean E_pred / E_true")}
RESOLUTIONS = {"resolution": "resolution σ/E", "rmse": "relative RMSE (with bias)",
               "sigma_3_97": "σ(3-97%)/E"}


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        ax = plt.gca()
    return ax


def plot_response(tables: Mapping[str, ResolutionTable], ax=None, kind: str = "median"):
    """Response (median or mean of E_pred / E_true) against the bin's mean true energy, one series per regressor."""
    ax = _axes(ax)
    field, label = RESPONSES[kind]
    for name, table in tables.items():
        ax.errorbar(table.energy_gev, getattr(table, field), getattr(table, f"{field}_err"), fmt="o-", ms=3,
                    capsize=2, label=name)
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set(xlabel="true energy [GeV]", ylabel=label, title="response")
    ax.legend(fontsize="small", loc="best")
    return ax


def plot_resolution(tables: Mapping[str, ResolutionTable], fits: Mapping[str, ResolutionFit] | None = None,
                    ax=None, metric: str = "resolution", log_x: bool = False):
    """Resolution (``resolution``, ``rmse`` or ``sigma_3_97``) against energy, with the fitted curves."""
    ax = _axes(ax)
    fits = fits or {}
    for name, table in tables.items():
        points = ax.errorbar(table.energy_gev, getattr(table, metric), getattr(table, f"{metric}_err"), fmt="o",
                             ms=3, capsize=2, label=name)
        if name in fits and len(table.energy_gev):
            grid = np.geomspace(table.energy_gev.min(), table.energy_gev.max(), 200)
            ax.plot(grid, fits[name](grid), color=points[0].get_color(), lw=1, label=f"{name}: {fits[name].label()}")
    ax.set(xlabel="true energy [GeV]", ylabel=RESOLUTIONS[metric], title="energy resolution")
    if log_x:
        ax.set_xscale("log")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize="small", loc="best")
    return ax


def plot_prediction_vs_truth(e_true: np.ndarray, e_pred: np.ndarray, ax=None, bins: int = 60, label: str = ""):
    """2D histogram of predicted against true energy (GeV), log colour scale, with the diagonal."""
    from matplotlib.colors import LogNorm

    ax = _axes(ax)
    t, p = np.asarray(e_true, float) / 1e3, np.asarray(e_pred, float) / 1e3
    hi = float(max(t.max(), np.quantile(p, 0.999))) if len(t) else 1.0
    lo = float(min(t.min(), np.quantile(p, 0.001), 0.0)) if len(t) else 0.0
    edges = np.linspace(lo, hi, bins + 1)
    _, _, _, image = ax.hist2d(t, p, bins=[edges, edges], norm=LogNorm(), cmap="viridis")
    ax.figure.colorbar(image, ax=ax, label="events")
    ax.plot([lo, hi], [lo, hi], color="red", lw=0.8)
    ax.set(xlabel="true energy [GeV]", ylabel="predicted energy [GeV]", title=label or "prediction vs truth")
    return ax
