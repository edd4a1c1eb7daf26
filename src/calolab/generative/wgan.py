"""The paper's model (seed 004): a conditional 2D WGAN-GP with energy and hit-count conservation penalties.

An event is an image of the 15 layers as channels over the (x, y) cell grid, in
``u = ln(1 + E / MIP_l)`` per cell. (The paper tiles the layers into one 15 x 1024 image,
i.e. each 32 x 32 layer flattened into a row; as channels the convolutions see the x and y
neighbours of a cell alike, at a fraction of the cost on a CPU.) Following the paper:

* generator: noise (64) and the condition -> 4 x 4 -> three ConvTranspose2d + BatchNorm + ReLU
  blocks (8, 16, 32 pixels) -> Conv2d + ReLU (exact zeros: empty cells);
* critic: three Conv2d + InstanceNorm + LeakyReLU blocks, a last Conv2d to one score;
* Wasserstein loss with gradient penalty (Gulrajani et al.: Adam (0.5, 0.9), ``n_critic`` = 5);
* conservation penalties on the generator for the energy sum and the number of hits of fake
  and real events of the same conditions (:meth:`WGAN.conservation`: log differences, whose
  batch mean and energy-weighted mean must vanish), hits counted with a sigmoid around
  ``hit_threshold_mip`` (0.5 MIP) of width ``hit_softness_mip``, shifted so that an empty cell
  counts exactly 0.

The condition (``ln E`` and the 15 absorber thicknesses in X0) enters the generator's input and
is broadcast as extra channels to every convolution of both networks. Generated cells below
``hit_threshold_mip`` are dropped, so a hit is what the soft count counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from calolab.errors import CalolabError
from calolab.geometry import Detector


@dataclass(frozen=True)
class WGANConfig:
    """Sizes, optimiser and penalties of the WGAN-GP."""

    latent: int = 64
    filters: int = 16
    lr: float = 3e-4
    batch_size: int = 32
    n_critic: int = 5
    gradient_penalty: float = 10.0
    energy_penalty: float = 10.0
    hits_penalty: float = 10.0
    hit_threshold_mip: float = 0.5
    hit_softness_mip: float = 0.1

    def __post_init__(self) -> None:
        if min(self.latent, self.filters, self.batch_size, self.n_critic) < 1 or not self.lr > 0:
            raise CalolabError(f"wgan config: sizes must be >= 1 and lr > 0, got {self}")
        if min(self.gradient_penalty, self.energy_penalty, self.hits_penalty) < 0:
            raise CalolabError("wgan config: penalties must be >= 0")


def _with_condition(x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
    """``x`` (B, C, H, W) with the condition (B, K) appended as K constant channels."""
    return torch.cat([x, cond[:, :, None, None].expand(-1, -1, *x.shape[2:])], 1)


def normalise(cond: torch.Tensor) -> torch.Tensor:
    """Condition (B, 1 + L) scaled to order one for the networks."""
    return torch.cat([cond[:, :1] / 4.6, cond[:, 1:] / 1.5], 1)


class Generator(nn.Module):
    """Noise and condition -> cells ``u = ln(1 + E / MIP)`` (B, layers, nx, ny), nx = ny = 32."""

    def __init__(self, config: WGANConfig, shape: tuple[int, int, int]):
        super().__init__()
        layers, nx, ny = shape
        if nx != ny or nx % 8:
            raise CalolabError(f"the WGAN needs a square grid of a multiple of 8 cells, got {nx} x {ny}")
        f, k = config.filters, 1 + layers
        self.start, self.base = nx // 8, 4 * f
        self.fc = nn.Linear(config.latent + k, self.base * self.start**2)
        self.bn0 = nn.BatchNorm2d(self.base)
        chans = [4 * f, 2 * f, f, f]
        self.ups = nn.ModuleList(nn.ConvTranspose2d(a + k, b, 4, 2, 1) for a, b in zip(chans[:-1], chans[1:],
                                                                                       strict=True))
        self.bns = nn.ModuleList(nn.BatchNorm2d(b) for b in chans[1:])
        self.out = nn.Conv2d(f + k, layers, 3, padding=1)
        nn.init.constant_(self.out.bias, -1.0)  # start sparse: most cells below zero, i.e. empty

    def forward(self, z: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        c = normalise(cond)
        h = self.fc(torch.cat([z, c], 1)).view(len(z), self.base, self.start, self.start)
        h = F.relu(self.bn0(h))
        for up, bn in zip(self.ups, self.bns, strict=True):
            h = F.relu(bn(up(_with_condition(h, c))))
        return F.relu(self.out(_with_condition(h, c)))


class Critic(nn.Module):
    """Cells ``u`` (B, layers, nx, ny) and condition -> score (B,)."""

    def __init__(self, config: WGANConfig, shape: tuple[int, int, int]):
        super().__init__()
        layers, nx, _ = shape
        f, k = config.filters, 1 + layers
        chans = [layers, f, 2 * f, 4 * f]
        self.convs = nn.ModuleList(nn.Conv2d(a + (k if i == 0 else 0), b, 4, 2, 1)
                                   for i, (a, b) in enumerate(zip(chans[:-1], chans[1:], strict=True)))
        self.norms = nn.ModuleList(nn.InstanceNorm2d(b, affine=True) for b in chans[1:])
        self.last = nn.Conv2d(4 * f, 1, nx // 8)

    def forward(self, u: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = _with_condition(u, normalise(cond))
        for conv, norm in zip(self.convs, self.norms, strict=True):
            h = F.leaky_relu(norm(conv(h)), 0.2)
        return self.last(h).flatten()


class WGAN(nn.Module):
    """Generator, critic and the detector's MIP scale per layer (MeV)."""

    def __init__(self, config: WGANConfig, detector: Detector):
        super().__init__()
        self.config = config
        self.shape = detector.shape
        self.generator = Generator(config, detector.shape)
        self.critic = Critic(config, detector.shape)
        self.register_buffer("mip", torch.tensor(detector.mip_mpv, dtype=torch.float32))

    def to_energy(self, u: torch.Tensor) -> torch.Tensor:
        """Cell energies in MeV from ``u`` (B, layers, nx, ny)."""
        return torch.expm1(u) * self.mip[None, :, None, None]

    def to_u(self, energy: torch.Tensor) -> torch.Tensor:
        return torch.log1p(energy / self.mip[None, :, None, None])

    def soft_hits(self, energy: torch.Tensor) -> torch.Tensor:
        """Differentiable hit count per event (B,): 0 for an empty cell, about 1 above the threshold."""
        cfg = self.config
        x = energy / self.mip[None, :, None, None]
        floor = torch.sigmoid(torch.tensor(-cfg.hit_threshold_mip / cfg.hit_softness_mip))
        soft = (torch.sigmoid((x - cfg.hit_threshold_mip) / cfg.hit_softness_mip) - floor) / (1 - floor)
        return soft.flatten(1).sum(1)

    def fake(self, cond: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        z = torch.randn(len(cond), self.config.latent, generator=generator, device=cond.device)
        return self.generator(z, cond)

    def conservation(self, fake_e: torch.Tensor, real_e: torch.Tensor, cond: torch.Tensor) -> dict[str, torch.Tensor]:
        """Conservation penalties from fake and real events of the same conditions (B, ...) in MeV.

        For the energy sum ``S`` and the soft hit count ``n`` of each pair, ``d = ln S_fake - ln S_real``
        (``ln(1 + n)`` for hits) has mean zero at every energy when the model is right. The
        penalty is ``mean(d)^2 + mean(d z)^2`` with ``z`` the standardised ``ln E`` of the batch:
        the second moment stops a generator from trading a deficit at low energy against an
        excess at high energy.
        """
        log_e = cond[:, 0]
        z = (log_e - log_e.mean()) / log_e.std().clamp_min(1e-3) if len(cond) > 1 else torch.zeros_like(log_e)
        out = {}
        for name, fake_q, real_q in (("energy", fake_e.flatten(1).sum(1), real_e.flatten(1).sum(1)),
                                     ("hits", self.soft_hits(fake_e), self.soft_hits(real_e))):
            d = torch.log1p(fake_q) - torch.log1p(real_q)
            out[name] = d.mean() ** 2 + (d * z).mean() ** 2
        return out


def gradient_penalty(critic: Critic, real: torch.Tensor, fake: torch.Tensor, cond: torch.Tensor,
                     generator: torch.Generator) -> torch.Tensor:
    """Mean ``(|grad_u D(u_hat)| - 1)^2`` on random interpolates of real and fake images."""
    alpha = torch.rand(len(real), 1, 1, 1, generator=generator, device=real.device)
    x = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x, cond).sum(), x, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def build_optimizers(model: WGAN) -> dict[str, torch.optim.Optimizer]:
    lr = model.config.lr
    return {"generator": torch.optim.Adam(model.generator.parameters(), lr=lr, betas=(0.5, 0.9)),
            "critic": torch.optim.Adam(model.critic.parameters(), lr=lr, betas=(0.5, 0.9))}


