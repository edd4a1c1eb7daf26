"""Figures of an evaluation: reference against generated (and the floor). Every plot takes ``ax=`` and returns it.

The histograms and layer profiles take a ``ratio_ax=`` too: a panel below them with each
sample over the reference, statistical errors and 1 as a line. matplotlib is imported
inside the functions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from calolab.evaluation.classifier import ClassifierResult
from calolab.evaluation.distances import ObservableComparison
from calolab.evaluation.features import LAYERED, SCALARS, UNITS, HighLevelFeatures
from calolab.plotting import styled

STYLES = {"reference": dict(color="black", lw=1.5), "generated": dict(color="tab:red", lw=1.3),
          "floor": dict(color="tab:blue", lw=1.0, ls="--")}
LABELS = {"layer_energy": "layer energy", "center_x": "centre x", "center_y": "centre y", "width_x": "width x",
          "width_y": "width y", "energy": "visible energy", "energy_ratio": "E_vis / E_inc",
          "depth_x0": "centre of gravity", "n_hits": "hits above threshold", "cell_energy": "cell energy"}


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        ax = plt.gca()
    return ax


def _density(counts: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Density per unit of the observable over the inner bins (fractions of all events)."""
    return counts[1:-2] / max(counts.sum(), 1) / np.diff(edges)


def _ratio_axes(ax, ratio_ax, xlabel: str):
    """Finish a main panel and its ratio panel below it: shared x, the x label on the ratio panel."""
    ratio_ax.axhline(1.0, color="grey", lw=0.8)
    ratio_ax.set(xlabel=xlabel, ylabel="/ reference", ylim=(0.5, 1.5))
    ax.tick_params(which="both", labelbottom=False)
    ax.set_xlabel("")


def observable_histogram(comparisons: dict[str, ObservableComparison], ax=None, xlabel: str = "",
                         log_x: bool = False, ratio_ax=None):
    """Normalised histograms on the common quantile edges, separation power in the legend.

    ``comparisons`` maps a sample name (``generated``, ``floor``) to its comparison with the
    same reference; the reference is drawn from the first. ``ratio_ax`` (sharing x with
    ``ax``): each sample's density over the reference's per bin, with Poisson errors.
    """
    ax = _axes(ax)
    first = next(iter(comparisons.values()))
    edges = first.edges
    ax.stairs(_density(first.reference, edges), edges, label="reference", **STYLES["reference"])
    for name, comp in comparisons.items():
        outside = (comp.generated[0] + comp.generated[-2]) / max(comp.generated.sum(), 1)
        extra = f", {outside:.0%} outside" if outside >= 0.005 else ""
        ax.stairs(_density(comp.generated, edges), edges, label=f"{name} (SP {comp.separation_power:.2g}{extra})",
                  **STYLES.get(name, {}))
    if log_x and edges[0] > 0:
        ax.set_xscale("log")
    else:
        ax.locator_params(axis="x", nbins=5)
    ax.set(xlabel=xlabel, ylabel="density")
    ax.legend(fontsize="x-small", loc="best")
    if ratio_ax is not None:
        centres = 0.5 * (edges[1:] + edges[:-1])
        reference = first.reference[1:-2].astype(float)
        for name, comp in comparisons.items():
            generated = comp.generated[1:-2].astype(float)
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = _density(comp.generated, edges) / _density(first.reference, edges)
                err = ratio * np.sqrt(1 / generated + 1 / reference)
            ratio[~np.isfinite(ratio)] = np.nan
            err[~np.isfinite(err)] = np.nan
            style = STYLES.get(name, {})
            ratio_ax.errorbar(centres, ratio, err, fmt="o", ms=2, lw=0.8, color=style.get("color"), label=name)
        _ratio_axes(ax, ratio_ax, xlabel)
    return ax


