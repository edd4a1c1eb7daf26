"""The hits themselves, at the native cell size, for the CNN's learned hit classes.

A model with ``hit_classes > 0`` (:class:`~calolab.ml.model.EnergyCNN`) sorts each hit
into learned classes before pooling, from its energy and what surrounds it. This module
gives it those inputs: :func:`hit_inputs` computes, for every hit of a
:class:`~calolab.showers.Showers`, the five numbers of :data:`HIT_INPUTS` (energies in MIPs
of the hit's layer, ``E / mip_mpv[layer]``), and :class:`HitBatch` carries the hits of one
batch (:class:`~calolab.ml.data.Batch`) as tensors: energy, voxel of the pooled grid, inputs.

>>> from calolab.geometry import load_detector
>>> det = load_detector("cusi")
>>> dense = np.zeros((1, *det.shape), np.float32)
>>> dense[0, 10, 20, 20] = 4 * det.mip_mpv[10]  # 4 MIPs, alone
>>> hit_inputs(Showers.from_dense(det, dense, particle=211, incident_energy=[1e4])).shape
(1, 5)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from calolab.reconstruction.hits import HitGrid
from calolab.showers import Showers

# What :func:`hit_inputs` gives for each hit (energies in MIPs of the hit's layer).
HIT_INPUTS = ("log1p(E)", "log1p(rest of the 3x3 cells of its layer)", "log1p(3x3 cells of the adjacent layers)",
              "log1p(ring of 5x5 minus 3x3 cells of its layer)", "log(hits in its 3x3x3 cube)")


def hit_inputs(showers: Showers) -> np.ndarray:
    """Each hit and its neighbourhood at the native cell size, float32 (n_hits, 5), in the hits' order.

    The columns are :data:`HIT_INPUTS`: what tells a hit in the dense core of a pi0
    sub-shower (energetic neighbours in its layer and the next ones) from an isolated
    spallation-proton hit (several MIPs, no neighbours) or a MIP-like track.

    >>> from calolab.geometry import load_detector
    >>> det = load_detector("cusi")
    >>> dense = np.zeros((1, *det.shape), np.float32)
    >>> dense[0, 10, 20, 20] = 10 * det.mip_mpv[10]; dense[0, 11, 21, 20] = 2 * det.mip_mpv[11]
    >>> np.exp(hit_inputs(Showers.from_dense(det, dense, particle=211, incident_energy=[1e4]))).round(2).tolist()
    [[11.0, 1.0, 3.0, 1.0, 2.0], [3.0, 1.0, 11.0, 1.0, 2.0]]
    """
    det = showers.detector
    grid = HitGrid(showers)
    mips = (grid.energy / det.mip_mpv[grid.layer]).astype(np.float32)
    values = np.column_stack([mips, np.ones_like(mips)])
    in_layer, cube, wide = grid.box_sums(values, [(0, 1), (1, 1), (0, 2)])  # (n, 2) each: MIPs, hits
    out = np.column_stack([np.log1p(mips), np.log1p(in_layer[:, 0] - mips), np.log1p(cube[:, 0] - in_layer[:, 0]),
                           np.log1p(wide[:, 0] - in_layer[:, 0]), np.log(cube[:, 1])]).astype(np.float32)
    if grid.order is not None:  # HitGrid sorted the hits by (event, cell): put them back
        out[grid.order] = out.copy()
    return out


@dataclass
class HitBatch:
    """The hits of a batch at the native cell size, for learned hit classes.

    The voxel of hit ``i`` is ``occupied[slot[i]]``: the network sums each class into the
    occupied voxels only and spreads those onto the grid.
    """

    occupied: torch.Tensor  # (u,) int64: the voxels holding hits, flat indices into the batch's (B, Z, X, Y) grid
    slot: torch.Tensor  # (h,) int64: each hit's place in ``occupied``
    mips: torch.Tensor  # (h,) float32: energy, MIPs
    inputs: torch.Tensor  # (h, len(HIT_INPUTS)) float32: hit_inputs

    @property
    def voxel(self) -> torch.Tensor:
        """Each hit's voxel, (h,) int64."""
        return self.occupied[self.slot]
