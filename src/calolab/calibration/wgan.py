"""``wgan``: the papers' Wasserstein-GAN calibration (seeds 000/001, arXiv:2411.03891), in torch.

The generator is one multiplicative weight per cell, ``w`` (layers, nx, ny), initialised at 1.
It turns a reference event into a would-be damaged one, ``fake = reference * w``; a critic
over whole events learns to tell these from real damaged events (Wasserstein loss: the
critic maximises ``D(real) - D(fake)``), and the generator learns ``w`` so that it cannot.
The trained ``w`` are the estimated coefficients ``c``, so the MAE before training is the
uncorrected ``mean |1 - c|``.

Critics (all see ``log1p(E / 1 MeV)`` of every cell: a monotone transform applied after
the generator, so it changes what the critic finds easy, not what has to match):

* ``conv`` (default): the papers' critic, 3x3 convolutions over (nx, ny) with the layers as
  input channels, then a linear head; filters 32-64-64-32 by default, the papers'
  64-128-128-64 with ``filters=(64, 128, 128, 64)``.
* ``mlp``: the flattened cells, plus log1p of the layer sums, -> 256 -> 64 -> 1,
  LeakyReLU(0.2), no batch norm, and a linear path from the cells to the output. The first
  layer is evaluated on the hits only (``embedding_bag``), which equals a dense ``Linear``
  since log1p(0) = 0, at a cost that grows with the hits instead of the cells.
* ``linear``: that first layer straight to one output, ``D = sum_i a_i log1p(E_i) + b``.

The conv critic shares its filters over cells, so it pushes ``w`` down roughly in proportion
to each cell's deposits, as the damage follows the dose. Papers 000/001 report MAE 0.018 ->
0.0074 in 100 epochs on 10 GeV pions with linear ageing; ``calolab study ageing`` measures
every critic on that scenario and ``calolab report runs/ageing`` shows the results.

Loss: the original weight clipping (Arjovsky et al., RMSprop) by default, or the gradient
penalty (Gulrajani et al., Adam betas (0.5, 0.9)) with ``gradient_penalty=10``. An epoch is
one pass over the events: ``n_critic`` critic steps on fresh batches, then one generator step
on the reference events of those batches.

The generator is trained by SGD, its gradient divided by the root-mean-square gradient over
cells (averaged over all steps so far), with a cosine-decaying step. Per-cell adaptive
optimisers (RMSprop, Adam) fail here: they give a cell hit once in a thousand events the
same step as a core cell, and the thousands of rarely hit cells random-walk away from 1.
With one scale for all cells, a
cell moves in proportion to how often it is hit and how consistently the critic pushes it.
The decay matters: the Wasserstein gradient keeps its size near the optimum (like that of
``|x|``), so with a constant step ``w`` goes on following the critic's sample noise and the
MAE passes a minimum and rises again. The total step (``generator_lr`` x ``epochs``, default
0.012 with clipping) thus sets how far rarely hit cells move: it acts as the prior "c = 1
unless the data say otherwise", tuned on the ageing study's scenario.

Uncertainties are not estimated (NaN): the spread of ``w`` over epochs reflects the
schedule, not the statistics.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from calolab.calibration.base import CalibrationResult, check_pair, hit_cells
from calolab.errors import CalolabError
from calolab.showers import Showers

CRITICS = ("conv", "mlp", "linear")


@dataclass(frozen=True)
class WGANConfig:
    """Hyperparameters of :func:`calibrate_wgan` (stored in the result's diagnostics)."""

    critic: str = "conv"
    epochs: int | None = None  # 10 (conv) or 40 (mlp, linear)
    batch_size: int = 64
    n_critic: int = 5
    lr: float | None = None  # critic: 2e-3 (RMSprop, clipping) or 3e-4 (Adam, gradient penalty)
    generator_lr: float | None = None  # RMS cell's first step: (0.012 clipping, 0.03 penalty) / epochs
    clip: float = 0.01
    gradient_penalty: float | None = None
    hidden: tuple[int, ...] = (256, 64)
    layer_sums: bool = True
    filters: tuple[int, ...] = (32, 64, 64, 32)  # the papers' (64, 128, 128, 64): 4x the inner convolutions' work
    w_max: float = 1.5
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.critic not in CRITICS:
            raise CalolabError(f"unknown WGAN critic {self.critic!r}: expected one of {', '.join(CRITICS)}")
        if self.epochs is None:
            object.__setattr__(self, "epochs", 10 if self.critic == "conv" else 40)
        for name in ("epochs", "batch_size", "n_critic"):
            if int(getattr(self, name)) < 1:
                raise CalolabError(f"WGAN {name} must be >= 1, got {getattr(self, name)}")
        if self.gradient_penalty is not None and self.gradient_penalty <= 0:
            raise CalolabError(f"gradient_penalty must be > 0 or None (weight clipping), got {self.gradient_penalty}")

    @property
    def critic_lr(self) -> float:
        return self.lr if self.lr is not None else (3e-4 if self.gradient_penalty is not None else 2e-3)

    @property
    def gen_lr(self) -> float:
        if self.generator_lr is not None:
            return self.generator_lr
        return (0.03 if self.gradient_penalty is not None else 0.012) / self.epochs


def padded_hits(showers: Showers) -> tuple[torch.Tensor, torch.Tensor]:
    """Hits per event as int64 (N, H) flat cell indices and float32 (N, H) energies in MeV.

    Rows are padded to the busiest event with the index ``n_cells`` and 0 MeV.

    >>> import numpy as np
    >>> from calolab.geometry import load_detector
    >>> det = load_detector("siw-ecal")
    >>> dense = np.zeros((2, *det.shape), np.float32); dense[0, 0, 0, :3] = 1.0; dense[1, 1, 0, 0] = 2.0
    >>> cells, energy = padded_hits(Showers.from_dense(det, dense, particle=11, incident_energy=np.ones(2)))
    >>> tuple(cells.shape), energy.tolist()
    ((2, 3), [[1.0, 1.0, 1.0], [2.0, 0.0, 0.0]])
    """
    counts = np.diff(showers.offsets)
    n, width = len(showers), max(int(counts.max(initial=0)), 1)
    cells = np.full((n, width), showers.detector.n_cells, np.int64)
    energy = np.zeros((n, width), np.float32)
    col = np.arange(showers.n_hits) - np.repeat(showers.offsets[:-1], counts)
    cells[showers.event_index, col] = showers.cell
    energy[showers.event_index, col] = showers.energy
    return torch.from_numpy(cells), torch.from_numpy(energy)


def densify(cells: torch.Tensor, energy: torch.Tensor, n_cells: int) -> torch.Tensor:
    """Dense (B, n_cells) MeV events from padded hits (B, H)."""
    return energy.new_zeros(len(cells), n_cells + 1).scatter_add(1, cells, energy)[:, :n_cells]


class Generator(nn.Module):
    """One multiplicative weight per cell, ``w`` (layers, nx, ny), initialised at 1."""

    def __init__(self, shape: tuple[int, int, int]):
        super().__init__()
        self.w = nn.Parameter(torch.ones(shape))

    def forward(self, cells: torch.Tensor, energy: torch.Tensor) -> torch.Tensor:
        """Hit energies (B, H) in MeV times the weight of their cell (the pad index gets 1)."""
        w = torch.cat([self.w.reshape(-1), self.w.new_ones(1)])
        return energy * w[cells]


class MLPCritic(nn.Module):
    """log1p of the cells (and of the layer sums) -> ``hidden`` -> 1, plus a linear path; ``hidden=()``: linear.

    Only cells that see a hit in either run get a row of the first layer: the others are
    zero in every event and carry no information. The linear path (one more column of the
    first layer, added to the output) carries the per-cell signal; without it the MLP's
    shared hidden units mix cells and the rarely hit ones drift. ``hidden=()`` keeps only
    the linear path (the ``linear`` critic).
    """

    def __init__(self, shape: tuple[int, int, int], active: np.ndarray, hidden: tuple[int, ...] = (256, 64),
                 layer_sums: bool = True):
        super().__init__()
        self.skip = bool(hidden)  # one extra column of the first layer: a linear path to the output
        n_cells, n_active = int(np.prod(shape)), int(active.sum())
        self.n_layers, self.per_layer = shape[0], shape[1] * shape[2]
        row = np.full(n_cells + 1, n_active, np.int64)  # pad (and never-hit) cells -> the padding row
        row[np.flatnonzero(active)] = np.arange(n_active)
        self.register_buffer("row", torch.from_numpy(row))
        self.register_buffer("active", torch.from_numpy(np.flatnonzero(active)))
        width = (hidden[0] if hidden else 1) + int(self.skip)
        bound = 1.0 / math.sqrt(max(n_active, 1))  # the init of a Linear(n_active, width)
        self.first = nn.Parameter(torch.empty(n_active + 1, width).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(width).uniform_(-bound, bound))
        self.layers = nn.Linear(self.n_layers, width) if layer_sums else None
        sizes = [*hidden, 1] if hidden else []
        self.head = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True))

    def forward(self, cells: torch.Tensor, energy: torch.Tensor) -> torch.Tensor:
        """Scores (B,) of events given as hits: ``cells`` (B, H) flat indices, ``energy`` (B, H) MeV."""
        h = F.embedding_bag(self.row[cells], self.first, per_sample_weights=torch.log1p(energy), mode="sum",
                            padding_idx=len(self.first) - 1) + self.bias  # (B, width)
        if self.layers is not None:
            layer = torch.div(cells, self.per_layer, rounding_mode="floor")  # pad -> n_layers
            sums = energy.new_zeros(len(cells), self.n_layers + 1).scatter_add(1, layer, energy)
            h = h + self.layers(torch.log1p(sums[:, : self.n_layers]))
        return self._head(h)

    def dense(self, x: torch.Tensor) -> torch.Tensor:
        """Scores (B,) of dense events ``x`` (B, n_cells) in MeV (for the gradient penalty)."""
        h = torch.log1p(x[:, self.active]) @ self.first[:-1] + self.bias
        if self.layers is not None:
            h = h + self.layers(torch.log1p(x.reshape(len(x), self.n_layers, -1).sum(-1)))
        return self._head(h)

    def _head(self, h: torch.Tensor) -> torch.Tensor:
        if self.skip:
            h, lin = h[:, :-1], h[:, -1]
            for layer in self.head:
                h = layer(F.leaky_relu(h, 0.2))
            return h.squeeze(-1) + lin
        for layer in self.head:
            h = layer(F.leaky_relu(h, 0.2))
        return h.squeeze(-1)