def layer_profile(features: dict[str, HighLevelFeatures], quantity: str = "layer_energy", ax=None, ratio_ax=None):
    """Mean of a per-layer observable (MeV or mm) against the layer, with its standard error, per sample.

    ``ratio_ax`` (sharing x with ``ax``): each sample's mean over the first sample's (the reference).
    """
    ax = _axes(ax)
    profiles = {}
    for name, f in features.items():
        values = getattr(f, quantity)  # (N, L)
        count = np.sum(np.isfinite(values), axis=0)
        mean = np.array([np.mean(v[np.isfinite(v)]) if c else np.nan for v, c in zip(values.T, count, strict=True)])
        std = np.array([np.std(v[np.isfinite(v)]) if c else np.nan for v, c in zip(values.T, count, strict=True)])
        profiles[name] = (mean, std / np.sqrt(np.maximum(count, 1)))
        ax.errorbar(np.arange(f.n_layers), *profiles[name], marker="o", ms=2.5, label=name, **STYLES.get(name, {}))
    unit = UNITS[quantity]
    ax.set(xlabel="layer", ylabel=f"mean {LABELS[quantity]} [{unit}]")
    if quantity == "layer_energy":
        ax.set_yscale("log")
    ax.legend(fontsize="x-small", loc="best")
    if ratio_ax is not None:
        ref_mean, ref_err = next(iter(profiles.values()))
        for name, (mean, err) in list(profiles.items())[1:]:
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = mean / ref_mean
                ratio_err = np.abs(ratio) * np.hypot(err / mean, ref_err / ref_mean)
            style = STYLES.get(name, {})
            ratio_ax.errorbar(np.arange(len(mean)), ratio, ratio_err, fmt="o", ms=2, lw=0.8, color=style.get("color"))
        _ratio_axes(ax, ratio_ax, "layer")
    return ax


def separation_per_layer(comparisons: dict[str, dict[str, ObservableComparison]], ax=None):
    """Separation power of every per-layer observable against the layer; generated solid, floor dashed."""
    ax = _axes(ax)
    for k, group in enumerate(LAYERED):
        color = f"C{k}"
        for name, obs in comparisons.items():
            sp = [c.separation_power for key, c in obs.items() if key.startswith(group + "_")]
            ax.plot(np.arange(len(sp)), sp, "o-" if name == "generated" else "s--", ms=2.5, color=color,
                    label=f"{LABELS[group]} ({name})")
    ax.set(xlabel="layer", ylabel="separation power", yscale="log")
    ax.legend(fontsize="xx-small", ncol=2)
    return ax


