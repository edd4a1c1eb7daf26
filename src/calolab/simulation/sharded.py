"""Simulation straight to a sharded dataset, in this process, a process pool or a Dask cluster.

A run of ``n_events`` is cut into the chunks :func:`~calolab.simulation.simulate.chunk_jobs`
defines (chunk ``k`` seeded by the ``k``-th child of ``SeedSequence(seed)``); consecutive
chunks make one shard, and each shard is simulated and written by one task. The dataset
read back is therefore bit for bit what :func:`~calolab.simulation.simulate` returns for the
same seed and chunk size, whoever ran the tasks. No shard waits for another and no run is
ever whole in one memory, so the size of a run is bounded by the disk only.

Dask (``calolab[dask]``) is the engine for more than one machine: ``dask="local:4"`` starts
a ``LocalCluster`` of 4 single-threaded worker processes, ``dask="tcp://host:8786"``
connects to a running scheduler (its workers must see ``directory``), and a
``distributed.Client`` is used as it is.

>>> import tempfile
>>> from calolab.geometry import load_detector
>>> from calolab.io import read_showers
>>> from calolab.simulation import Beam, simulate
>>> det, beam = load_detector("siw-ecal"), Beam("e-", energy=2e3)
>>> folder = simulate_sharded(det, beam, 60, seed=3, directory=tempfile.mkdtemp() + "/run", chunk_size=16,
...                           shard_events=32)
>>> back, whole = read_showers(folder), simulate(det, beam, 60, seed=3, chunk_size=16)
>>> bool((back.energy == whole.energy).all()), back.meta == whole.meta
(True, True)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from calolab.errors import CalolabError
from calolab.geometry import Detector
from calolab.io.sharded import shard_entry, shard_name, staged_directory, write_manifest
from calolab.simulation.beam import Beam
from calolab.simulation.simulate import ChunkJob, chunk_jobs, default_chunk_size, simulate_chunks, simulation_meta

DEFAULT_SHARD_EVENTS = 50_000
CONNECT_TIMEOUT = "10s"  # to reach a scheduler


def simulate_sharded(detector: Detector, beam: Beam, n_events: int, seed: int, directory: str | Path,
                     chunk_size: int | None = None, shard_events: int | None = None, format: str = "hdf5",
                     workers: int = 1, dask: Any = None) -> Path:
    """Simulate ``n_events`` into a sharded dataset in ``directory``; return its path.

    Parameters
    ----------
    chunk_size
        Events simulated together (part of the seed's meaning, as in ``simulate``).
    shard_events
        Events per shard, rounded down to whole chunks (at least one); default 50,000.
    format
        Shard file format: ``"hdf5"``, ``"parquet"`` or ``"root"``.
    workers
        Local processes, when ``dask`` is None.
    dask
        ``"local"``, ``"local:N"``, a scheduler address ``"tcp://host:port"``, or a
        ``distributed.Client``.
    """
    chunk = chunk_size or default_chunk_size(detector)
    jobs = chunk_jobs(detector, beam, n_events, seed, chunk)
    per_shard = max(1, (shard_events or DEFAULT_SHARD_EVENTS) // chunk)
    meta = simulation_meta(detector, beam, n_events, seed, chunk)
    with staged_directory(directory) as tmp:
        tasks = [(tmp / shard_name(i, format), jobs[start : start + per_shard], meta, i)
                 for i, start in enumerate(range(0, len(jobs), per_shard))]
        if dask is not None:
            entries = _run_on_dask(dask, tasks)
        elif workers > 1 and len(tasks) > 1:
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(max_workers=workers) as pool:
                entries = list(pool.map(write_shard, tasks))
        else:
            entries = [write_shard(task) for task in tasks]
        write_manifest(tmp, detector, entries, meta)
    return Path(directory)


def write_shard(task: tuple[Path, list[ChunkJob], dict[str, Any], int]) -> dict[str, Any]:
    """Simulate one shard's chunks, write its file, and return its manifest entry."""
    from calolab.io import write_showers

    path, jobs, meta, index = task
    showers = simulate_chunks(jobs)
    showers.meta = {**meta, "shard": index}
    return shard_entry(write_showers(showers, path), showers)


def _run_on_dask(dask: Any, tasks: list) -> list[dict[str, Any]]:
    client, close = connect(dask)
    try:
        futures = client.map(write_shard, tasks, pure=False)
        return client.gather(futures)
    finally:
        close()


def connect(dask: Any) -> tuple[Any, Any]:
    """A ``distributed.Client`` for ``dask`` and a function that releases what was started here.

    ``"local"`` / ``"local:N"`` start a ``LocalCluster`` of N (default: CPU count) worker
    processes with one thread each; ``"tcp://..."`` (or any other scheduler address) connects
    within 10 s. An unreachable or malformed address is a one-line :class:`CalolabError`.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise CalolabError("simulating on Dask needs the 'dask' extra: pip install 'calolab[dask]'") from None
    if isinstance(dask, Client):
        return dask, lambda: None
    spec = str(dask)
    if spec == "local" or spec.startswith("local:"):
        count = spec.partition(":")[2]
        if count and not (count.isdigit() and int(count) > 0):
            raise CalolabError(f"--dask {spec!r}: expected local, local:N with N >= 1, or tcp://host:port")
        import os

        cluster = LocalCluster(n_workers=int(count) if count else (os.cpu_count() or 1), threads_per_worker=1,
                               processes=True, dashboard_address=None)
        client = Client(cluster)

        def close() -> None:
            client.close()
            cluster.close()

        return client, close
    if "://" not in spec:
        raise CalolabError(f"--dask {spec!r}: expected local, local:N, or a scheduler address like tcp://host:8786")
    try:
        client = Client(spec, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as exc:
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise CalolabError(f"cannot reach the Dask scheduler at {spec}: {reason}") from None
    return client, client.close