class ConvCritic(nn.Module):
    """The papers' critic: 3x3 convolutions over (nx, ny), layers as channels (64-128-128-64), linear head."""

    def __init__(self, shape: tuple[int, int, int], filters: tuple[int, ...] = (64, 128, 128, 64)):
        super().__init__()
        self.shape = shape
        chans = [shape[0], *filters]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1) for a, b in zip(chans[:-1], chans[1:], strict=True))
        self.out = nn.Linear(filters[-1] * shape[1] * shape[2], 1)

    def forward(self, cells: torch.Tensor, energy: torch.Tensor) -> torch.Tensor:
        return self.dense(densify(cells, energy, int(np.prod(self.shape))))

    def dense(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.log1p(x.reshape(len(x), *self.shape))  # (B, layers, nx, ny)
        for conv in self.convs:
            h = F.leaky_relu(conv(h), 0.2)
        return self.out(h.flatten(1)).squeeze(-1)


Pair = tuple[torch.Tensor, torch.Tensor]  # (cells, energy) of the hits, as densify takes them


def gradient_penalty(critic: nn.Module, real: Pair, fake: Pair, n_cells: int) -> torch.Tensor:
    """Mean ``(|grad_x D(x_hat)| - 1)^2`` on random interpolates of dense real and fake events (MeV)."""
    real_d, fake_d = densify(*real, n_cells), densify(*fake, n_cells)
    alpha = torch.rand(len(real_d), 1, device=real_d.device)
    x = (alpha * real_d + (1 - alpha) * fake_d).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic.dense(x).sum(), x, create_graph=True)
    return ((grad.norm(dim=1) - 1) ** 2).mean()