def train_epoch(model: WGAN, optimizers: dict, table, generator: torch.Generator, lr: float) -> dict[str, float]:
    """One pass of the real events through the critic; a generator step after every ``n_critic`` critic steps."""
    cfg = model.config
    for opt in optimizers.values():
        for group in opt.param_groups:
            group["lr"] = lr
    from calolab.generative.table import dense_batch

    model.train()
    order = torch.randperm(len(table), generator=generator).numpy()
    bs = cfg.batch_size
    steps = -(-len(order) // bs)  # the last batch may be smaller
    sums = {"critic": 0.0, "wasserstein": 0.0, "gp": 0.0, "generator": 0.0, "energy": 0.0, "hits": 0.0}
    n_gen = 0
    for step in range(steps):
        index = order[step * bs:(step + 1) * bs]
        cond = torch.from_numpy(table.cond[index])
        real = model.to_u(dense_batch(table, index, model.shape))
        with torch.no_grad():
            fake = model.fake(cond, generator)
        dist = model.critic(real, cond).mean() - model.critic(fake, cond).mean()
        gp = gradient_penalty(model.critic, real, fake, cond, generator)
        loss = -dist + cfg.gradient_penalty * gp
        optimizers["critic"].zero_grad(set_to_none=True)
        loss.backward()
        optimizers["critic"].step()
        sums["critic"] += loss.item()
        sums["wasserstein"] += dist.item()
        sums["gp"] += gp.item()
        if (step + 1) % cfg.n_critic == 0:
            fake = model.fake(cond, generator)
            cons = model.conservation(model.to_energy(fake), model.to_energy(real), cond)
            g_loss = -model.critic(fake, cond).mean()
            total = g_loss + cfg.energy_penalty * cons["energy"] + cfg.hits_penalty * cons["hits"]
            optimizers["generator"].zero_grad(set_to_none=True)
            total.backward()
            optimizers["generator"].step()
            n_gen += 1
            sums["generator"] += g_loss.item()
            sums["energy"] += cons["energy"].item()
            sums["hits"] += cons["hits"].item()
    out = {k: v / max(steps, 1) for k, v in sums.items() if k in ("critic", "wasserstein", "gp")}
    out |= {k: sums[k] / max(n_gen, 1) for k in ("generator", "energy", "hits")}
    return out


@torch.no_grad()
def sample_hits(model: WGAN, cond: torch.Tensor, generator: torch.Generator) -> tuple[np.ndarray, ...]:
    """Sparse hits of one event per condition (B, 1 + L): event (H,), flat cell (H,), energy (H,) MeV.

    The generator runs in evaluation mode (BatchNorm running statistics); cells below the hit
    threshold are dropped.
    """
    model.eval()
    energy = model.to_energy(model.fake(cond, generator))
    energy = energy * (energy >= model.config.hit_threshold_mip * model.mip[None, :, None, None])
    flat = energy.flatten(1).numpy()
    event, cell = np.nonzero(flat)
    return event, cell, flat[event, cell].astype(np.float32)
