"""The layer-by-layer autoregressive shower model (calolab's own design).

An event is drawn in three steps, each given the condition (``ln E`` and the 15 absorber
thicknesses in X0):

1. the total visible energy ``E_tot``: a Gaussian mixture in ``ln(E_tot / E)``; then the
   shower's longitudinal centre of gravity ``t`` (X0, the energy-weighted depth of the silicon
   layers), a Gaussian mixture given ``E_tot`` (``depth_latents=1``, the default; with 2 also
   its rms spread ``s`` in X0, a Gaussian mixture in ``ln(0.2 + s)`` given both);
2. layer by layer, the share of what is left that each layer takes (stick breaking): a layer
   is *empty*, takes *all* that remains (the layers after it stay empty), or a fraction ``f``
   whose logit is a Gaussian mixture; the layer drawn last takes the rest. Then its number of
   hit cells ``n >= 1``: a discretised logistic mixture in ``ln n``. A layer sees the depth of
   its absorber's faces in X0, its thickness, the total depth, its one-hot index (its
   silicon), the energy still to share and the energies and hits of the layers drawn before it;
3. given the layer's energy and ``n``: a weight for each ring of cells around the shower axis
   and, for each ring, a Gaussian mixture in ``ln(e / MIP)`` of its hit energies
   (:mod:`~calolab.generative.placement`); ``n`` cells are drawn without replacement, each
   gets an energy from its ring's mixture, and the energies are rescaled to add up to the
   layer's energy. Ring-dependent energies keep the dense core even (a stable centre of
   gravity) and the halo at the single-particle (Landau) scale.

Drawing the total first makes the energy sum's distribution a one-dimensional fit and the
anticorrelation of early and late layers exact (what one layer takes, the others lack).
Drawing the depth next gives every layer the event's dominant fluctuation, the shift of the
whole profile with the depth of the first interactions: without it the layers, each fitted
given only the layers before it, learn too weak an anticorrelation of the front and the tail.
``t`` and ``s`` are those of the event in training (teacher forcing). The spread is not drawn
by default: the mean energy of the far tail layers is a steep function of it, whereas given
``t`` the layers themselves fix the spread.

The order of the draws (``rest_layer``): front to back up to ``rest_layer``, then back to
front, so that the rest, and with it the small errors of every share, lands in a big layer
near the shower maximum instead of in the last, nearly empty one.

All terms are fitted by maximum likelihood (teacher forcing), exactly except that the hit
energies within a layer are treated as independent given their rings. Continuous draws are
reparameterised, so the layer energies are differentiable in the thicknesses (through
``E_tot``, ``t`` and ``f``; the cells and the split of a layer's energy among them are drawn
in numpy, without gradients). Hits are sparse by construction: no cell holds a small
spurious energy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from calolab.errors import CalolabError
from calolab.generative.mixtures import (
    discrete_logistic_log_prob,
    discrete_logistic_sample,
    draw_component,
    gaussian_mixture_log_prob,
    gaussian_mixture_sample,
)
from calolab.generative.placement import Rings, draw_lateral, hit_positions, plackett_luce_log_prob
from calolab.geometry import Detector

N_SCALARS = 13  # per-layer scalar features, see LayerwiseModel.features
TOTAL_OFFSET = 4.7  # ln(E_tot / E) + TOTAL_OFFSET is of order 0 (sampling fraction ~ 1%)
EMPTY, PART, ALL = 0, 1, 2
MIN_HIT_MIP = 0.3  # a layer given less than this (in MIPs) stays empty
TOTAL_BLOCKS = 5  # the total-energy network sees the absorber depth of this many blocks of layers
COG_SCALE = 5.0  # X0: the depth latent is drawn as t / COG_SCALE
SAMPLE_BATCH = 8192  # events drawn at once by calolab.generative.generate (fewer per-layer passes)
SPREAD_OFFSET = 0.2  # X0: the spread latent is drawn as ln(SPREAD_OFFSET + s), smooth at s = 0 (one layer)


@dataclass(frozen=True)
class LayerwiseConfig:
    """Size and optimiser of the layer-by-layer model."""

    hidden: int = 128  # the longitudinal trunk (and the total-energy network)
    head_hidden: int = 64  # the hit-count and lateral heads
    components: int = 6  # total energy, layer fraction and hit count mixtures
    rest_layer: int | None = None  # the layer drawn last, taking the rest (None: 30% deep, layer 4 of 15)
    hit_components: int = 2  # hit energy mixture of each ring
    depth_latents: int = 1  # drawn after the total: 0 none, 1 the centre of gravity, 2 and the spread
    lr: float = 2e-3
    batch_size: int = 256

    def __post_init__(self) -> None:
        if min(self.hidden, self.head_hidden, self.components, self.hit_components, self.batch_size) < 1 or \
                not self.lr > 0 or self.depth_latents not in (0, 1, 2):
            raise CalolabError(f"layerwise config: sizes must be >= 1, lr > 0 and depth_latents 0, 1 or 2, "
                               f"got {self}")


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(a, b), nn.SiLU()]
    return nn.Sequential(*layers[:-1])


@dataclass
class LayerSample:
    """Drawn events: ``energy`` (B, L) MeV (differentiable), ``hits`` (B, L), and per layer ``l`` the
    events with hits ``rows[l]`` (S_l,), their in-layer cell indices ``cells[l]`` (S_l, W_l) in
    increasing order (-1 beyond the layer's hits) and ``cell_energy[l]`` (S_l, W_l) MeV (0 beyond)."""

    energy: torch.Tensor
    hits: torch.Tensor
    rows: list[np.ndarray]
    cells: list[np.ndarray]
    cell_energy: list[torch.Tensor]


class LayerwiseModel(nn.Module):
    """Autoregressive model of (energy, hits, hit cells, hit energies) layer by layer.

    Parameters
    ----------
    config
        Network sizes.
    detector
        The base detector: its cell grid, and its MIP scale per layer (the silicon is not varied).
    """

    def __init__(self, config: LayerwiseConfig, detector: Detector):
        super().__init__()
        self.config = config
        self.n_layers, nx, ny = detector.shape
        self.cells_per_layer = nx * ny
        self.rings = Rings.of(detector)
        self.register_buffer("mip", torch.tensor(detector.mip_mpv, dtype=torch.float32))
        # order of the draws: layers 0 .. rest - 1 front to back, then the others back to front,
        # so that the rest, and with it every accumulated error, lands in a big layer
        rest = int(0.3 * self.n_layers) if config.rest_layer is None else config.rest_layer
        if not 0 <= rest < self.n_layers:
            raise CalolabError(f"layerwise rest_layer must be in [0, {self.n_layers}), got {rest}")
        self.order = [*range(rest), *range(self.n_layers - 1, rest - 1, -1)]
        position = torch.empty(self.n_layers, dtype=torch.long)
        position[torch.tensor(self.order)] = torch.arange(self.n_layers)
        self.register_buffer("past", (position[None, :] < position[:, None]).float())  # past[l, k]: k before l
        # priors by the number of layers still to draw: an even split of what is left, mostly a share
        to_draw = (self.n_layers - position).float()
        self.register_buffer("prior_logit", -torch.log((to_draw - 1).clamp(min=1.0)))
        self.register_buffer("prior_state", torch.stack([torch.zeros_like(to_draw), torch.ones_like(to_draw),
                                                         -2 * torch.log(to_draw)], -1))
        h, k, kh, r, n_layers = config.hidden, config.components, config.hit_components, self.rings.n_rings, \
            self.n_layers
        n_in = N_SCALARS + 3 * n_layers
        self.total_net = _mlp([2 + TOTAL_BLOCKS, h, h, 3 * k])
        self.cog_net = _mlp([3 + TOTAL_BLOCKS, h, h, 3 * k])  # given the total energy
        self.spread_net = _mlp([4 + TOTAL_BLOCKS, h, h, 3 * k])  # given the total and the centre of gravity
        self.trunk = nn.Sequential(_mlp([n_in, h, h, h]), nn.SiLU())
        self.share_head = nn.Linear(h, 3 + 3 * k)  # empty / part / all logits, logit-fraction mixture
        self.hits_head = _mlp([h + 1, config.head_hidden, 3 * k])
        # lateral: on the trunk's features, detached so that the many hits do not steer the trunk
        self.place_head = _mlp([h + 2, config.head_hidden, r * (1 + 3 * kh)])  # per ring: level, hit-energy mixture

    # ------------------------------------------------------------------ features
    def total_features(self, cond: torch.Tensor) -> torch.Tensor:
        """``ln E``, the total depth and the depth of ``TOTAL_BLOCKS`` consecutive blocks of layers (B, 7).

        Block sums rather than the 15 thicknesses: with a few hundred layouts in the training set
        the network would otherwise learn each layout's sample of events.
        """
        thick = cond[:, 1:]
        blocks = torch.stack([part.sum(1) for part in torch.tensor_split(thick, TOTAL_BLOCKS, dim=1)], 1)
        return torch.cat([cond[:, :1] / 4.6, thick.sum(1, keepdim=True) / 20, blocks / (20 / TOTAL_BLOCKS)], 1)

    def depth_moments(self, cond: torch.Tensor, energy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Energy-weighted mean and rms depth (B,) in X0 of the silicon layers, from layer energies (B, L) MeV."""
        depth = torch.cumsum(cond[:, 1:].double(), 1)
        e = energy.double()
        total = e.sum(1).clamp_min(1e-30)
        cog = (e * depth).sum(1) / total
        var = (e * (depth - cog.unsqueeze(1)) ** 2).sum(1) / total
        return cog.float(), var.clamp_min(0.0).sqrt().float()

    def _latent_inputs(self, cond: torch.Tensor, y_total: torch.Tensor, *latents: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.total_features(cond), y_total.unsqueeze(1), *(y.unsqueeze(1) for y in latents)], 1)

    def draw_latents(self, cond: torch.Tensor, y_total: torch.Tensor,
                     generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Centre of gravity and spread (B,) in X0 given the total (zeros where ``depth_latents`` leaves them out)."""
        zero = torch.zeros_like(y_total)
        if self.config.depth_latents == 0:
            return zero, zero
        y_cog = gaussian_mixture_sample(self.cog_net(self._latent_inputs(cond, y_total)), generator)
        if self.config.depth_latents == 1:
            return y_cog * COG_SCALE, zero
        y_spread = gaussian_mixture_sample(self.spread_net(self._latent_inputs(cond, y_total, y_cog)), generator)
        return y_cog * COG_SCALE, (torch.exp(y_spread) - SPREAD_OFFSET).clamp_min(0.0)

    def features(self, cond: torch.Tensor, total: torch.Tensor, energy: torch.Tensor, hits: torch.Tensor,
                 cog: torch.Tensor, spread: torch.Tensor, layers: slice = slice(None)) -> torch.Tensor:
        """Inputs (B, l, F) of the ``layers`` from conditions (B, 1 + L), total energy (B,), layer
        energies (MeV) and hits (B, L), and the depth latents (B,) in X0; a layer sees the energies
        and hits only of the layers drawn before it."""
        n_layers = self.n_layers
        past = self.past[layers]  # past[l, k]: layer k is drawn before layer l
        b, n_rows = len(cond), len(past)
        log_e, thick = cond[:, :1], cond[:, 1:]
        depth = torch.cumsum(thick, 1)
        ye = torch.log1p(energy / self.mip) / 6
        yn = torch.log1p(hits.to(ye.dtype)) / 5
        left = (total.unsqueeze(1) - energy @ past.T).clamp_min(0.0)  # (B, l) MeV not yet deposited
        y_total = torch.log(total.clamp_min(1e-3) / 1e3).unsqueeze(1) - log_e + TOTAL_OFFSET
        mip = self.mip[layers]
        scalars = torch.stack([log_e.expand(b, n_rows) / 4.6, (depth - thick)[:, layers] / 20, depth[:, layers] / 20,
                               thick[:, layers] / 1.5, depth[:, -1:].expand(b, n_rows) / 20,
                               y_total.expand(b, n_rows), torch.log1p(left / mip) / 6,
                               left / total.clamp_min(1e-3).unsqueeze(1), torch.log1p((energy / self.mip) @ past.T) / 8,
                               torch.log1p(hits.to(ye.dtype) @ past.T) / 8,
                               *self._depth_scalars(depth[:, layers], cog, spread)], -1)  # (B, l, N_SCALARS)
        onehot = torch.eye(n_layers, device=cond.device)[layers]
        return torch.cat([scalars, onehot.expand(b, n_rows, n_layers), ye.unsqueeze(1) * past,
                          yn.unsqueeze(1) * past], -1)

    def _depth_scalars(self, depth: torch.Tensor, cog: torch.Tensor, spread: torch.Tensor) -> list[torch.Tensor]:
        """The depth latents as seen by layers at ``depth`` (B, l) X0: 3 features (B, l)."""
        on = float(self.config.depth_latents > 0)
        rel = (depth - cog.unsqueeze(1)) * on
        return [(cog / 20).unsqueeze(1).expand_as(depth) * on, rel / 5,
                rel / (SPREAD_OFFSET + spread.unsqueeze(1)) / 3 * float(self.config.depth_latents > 1)]

    def _share_params(self, head: torch.Tensor, layers: slice) -> torch.Tensor:
        """Mixture parameters (..., 3 K) of the logit share, centred on the even-split prior of ``layers``."""
        k = self.config.components
        logits, mean, log_sd = head[..., 3:3 + k], head[..., 3 + k:3 + 2 * k], head[..., 3 + 2 * k:]
        prior = self.prior_logit[layers]
        return torch.cat([logits, mean + (prior.unsqueeze(-1) if prior.ndim else prior), log_sd], -1)

    def _hits_params(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.hits_head(torch.cat([h, (y / 7).unsqueeze(-1)], -1))

    def _place(self, h: torch.Tensor, y: torch.Tensor, log_n: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Ring levels (..., R) and the hit-energy mixture of every ring (..., R, 3 K) in ln(e / MIP)."""
        out = self.place_head(torch.cat([h.detach(), (y / 7).unsqueeze(-1), (log_n / 5).unsqueeze(-1)], -1))
        r = self.rings.n_rings
        return out[..., :r], out[..., r:].unflatten(-1, (r, -1))

    # ------------------------------------------------------------------ likelihood
    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Negative log likelihood per event of a batch (see :func:`~calolab.generative.table.make_batch`)."""
        cond, energy, hits = batch["cond"], batch["energy"], batch["hits"]
        b, n_layers = len(cond), self.n_layers
        energy64 = energy.double()
        later_mask = self.past.T.double()  # later_mask[l, k]: layer k is drawn after layer l
        later_energy = energy64 @ later_mask.T  # (B, L)
        total = energy64.sum(1).float()
        y_total = torch.log(total / 1e3) - cond[:, 0] + TOTAL_OFFSET
        nll_total = -gaussian_mixture_log_prob(self.total_net(self.total_features(cond)), y_total).sum()
        cog, spread = self.depth_moments(cond, energy)
        y_cog, y_spread = cog / COG_SCALE, torch.log(SPREAD_OFFSET + spread)
        nll_depth = cond.new_zeros(())
        if self.config.depth_latents > 0:
            nll_depth = -gaussian_mixture_log_prob(self.cog_net(self._latent_inputs(cond, y_total)), y_cog).sum()
        if self.config.depth_latents > 1:
            nll_depth = nll_depth - gaussian_mixture_log_prob(
                self.spread_net(self._latent_inputs(cond, y_total, y_cog)), y_spread).sum()
        x = self.features(cond, total, energy, hits, cog, spread)  # (B, L, F)
        h = self.trunk(x)  # (B, L, H)
        head = self.share_head(h)
        later = hits.double() @ later_mask.T  # hits in the layers drawn after layer l
        live = hits > 0
        state = torch.where(~live, EMPTY, torch.where(later == 0, ALL, PART))
        choose = (live | (later > 0))  # something left to share
        choose[:, self.order[-1]] = False  # the last one drawn takes the rest
        nll_state = (F.cross_entropy((head[..., :3] + self.prior_state).reshape(-1, 3), state.reshape(-1),
                                     reduction="none")
                     * choose.reshape(-1)).sum()
        part = choose & (state == PART)
        logit_f = (torch.log(energy64.clamp_min(1e-30)) - torch.log(later_energy.clamp_min(1e-30))).float()
        share_par = self._share_params(head, slice(None))
        nll_share = -(gaussian_mixture_log_prob(share_par, torch.where(part, logit_f, 0.0)) * part).sum()
        y = torch.log(torch.where(live, energy, self.mip) / self.mip)
        nll_hits = -(discrete_logistic_log_prob(self._hits_params(h, y), hits.clamp_min(1)) * live).sum()
        theta, hit_par = self._place(h, y, torch.log(hits.clamp_min(1).to(y.dtype)))
        group = batch["hit_group"]
        nll_cells = -plackett_luce_log_prob(self.rings, theta.reshape(b * n_layers, -1), group,
                                            batch["hit_cell"]).sum()
        ring = torch.as_tensor(self.rings.ring, device=cond.device)[batch["hit_cell"]]
        nll_hit_energy = -gaussian_mixture_log_prob(hit_par.reshape(b * n_layers, *hit_par.shape[2:])[group, ring],
                                                    batch["hit_log_mip"]).sum()
        terms = {"total": nll_total, "depth": nll_depth, "state": nll_state, "share": nll_share, "hits": nll_hits,
                 "cells": nll_cells, "hit_energy": nll_hit_energy}
        return {k: v / b for k, v in terms.items()}

    # ------------------------------------------------------------------ sampling
    def sample(self, cond: torch.Tensor, generator: torch.Generator) -> LayerSample:
        """Draw one event per condition (B, 1 + L); the layer energies stay differentiable in ``cond``.

        A layer's networks run only for the events with energy left to share, and its hit-count
        and lateral heads only for those it gives energy (most late layers at low energy get
        none). Cells and hit energies are drawn in numpy, from a generator seeded by ``generator``.
        """
        b, n_layers = len(cond), self.n_layers
        y_total = gaussian_mixture_sample(self.total_net(self.total_features(cond)), generator)
        total = torch.exp(y_total - TOTAL_OFFSET + cond[:, 0]) * 1e3
        cog, spread = self.draw_latents(cond, y_total, generator)
        rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=generator)))
        left = total
        energy = [cond.new_zeros(b) for _ in range(n_layers)]
        hits = [torch.zeros(b, dtype=torch.long, device=cond.device) for _ in range(n_layers)]
        none = np.zeros(0, np.int64)
        rows_out, cells, cell_energy = [none] * n_layers, [none.reshape(0, 0)] * n_layers, \
            [cond.new_zeros(0, 0)] * n_layers
        for layer in self.order:
            rows = torch.nonzero(left > 0).squeeze(1)  # events with energy still to share
            if len(rows) == 0:
                continue
            e_rows, n_rows, left_rows, lateral = self._sample_layer(
                layer, cond[rows], total[rows], torch.stack(energy, 1)[rows], torch.stack(hits, 1)[rows],
                cog[rows], spread[rows], left[rows], generator, rng)
            left = left.index_copy(0, rows, left_rows)
            energy[layer] = energy[layer].index_copy(0, rows, e_rows)
            hits[layer] = hits[layer].index_copy(0, rows, n_rows)
            if lateral is not None:
                sel, cells[layer], cell_energy[layer] = lateral
                rows_out[layer] = rows[sel].cpu().numpy()
        return LayerSample(torch.stack(energy, 1), torch.stack(hits, 1), rows_out, cells, cell_energy)

    def _sample_layer(self, layer: int, cond: torch.Tensor, total: torch.Tensor, energy: torch.Tensor,
                      hits: torch.Tensor, cog: torch.Tensor, spread: torch.Tensor, left: torch.Tensor,
                      generator: torch.Generator, rng: np.random.Generator) -> tuple:
        """Energy, hits and what is left after ``layer`` for events with energy left (R,), and the hit
        cells and energies ``(rows with hits (S,), cells (S, W), MeV (S, W))`` (``None`` without hits)."""
        r = len(cond)
        x = self.features(cond, total, energy, hits, cog, spread, slice(layer, layer + 1))[:, 0]
        h = self.trunk(x)
        head = self.share_head(h)
        if layer != self.order[-1]:
            state = draw_component(head[:, :3] + self.prior_state[layer], generator).squeeze(-1)
            f = torch.sigmoid(gaussian_mixture_sample(self._share_params(head, layer), generator))
        else:
            state, f = torch.full((r,), ALL, device=cond.device), torch.ones_like(total)
        take = torch.where(state == PART, f * left, torch.where(state == ALL, left, torch.zeros_like(left)))
        live = take >= MIN_HIT_MIP * self.mip[layer]
        left = torch.where(live & (state == PART), left * (1 - f), torch.where(live, torch.zeros_like(left), left))
        e_layer = torch.where(live, take, torch.zeros_like(take))
        sel = torch.nonzero(live).squeeze(1)  # the hit-count and lateral heads only where the layer has energy
        n = torch.zeros(r, dtype=torch.long, device=cond.device)
        if len(sel) == 0:
            return e_layer, n, left, None
        h, y = h[sel], torch.log(e_layer[sel] / self.mip[layer])
        n_sel = discrete_logistic_sample(self._hits_params(h, y), generator, self.cells_per_layer)  # >= 1
        n = n.index_copy(0, sel, n_sel)
        theta, hit_par = self._place(h, y, torch.log(n_sel.to(y.dtype)))
        drawn, share = draw_lateral(self.rings, theta.detach().cpu().double().numpy(),
                                    hit_par.detach().cpu().numpy(), n_sel.cpu().numpy(), rng)
        cell_e = torch.from_numpy(share).to(cond.device) * e_layer[sel].unsqueeze(1)
        return e_layer, n, left, (sel, drawn, cell_e)


@torch.inference_mode()
def sample_hits(model: LayerwiseModel, cond: torch.Tensor, generator: torch.Generator) -> tuple[np.ndarray, ...]:
    """Sparse hits of one event per condition (B, 1 + L): event (H,), flat cell (H,), energy (H,) MeV,
    in the order of the event and then of the cell (each event-layer's hits written to their place)."""
    drawn = model.sample(cond, generator)
    hits = drawn.hits.cpu().numpy()
    start = (np.cumsum(hits.ravel()) - hits.ravel()).reshape(hits.shape)  # first hit of every event-layer
    event = np.repeat(np.arange(len(hits)), hits.sum(1))
    cells = np.empty(len(event), np.int64)
    energies = np.empty(len(event), np.float32)
    for layer, (rows, cell, energy) in enumerate(zip(drawn.rows, drawn.cells, drawn.cell_energy, strict=True)):
        if len(rows):
            row, flat = hit_positions(hits[rows, layer], cell.shape[1])
            where = start[rows[row], layer] + flat - row * cell.shape[1]
            cells[where] = layer * model.cells_per_layer + np.take(cell, flat)
            energies[where] = np.take(energy.cpu().numpy(), flat)
    return event, cells, energies


# ---------------------------------------------------------------------- training
def build_optimizers(model: LayerwiseModel) -> dict[str, torch.optim.Optimizer]:
    return {"model": torch.optim.Adam(model.parameters(), lr=model.config.lr)}


def train_epoch(model: LayerwiseModel, optimizers: dict, table, generator: torch.Generator,
                lr: float) -> dict[str, float]:
    """One pass over a :class:`~calolab.generative.table.LayerTable` in a seeded order; mean NLL terms per event."""
    from calolab.generative.table import make_batch

    model.train()
    opt = optimizers["model"]
    for group in opt.param_groups:
        group["lr"] = lr
    order = torch.randperm(len(table), generator=generator).numpy()
    bs = model.config.batch_size
    sums: dict[str, float] = {}
    for start in range(0, len(order), bs):
        index = order[start:start + bs]
        terms = model.loss(make_batch(table, index))
        opt.zero_grad(set_to_none=True)
        sum(terms.values()).backward()
        nn.utils.clip_grad_norm_(model.parameters(), 100.0)
        opt.step()
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + v.item() * len(index)
    out = {k: v / len(order) for k, v in sums.items()}
    out["nll"] = sum(out.values())
    return out
