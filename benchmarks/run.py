"""Speed and memory benchmarks (``make bench``): the simulator, and trained models when given.

Each configuration is simulated once to warm up and then timed, with one process and with
``--workers`` processes (default: every core; the goals of the foundation issue are for 2
cores); the output does not depend on the number of processes. Absolute times on shared machines are noisy:
compare ratios measured in one run. The memory benchmark simulates 100k ``cusi`` pions in
a child process and reports its peak resident memory.

Streamed calibration: ``calolab calibrate -m hierarchical`` and ``-m quantile`` (per-cell
quantile sketches) on sharded ``cusi`` pion runs of N and 4N events each (a reference and an
independent healthy run), in a child process; its peak resident memory must not grow with N
(goal: 4 GiB at 10^6 events).

Sharded simulation (``simulate_sharded``) is timed in one process against a Dask
``LocalCluster`` of ``--workers`` single-threaded workers (goal: 1.8x on 2 cores).

The CNN's input pipeline is timed on ``pbwo4`` muons: batches of events converted on the
first pass and kept (as in training) against events converted again on every pass. So is the
training of an ensemble of the muon study's CNNs on every core: its members one after the
other with all the torch threads, against ``--workers`` members at once in separate processes
sharing the threads (``train_ensemble(..., workers=...)``). One CNN trained data-parallel by
``torchrun --nproc-per-node 2 -m calolab train`` (gloo, one thread per process) is timed
against one process with one thread and the same global batch; and, only where torch sees
CUDA, training on the GPU against the CPU (otherwise the reason is printed).

Trained models are benchmarked when their run folders are given (``make bench
BENCH_ARGS="--generator runs/gen --cnn runs/pions/cnn"``): the generator's speed against the
simulator's on its own detector (log-uniform 1-100 GeV, one thread, best of three alternating
timings; goal: at least as fast), and the CNN ensemble's inference on ``cusi`` pions of
10-200 GeV read out at 0.6 MeV, high-level features included, with one torch thread and
with two (goal: 1,000 events/s on 2 cores).

    python benchmarks/run.py [--quick] [--skip-memory] [--out runs/bench] [--generator RUN] [--cnn RUN]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from calolab.errors import CalolabError
from calolab.geometry import load_detector
from calolab.io.rundir import write_json
from calolab.simulation import Beam, simulate

# (detector, particle, energy MeV, events, goal in events/s from the foundation issue)
SPEED = [
    ("siw-ecal", "e-", 10e3, 20000, 5000),
    ("ahcal", "pi+", 10e3, 10000, 2000),
    ("pbwo4", "mu-", 1e6, 10000, 2000),
    ("cusi", "pi+", 100e3, 2000, 200),
]

MEMORY_CODE = """
import resource, sys
from calolab.geometry import load_detector
from calolab.simulation import Beam, simulate
s = simulate(load_detector("cusi"), Beam("pi+", energy=100e3), int(sys.argv[1]), seed=1)
print(s.n_hits, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""

CALIBRATION_CODE = """
import resource, sys
from calolab.cli import main
sys.argv = ["calolab", "calibrate", *sys.argv[1:]]
main()
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def time_config(detector: str, particle: str, energy: float, n: int, workers: int) -> dict:
    det = load_detector(detector)
    simulate(det, Beam(particle, energy=energy), max(n // 20, 10), seed=0)  # warm-up
    start = time.perf_counter()
    showers = simulate(det, Beam(particle, energy=energy), n, seed=1, workers=workers)
    seconds = time.perf_counter() - start
    return {"events": n, "workers": workers, "seconds": seconds, "events_per_s": n / seconds,
            "hits_per_event": showers.n_hits / n}


def time_generator(run_dir: Path, events: int) -> dict:
    import torch

    from calolab.generative.benchmark import speed_race
    from calolab.generative.sample import load_model

    torch.set_num_threads(1)
    model = load_model(run_dir)
    speed = speed_race(model, (1e3, 100e3), 50, repeats=1)  # warm-up
    speed = speed_race(model, (1e3, 100e3), events, repeats=3)
    return speed | {"run": str(run_dir), "model": model.name, "ratio": speed["generator"] / speed["simulator"],
                    "goal_ratio": 1.0}


def time_cnn(run_dir: Path, events: int) -> dict:
    import torch

    from calolab.effects import zero_suppress
    from calolab.ml.ensemble import CNNEnsemble
    from calolab.reconstruction.features import high_level_features

    threads = torch.get_num_threads()
    ensemble = CNNEnsemble.load(run_dir)
    det = load_detector("cusi")
    beam = Beam("pi+", energy_min=10e3, energy_max=200e3, spectrum="uniform")
    test = zero_suppress(simulate(det, beam, events, seed=2), 0.6)
    ensemble.predict(test[:50])  # warm-up
    best = {1: np.inf, 2: np.inf}
    try:
        for _ in range(3):  # alternating, best of three each
            for n in best:
                torch.set_num_threads(n)
                start = time.perf_counter()
                ensemble.predict(test)  # computes the high-level features itself
                best[n] = min(best[n], time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    start = time.perf_counter()
    high_level_features(test)
    features = time.perf_counter() - start
    return {"run": str(run_dir), "events": events, "events_per_s": events / best[2],
            "events_per_s_one_thread": events / best[1], "features_s": features, "predict_s": best[2],
            "goal_events_per_s": 1000}


def time_batches(events: int, passes: int = 3) -> dict:
    """CNN input batches of ``pbwo4`` muons (1-8 TeV, the muon study's pooling): kept vs converted every pass.

    The events are converted (pooled, hits merged per pooled cell) on the first pass and
    kept for the next ones (``cache_gib``, as in training), or converted again on every pass
    (``cache_gib=0``). Best of ``passes`` each.
    """
    from calolab.ml.data import ShowerBatches

    showers = simulate(load_detector("pbwo4"), Beam("mu-", energy_min=1e6, energy_max=8e6, spectrum="uniform"),
                       events, seed=3)
    kwargs = {"batch_size": 64, "pool": (2, 4, 4), "shuffle": True, "seed": 1}

    def best_pass(batches) -> float:
        times = []
        for epoch in range(passes):
            batches.set_epoch(epoch)
            start = time.perf_counter()
            for _ in batches:
                pass
            times.append(time.perf_counter() - start)
        return min(times)

    every = best_pass(ShowerBatches(showers, **kwargs, cache_gib=0))
    kept = best_pass(ShowerBatches(showers, **kwargs))
    return {"events": events, "hits_per_event": showers.n_hits / events, "converted_events_per_s": events / every,
            "kept_events_per_s": events / kept, "ratio": every / kept}


def time_ensemble_training(events: int, workers: int, epochs: int = 3) -> dict:
    """Train ``workers`` CNNs of the muon study's architecture (30% validation) one by one with ``workers`` torch
    threads, then at once with one thread each; wall times and the training events/s of the members' epochs."""
    import json
    import tempfile

    import torch

    from calolab.ml.ensemble import train_ensemble
    from calolab.ml.model import RegressorConfig
    from calolab.ml.train import TrainConfig
    from calolab.studies.muons import MuonStudyConfig

    showers = simulate(load_detector("pbwo4"), Beam("mu-", energy_min=50e3, energy_max=8e6, spectrum="uniform"),
                       events, seed=4)
    study = MuonStudyConfig()
    model = RegressorConfig(pool=study.pool, channels=study.channels, hidden=study.hidden)
    config = TrainConfig(epochs=epochs, batch_size=64, validation_fraction=0.3, seed=1, split_seed=1)
    row: dict = {"events": events, "members": workers, "epochs": epochs, "threads": workers}
    before = torch.get_num_threads()
    torch.set_num_threads(workers)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for key, n in (("one_by_one", 1), ("at_once", workers)):
                start = time.perf_counter()
                train_ensemble(showers, Path(tmp) / key, workers, model, config, workers=n)
                row[f"{key}_s"] = time.perf_counter() - start
                histories = [json.loads((Path(tmp) / key / f"member-{i}" / "metrics.json").read_text())["history"]
                             for i in range(workers)]
                rates = [np.median([r["train_events_per_s"] for r in history]) for history in histories]
                row[f"{key}_events_per_s"] = float(np.mean(rates)) * (1 if n == 1 else n)  # whole machine
    finally:
        torch.set_num_threads(before)
    row["wall_ratio"] = row["one_by_one_s"] / row["at_once_s"]
    row["throughput_ratio"] = row["at_once_events_per_s"] / row["one_by_one_events_per_s"]
    return row


def time_dask(events: int, workers: int) -> dict:
    """Sharded simulation of ahcal 10 GeV pions: one process against a Dask LocalCluster.

    The cluster is started (and warmed with a small run) before the clock starts: what is
    compared is the simulation, not the start-up of worker processes. Both runs write the
    same shards (same bits) to a temporary folder.
    """
    import tempfile

    from distributed import Client, LocalCluster

    from calolab.simulation import simulate_sharded

    det, beam = load_detector("ahcal"), Beam("pi+", energy=10e3)
    shard = max(events // (4 * workers), 1)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        simulate_sharded(det, beam, events, seed=5, directory=Path(tmp) / "one", shard_events=shard)
        one = time.perf_counter() - start
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            simulate_sharded(det, beam, 200, seed=6, directory=Path(tmp) / "warm", dask=client)
            start = time.perf_counter()
            simulate_sharded(det, beam, events, seed=5, directory=Path(tmp) / "dask", shard_events=shard, dask=client)
            many = time.perf_counter() - start
    return {"events": events, "workers": workers, "shard_events": shard, "one_process_s": one, "dask_s": many,
            "ratio": one / many, "goal_ratio": 1.8 if workers == 2 else None}
def _muon_run(events: int, seed: int):
    """``pbwo4`` muons of 50 GeV-8 TeV and the muon study's architecture, for the training benchmarks."""
    from calolab.ml.model import RegressorConfig
    from calolab.studies.muons import MuonStudyConfig

    showers = simulate(load_detector("pbwo4"), Beam("mu-", energy_min=50e3, energy_max=8e6, spectrum="uniform"),
                       events, seed=seed)
    study = MuonStudyConfig()
    return showers, RegressorConfig(pool=study.pool, channels=study.channels, hidden=study.hidden)


def _median_rate(run: Path) -> float:
    import json

    history = json.loads((run / "metrics.json").read_text())["history"]
    return float(np.median([r["train_events_per_s"] for r in history]))


def time_ddp_training(events: int, ranks: int = 2, epochs: int = 3) -> dict:
    """Training events/s of one muon-study CNN: ``torchrun --nproc-per-node ranks`` (gloo, one torch thread per
    rank) against one process with one thread, the same global batch of 64 (median over the epochs)."""
    import tempfile

    from calolab.io import write_showers

    showers, model = _muon_run(events, seed=5)
    pool, channels = ",".join(map(str, model.pool)), ",".join(map(str, model.channels))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    row: dict = {"events": events, "ranks": ranks, "epochs": epochs}
    with tempfile.TemporaryDirectory() as tmp:
        data = write_showers(showers, Path(tmp) / "muons.h5")
        args = ["train", str(data), "--pool", pool, "--channels", channels, "--epochs", str(epochs),
                "--batch-size", "64", "--validation-fraction", "0.3", "--seed", "1", "--device", "cpu",
                "--no-progress"]
        for key, launcher in (("one_process", [sys.executable, "-m", "calolab"]),
                              ("ddp", [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                       "--nproc-per-node", str(ranks), "-m", "calolab"])):
            subprocess.run([*launcher, *args, "-o", str(Path(tmp) / key)], env=env, check=True, capture_output=True)
            row[f"{key}_events_per_s"] = _median_rate(Path(tmp) / key / "member-0")
    row["ratio"] = row["ddp_events_per_s"] / row["one_process_events_per_s"]
    return row


def time_gpu_training(events: int, epochs: int = 3) -> dict:
    """Training events/s of one muon-study CNN on CUDA (with 2 loader workers) against the CPU (all threads);
    ``{"skipped": reason}`` where torch sees no CUDA device."""
    import tempfile

    import torch

    from calolab.ml.train import TrainConfig, train

    if not torch.cuda.is_available():
        why = "this torch build has no CUDA" if torch.version.cuda is None else "torch sees no CUDA device"
        return {"skipped": why}
    showers, model = _muon_run(events, seed=6)
    config = TrainConfig(epochs=epochs, batch_size=64, validation_fraction=0.3, seed=1, split_seed=1)
    row: dict = {"events": events, "epochs": epochs, "gpu": torch.cuda.get_device_name()}
    with tempfile.TemporaryDirectory() as tmp:
        for key, device, workers in (("cpu", "cpu", 0), ("cuda", "cuda", 2)):
            train(showers, Path(tmp) / key, model, config, device=device, loader_workers=workers)
            row[f"{key}_events_per_s"] = _median_rate(Path(tmp) / key)
    row["ratio"] = row["cuda_events_per_s"] / row["cpu_events_per_s"]
    return row


def time_calibration(sizes: list[int], methods: tuple[str, ...] = ("hierarchical", "quantile")) -> list[dict]:
    """``calolab calibrate -m METHOD`` (half a MIP threshold; hierarchical makes three passes over the
    reference, quantile one into per-cell sketches) on sharded cusi 100 GeV pion runs of each size, in
    a child process: wall time and its peak RSS, one row per size and method."""
    import shutil
    import tempfile

    from calolab.simulation import simulate_sharded

    det, beam = load_detector("cusi"), Beam("pi+", energy=100e3)
    threshold = 0.5 * float(det.mip_mpv[0])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            runs = [simulate_sharded(det, beam, n, seed, Path(tmp) / f"run-{seed}", shard_events=50_000)
                    for seed in (7, 8)]
            for method in methods:
                start = time.perf_counter()
                out = subprocess.run([sys.executable, "-c", CALIBRATION_CODE, *map(str, runs), "-m", method,
                                      "--threshold", repr(threshold), "-o", str(Path(tmp) / "c.h5")],
                                     capture_output=True, text=True, check=True)
                rows.append({"method": method, "events": n, "seconds": time.perf_counter() - start,
                             "peak_rss_gib": int(out.stdout.split()[-1]) / 2**20, "goal_gib": 4.0})
            for run in runs:
                shutil.rmtree(run)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10x fewer events (smoke run)")
    parser.add_argument("--skip-memory", action="store_true", help="skip the 100k cusi pion memory run")
    parser.add_argument("--skip-calibration", action="store_true", help="skip the streamed cusi calibration run")
    parser.add_argument("--out", type=Path, default=Path("runs/bench"))
    parser.add_argument("--generator", type=Path, help="run folder of a trained generative model (calolab generate)")
    parser.add_argument("--cnn", type=Path, help="run folder of a CNN ensemble trained on cusi pions")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="processes for the speed runs (default: all cores; the goals are for 2 cores)")
    args = parser.parse_args()
    for flag, path in (("--generator", args.generator), ("--cnn", args.cnn)):
        if path is not None and not path.is_dir():
            raise CalolabError(f"{flag} {path}: no such run folder")
    results: dict = {"speed": {}, "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}
    for detector, particle, energy, n, goal in SPEED:
        n = n // 10 if args.quick else n
        single = time_config(detector, particle, energy, n, 1)
        row = time_config(detector, particle, energy, n, args.workers)
        row |= {"goal_events_per_s": goal, "events_per_s_one_process": single["events_per_s"]}
        key = f"{detector} {particle} {energy / 1e3:g} GeV"
        results["speed"][key] = row
        verdict = "meets" if row["events_per_s"] >= goal else "BELOW"
        print(f"{key:28s} {row['events_per_s']:9.0f} ev/s with {args.workers} processes ({verdict} goal {goal}), "
              f"{single['events_per_s']:7.0f} ev/s with one, {row['hits_per_event']:.0f} hits/event", flush=True)
    if not args.skip_memory:
        n = 10_000 if args.quick else 100_000
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", MEMORY_CODE, str(n)], capture_output=True, text=True, check=True)
        hits, max_rss_kb = map(int, out.stdout.split())
        gib = max_rss_kb / 2**20
        results["memory"] = {"events": n, "hits": hits, "peak_rss_gib": gib, "seconds": time.perf_counter() - start,
                             "goal_gib": 8.0}
        print(f"cusi pi+ 100 GeV x {n}: peak memory {gib:.2f} GiB ({'meets' if gib <= 8 else 'ABOVE'} goal 8 GiB), "
              f"{hits / n:.0f} hits/event, {results['memory']['seconds']:.0f} s", flush=True)
    if not args.skip_calibration:
        results["calibration"] = time_calibration([25_000, 100_000] if args.quick else [250_000, 1_000_000])
        for row in results["calibration"]:
            print(f"calibrate -m {row['method']}, sharded cusi pi+ 100 GeV, 2 x {row['events']} events: "
                  f"{row['seconds']:.0f} s, peak memory {row['peak_rss_gib']:.2f} GiB "
                  f"({'meets' if row['peak_rss_gib'] <= 4 else 'ABOVE'} goal 4 GiB)", flush=True)
    if args.workers > 1:
        row = results["dask_simulation"] = time_dask(2000 if args.quick else 20000, args.workers)
        verdict = "meets" if row["ratio"] >= 1.8 else "BELOW"
        goal = "" if row["goal_ratio"] is None else f" ({verdict} goal 1.8x)"
        print(f"sharded simulation, ahcal pi+ 10 GeV x {row['events']}: one process {row['one_process_s']:.1f} s, "
              f"Dask LocalCluster of {row['workers']} {row['dask_s']:.1f} s = {row['ratio']:.2f}x{goal}", flush=True)
    row = results["cnn_batches"] = time_batches(400 if args.quick else 4000)
    print(f"cnn input batches, pbwo4 mu- 1-8 TeV pooled 2x4x4: {row['kept_events_per_s']:.0f} ev/s kept from the "
          f"first pass vs {row['converted_events_per_s']:.0f} ev/s converted every pass = {row['ratio']:.1f}x, "
          f"{row['hits_per_event']:.0f} hits/event", flush=True)
    if args.workers > 1:
        row = results["ensemble_training"] = time_ensemble_training(600 if args.quick else 6000, args.workers)
        print(f"ensemble training, {row['members']} muon-study CNNs on {row['threads']} threads: "
              f"one by one {row['one_by_one_s']:.1f} s ({row['one_by_one_events_per_s']:.0f} training ev/s), at once "
              f"{row['at_once_s']:.1f} s ({row['at_once_events_per_s']:.0f} ev/s) = {row['wall_ratio']:.2f}x in "
              f"wall time, {row['throughput_ratio']:.2f}x in training throughput", flush=True)
    row = results["ddp_training"] = time_ddp_training(600 if args.quick else 6000)
    print(f"one muon-study CNN data-parallel: {row['ddp_events_per_s']:.0f} training ev/s with torchrun "
          f"{row['ranks']} gloo processes vs {row['one_process_events_per_s']:.0f} with one process = "
          f"{row['ratio']:.2f}x", flush=True)
    row = results["gpu_training"] = time_gpu_training(600 if args.quick else 6000)
    if "skipped" in row:
        print(f"gpu vs cpu training: skipped ({row['skipped']})", flush=True)
    else:
        print(f"gpu vs cpu training ({row['gpu']}): {row['cuda_events_per_s']:.0f} vs {row['cpu_events_per_s']:.0f} "
              f"training ev/s = {row['ratio']:.1f}x", flush=True)
    if args.generator is not None:
        row = results["generator"] = time_generator(args.generator, 500 if args.quick else 5000)
        print(f"generator {row['model']} ({args.generator}), log-uniform 1-100 GeV: {row['generator']:.0f} ev/s vs "
              f"simulator {row['simulator']:.0f} ev/s = {row['ratio']:.2f}x "
              f"({'meets' if row['ratio'] >= 1 else 'BELOW'} goal 1x)", flush=True)
    if args.cnn is not None:
        row = results["cnn"] = time_cnn(args.cnn, 200 if args.quick else 2000)
        print(f"cnn ensemble ({args.cnn}), cusi pi+ 10-200 GeV at 0.6 MeV: {row['events_per_s']:.0f} ev/s with "
              f"features on 2 threads ({'meets' if row['events_per_s'] >= 1000 else 'BELOW'} goal 1000), "
              f"{row['events_per_s_one_thread']:.0f} on one; features {row['features_s']:.1f} s of "
              f"{row['predict_s']:.1f} s", flush=True)
    results["peak_rss_this_process_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "bench.json", results)
    print(f"results in {args.out / 'bench.json'}")


if __name__ == "__main__":
    try:
        main()
    except CalolabError as exc:  # a missing or corrupt run folder: one line, no traceback
        sys.exit(f"benchmarks/run.py: {exc}")