def build_critic(cfg: WGANConfig, shape: tuple[int, int, int], active: np.ndarray) -> nn.Module:
    if cfg.critic == "conv":
        return ConvCritic(shape, tuple(cfg.filters))
    if cfg.critic == "linear":
        return MLPCritic(shape, active, hidden=(), layer_sums=False)
    return MLPCritic(shape, active, tuple(cfg.hidden), cfg.layer_sums)


def calibrate_wgan(reference: Showers, damaged: Showers, *, truth: np.ndarray | None = None, progress: bool = False,
                   **options) -> CalibrationResult:
    """Per-cell coefficients as the weights of a WGAN generator that turns reference into damaged events.

    Parameters
    ----------
    reference, damaged
        Unpaired runs of the same kind of events (healthy and damaged detector), MeV.
    truth
        Optional true coefficients (layers, nx, ny): the MAE over reference hit cells is then
        recorded before training and after every epoch (``diagnostics["mae"]``).
    progress
        Print one line per epoch.
    **options
        Fields of :class:`WGANConfig`: ``critic`` ("conv", "mlp", "linear"), ``epochs``,
        ``batch_size``, ``n_critic``, ``lr`` (critic), ``generator_lr``, ``clip``,
        ``gradient_penalty`` (lambda; None: weight clipping), ``hidden`` and ``layer_sums``
        (mlp), ``filters`` (conv), ``w_max`` (w is kept in [0, w_max]), ``seed``, ``device``.

    Returns
    -------
    CalibrationResult
        Coefficients (layers, nx, ny) = the trained ``w`` on reference hit cells (the others
        are not calibrated); uncertainty NaN. Diagnostics: critic, its parameter count, loss
        ("gp" or "clip"), the configuration, and per epoch the wall time (s), critic loss,
        Wasserstein estimate ``D(real) - D(fake)``, generator step and (with ``truth``) MAE.

    The same seed gives the same result on the same machine (CPU). Torch's global random
    state is restored afterwards; the number of threads is left to the caller.
    """
    unknown = sorted(set(options) - set(WGANConfig.__dataclass_fields__))
    if unknown:
        raise CalolabError(f"unknown wgan option {unknown[0]!r}: expected one of "
                           f"{', '.join(WGANConfig.__dataclass_fields__)}, truth, progress")
    cfg = WGANConfig(**options)
    check_pair(reference, damaged)
    shape, seen = reference.detector.shape, hit_cells(reference)
    if truth is not None:
        truth = np.asarray(truth, np.float64)
        if truth.shape != shape:
            raise CalolabError(f"truth coefficients of shape {truth.shape} do not fit {reference.detector.name} "
                               f"{shape}")
    dev = torch.device(cfg.device)
    forked = [dev.index or 0] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=forked):
        torch.manual_seed(cfg.seed)
        order = torch.Generator().manual_seed(cfg.seed)
        gen, critic, history = _train(cfg, reference, damaged, seen, truth, order, progress)
    w = gen.w.detach().cpu().numpy().astype(np.float64)
    diagnostics = {"critic": cfg.critic, "critic_parameters": int(sum(p.numel() for p in critic.parameters())),
                   "loss": "clip" if cfg.gradient_penalty is None else "gp", "critic_lr": cfg.critic_lr,
                   "generator": "per-cell weights, SGD normalised by the RMS gradient, cosine decay",
                   "uncertainty": "not estimated (NaN)", "events": [len(reference), len(damaged)],
                   "config": asdict(cfg), "seconds": float(sum(history["epoch_time_s"])), **history}
    return CalibrationResult(w, np.full(shape, np.nan), seen, "wgan", diagnostics)


