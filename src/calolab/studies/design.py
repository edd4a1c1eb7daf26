"""The design study (paper 004): optimise the tungsten layout of ``siw-ecal`` for electrons.

1. Adam on the differentiable surrogate (:mod:`calolab.design.surrogate`) minimises the
   mean of (sigma/E)^2 over log-spaced energies 1-100 GeV, with the total absorber (in X0)
   fixed at the prototype's and every plate at least ``min_thickness`` mm; it starts once
   from the prototype's layout and once from the uniform one, and keeps the better optimum.
2. The full simulator then measures the optimum, the prototype (8 x 4.2 + 7 x 5.6 mm W)
   and the uniform layout of the same total at the same energies
   (:mod:`calolab.design.check`): linearity per layout, sigma68 / E with bootstrap errors,
   a/sqrt(E) ⊕ c, and the differences to the prototype in units of their paired standard
   errors. The surrogate's sigma/E is compared with the simulator's for every layout.

Module-level imports are stdlib and click only, so that ``calolab --help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click

from calolab.config import with_overrides


@dataclass(frozen=True)
class DesignStudyConfig:
    """What the design study optimises and simulates; written as ``config.yaml`` in the run folder.

    ``events`` electrons per energy and layout; ``energies`` log-spaced points from
    ``energy_min_gev`` to ``energy_max_gev`` both for the objective and for the check.
    """

    detector: str = "siw-ecal"
    energy_min_gev: float = 1.0
    energy_max_gev: float = 100.0
    energies: int = 8
    events: int = 20000
    bootstrap: int = 200
    min_thickness: float = 0.5
    steps: int = 300
    learning_rate: float = 0.05
    quadrature: int = 12
    tv_weight: float = 0.0
    rear_leakage: bool = True
    surrogate_tolerance: float = 0.10
    seed: int = 1

    @classmethod
    def quick(cls) -> DesignStudyConfig:
        """A small version for tests: 4 energies, 1500 events, 60 Adam steps, 50 bootstrap replicates."""
        return cls(energies=4, events=1500, bootstrap=50, steps=60, quadrature=8)



def run_design_study(out_dir: str | Path, config: DesignStudyConfig = DesignStudyConfig(),
                     echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Optimise the absorber layout, check it with the simulator, write the run folder; returns the metrics."""
    import time

    from calolab.io.encoding import optional_modules

    optional_modules(("torch",), "ml", "the design study")
    import numpy as np

    from calolab.design import OptimiseConfig, ResolutionSurrogate, fit_terms, optimise_layout
    from calolab.design.check import bootstrap_indices, compare, layout_detector, measure_layout, simulate_responses
    from calolab.errors import CalolabError
    from calolab.geometry import load_detector
    from calolab.io.rundir import write_config, write_json
    from calolab.plotting import figure_style

    if config.energies < 2 or not 0 < config.energy_min_gev < config.energy_max_gev:
        raise CalolabError("design study: expected energies >= 2 and 0 < energy_min_gev < energy_max_gev")
    if config.events < 100 or config.bootstrap < 10:
        raise CalolabError(f"design study: expected events >= 100 and bootstrap >= 10, got {config.events} and "
                           f"{config.bootstrap}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_config(out, asdict(config))
    started = time.perf_counter()
    template = load_detector(config.detector)
    model = ResolutionSurrogate(template, rear_leakage=config.rear_leakage, quadrature=config.quadrature)
    prototype = model.initial_thickness().numpy()
    total = float(prototype.sum())
    layouts = {"prototype": prototype, "uniform": np.full(len(prototype), total / len(prototype))}

    runs = {}
    for start in ("template", "uniform"):
        opt = OptimiseConfig(energy_min_gev=config.energy_min_gev, energy_max_gev=config.energy_max_gev,
                             energies=config.energies, min_thickness=config.min_thickness, steps=config.steps,
                             learning_rate=config.learning_rate, start=start, tv_weight=config.tv_weight,
                             seed=config.seed)
        runs[start] = optimise_layout(model, opt)
        echo(f"optimisation from the {start} layout: mean (sigma/E)^2 {runs[start].objective[0]:.5f} -> "
             f"{runs[start].objective[-1]:.5f} in {config.steps} Adam steps")
    best = min(runs, key=lambda k: runs[k].objective[-1])
    layouts["optimised"] = runs[best].thickness
    energies = runs[best].energies_gev
    echo("optimised W thickness per layer [mm]: " + " ".join(f"{t:.2f}" for t in layouts["optimised"]))

    import torch

    surrogate = {}
    with torch.no_grad():
        for name, thickness in layouts.items():
            t = torch.tensor(thickness, dtype=torch.float64)
            surrogate[name] = {"resolution": model.resolution(t, torch.tensor(energies)).numpy(),
                               "leakage": model.leakage(t, torch.tensor(energies)).numpy(),
                               "total_x0": float(model.total_x0(t))}
            surrogate[name]["objective"] = float(np.mean(surrogate[name]["resolution"] ** 2))
            surrogate[name]["stochastic_term"], surrogate[name]["constant_term"] = fit_terms(
                energies, surrogate[name]["resolution"])

    seeds = [int(s) for s in np.random.SeedSequence(config.seed).generate_state(len(energies) + 1)]
    indices = bootstrap_indices(config.events, len(energies), config.bootstrap, seeds[-1])
    measured = {}
    for name, thickness in layouts.items():
        echo(f"simulating {config.events} electrons at {len(energies)} energies in the {name} layout")
        detector = layout_detector(template, thickness, f"{config.detector}-{name}")
        responses = simulate_responses(detector, energies, config.events, seeds[:-1], config.rear_leakage)
        measured[name] = measure_layout(name, thickness, energies, responses, indices)
    comparisons = {name: compare(measured[name], measured["prototype"]) for name in ("optimised", "uniform")}

    metrics = _metrics(config, template, layouts, runs, best, surrogate, measured, comparisons, total)
    metrics["seconds"] = time.perf_counter() - started
    write_json(out / "metrics.json", metrics)
    with figure_style():
        _figures(out, metrics, layouts, runs, surrogate, measured, comparisons)
    for line in _summary(metrics):
        echo(line)
    echo(f"run folder: {out} (config.yaml, metrics.json, thickness.png, resolution.png, trajectory.png)")
    return metrics


def _metrics(config, template, layouts, runs, best, surrogate, measured, comparisons, total) -> dict[str, Any]:
    import numpy as np

    from calolab.geometry import get_material

    x0 = get_material(template.layers[0].absorber).x0
    simulated = {name: m.to_dict() for name, m in measured.items()}
    for name, m in simulated.items():
        m["surrogate_resolution"] = surrogate[name]["resolution"]
        m["surrogate_over_simulator"] = surrogate[name]["resolution"] / m["resolution"]
    worst = max(float(np.max(np.abs(m["surrogate_over_simulator"] - 1))) for m in simulated.values())
    opt = comparisons["optimised"]
    z = float(opt["objective_diff_z"])
    return {
        "config": asdict(config),
        "detector": template.name,
        "objective": "mean over the energies of (sigma/E)^2 (surrogate: sqrt(variance)/mean; simulator: "
                     "sigma68 over the calibrated mean)",
        "total_absorber_mm": total,
        "total_absorber_x0": total / x0,
        "layouts": {name: {"thickness_mm": t, "total_mm": float(np.sum(t)), "total_x0": float(np.sum(t) / x0)}
                    for name, t in layouts.items()},
        "optimisation": {"chosen_start": best,
                         "runs": {k: {"objective_start": float(r.objective[0]), "objective_end": float(r.objective[-1]),
                                      "thickness_mm": r.thickness,
                                      "max_constraint_violation_mm": float(np.max(np.abs(
                                          r.trajectory.sum(axis=1) - total)))}
                                  for k, r in runs.items()},
                         "objective_trajectory": runs[best].objective},
        "surrogate": surrogate,
        "simulation": simulated,
        "surrogate_validation": {"tolerance": config.surrogate_tolerance, "max_relative_difference": worst,
                                 "passed": worst <= config.surrogate_tolerance},
        "comparison": comparisons,
        "optimised_vs_prototype": {
            "statement": "optimised minus prototype in mean (sigma/E)^2, in paired standard errors (simulator)",
            "objective_diff_z": z,
        },
    }


def _figures(out: Path, metrics, layouts, runs, surrogate, measured, comparisons) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from calolab.design import plots
    from calolab.io.rundir import save_figure

    fig, ax = plt.subplots(figsize=(7, 4.5))
    total_x0 = metrics["total_absorber_x0"]
    plots.plot_thickness(layouts, ax=ax, title=f"W per layer, {total_x0:.2f} X0 in every layout")
    save_figure(fig, out / "thickness.png")

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    plots.plot_resolution(measured, {k: v["resolution"] for k, v in surrogate.items()}, ax=axes[0])
    plots.plot_relative(measured, comparisons, ax=axes[1])
    fig.tight_layout()
    save_figure(fig, out / "resolution.png")

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    plots.plot_trajectory({k: r.objective for k, r in runs.items()}, ax=axes[0],
                    reference={"prototype (surrogate)": surrogate["prototype"]["objective"]})
    best = min(runs, key=lambda k: runs[k].objective[-1])
    plots.plot_thickness_path(runs[best].trajectory, ax=axes[1])
    fig.tight_layout()
    save_figure(fig, out / "trajectory.png")


def _summary(metrics: dict[str, Any]) -> list[str]:
    lines = []
    sim = metrics["simulation"]
    energies = sim["prototype"]["energies_gev"]
    lines.append("E [GeV]      " + " ".join(f"{e:8.1f}" for e in energies))
    for name, m in sim.items():
        lines.append(f"{name:12s} " + " ".join(f"{100 * r:8.2f}" for r in m["resolution"])
                     + f"   a {100 * m['stochastic_term']:.2f}±{100 * m['stochastic_term_err']:.2f}%"
                     + f"  c {100 * m['constant_term']:.2f}±{100 * m['constant_term_err']:.2f}%")
    for name, comp in metrics["comparison"].items():
        lines.append(f"{name} - prototype, z per energy: " + " ".join(f"{z:+.1f}" for z in comp["resolution_diff_z"]))
        lines.append(f"{name} - prototype, mean (sigma/E)^2: {100 * comp['objective_relative_change']:+.1f}% "
                     f"(z = {comp['objective_diff_z']:+.1f} paired, "
                     f"{comp['objective_diff'] / comp['objective_diff_se_unpaired']:+.1f} unpaired)")
    val = metrics["surrogate_validation"]
    lines.append(f"surrogate vs simulator: max |ratio - 1| = {val['max_relative_difference']:.3f} "
                 f"(tolerance {val['tolerance']:g}, {'passed' if val['passed'] else 'FAILED'})")
    found = metrics["optimised_vs_prototype"]
    lines.append(f"{found['statement']}: z = {found['objective_diff_z']:+.1f}")
    return lines


@click.command("design")
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("runs/design"), show_default=True)
@click.option("--quick", is_flag=True, help="4 energies, 1500 events, 60 Adam steps (for tests).")
@click.option("--events", type=click.IntRange(min=100), help="Electrons per energy and layout [20000].")
@click.option("--steps", type=click.IntRange(min=1), help="Adam steps per start [300].")
@click.option("--tv-weight", type=click.FloatRange(min=0), help="Cost on the thickness variation between layers [0].")
@click.option("-s", "--seed", type=int, default=1, show_default=True)
def study_design(out_dir: Path, quick: bool, events: int | None, steps: int | None, tv_weight: float | None,
                 seed: int) -> None:
    """Optimise the siw-ecal tungsten layout for electrons, 1-100 GeV, and check it with the simulator (paper 004)."""
    config = DesignStudyConfig.quick() if quick else DesignStudyConfig()
    config = with_overrides(config, events=events, steps=steps, tv_weight=tv_weight, seed=seed)
    run_design_study(out_dir, config, echo=click.echo)
