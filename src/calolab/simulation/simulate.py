"""Top-level simulation: a beam into a detector, in seeded chunks, to :class:`Showers`.

The same ``seed`` and ``chunk_size`` give the same bits: chunk ``k`` draws from the
``k``-th child of ``SeedSequence(seed)``, whatever else runs.

>>> from calolab.geometry import load_detector
>>> from calolab.simulation import Beam, simulate
>>> showers = simulate(load_detector("siw-ecal"), Beam("e-", energy=10e3), 20, seed=1)
>>> len(showers), showers.n_hits > 0
(20, True)
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np

from calolab.errors import CalolabError
from calolab.geometry import Detector
from calolab.showers import Showers
from calolab.simulation.beam import Beam
from calolab.simulation.deposits import Deposits, to_sparse
from calolab.simulation.em import em_showers
from calolab.simulation.readout import read_out

# A particle simulator: (detector, energy (n,), entry (n, 2), direction (n, 3), pdg, rng)
#   -> (deposits with event in [0, n), per-event truth arrays)
ParticleSimulator = Callable[..., tuple[Deposits, dict[str, np.ndarray]]]

PHOTON_CONVERSION_X0 = 9.0 / 7.0  # mean depth of photon conversion in X0


def simulate_electromagnetic(detector: Detector, energy: np.ndarray, entry: np.ndarray, direction: np.ndarray,
                             pdg: int, rng: np.random.Generator) -> tuple[Deposits, dict[str, np.ndarray]]:
    """Electrons, positrons (shower from the front face) and photons (after a conversion depth)."""
    n = len(energy)
    slope = direction[:, :2] / direction[:, 2:3]
    start = np.zeros(n)
    if pdg == 22:
        t_conv = rng.exponential(PHOTON_CONVERSION_X0, n) * direction[:, 2]
        start = np.interp(t_conv, detector.x0_bounds, detector.z_bounds, right=np.inf)
    inside = np.isfinite(start)
    origin = np.column_stack([entry + slope * np.where(inside, start, 0)[:, None], np.where(inside, start, 0)])
    deposits = em_showers(detector, np.flatnonzero(inside), energy[inside], origin[inside], slope[inside], rng)
    return deposits, {"shower_start_mm": start}


@cache
def _simulators() -> dict[int, ParticleSimulator]:
    table: dict[int, ParticleSimulator] = {11: simulate_electromagnetic, -11: simulate_electromagnetic,
                                           22: simulate_electromagnetic}
    try:
        from calolab.simulation.hadron import simulate_hadrons
        table.update({211: simulate_hadrons, -211: simulate_hadrons})
    except ImportError:
        pass
    try:
        from calolab.simulation.muon import simulate_muons
        table.update({13: simulate_muons, -13: simulate_muons})
    except ImportError:
        pass
    return table


def default_chunk_size(detector: Detector) -> int:
    """Events per chunk: about 2**23 dense cells, between 16 and 2000 events."""
    return int(np.clip((1 << 23) // detector.n_cells, 16, 2000))


def simulate(detector: Detector, beam: Beam, n_events: int, seed: int, chunk_size: int | None = None,
             progress: bool = False, workers: int = 1) -> Showers:
    """Simulate ``n_events`` of ``beam`` in ``detector`` and return the visible energy per cell (MeV).

    Parameters
    ----------
    seed
        Seed of the whole run: the same seed and chunk size give identical output.
    chunk_size
        Events simulated together; default from :func:`default_chunk_size`.
    progress
        Show a progress bar (tqdm) on stderr.
    workers
        Processes simulating chunks in parallel; the output does not depend on it.
    """
    chunk = chunk_size or default_chunk_size(detector)
    jobs = chunk_jobs(detector, beam, n_events, seed, chunk)
    parts: list[Showers] = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n_events, unit="ev", desc=f"{beam.particle} in {detector.name}")
    if workers > 1 and len(jobs) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=workers) as pool:
            for part in pool.map(_chunk_job, jobs):
                parts.append(part)
                if bar is not None:
                    bar.update(len(part))
    else:
        for job in jobs:
            parts.append(_chunk_job(job))
            if bar is not None:
                bar.update(len(parts[-1]))
    if bar is not None:
        bar.close()
    showers = Showers.concatenate(parts)
    showers.meta = simulation_meta(detector, beam, n_events, seed, chunk)
    return showers


ChunkJob = tuple[Detector, Beam, int, np.random.SeedSequence]


def chunk_jobs(detector: Detector, beam: Beam, n_events: int, seed: int, chunk: int) -> list[ChunkJob]:
    """The chunks of a run: ``(detector, beam, events, seed sequence)`` each, in order.

    Chunk ``k`` holds events ``k * chunk`` to ``(k + 1) * chunk`` and draws from the ``k``-th
    child of ``SeedSequence(seed)``; whoever simulates a chunk (this process, a pool, a Dask
    worker) gets the same bits.
    """
    if n_events < 0:
        raise CalolabError(f"number of events must be >= 0, got {n_events}")
    if beam.pdg not in _simulators():
        raise CalolabError(f"no simulator for particle {beam.particle!r} yet")
    starts = list(range(0, n_events, chunk)) or [0]
    children = np.random.SeedSequence(seed).spawn(len(starts))
    return [(detector, beam, min(chunk, n_events - start), child)
            for start, child in zip(starts, children, strict=True)]


def simulate_chunks(jobs: list[ChunkJob]) -> Showers:
    """The events of consecutive chunks of a run (from :func:`chunk_jobs`), joined."""
    return Showers.concatenate([_chunk_job(job) for job in jobs])


def _chunk_job(job: ChunkJob) -> Showers:
    detector, beam, n, seed = job
    return _simulate_chunk(detector, beam, n, _simulators()[beam.pdg], np.random.default_rng(seed))


def _simulate_chunk(detector: Detector, beam: Beam, n: int, simulator: ParticleSimulator,
                    rng: np.random.Generator) -> Showers:
    energy, entry, direction = beam.sample(n, rng)
    deposits, truth = simulator(detector, energy, entry, direction, beam.pdg, rng)
    offsets, cell, visible = to_sparse(detector, deposits, n)
    offsets, cell, visible = read_out(detector, offsets, cell, visible, rng)
    return Showers(detector, offsets, cell, visible, np.full(n, beam.pdg), energy, entry, direction, truth)


def simulation_meta(detector: Detector, beam: Beam, n_events: int, seed: int, chunk: int) -> dict[str, Any]:
    """Provenance stored with simulated showers: enough to reproduce them bit for bit."""
    from calolab import __version__

    return {
        "generator": "calolab.simulate",
        "calolab_version": __version__,
        "detector": detector.name,
        "beam": beam.to_dict(),
        "n_events": n_events,
        "seed": seed,
        "chunk_size": chunk,
    }