def _train(cfg: WGANConfig, reference: Showers, damaged: Showers, seen: np.ndarray, truth: np.ndarray | None,
           order: torch.Generator, progress: bool) -> tuple[Generator, nn.Module, dict]:
    shape, n_cells = reference.detector.shape, reference.detector.n_cells
    dev = torch.device(cfg.device)
    active = (seen | hit_cells(damaged)).ravel()
    ref_cells, ref_e = (t.to(dev) for t in padded_hits(reference))
    dam_cells, dam_e = (t.to(dev) for t in padded_hits(damaged))
    gen = Generator(shape).to(dev)
    critic = build_critic(cfg, shape, active).to(dev)
    gp = cfg.gradient_penalty is not None
    opt_c = (torch.optim.Adam(critic.parameters(), lr=cfg.critic_lr, betas=(0.5, 0.9)) if gp
             else torch.optim.RMSprop(critic.parameters(), lr=cfg.critic_lr))
    opt_g = torch.optim.SGD(gen.parameters(), lr=cfg.gen_lr)
    n_ref, n_dam, bs = len(reference), len(damaged), cfg.batch_size
    steps = math.ceil(max(n_ref, n_dam) / bs)
    truth_seen = None if truth is None else truth[seen]
    history: dict[str, list[float]] = {"epoch_time_s": [], "critic_loss": [], "wasserstein": [], "generator_lr": []}
    if truth_seen is not None:
        history["mae"] = [float(np.mean(np.abs(1.0 - truth_seen)))]
    mean_square, n_gen = 0.0, 0
    for epoch in range(cfg.epochs):
        start = time.perf_counter()
        lr = cfg.gen_lr * 0.5 * (1 + math.cos(math.pi * epoch / cfg.epochs))
        for group in opt_g.param_groups:
            group["lr"] = lr
        perm_r = torch.randperm(n_ref, generator=order).to(dev)
        perm_d = torch.randperm(n_dam, generator=order).to(dev)
        losses, dists, cycle = [], [], []
        for step in range(steps):
            batch = torch.arange(step * bs, (step + 1) * bs, device=dev)
            r, d = perm_r[batch % n_ref], perm_d[batch % n_dam]  # the smaller run wraps around
            cycle.append(r)
            real = (dam_cells[d], dam_e[d])
            with torch.no_grad():
                fake = (ref_cells[r], gen(ref_cells[r], ref_e[r]))
            dist = critic(*real).mean() - critic(*fake).mean()
            loss = -dist
            if gp:
                loss = loss + cfg.gradient_penalty * gradient_penalty(critic, real, fake, n_cells)
            opt_c.zero_grad(set_to_none=True)
            loss.backward()
            opt_c.step()
            if not gp:
                with torch.no_grad():
                    for p in critic.parameters():
                        p.clamp_(-cfg.clip, cfg.clip)
            losses.append(loss.item())
            dists.append(dist.item())
            if len(cycle) == cfg.n_critic or step == steps - 1:
                g = torch.cat(cycle)  # the reference events the critic just saw
                cycle = []
                g_loss = -critic(ref_cells[g], gen(ref_cells[g], ref_e[g])).mean()
                opt_g.zero_grad(set_to_none=True)
                g_loss.backward()
                grad = gen.w.grad
                with torch.no_grad():
                    grad[((gen.w <= 0) & (grad > 0)) | ((gen.w >= cfg.w_max) & (grad < 0))] = 0  # pinned cells
                    n_gen += 1
                    mean_square += (float(grad.pow(2).mean()) - mean_square) / n_gen
                    if mean_square > 0:
                        grad /= math.sqrt(mean_square)
                opt_g.step()
                with torch.no_grad():
                    gen.w.clamp_(0.0, cfg.w_max)
        history["epoch_time_s"].append(time.perf_counter() - start)
        history["critic_loss"].append(float(np.mean(losses)))
        history["wasserstein"].append(float(np.mean(dists)))
        history["generator_lr"].append(lr)
        if truth_seen is not None:
            w = gen.w.detach().cpu().numpy()[seen]
            history["mae"].append(float(np.mean(np.abs(w - truth_seen))))
        if progress:
            mae = f", MAE {history['mae'][-1]:.4f}" if truth_seen is not None else ""
            print(f"wgan epoch {epoch + 1}/{cfg.epochs}: {history['epoch_time_s'][-1]:.2f} s, "
                  f"W {history['wasserstein'][-1]:.4g}{mae}", flush=True)
    return gen, critic, history
