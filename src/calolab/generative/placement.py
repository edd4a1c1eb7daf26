"""Where the hits of a layer go: a radial weight per cell and sampling without replacement.

The cells of one layer are grouped into rings around the shower axis (the beam axis
through the grid centre, (x, y) = (0, 0) mm): every distinct cell-centre radius below
``EXACT_RINGS`` pitches is its own ring, beyond that rings of geometrically growing width
(``RING_GROWTH``). A cell's log weight is the level ``theta[ring]`` of its ring, predicted per
event and layer by the network; the likelihood then costs (rings) per event-layer, not (cells).

``n`` hit cells are drawn without replacement in proportion to the weights (successive
sampling, i.e. Plackett-Luce, as the first n of exponential arrival times). Training
maximises the exact Plackett-Luce likelihood of the real hit cells ordered by decreasing
energy (one ordering of the set, the one that makes the weights mean "hit, and early among
the most energetic"); sampling keeps the set.

On a cylindrical detector (``(alpha, r)`` bins around the beam axis) each r bin is a ring
of ``n_alpha`` cells.

>>> from calolab.geometry import load_detector
>>> rings = Rings.of(load_detector("siw-ecal"))
>>> rings.n_rings, int(rings.count.sum()), rings.count[:3].tolist()
(30, 1024, [4, 8, 4])
>>> Rings.of(load_detector("calochallenge-ds2")).count.tolist()  # 9 r bins of 16 alpha bins
[16, 16, 16, 16, 16, 16, 16, 16, 16]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from calolab.errors import CalolabError
from calolab.geometry import Detector

EXACT_RINGS = 4.0  # pitches: below this every distinct radius is a ring
RING_GROWTH = 1.08  # ratio of outer to inner radius of the wider rings beyond


@dataclass(frozen=True)
class Rings:
    """Ring of every cell of a layer, int (nx * ny,), and the number of cells in each ring."""

    ring: np.ndarray
    count: np.ndarray

    @property
    def n_rings(self) -> int:
        return len(self.count)

    @classmethod
    def of(cls, detector: Detector) -> Rings:
        """The rings of ``detector``'s layer cells (in-layer index ``ix * ny + iy``)."""
        if hasattr(detector.cylinder, "grids") or (detector.cylinder is None and not detector.uniform):
            raise CalolabError(f"detector {detector.name!r}: the generative models place hits in one cell grid "
                               "shared by every layer; its layers have cells of their own")
        if detector.cylinder is not None:  # in-layer cell alpha * n_r + r: its ring is its r bin
            n_alpha, n_r = detector.nx, detector.ny
            return cls(np.tile(np.arange(n_r, dtype=np.int64), n_alpha), np.full(n_r, n_alpha, np.int64))
        pitch = min(detector.pitch_x, detector.pitch_y)
        xc = 0.5 * (detector.x_edges[1:] + detector.x_edges[:-1])
        yc = 0.5 * (detector.y_edges[1:] + detector.y_edges[:-1])
        r = np.hypot(*np.meshgrid(xc, yc, indexing="ij")).ravel() / pitch  # (nx * ny,) in pitches
        r = np.maximum(r, 0.25)
        exact = np.unique(np.round(r[r < EXACT_RINGS], 6))
        inner = (exact[:-1] + exact[1:]) / 2 if len(exact) > 1 else np.zeros(0)
        outer_start = max(EXACT_RINGS, float(exact[-1]) + 1e-6) if len(exact) else 0.0
        n_outer = max(int(np.ceil(np.log(max(r.max(), outer_start * 1.0001) / outer_start) / np.log(RING_GROWTH))), 1)
        edges = np.concatenate([inner, outer_start * RING_GROWTH ** np.arange(n_outer + 1)])
        ring = np.searchsorted(edges, r, side="right")
        _, ring = np.unique(ring, return_inverse=True)  # drop empty rings
        return cls(ring.astype(np.int64), np.bincount(ring))


