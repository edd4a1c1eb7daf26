"""How close a trained model comes to the simulator, measured at fixed energies.

At fixed energies on one layout (the trained base detector, i.e. the prototype, by default)
three samples are compared: a reference simulation, an independent simulation (the
*floor*: what the simulator scores against itself on as many events) and the model's.

* mean energy sum and mean number of hits (every hit, and hits above 0.5 MIP), with their
  relative differences to the reference;
* per-layer mean energy: relative difference per layer, its statistical error, and how many
  layers are within 5% (the floor's column shows which layers the statistics allow);
* classifier AUC, high-level (gradient-boosted trees on the suite's observables) and
  low-level (MLP on the cells), from :func:`calolab.evaluation.compare`;
* generation speed against the simulator's in the same run, events/s on one thread of this
  process (both warmed up on 50 events first; the best of ``speed_repeats`` alternating
  timings of each, so that a burst of other jobs does not decide it), for each energy and for
  a log-uniform spectrum between the lowest and highest energy (1-100 GeV by default).

Writes ``config.yaml``, ``provenance.json`` and ``metrics.json`` into a run folder.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from calolab.generative.data import GEV
from calolab.generative.sample import TrainedModel, generate
from calolab.showers import Showers


@dataclass(frozen=True)
class BenchmarkConfig:
    """Energies (GeV), events per sample, the classifier tests, speed-test events, timings per speed
    (alternately simulated and generated, the best of each counts) and the seed."""

    energies_gev: tuple[float, ...] = (1.0, 5.0, 10.0, 20.0, 50.0, 100.0)
    events: int = 4000
    classifiers: bool = True
    speed_events: int = 5000
    speed_repeats: int = 3
    seed: int = 11


def sample_summary(showers: Showers, mip_fraction: float = 0.5) -> dict[str, Any]:
    """Means and standard errors of the energy sum (MeV), hits (all, above ``mip_fraction`` MIP) and layer energies."""
    n = max(len(showers), 1)
    det = showers.detector
    layer = showers.cell // (det.nx * det.ny)
    above = np.bincount(showers.event_index[showers.energy > mip_fraction * det.mip_mpv[layer]], minlength=len(showers))
    out: dict[str, Any] = {}
    for name, values in (("energy_sum", showers.energy_sum()), ("hits", showers.hits_per_event()),
                         ("hits_above_half_mip", above)):
        out[name] = {"mean": float(np.mean(values)), "error": float(np.std(values) / np.sqrt(n)),
                     "std": float(np.std(values))}
    layers = showers.layer_sums()
    out["layer_energy"] = {"mean": layers.mean(0), "error": layers.std(0) / np.sqrt(n)}
    return out


def relative(sample: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    """Relative differences (sample / reference - 1) and their statistical errors."""
    out: dict[str, Any] = {}
    for name in ("energy_sum", "hits", "hits_above_half_mip"):
        a, b = sample[name], reference[name]
        out[name] = {"difference": a["mean"] / b["mean"] - 1,
                     "error": a["mean"] / b["mean"] * np.hypot(a["error"] / a["mean"], b["error"] / b["mean"]),
                     "std_ratio": a["std"] / b["std"] if b["std"] > 0 else float("nan")}
    a, b = sample["layer_energy"], reference["layer_energy"]
    safe = np.where(b["mean"] > 0, b["mean"], np.nan)
    diff = a["mean"] / safe - 1
    error = a["mean"] / safe * np.hypot(a["error"] / np.where(a["mean"] > 0, a["mean"], np.nan),
                                        b["error"] / safe)
    out["layer_energy"] = {"difference": diff, "error": error, "within_5pc": int(np.sum(np.abs(diff) <= 0.05)),
                           "within_5pc_or_2_sigma": int(np.sum(np.abs(diff) <= np.maximum(0.05, 2 * error)))}
    return out


def _race(simulate_fn: Callable[[], Showers], generate_fn: Callable[[], Showers],
          repeats: int) -> tuple[Showers, Showers, float, float]:
    """Both samples and the best of ``repeats`` alternating timings (s) of each: the least disturbed by
    other jobs on a shared machine, and measured under the same load."""
    best = [np.inf, np.inf]
    out: list = [None, None]
    for _ in range(repeats):
        for k, fn in enumerate((simulate_fn, generate_fn)):
            start = time.perf_counter()
            out[k] = fn()
            best[k] = min(best[k], time.perf_counter() - start)
    return out[0], out[1], best[0], best[1]


def speed_race(model: TrainedModel, energy_range: tuple[float, float], events: int, repeats: int = 3,
               seeds: tuple[int, int] = (1, 2)) -> dict[str, float]:
    """Events/s of the simulator and of ``model`` on its base detector, log-uniform energies in
    ``energy_range`` (MeV), best of ``repeats`` alternating timings of each (see :func:`_race`)."""
    from calolab.simulation import Beam, simulate

    det = model.detector
    spectrum = Beam(model.data_config.particle, energy_min=energy_range[0], energy_max=energy_range[1],
                    spectrum="log-uniform")
    *_, t_sim, t_gen = _race(lambda: simulate(det, spectrum, events, seed=seeds[0]),
                             lambda: generate(model, det, energy_range, events, seeds[1]), repeats)
    return {"events": events, "simulator": events / t_sim, "generator": events / t_gen}


def benchmark(model: TrainedModel, out_dir: str | Path, config: BenchmarkConfig | None = None,
              echo: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Compare ``model`` with the simulator on its base detector; write and return the metrics."""
    from calolab.io.rundir import write_config, write_json
    from calolab.simulation import Beam, simulate

    config = config or BenchmarkConfig()
    out = Path(out_dir)
    det = model.detector
    write_config(out, {"benchmark": asdict(config), "run": str(model.path), "model": model.name,
                                     "detector": det.name})
    seeds = np.random.SeedSequence(config.seed).generate_state(8)
    particle = model.data_config.particle
    metrics: dict[str, Any] = {"model": model.name, "run": str(model.path), "energies": {}}
    # warm up both (imports, first allocations), so that the first energy's speeds are not the start-up's
    simulate(det, Beam(particle, energy=config.energies_gev[0] * GEV), 50, seed=int(seeds[6]))
    generate(model, det, config.energies_gev[0] * GEV, 50, int(seeds[7]))
    for e_gev in config.energies_gev:
        beam = Beam(particle, energy=e_gev * GEV)
        reference, generated, t_sim, t_gen = _race(
            lambda beam=beam: simulate(det, beam, config.events, seed=int(seeds[0])),
            lambda e=e_gev: generate(model, det, e * GEV, config.events, int(seeds[2])), config.speed_repeats)
        floor = simulate(det, beam, config.events, seed=int(seeds[1]))
        ref = sample_summary(reference)
        row: dict[str, Any] = {"reference": ref, "generated": relative(sample_summary(generated), ref),
                               "floor": relative(sample_summary(floor), ref),
                               "speed": {"simulator": config.events / t_sim, "generator": config.events / t_gen}}
        if config.classifiers:
            row["auc"] = _aucs(reference, generated, floor, int(seeds[3]))
        metrics["energies"][f"{e_gev:g}"] = row
        if echo:
            echo(_line(e_gev, row))
    low, high = min(config.energies_gev) * GEV, max(config.energies_gev) * GEV
    if low == high:
        low, high = model.energy_range
    speed = speed_race(model, (low, high), config.speed_events, config.speed_repeats, (int(seeds[4]), int(seeds[5])))
    metrics["speed_log_uniform"] = speed
    if echo:
        echo(f"speed, log-uniform {low / GEV:g}-{high / GEV:g} GeV: simulator {speed['simulator']:.0f}, "
             f"{model.name} {speed['generator']:.0f} events/s")
    write_json(out / "metrics.json", metrics)
    return metrics


