"""Plots of showers: event displays and mean profiles. Every function takes ``ax=`` and returns it.

:func:`figure_style` is the look of every figure calolab writes: mplhep's HEP style when
mplhep is installed (``pip install calolab[plots]``), plain matplotlib without it; legends
go where they cover the least data. matplotlib is imported inside the functions so that
``import calolab`` stays light.

>>> import matplotlib.pyplot as plt
>>> with figure_style():
...     plt.rcParams["legend.loc"]
'best'
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from calolab.io.atomic import atomic_path
from calolab.showers import Showers

# on top of mplhep's style: matplotlib's font (it has every glyph calolab's labels use, such as
# ⊕ and σ) and sizes for the figure sizes the studies choose
STYLE = {"font.family": "sans-serif", "font.sans-serif": ["DejaVu Sans"], "mathtext.fontset": "dejavusans",
         "font.size": 11, "axes.titlesize": "medium", "axes.labelsize": "medium", "xtick.labelsize": "small",
         "ytick.labelsize": "small", "legend.fontsize": "small", "legend.loc": "best", "figure.figsize": (6.4, 4.8)}

F = TypeVar("F", bound=Callable[..., Any])


@contextmanager
def figure_style() -> Iterator[None]:
    """matplotlib settings for calolab's figures, inside the ``with`` block only."""
    import matplotlib.pyplot as plt

    try:
        import mplhep
    except ImportError:  # the plots extra is not installed: matplotlib's own look
        styles: list[Any] = [{"legend.loc": "best"}]
    else:
        styles = [mplhep.style.CMS, STYLE]
    with plt.style.context(styles):
        yield


