"""Figures of the design study; every function draws on ``ax`` and returns it.

>>> import matplotlib
>>> matplotlib.use("Agg")
>>> import matplotlib.pyplot as plt
>>> ax = plot_thickness({"prototype": np.array([4.2, 4.2, 5.6])}, ax=plt.figure().gca())
>>> ax.get_xlabel()
'layer'
"""

from __future__ import annotations

import numpy as np

from calolab.reconstruction.metrics import resolution_model


def _ax(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        ax = plt.figure().gca()
    return ax


def plot_thickness(layouts: dict[str, np.ndarray], ax=None, unit: str = "mm", title: str = "absorber per layer"):
    """Absorber thickness per layer (mm, (layers,) each) of several layouts, as steps."""
    ax = _ax(ax)
    for name, thickness in layouts.items():
        layers = np.arange(len(thickness) + 1)
        ax.stairs(thickness, layers - 0.5, label=f"{name} (total {np.sum(thickness):.1f} {unit})", lw=1.8)
    ax.set(xlabel="layer", ylabel=f"absorber thickness [{unit}]", title=title)
    ax.legend(loc="best")
    return ax


def plot_resolution(measurements: dict, surrogate: dict[str, np.ndarray] | None = None, ax=None):
    """sigma/E vs E: simulated points with bootstrap errors, fitted a/sqrt(E) ⊕ c, surrogate as dashed lines.

    ``measurements`` maps names to :class:`calolab.design.check.LayoutMeasurement`;
    ``surrogate`` maps the same names to the surrogate's sigma/E at the same energies.
    """
    ax = _ax(ax)
    for i, (name, m) in enumerate(measurements.items()):
        (a, c), _ = m.terms()
        colour = f"C{i}"
        grid = np.geomspace(m.energies_gev.min(), m.energies_gev.max(), 100)
        ax.errorbar(m.energies_gev, m.resolution, m.resolution_err, fmt="o", color=colour, ms=4,
                    label=f"{name}: {100 * a:.1f}%/√E ⊕ {100 * c:.2f}%")
        ax.plot(grid, resolution_model(grid, a, 0.0, c), color=colour, lw=1)
        if surrogate is not None and name in surrogate:
            ax.plot(m.energies_gev, surrogate[name], ls="--", color=colour, lw=1)
    ax.plot([], [], "k--", lw=1, label="surrogate")
    ax.set(xscale="log", yscale="log", xlabel="E [GeV]", ylabel="σ68 / E", title="electron resolution (simulator)")
    ax.legend(fontsize=8, loc="best")
    return ax


def plot_relative(measurements: dict, comparisons: dict[str, dict], ax=None, reference: str = "prototype"):
    """(sigma/E) / (sigma/E of ``reference``) - 1 per energy, with paired-bootstrap errors, in %."""
    ax = _ax(ax)
    for i, (name, comp) in enumerate(comparisons.items()):
        e = measurements[name].energies_gev
        ref = measurements[name].resolution - comp["resolution_diff"]
        ax.errorbar(e * (1 + 0.03 * i), 100 * comp["relative_change"], 100 * comp["resolution_diff_se"] / ref,
                    fmt="o-", ms=4, label=f"{name} vs {reference}")
    ax.axhline(0, color="k", lw=0.8)
    ax.set(xscale="log", xlabel="E [GeV]", ylabel="change of σ/E [%]", title=f"relative to the {reference}")
    ax.legend(fontsize=8, loc="best")
    return ax


def plot_trajectory(objectives: dict[str, np.ndarray], ax=None, reference: dict[str, float] | None = None):
    """The optimiser's objective (mean (sigma/E)^2) per step for each start; horizontal lines for ``reference``."""
    ax = _ax(ax)
    for name, values in objectives.items():
        ax.plot(np.arange(len(values)), values, label=f"start: {name}")
    for i, (name, value) in enumerate((reference or {}).items()):
        ax.axhline(value, color=f"C{i + 3}", ls=":", lw=1, label=name)
    ax.set(xlabel="Adam step", ylabel="mean (σ/E)² (surrogate)", title="optimisation")
    ax.legend(fontsize=8, loc="best")
    return ax


def plot_thickness_path(trajectory: np.ndarray, ax=None):
    """Absorber thickness of every layer (mm) along the optimisation, (steps, layers)."""
    ax = _ax(ax)
    image = ax.imshow(trajectory.T, aspect="auto", origin="lower", interpolation="nearest", cmap="viridis")
    ax.figure.colorbar(image, ax=ax, label="thickness [mm]")
    ax.set(xlabel="Adam step", ylabel="layer", title="thickness along the optimisation")
    return ax