def _aucs(reference: Showers, generated: Showers, floor: Showers, seed: int) -> dict[str, float]:
    from calolab.evaluation import EvaluationConfig, compare

    config = EvaluationConfig(fpd_points=2, fpd_batches=2, kpd_batches=2, kpd_batch_size=1000)
    out = {}
    for name, other in (("generated", generated), ("floor", floor)):
        result = compare(reference, other, config, seed)
        out |= {f"{name}_{k}": v.auc for k, v in result.classifiers.items()}
    return out


def _line(e_gev: float, row: dict[str, Any]) -> str:
    gen, flo = row["generated"], row["floor"]
    auc = row.get("auc", {})
    text = (f"{e_gev:g} GeV: sum {gen['energy_sum']['difference']:+.2%} "
            f"(floor {flo['energy_sum']['difference']:+.2%}), "
            f"hits {gen['hits']['difference']:+.2%} (floor {flo['hits']['difference']:+.2%}), "
            f"layers within 5%: {gen['layer_energy']['within_5pc']}/15 (floor {flo['layer_energy']['within_5pc']}), "
            f"within 5% or 2 sigma: {gen['layer_energy']['within_5pc_or_2_sigma']}")
    if auc:
        text += (f", AUC high {auc['generated_high']:.3f} (floor {auc['floor_high']:.3f}), "
                 f"low {auc.get('generated_low', float('nan')):.3f} (floor {auc.get('floor_low', float('nan')):.3f})")
    return text + f", speed sim {row['speed']['simulator']:.0f} / gen {row['speed']['generator']:.0f} ev/s"