def styled(function: F) -> F:
    """Decorator: run ``function`` (which draws and writes figures) inside :func:`figure_style`."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with figure_style():
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        ax = plt.gca()
    return ax


def event_display(showers: Showers, event: int = 0, projection: str = "xy", ax=None):
    """Visible energy of one event summed along one axis: ``xy`` (over layers), ``zx`` or ``zy``.

    A cylindrical detector's ``xy`` view shows its (alpha, r) bins in the x-y plane; its
    ``zx`` and ``zy`` views are the same: energy per layer and r bin, summed over alpha.
    """
    ax = _axes(ax)
    det = showers.detector
    cube = showers.dense(event, event + 1)[0]  # (L, X, Y) MeV
    if projection not in ("xy", "zx", "zy"):
        raise ValueError(f"projection must be xy, zx or zy, got {projection!r}")
    if det.cylinder is not None:
        image, labels = _cylinder_display(det, cube, projection, ax)
    else:
        if projection == "xy":
            image, extent, labels = cube.sum(0).T, [*det.x_edges[[0, -1]], *det.y_edges[[0, -1]]], ("x [mm]", "y [mm]")
        else:
            axis = 2 if projection == "zx" else 1
            edges = det.x_edges if projection == "zx" else det.y_edges
            image, extent = cube.sum(axis).T, [0, det.n_layers, *edges[[0, -1]]]
            labels = ("layer", f"{projection[1]} [mm]")
        mesh = ax.imshow(np.where(image > 0, image, np.nan), origin="lower", extent=extent, aspect="auto",
                         norm=_log_norm(image), cmap="viridis", interpolation="nearest")
        ax.figure.colorbar(mesh, ax=ax, label="visible energy [MeV]")
    ax.set(xlabel=labels[0], ylabel=labels[1],
           title=f"event {event}: {showers.particle_names[event]} {showers.incident_energy[event] / 1e3:.3g} GeV")
    return ax


def _log_norm(image: np.ndarray):
    from matplotlib.colors import LogNorm

    positive = image[image > 0]
    return LogNorm(vmin=positive.min(), vmax=positive.max()) if positive.size else None


def _cylinder_display(det, cube: np.ndarray, projection: str, ax) -> tuple[np.ndarray, tuple[str, str]]:
    """Draw a cylindrical detector's event: (alpha, r) bins in the x-y plane, or (layer, r) summed over alpha."""
    grids = getattr(det.cylinder, "grids", None) or (det.cylinder,) * det.n_layers  # each layer's bins
    if projection == "xy":  # layers with their own bins: the layer holding the most energy
        k = int(np.argmax(cube.sum(axis=(1, 2)))) if len(set(grids)) > 1 else 0
        grid, plane = grids[k], cube[k] if len(set(grids)) > 1 else cube.sum(0)
        r = np.asarray(grid.r_edges, float)
        split = max(1, -(-64 // grid.n_alpha))  # each alpha bin's arcs drawn as `split` straight segments
        alpha = np.linspace(-np.pi, np.pi, grid.n_alpha * split + 1)
        image = np.repeat(plane[: grid.n_alpha, : grid.n_r], split, axis=0).T  # (r, alpha segments) MeV
        x, y = r[:, None] * np.cos(alpha)[None, :], r[:, None] * np.sin(alpha)[None, :]
        labels = ("x [mm]", "y [mm]")
        ax.set_aspect("equal")
        meshes = [(x, y, image)]
    else:  # (layer, r) summed over alpha, each layer with its own r bins
        meshes = [(np.array([[k, k + 1]] * (g.n_r + 1)), np.repeat(np.asarray(g.r_edges, float)[:, None], 2, 1),
                   cube[k].sum(0)[: g.n_r, None]) for k, g in enumerate(grids)]
        image = cube.sum(1).T  # (r, layer) MeV
        labels = ("layer", "r [mm]")
    norm = _log_norm(image)
    for x, y, c in meshes:
        mesh = ax.pcolormesh(x, y, np.where(c > 0, c, np.nan), norm=norm, cmap="viridis")
    ax.figure.colorbar(mesh, ax=ax, label="visible energy [MeV]")
    return image, labels


def longitudinal_profile(showers: Showers, ax=None, label: str | None = None):
    """Mean visible energy per layer (MeV) with its standard error."""
    ax = _axes(ax)
    sums = showers.layer_sums()
    err = sums.std(0) / np.sqrt(max(len(showers), 1))
    ax.errorbar(np.arange(showers.detector.n_layers), sums.mean(0), err, fmt="o-", ms=3, label=label)
    ax.set(xlabel="layer", ylabel="mean visible energy [MeV]", yscale="log", title="longitudinal profile")
    return ax


def radial_profile(showers: Showers, ax=None, label: str | None = None):
    """Mean visible energy per event in rings (one cell pitch wide) around the beam entry point, MeV/mm.

    A cylindrical detector's rings are its r bins, around the beam axis.
    """
    ax = _axes(ax)
    det = showers.detector
    x, y = det.cell_centres(*showers.cell_coordinates())
    if det.cylinder is not None:  # the bins are centred on the axis
        r, edges = np.hypot(x, y), np.asarray(det.cylinder.r_edges, float)
    else:
        entry = showers.entry[showers.event_index]
        r = np.hypot(x - entry[:, 0], y - entry[:, 1])
        pitch = max(det.pitch_x, det.pitch_y)
        edges = np.arange(0, max(det.x_edges[-1], det.y_edges[-1]) + pitch, pitch)
    hist, _ = np.histogram(r, edges, weights=showers.energy)
    ax.step(edges[:-1], hist / max(len(showers), 1) / np.diff(edges), where="post", label=label)
    ax.set(xlabel="r [mm]", ylabel="mean energy per event [MeV/mm]", yscale="log", title="radial profile")
    return ax


def energy_sum_histogram(showers: Showers, ax=None, label: str | None = None, bins: int = 60):
    """Histogram of the visible energy sum per event (MeV)."""
    ax = _axes(ax)
    ax.hist(showers.energy_sum(), bins=bins, histtype="step", label=label)
    ax.set(xlabel="visible energy sum [MeV]", ylabel="events", title="energy sum")
    return ax


@styled
def overview(showers: Showers, path: str | Path, event: int = 0) -> Path:
    """Write a PNG with event displays (xy, zx) and mean profiles; return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(16, 9))
    event_display(showers, event, "xy", ax=axes[0, 0])
    event_display(showers, event, "zx", ax=axes[0, 1])
    energy_sum_histogram(showers, ax=axes[0, 2])
    longitudinal_profile(showers, ax=axes[1, 0])
    radial_profile(showers, ax=axes[1, 1])
    axes[1, 2].hist(showers.hits_per_event(), bins=50, histtype="step")
    axes[1, 2].set(xlabel="hits per event", ylabel="events", title="number of hits")
    fig.suptitle(showers.summary(), fontsize=10)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path
