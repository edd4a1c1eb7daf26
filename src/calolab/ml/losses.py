"""Regression losses for energies in GeV: MSE, mean fractional squared error, and paper 003's Huberised MFSE.

For predictions ``y`` and true energies ``t`` (both GeV, (B,)):

* ``mse``: ``mean((y - t)^2)`` in GeV^2;
* ``mfse``: ``mean((y - t)^2 / t)`` in GeV: the squared error relative to the stochastic
  scale of calorimeter resolution (``sigma^2 ~ a^2 t``), so every energy weighs alike;
* ``huber``: :class:`BinnedHuberMFSE`, the MFSE with outliers entering linearly.

Paper 003 (the poster in /work/shared/seeds) names the loss, a "Huberised version of the
mean fractional squared error", without its formula; its training used LUMIN (the
poster's reference [3], G. Strong, doi:10.5281/zenodo.2601857), whose
``WeightedFractionalBinnedHuber`` defines it, and :class:`BinnedHuberMFSE` follows that
definition:

1. the events are binned in true energy (edges ``e_0 < ... < e_K``, a bin is
   ``e_k <= t < e_{k+1}``);
2. in each bin the threshold ``T_k`` is the 68th percentile of the squared error
   ``(y - t)^2`` of the batch's events in that bin: the ``(1 + round(0.68 (n - 1)))``-th
   smallest of the ``n`` values (the squared error, not yet divided by ``t``: within a bin
   ``t`` is nearly constant, so this is the percentile of the fractional error too);
3. ``T_k`` is a running average: the first batch that fills bin ``k`` sets it, later ones
   move it by ``T_k <- (1 - m) T_k + m T_batch`` with momentum ``m = 0.1``;
4. with ``d = sqrt(T_k)``, a squared error above ``T_k`` is replaced by the Huber term
   ``T_k + 2 d (|y - t| - d)``, which continues the parabola with its own slope, so
   outliers enter linearly;
5. each event's term is divided by ``t`` and the batch mean is the loss.

Only in training mode (``loss.train()``) do batches update the thresholds; in evaluation
mode they are frozen (LUMIN updates them on every call), so that a validation pass leaves
the training state alone. Bins that no training batch has reached are not Huberised.
The thresholds are a buffer: they are saved in checkpoints with the model. In distributed
training (``distributed = True``) each threshold is the percentile of the global batch, the
squared errors of every rank gathered, so that all ranks hold the thresholds one process
with the whole batch would.

>>> import torch
>>> loss = BinnedHuberMFSE(torch.tensor([0.0, 100.0]))
>>> t = torch.full((5,), 4.0)
>>> y = t + torch.tensor([0.0, 1.0, 2.0, 3.0, 10.0])  # squared errors 0, 1, 4, 9, 100: T = 9, d = 3
>>> float(loss(y, t))  # (0 + 1 + 4 + 9 + (9 + 2 * 3 * (10 - 3))) / 4 / 5
3.25
"""

from __future__ import annotations

import torch
from torch import nn

from calolab.errors import CalolabError

LOSSES = ("mse", "mfse", "huber")


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error, GeV^2."""
    return ((pred - target) ** 2).mean()


def mfse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean fractional squared error ``mean((y - t)^2 / t)``, GeV.

    >>> round(float(mfse(torch.tensor([12.0, 90.0]), torch.tensor([10.0, 100.0]))), 6)  # (4 / 10 + 100 / 100) / 2
    0.7
    """
    return ((pred - target) ** 2 / target).mean()


class BinnedHuberMFSE(nn.Module):
    """Paper 003's Huberised mean fractional squared error (see the module docstring).

    Parameters
    ----------
    edges
        Bin edges in true energy, GeV, increasing, (K + 1,). Use ``-inf``/``inf`` as the
        outer edges to Huberise every event; events outside the edges are never Huberised.
    percentile
        Fraction of squared errors in a bin below the threshold (0.68).
    momentum
        Weight of a new batch in the running average of the thresholds (0.1).
    """

    def __init__(self, edges: torch.Tensor, percentile: float = 0.68, momentum: float = 0.1):
        super().__init__()
        edges = torch.as_tensor(edges, dtype=torch.float64)
        if edges.ndim != 1 or len(edges) < 2 or not torch.all(edges[1:] > edges[:-1]):
            raise CalolabError("Huber loss bin edges must be an increasing 1-D sequence of at least 2 energies (GeV)")
        if not 0 < percentile <= 1 or not 0 < momentum <= 1:
            raise CalolabError(f"Huber percentile and momentum must be in (0, 1], got {percentile}, {momentum}")
        self.percentile, self.momentum = float(percentile), float(momentum)
        self.register_buffer("edges", edges)
        self.register_buffer("thresholds", torch.full((len(edges) - 1,), -1.0, dtype=torch.float64))  # GeV^2
        self.distributed = False  # thresholds from the global batch of all ranks (set by distributed training)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Loss (scalar, GeV) of predictions ``pred`` (B,) for true energies ``target`` (B,), GeV."""
        err = pred - target
        sq = err**2  # (B,)
        terms = sq
        t = target.detach().to(torch.float64)
        inside = (t >= self.edges[0]) & (t < self.edges[-1])
        bins = torch.bucketize(t, self.edges[1:-1], right=True)  # e_k <= t < e_{k+1} -> k
        if self.training:
            self._update(sq.detach(), t)
        for k in torch.unique(bins[inside]).tolist():
            in_bin = inside & (bins == k)
            threshold = self.thresholds[k]
            if threshold < 0:
                continue
            big = in_bin & (sq > threshold.to(sq.dtype))
            d = torch.sqrt(threshold).to(sq.dtype)
            terms = torch.where(big, threshold.to(sq.dtype) + 2 * d * (err.abs() - d), terms)
        return (terms / target).mean()


    def _update(self, sq: torch.Tensor, t: torch.Tensor) -> None:
        """Move the thresholds of the bins that the batch's squared errors ``sq`` (B,) at true energies ``t`` (B,)
        reach; in distributed training, the batch is the global one (every rank's events)."""
        if self.distributed:
            from calolab.ml.distributed import gather

            sq, t = gather(sq), gather(t)
        inside = (t >= self.edges[0]) & (t < self.edges[-1])
        bins = torch.bucketize(t, self.edges[1:-1], right=True)
        for k in torch.unique(bins[inside]).tolist():
            values = sq[inside & (bins == k)]
            rank = 1 + round(self.percentile * (len(values) - 1))
            kth = values.kthvalue(rank).values.to(torch.float64)
            if self.thresholds[k] < 0:
                self.thresholds[k] = kth
            else:
                self.thresholds[k] = (1 - self.momentum) * self.thresholds[k] + self.momentum * kth


def make_loss(name: str, edges: torch.Tensor | None = None, percentile: float = 0.68,
              momentum: float = 0.1) -> nn.Module:
    """The loss ``name`` (``mse``, ``mfse`` or ``huber``) as a module; ``huber`` needs bin ``edges`` (GeV)."""
    if name == "mse":
        return _Function(mse)
    if name == "mfse":
        return _Function(mfse)
    if name == "huber":
        if edges is None:
            raise CalolabError("the huber loss needs bin edges in true energy")
        return BinnedHuberMFSE(edges, percentile, momentum)
    raise CalolabError(f"unknown loss {name!r}: expected one of {', '.join(LOSSES)}")


class _Function(nn.Module):
    """A stateless loss function as a module (so all losses save and load alike)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.fn(pred, target)