def plackett_luce_log_prob(rings: Rings, theta: torch.Tensor, group: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
    """Log likelihood of drawn sequences of cells, summed per group.

    Parameters
    ----------
    theta
        Ring levels (G, rings) of G groups (event-layers).
    group, cell
        Group (H,) and in-layer cell index (H,) of every hit, grouped contiguously and each group's
        hits in drawing order (decreasing energy).

    Returns
    -------
    (G,) log probability of each group's sequence (0 for groups without hits).
    """
    n_groups = len(theta)
    theta = theta.double()
    top = theta.max(-1, keepdim=True).values
    weight = torch.exp(theta - top)  # (G, rings)
    total = weight @ torch.as_tensor(rings.count, dtype=weight.dtype, device=weight.device)  # (G,)
    ring = torch.as_tensor(rings.ring, device=theta.device)
    w_hit = weight[group, ring[cell]]  # (H,)
    taken = torch.cumsum(w_hit, 0) - w_hit  # weight taken before this hit, over all groups so far
    first = torch.ones_like(group, dtype=torch.bool)
    first[1:] = group[1:] != group[:-1]
    start_taken = torch.zeros(n_groups, dtype=taken.dtype, device=taken.device)
    start_taken[group[first]] = taken[first]
    remaining = (total[group] - (taken - start_taken[group])).clamp_min(1e-300)
    per_hit = torch.log(w_hit) - torch.log(remaining)
    return torch.zeros(n_groups, dtype=per_hit.dtype, device=per_hit.device).index_add(0, group, per_hit).float()


MIN_INNER_CELLS = 32  # the inner region holds at least this many cells and twice the largest n
N_BUCKETS = (4, 16, 64)  # groups are drawn in buckets of similar n
BINOMIAL_STEPS = 6  # counts of a rare outer arrival resolved at once


def draw_cells(rings: Rings, theta: torch.Tensor, n: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Cells drawn without replacement, in drawing order: int (G, max n), -1 beyond each group's ``n`` (G,).

    Each cell gets an exponential arrival time of rate ``exp(theta[ring])``; the first ``n``
    arrivals are a successive (Plackett-Luce) sample. See :func:`draw_cells_np`, which this
    calls with a numpy generator seeded from ``generator``.
    """
    rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=generator)))
    out = draw_cells_np(rings, theta.detach().cpu().double().numpy(), n.cpu().numpy().astype(np.int64), rng)
    return torch.from_numpy(out).to(theta.device)


def draw_cells_np(rings: Rings, theta: np.ndarray, counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Cells drawn without replacement, in drawing order: int (G, max n), -1 beyond each group's ``counts`` (G,).

    Exactly, but without a draw for every cell: arrivals are drawn for the inner rings (at
    least ``2 max(n)`` and ``MIN_INNER_CELLS`` cells), whose ``n``-th arrival ``tau`` bounds
    the result; in each outer ring the number of arrivals before ``tau`` is binomial, those
    cells are a uniform subset of the ring and their arrival times are exponential truncated
    at ``tau``. Groups go in buckets of similar ``n``. Random numbers come from numpy's
    ``rng`` (no torch generator is used).
    """
    width = int(counts.max()) if len(counts) else 0
    out = np.full((len(counts), width), -1, np.int64)
    if width == 0:
        return out
    bucket = np.searchsorted(np.array(N_BUCKETS), counts, side="left")  # n <= 4, <= 16, <= 64, more
    for b in range(len(N_BUCKETS) + 1):
        rows = np.flatnonzero((bucket == b) & (counts > 0))
        if len(rows):
            cells = _draw_bucket(rings, theta[rows], counts[rows], rng)
            out[rows, :cells.shape[1]] = cells
    return out


def draw_lateral(rings: Rings, theta: np.ndarray, hit_params: np.ndarray, counts: np.ndarray,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Hit cells and the share of the layer's energy of each, for G groups (event-layers) with ``counts`` >= 1.

    Parameters
    ----------
    theta
        Ring levels (G, rings).
    hit_params
        Per ring the Gaussian mixture (G, rings, 3 K) of ``ln(e / MIP)`` of its hits.
    counts
        Hits per group (G,).

    Returns
    -------
    cells : int64 (G, max counts)
        In-layer cell indices in increasing order, -1 beyond each group's count.
    share : float32 (G, max counts)
        Each hit's energy over the group's: mixture draws of its ring (``e^x``, ``x`` clipped to
        +-8), normalised to sum 1; 0 beyond the count. The energies of a set of cells are
        independent given their rings, so their order of drawing does not matter.
    """
    from calolab.generative.mixtures import gaussian_mixture_sample_np

    cells = draw_cells_np(rings, theta, counts, rng)
    n_cells = len(rings.ring)
    cells = np.sort(np.where(cells >= 0, cells, n_cells), 1)
    cells[cells == n_cells] = -1
    group, where = hit_positions(counts, cells.shape[1])
    flat = np.take(cells, where)
    n_rings = rings.n_rings
    x = gaussian_mixture_sample_np(hit_params.reshape(len(counts) * n_rings, -1),
                                   group * n_rings + rings.ring[flat], rng)
    value = np.exp(np.clip(x, -8.0, 8.0))
    share = np.zeros(cells.shape, np.float32)
    share.reshape(-1)[where] = value / np.bincount(group, weights=value, minlength=len(counts))[group]
    return cells, share


def hit_positions(counts: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Row (H,) and flat position (H,) in a (G, width) array of the first ``counts`` (G,) entries of every row.

    >>> hit_positions(np.array([2, 0, 1]), 3)
    (array([0, 0, 2]), array([0, 1, 6]))
    """
    row = np.repeat(np.arange(len(counts)), counts)
    first = np.cumsum(counts) - counts
    return row, row * width + np.arange(len(row)) - first[row]


def _draw_bucket(rings: Rings, theta: np.ndarray, k: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """First ``k`` (G,) >= 1 arrivals of each group, (G, max k) cells, -1 beyond ``k``."""
    width = int(k.max())
    inv_rate = np.exp(theta.max(1, keepdims=True) - theta)  # (G, rings), 1 for the heaviest ring
    n_inner = int(min(np.searchsorted(np.cumsum(rings.count), max(2 * width, MIN_INNER_CELLS)) + 1, rings.n_rings))
    inner = np.flatnonzero(rings.ring < n_inner)  # cells of the inner rings
    keys = rng.standard_exponential((len(k), len(inner)), dtype=np.float32)
    keys *= inv_rate.astype(np.float32)[:, rings.ring[inner]]
    first = np.argpartition(keys, width - 1, axis=1)[:, :width] if width < len(inner) else \
        np.tile(np.arange(len(inner)), (len(k), 1))
    first_keys = _take_rows(keys, first)
    order = np.argsort(first_keys, 1)
    first, first_keys = inner[_take_rows(first, order)], _take_rows(first_keys, order)
    beyond = np.arange(width)[None, :] >= k[:, None]
    first[beyond], first_keys[beyond] = -1, np.inf
    if n_inner == rings.n_rings:
        return first
    # every outer arrival before tau, the n-th inner one, may join the first n
    tau = first_keys[np.arange(len(k)), k - 1].astype(np.float64)
    outer_rings = np.arange(n_inner, rings.n_rings)
    rate = tau[:, None] / inv_rate[:, outer_rings]  # (G, outer rings): a cell arrives before tau w.p. 1 - e^-rate
    hits = _binomial(rings.count[outer_rings], rate, rng)
    g, r = np.nonzero(hits)
    if len(g) == 0:
        return first
    c, ring_id = hits[g, r], outer_rings[r]
    pair = np.repeat(np.arange(len(g)), c)  # one row per outer arrival
    slot = _distinct_slots(pair, rings.count[ring_id], c, rng)  # its cell within the ring: a uniform subset
    by_ring = np.argsort(rings.ring, kind="stable")  # cells grouped by ring
    ring_start = np.cumsum(rings.count) - rings.count
    cell = by_ring[ring_start[ring_id[pair]] + slot]
    # arrival times: exponential truncated at tau
    key = -np.log1p(rng.random(len(pair)) * np.expm1(-rate[g[pair], r[pair]])) * inv_rate[g[pair], ring_id[pair]]
    # merge them with the inner arrivals of their groups
    group = g[pair]  # non-decreasing
    new_group = np.r_[True, group[1:] != group[:-1]]
    rows, local = group[new_group], np.cumsum(new_group) - 1
    rank = np.arange(len(group)) - np.flatnonzero(new_group)[local]
    extra = int(np.bincount(local).max())
    merged_keys = np.concatenate([first_keys[rows], np.full((len(rows), extra), np.inf, np.float32)], 1)
    merged_cells = np.concatenate([first[rows], np.full((len(rows), extra), -1)], 1)
    merged_keys[local, width + rank] = key
    merged_cells[local, width + rank] = cell
    best = np.argsort(merged_keys, 1, kind="stable")[:, :width]
    merged = _take_rows(merged_cells, best)
    merged[np.arange(width)[None, :] >= k[rows, None]] = -1
    first[rows] = merged
    return first


def _take_rows(a: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``np.take_along_axis(a, index, 1)`` for 2-D arrays, as one flat take (no broadcast index arrays)."""
    return np.take(a.reshape(-1), index + (np.arange(len(a)) * a.shape[1])[:, None])


def _binomial(count: np.ndarray, rate: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Binomial draws (G, R) of ``count`` (R,) trials of probability ``1 - exp(-rate)`` (G, R), exactly.

    Most outer rings expect far less than one arrival, so where ``count rate <= 1`` one uniform
    is compared with ``P(0) = exp(-count rate)`` and only the few above are resolved by walking
    up the distribution function from there; numpy's binomial draws only where ``count rate > 1``.
    """
    lam = count * rate  # >= the mean count * p
    big = lam > 1.0
    u = rng.random(rate.shape)
    out = np.zeros(rate.shape, np.int64)
    gb, rb = np.nonzero(big)
    out[gb, rb] = rng.binomial(count[rb], -np.expm1(-rate[gb, rb]))
    gs, rs = np.nonzero((u >= np.exp(-lam)) & ~big)  # at least one arrival; P(0) = exp(-lam)
    u, n, pmf, odds = u[gs, rs], count[rs], np.exp(-lam[gs, rs]), np.expm1(rate[gs, rs])  # odds p / (1 - p)
    # walk up to STEPS counts at once, as columns; the rare ones beyond, one count at a time
    steps = np.arange(1, BINOMIAL_STEPS + 1)
    factor = (n[:, None] - steps + 1) / steps * odds[:, None]  # P(j) / P(j - 1)
    cdf = np.cumsum(pmf[:, None] * np.cumprod(factor, 1), 1) + pmf[:, None]
    x = np.minimum(1 + (u[:, None] >= cdf[:, :-1]).sum(1), n)
    active = np.flatnonzero((u >= cdf[:, -1]) & (n > BINOMIAL_STEPS))
    x[active], cdf, pmf = BINOMIAL_STEPS, cdf[active, -1], pmf[active] * np.prod(factor[active], 1)
    u, n, odds, x_a = u[active], n[active], odds[active], x[active]
    todo = np.arange(len(active))
    while len(todo):
        a = todo
        pmf[a] *= (n[a] - x_a[a]) / (x_a[a] + 1) * odds[a]
        x_a[a] += 1
        cdf[a] += pmf[a]
        todo = a[(u[a] >= cdf[a]) & (x_a[a] < n[a])]
    x[active] = x_a
    out[gs, rs] = x
    return out


def _distinct_slots(pair: np.ndarray, size: np.ndarray, c: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each arrival (its ``pair`` index, non-decreasing) a slot in ``[0, size[pair])``, distinct within a pair
    of ``c[pair]`` arrivals: a uniform subset, as the first distinct values of iid uniform draws (repeats redrawn)."""
    slot = rng.integers(0, size[pair])
    several = np.flatnonzero(c[pair] > 1)
    span = int(size.max()) + 1
    while len(several):
        key = pair[several] * span + slot[several]
        order = np.argsort(key, kind="stable")
        repeat = several[order[1:][key[order[1:]] == key[order[:-1]]]]
        if len(repeat) == 0:
            break
        slot[repeat] = rng.integers(0, size[pair[repeat]])
        several = several[np.isin(pair[several], pair[repeat])]  # only pairs with a repeat can still have one
    return slot
