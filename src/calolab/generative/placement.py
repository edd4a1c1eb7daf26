"""Where the hits of a layer go: a radial weight per cell and sampling without replacement.

The cells of one layer are grouped into rings around the shower axis (the beam axis
through the grid centre, (x, y) = (0, 0) mm): every distinct cell-centre radius below
``EXACT_RINGS`` pitches is its own ring, beyond that rings of geometrically growing width
(``RING_GROWTH``). A cell's log weight is the level ``theta[ring]`` of its ring, predicted per
event and layer by the network; the likelihood then costs (rings) per event-layer, not (cells).

``n`` hit cells are drawn without replacement in proportion to the weights (successive
sampling, i.e. Plackett-Luce, as the first n of exponential arrival times), and the layer's hit
energies, sorted in decreasing order, are given to the cells in the order they were drawn.
Training therefore maximises the exact Plackett-Luce likelihood of the real hit cells
ordered by decreasing energy: high weights mean "hit, and among the most energetic".

>>> from calolab.geometry import load_detector
>>> rings = Rings.of(load_detector("siw-ecal"))
>>> rings.n_rings, int(rings.count.sum()), rings.count[:3].tolist()
(30, 1024, [4, 8, 4])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

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


def draw_cells(rings: Rings, theta: torch.Tensor, n: torch.Tensor, generator: torch.Generator,
               chunk: int = 256) -> torch.Tensor:
    """Cells drawn without replacement, in drawing order: int (G, max n), -1 beyond each group's ``n`` (G,).

    Each cell gets an exponential arrival time of rate ``exp(theta[ring])``; the first ``n``
    arrivals are a successive (Plackett-Luce) sample. Groups are handled in chunks of similar
    ``n`` so that each chunk sorts only as many arrivals as it needs.
    """
    width = int(n.max()) if len(n) else 0
    out = torch.full((len(n), width), -1, dtype=torch.long, device=theta.device)
    if width == 0:
        return out
    ring = torch.as_tensor(rings.ring, device=theta.device)
    rate_inv = torch.exp(theta.max(-1, keepdim=True).values - theta)  # (G, rings), 1 for the heaviest ring
    order = torch.argsort(n)
    # numpy's ziggurat draws exponentials ~10x faster than torch on a CPU; seeded from the torch stream
    rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=generator)))
    for start in range(0, len(n), chunk):
        rows = order[start:start + chunk]
        k = int(n[rows].max())
        if k == 0:
            continue
        arrival = torch.from_numpy(rng.standard_exponential((len(rows), len(ring)), dtype=np.float32)).to(theta.device)
        first = torch.topk(arrival * rate_inv[rows][:, ring], k, dim=-1, largest=False).indices  # (rows, k)
        keep = torch.arange(k, device=n.device)[None, :] < n[rows, None]
        out[rows, :k] = torch.where(keep, first, torch.full_like(first, -1))
    return out