def roc_curves(results: dict[str, ClassifierResult], ax=None):
    """Test-set ROC curves of the classifiers, AUC in the legend; the diagonal is chance."""
    ax = _axes(ax)
    for label, result in results.items():
        ax.plot(result.fpr, result.tpr, label=f"{label} (AUC {result.auc:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
    ax.set(xlabel="false positive rate (reference called generated)", ylabel="true positive rate", xlim=(0, 1),
           ylim=(0, 1), title="classifier test")
    ax.legend(fontsize="x-small", loc="best")
    return ax


@styled
def write_figures(out: Path, reference: HighLevelFeatures, results: dict, all_layers: bool = False) -> list[Path]:
    """Write the PNGs of an evaluation into ``out``; ``results`` maps ``generated``/``floor`` to comparisons.

    ``observables.png`` (per-event observables, cell spectrum, ROC), ``layer_profiles.png``
    (mean layer energy and widths, separation power per layer) and ``layer_histograms.png``
    (four layers of every per-layer observable); with ``all_layers`` also ``layers_<name>.png``
    with every layer.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from calolab.io.rundir import save_figure

    paths = []
    obs = {name: c.observables for name, c in results.items()}
    fig, panels = _with_ratios(plt, 2, 3, figsize=(13, 9))
    for (ax, ratio_ax), name in zip(panels[:-1], (*SCALARS, "cell_energy"), strict=False):
        unit = f" [{UNITS[name]}]" if UNITS[name] else ""
        observable_histogram({k: v[name] for k, v in obs.items()}, ax=ax, xlabel=LABELS[name] + unit,
                             log_x=name in ("cell_energy", "energy"), ratio_ax=ratio_ax)
    roc_curves({f"{side}, {level}-level": r for side, c in results.items() for level, r in c.classifiers.items()},
               ax=_whole(fig, panels[-1]))
    paths.append(save_figure(fig, out / "observables.png"))

    features = {"reference": reference, **{name: c.features for name, c in results.items()}}
    fig, panels = _with_ratios(plt, 2, 2, figsize=(11, 9.5))
    for (ax, ratio_ax), quantity in zip(panels, ("layer_energy", "width_x", "width_y"), strict=False):
        layer_profile(features, quantity, ax=ax, ratio_ax=ratio_ax)
    separation_per_layer(obs, ax=_whole(fig, panels[-1]))
    paths.append(save_figure(fig, out / "layer_profiles.png"))

    layers = shown_layers(reference)
    fig, axes = plt.subplots(len(LAYERED), len(layers), figsize=(3.4 * len(layers), 2.6 * len(LAYERED)),
                             squeeze=False)
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.05, top=0.98, hspace=0.45, wspace=0.3)  # fixed: no layout solve
    for row, group in zip(axes, LAYERED, strict=True):
        for ax, k in zip(row, layers, strict=True):
            name = f"{group}_{k:02d}"
            observable_histogram({side: v[name] for side, v in obs.items()}, ax=ax,
                                 xlabel=f"{LABELS[group]}, layer {k} [{UNITS[group]}]")
    paths.append(save_figure(fig, out / "layer_histograms.png"))
    if all_layers:
        paths.extend(_all_layer_figures(out, reference.n_layers, obs))
    return paths


def _with_ratios(plt, rows: int, cols: int, figsize: tuple[float, float]):
    """A figure of ``rows`` x ``cols`` panels, each a main axes over a ratio axes sharing its x (3:1)."""
    fig = plt.figure(figsize=figsize, layout="constrained")
    grid = fig.add_gridspec(2 * rows, cols, height_ratios=[3, 1] * rows)
    panels = []
    for r in range(rows):
        for c in range(cols):
            main = fig.add_subplot(grid[2 * r, c])
            panels.append((main, fig.add_subplot(grid[2 * r + 1, c], sharex=main)))
    return fig, panels


def _whole(fig, panel):
    """One axes in place of a (main, ratio) panel, for a plot without a ratio."""
    main, ratio = panel
    spec = main.get_subplotspec()
    whole = fig.add_subplot(spec.get_gridspec()[spec.rowspan.start:spec.rowspan.stop + 1, spec.colspan.start])
    main.remove()
    ratio.remove()
    return whole


def shown_layers(reference: HighLevelFeatures) -> list[int]:
    """Four layers to show: the first, the mean shower maximum of the reference, one behind it, the last."""
    last = reference.n_layers - 1
    peak = int(np.argmax(reference.layer_energy.mean(0)))
    return sorted({0, peak, (peak + last + 1) // 2, last})


def _all_layer_figures(out: Path, n_layers: int, obs: dict) -> list[Path]:
    import matplotlib.pyplot as plt

    from calolab.io.rundir import save_figure

    ncol = min(5, n_layers)
    nrow = -(-n_layers // ncol)
    paths = []
    for group in LAYERED:
        fig, axes = plt.subplots(nrow, ncol, figsize=(3.4 * ncol, 2.6 * nrow), squeeze=False)
        fig.subplots_adjust(left=0.05, right=0.98, bottom=0.05, top=0.98, hspace=0.45, wspace=0.3)
        for k, ax in enumerate(axes.flat):
            if k >= n_layers:
                ax.set_axis_off()
                continue
            name = f"{group}_{k:02d}"
            observable_histogram({side: v[name] for side, v in obs.items()}, ax=ax,
                                 xlabel=f"{LABELS[group]}, layer {k} [{UNITS[group]}]")
        paths.append(save_figure(fig, out / f"layers_{group}.png"))
    return paths
