"""``EnergyCNN``: a 3D residual CNN that corrects the calibrated energy sum (papers 002 and 003).

The input is the event on a (pooled) grid, energy per cell in MIPs, ``(B, 1, Z, X, Y)``
with ``(Z, X, Y)`` the pooled ``(layer, x, y)`` axes (see :mod:`calolab.ml.data`).

* Learned hit classes (optional, ``hit_classes > 0``): pooling would mix the dense cores
  of pi0 sub-showers with the isolated dense hits of spallation protons and the MIP-like
  tracks around them, which software compensation has to tell apart. So before pooling,
  each hit and its neighbourhood at the native cell size (:func:`~calolab.ml.hits.hit_inputs`)
  go through a small per-hit network to ``hit_classes`` sigmoid gates; each gate times the
  hit's energy is summed into the voxels as one more energy channel (a soft classification
  of the energy, learned end to end). Each class then runs beside the energy channel below,
  summed at every block's resolution from the occupied voxels (never densified at the input
  resolution more than once).
* Convolutional head (paper 003): one residual block per entry of ``channels``. Before every
  block, the raw energy of the grid, sum-pooled alongside the learned channels, is
  transformed (``log1p(E / scale)`` or ``E / scale``) and concatenated back, so the energy
  is a running channel that every block sees at its own resolution, and so is each hit
  class. Between blocks the grid is halved (average pooling of the learned channels, sum
  pooling of the energy).
* Global average pooling of the last block (and of the energy channels) ->
  ``(B, C + 1 + hit_classes)``.
* Body (papers 002 and 003): the log of the total sampling-weighted energy sum (paper 002
  injects the sum after the convolutions) and the high-level features (paper 003),
  standardised with statistics stored in the model, are concatenated to the pooled
  channels and go through fully connected layers to one number ``h``.
* Output: ``E = S * exp(log_scale + h)`` in GeV, with ``S`` the sampling-weighted sum (GeV,
  MIP scale) and ``log_scale`` the log of the median ``E_true / S`` of the training events
  (a stored buffer). The network thus predicts a positive correction factor to the sum, as
  in paper 002: at initialisation (``h = 0``, the last layer starts at zero) it *is* the
  calibrated sum, linear in energy by construction, and it only has to learn the
  event-by-event correction (the electromagnetic fraction of pion showers and e/h, leakage),
  which is a number of order one at every energy. An event with no visible energy gets 0.

>>> import torch
>>> cfg = RegressorConfig(channels=(4, 8), hidden=(16,))
>>> model = EnergyCNN(cfg)
>>> x = torch.zeros(2, 1, 5, 4, 4); x[:, 0, 1, 2, 2] = 30.0
>>> model(x, torch.tensor([10.0, 20.0])).tolist()  # untrained: log_scale = 0 and h = 0
[10.0, 20.0]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from calolab.errors import CalolabError
from calolab.ml.hits import HIT_INPUTS, HitBatch

TRANSFORMS = ("log1p", "linear")
HIT_HIDDEN = 16  # width of the per-hit network of the learned hit classes


@dataclass(frozen=True)
class RegressorConfig:
    """Architecture of :class:`EnergyCNN` (written as YAML in the run folder).

    Parameters
    ----------
    pool
        Cells summed into one input voxel along (layer, x, y), before densifying
        (``cusi`` 75 x 50 x 50 with (3, 5, 5) -> 25 x 10 x 10).
    channels
        Output channels of the residual blocks, one block per entry.
    hidden
        Widths of the fully connected body.
    n_features
        Length of the high-level feature vector (0: none).
    dropout
        Dropout probability in the body.
    transform
        ``"log1p"``: the network sees ``log1p(E / scale)``; ``"linear"``: ``E / scale``.
    scale
        Energy scale of the transform, in MIPs (energy of a cell / MIP most probable value).
    hit_classes
        Learned hit classes, each an extra energy channel (0: none, the input is the pooled energy only).
    """

    pool: tuple[int, int, int] = (3, 5, 5)
    channels: tuple[int, ...] = (8, 16, 32)
    hidden: tuple[int, ...] = (64, 32)
    n_features: int = 0
    dropout: float = 0.0
    transform: str = "log1p"
    scale: float = 1.0
    hit_classes: int = 0

    def __post_init__(self) -> None:
        for name in ("pool", "channels", "hidden"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        if len(self.pool) != 3 or min(self.pool) < 1:
            raise CalolabError(f"pool must be three integers >= 1 (layer, x, y), got {self.pool}")
        if not self.channels or min(self.channels) < 1 or min(self.hidden, default=1) < 1:
            raise CalolabError(f"channels (>= 1 block) and hidden sizes must be positive, got {self.channels}, "
                               f"{self.hidden}")
        if self.n_features < 0 or self.hit_classes < 0 or not 0 <= self.dropout < 1 or not self.scale > 0:
            raise CalolabError("n_features and hit_classes must be >= 0, dropout in [0, 1) and scale > 0 MIPs")
        if self.transform not in TRANSFORMS:
            raise CalolabError(f"unknown input transform {self.transform!r}: expected one of {', '.join(TRANSFORMS)}")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RegressorConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise CalolabError(f"unknown regressor config keys: {', '.join(sorted(unknown))}")
        return cls(**data)


class ResidualBlock(nn.Module):
    """A downsampling residual block: 3x3x3 convolution with stride 2, 3x3x3 convolution, plus a skip.

    The skip is the 2x2x2 average of the input (through a 1x1x1 convolution where the
    channels change). Each spatial axis goes from ``n`` to ``ceil(n / 2)``.
    """

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv1 = nn.Conv3d(c_in, c_out, 3, stride=2, padding=1)
        self.conv2 = nn.Conv3d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv3d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, c_in, Z, X, Y) -> (B, c_out, Z/2, X/2, Y/2)
        return F.relu(self.conv2(F.relu(self.conv1(x))) + self.skip(halve(x)))


def halve(x: torch.Tensor, divisor: int | None = None) -> torch.Tensor:
    """2x2x2 average (``divisor=1``: sum) pooling of (B, C, Z, X, Y), ``ceil(n / 2)`` per axis; axes of 1 stay."""
    kernel = tuple(min(2, n) for n in x.shape[2:])
    return F.avg_pool3d(x, kernel, kernel, ceil_mode=True, divisor_override=divisor)


class EnergyCNN(nn.Module):
    """Energy regressor: pooled grid (MIPs) + energy sum (GeV) [+ features] -> energy in GeV."""

    def __init__(self, config: RegressorConfig):
        super().__init__()
        self.config = config
        if config.hit_classes:
            self.hit_net = nn.Sequential(nn.Linear(len(HIT_INPUTS), HIT_HIDDEN), nn.ReLU(),
                                         nn.Linear(HIT_HIDDEN, config.hit_classes))
        n_energy = 1 + config.hit_classes  # running energy channels: all the energy, and each class's
        c_in = [n_energy] + [c + n_energy for c in config.channels[:-1]]
        self.blocks = nn.ModuleList(ResidualBlock(a, b) for a, b in zip(c_in, config.channels, strict=True))
        sizes = [config.channels[-1] + n_energy + 1 + config.n_features, *config.hidden]
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(a, b), nn.ReLU()] + ([nn.Dropout(config.dropout)] if config.dropout else [])
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(sizes[-1], 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        # standardisation of [log S, features] and the sum's calibration: set by fit_scaling, saved with the weights
        self.register_buffer("body_mean", torch.zeros(1 + config.n_features))
        self.register_buffer("body_std", torch.ones(1 + config.n_features))
        self.register_buffer("log_scale", torch.zeros(()))

    def fit_scaling(self, esum: np.ndarray, target: np.ndarray, features: np.ndarray | None = None) -> None:
        """Set the input standardisation and ``log_scale`` from training events.

        Parameters
        ----------
        esum, target
            Sampling-weighted sums and true energies of the training events, GeV, (N,).
        features
            Their high-level features, (N, n_features), or ``None`` when ``n_features = 0``.
        """
        body = [np.log(np.maximum(esum, 1e-3))[:, None]]
        if self.config.n_features:
            body.append(np.asarray(features, np.float64))
        body = np.concatenate(body, axis=1)
        std = body.std(axis=0)
        self.body_mean.copy_(torch.as_tensor(body.mean(axis=0)))
        self.body_std.copy_(torch.as_tensor(np.where(std > 0, std, 1.0)))
        ratio = target[esum > 0] / esum[esum > 0]
        self.log_scale.fill_(float(np.log(np.median(ratio))) if len(ratio) else 0.0)

    def transform(self, e: torch.Tensor) -> torch.Tensor:
        """What the convolutions see of an energy grid ``e`` in MIPs."""
        if self.config.scale != 1.0:
            e = e / self.config.scale
        return torch.log1p(e) if self.config.transform == "log1p" else e

    def class_energy(self, hits: HitBatch | None) -> torch.Tensor:
        """Energy of each learned hit class in each occupied voxel, (u, hit_classes) in MIPs."""
        if hits is None:
            raise CalolabError(f"this model has {self.config.hit_classes} learned hit classes: its batches must "
                               "carry their hits (ShowerBatches(..., hit_inputs=True))")
        gated = torch.sigmoid(self.hit_net(hits.inputs)) * hits.mips.unsqueeze(1)  # (h, classes)
        return gated.new_zeros(len(hits.occupied), self.config.hit_classes).index_add(0, hits.slot, gated)

    def class_grid(self, energy: torch.Tensor, voxel: tuple[torch.Tensor, ...], level: int,
                   like: torch.Tensor) -> torch.Tensor:
        """The transformed class energies summed on the grid of ``like`` (B, 1, Z_k, X_k, Y_k), ``level`` > 0
        halvings below the input grid, from the per-voxel ``energy`` (u, classes) at input coordinates
        ``voxel`` (b, z, x, y): (B, classes, Z_k, X_k, Y_k). The same sums as halving a dense grid."""
        b, _, *grid = like.shape
        flat = voxel[0]
        for c, n in zip(voxel[1:], grid, strict=True):
            flat = flat * n + (c >> level)
        out = energy.new_zeros(b * like[0, 0].numel(), energy.shape[1]).index_add(0, flat, energy)
        return self.transform(out).view(b, *grid, -1).permute(0, 4, 1, 2, 3)

    def first_input(self, x: torch.Tensor, energy: torch.Tensor | None, occupied: torch.Tensor | None) -> torch.Tensor:
        """What the first block sees: the transformed energy of ``x`` and of each class, from the class
        ``energy`` (u, classes) of the ``occupied`` voxels (flat indices into x's (B, Z, X, Y)): (B, 1 + classes,
        Z, X, Y), built in place (the occupied voxels are distinct, so only they are transformed)."""
        if energy is None:
            return self.transform(x)
        b, _, *grid = x.shape
        n_voxels = x[0, 0].numel()
        out = x.new_zeros(b, 1 + energy.shape[1], n_voxels)
        out[:, 0] = self.transform(x.reshape(b, n_voxels))
        out[occupied // n_voxels, 1:, occupied % n_voxels] = self.transform(energy)
        return out.view(b, -1, *grid)

    def forward(self, x: torch.Tensor, esum: torch.Tensor, features: torch.Tensor | None = None,
                hits: HitBatch | None = None) -> torch.Tensor:
        """Energies in GeV (B,) of events ``x`` (B, 1, Z, X, Y) in MIPs, sums ``esum`` (B,) in GeV; ``hits``
        (:class:`~calolab.ml.hits.HitBatch`) for learned hit classes."""
        e, h = x, None  # e: running energy channel (B, 1, Z, X, Y), MIPs
        classes, voxel = None, None
        if self.config.hit_classes:
            classes = self.class_energy(hits).to(x.dtype)
            _, _, nz, nx, ny = x.shape
            cell = hits.occupied % (nz * nx * ny)
            voxel = (hits.occupied // (nz * nx * ny), cell // (nx * ny), cell // ny % nx, cell % ny)  # (b, z, x, y)

        def energy_channels(level: int) -> list[torch.Tensor]:
            channels = [self.transform(e)]
            if classes is not None:
                channels.append(self.class_grid(classes, voxel, level, e))
            return channels

        for level, block in enumerate(self.blocks):
            if h is None:
                inp = self.first_input(x, classes, None if classes is None else hits.occupied)
            else:
                inp = torch.cat([h, *energy_channels(level)], dim=1)  # (B, C + 1 + classes, ...)
            h = block(inp)  # (B, C_i, Z/2, X/2, Y/2)
            e = halve(e, divisor=1)  # summed, on the grid of h: (B, 1, Z/2, X/2, Y/2)
        pooled = torch.cat([h, *energy_channels(len(self.blocks))], dim=1).mean(dim=(2, 3, 4))  # (B, C_last + 1 + cl.)
        body = torch.log(esum.clamp_min(1e-3)).unsqueeze(1)  # (B, 1)
        if self.config.n_features:
            if features is None:
                raise CalolabError(f"this model needs {self.config.n_features} high-level features per event")
            body = torch.cat([body, features.to(body.dtype)], dim=1)  # (B, 1 + F)
        body = (body - self.body_mean) / self.body_std
        h = self.out(self.body(torch.cat([pooled, body], dim=1))).squeeze(1)  # (B,)
        return esum * torch.exp(self.log_scale + h)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
