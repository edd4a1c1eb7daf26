"""Figures of an evaluation: reference against generated (and the floor). Every plot takes ``ax=`` and returns it.

matplotlib is imported inside the functions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from calolab.evaluation.classifier import ClassifierResult
from calolab.evaluation.distances import ObservableComparison
from calolab.evaluation.features import LAYERED, SCALARS, UNITS, HighLevelFeatures

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


def observable_histogram(comparisons: dict[str, ObservableComparison], ax=None, xlabel: str = "",
                         log_x: bool = False):
    """Normalised histograms on the common quantile edges, separation power in the legend.

    ``comparisons`` maps a sample name (``generated``, ``floor``) to its comparison with the
    same reference; the reference is drawn from the first.
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
    ax.legend(fontsize="x-small")
    return ax


def layer_profile(features: dict[str, HighLevelFeatures], quantity: str = "layer_energy", ax=None):
    """Mean of a per-layer observable (MeV or mm) against the layer, with its standard error, per sample."""
    ax = _axes(ax)
    for name, f in features.items():
        values = getattr(f, quantity)  # (N, L)
        count = np.sum(np.isfinite(values), axis=0)
        mean = np.array([np.mean(v[np.isfinite(v)]) if c else np.nan for v, c in zip(values.T, count, strict=True)])
        std = np.array([np.std(v[np.isfinite(v)]) if c else np.nan for v, c in zip(values.T, count, strict=True)])
        ax.errorbar(np.arange(f.n_layers), mean, std / np.sqrt(np.maximum(count, 1)), marker="o", ms=2.5,
                    label=name, **STYLES.get(name, {}))
    unit = UNITS[quantity]
    ax.set(xlabel="layer", ylabel=f"mean {LABELS[quantity]} [{unit}]")
    if quantity == "layer_energy":
        ax.set_yscale("log")
    ax.legend(fontsize="x-small")
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
    ax.legend(fontsize="x-small")
    return ax


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
    fig, axes = plt.subplots(2, 3, figsize=(13, 7.5), layout="constrained")
    for ax, name in zip(axes.flat, (*SCALARS, "cell_energy"), strict=False):
        unit = f" [{UNITS[name]}]" if UNITS[name] else ""
        observable_histogram({k: v[name] for k, v in obs.items()}, ax=ax, xlabel=LABELS[name] + unit,
                             log_x=name in ("cell_energy", "energy"))
    roc_curves({f"{side}, {level}-level": r for side, c in results.items() for level, r in c.classifiers.items()},
               ax=axes.flat[-1])
    paths.append(save_figure(fig, out / "observables.png"))

    features = {"reference": reference, **{name: c.features for name, c in results.items()}}
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), layout="constrained")
    layer_profile(features, "layer_energy", ax=axes[0, 0])
    layer_profile(features, "width_x", ax=axes[0, 1])
    layer_profile(features, "width_y", ax=axes[1, 0])
    separation_per_layer(obs, ax=axes[1, 1])
    paths.append(save_figure(fig, out / "layer_profiles.png"))

    layers = shown_layers(reference)
    fig, axes = plt.subplots(len(LAYERED), len(layers), figsize=(3.4 * len(layers), 2.6 * len(LAYERED)),
                             squeeze=False)
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.05, top=0.98, hspace=0.45, wspace=0.3)  # constrained: 3x slower
    for row, group in zip(axes, LAYERED, strict=True):
        for ax, k in zip(row, layers, strict=True):
            name = f"{group}_{k:02d}"
            observable_histogram({side: v[name] for side, v in obs.items()}, ax=ax,
                                 xlabel=f"{LABELS[group]}, layer {k} [{UNITS[group]}]")
    paths.append(save_figure(fig, out / "layer_histograms.png"))
    if all_layers:
        paths.extend(_all_layer_figures(out, reference.n_layers, obs))
    return paths


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
