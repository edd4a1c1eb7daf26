"""Mixture distributions for the layer-by-layer model: log densities and seeded, reparameterised draws.

Parameters come from a network as one tensor ``(..., 3 K)``: mixture logits, means and log
widths of K components. Draws take an explicit ``torch.Generator``; continuous draws are
reparameterised (``mean + width * noise`` of the chosen component), so a sample is a
differentiable function of the parameters for a fixed random stream.

>>> import torch
>>> params = torch.tensor([[0.0, 0.0, 2.0, 5.0, -1.0, -1.0]])  # two components at 2 and 5
>>> x = gaussian_mixture_sample(params.expand(4000, 6), torch.Generator().manual_seed(1))
>>> round(float(x.mean()), 1)
3.5
>>> bool(torch.allclose(gaussian_mixture_log_prob(params, torch.tensor([2.0])).exp(),
...                     torch.tensor(0.5 / (2.5066 * 0.3679)), rtol=1e-3))
True
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.nn import functional as F

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
MIN_LOG_WIDTH = -7.0
MAX_LOG_WIDTH = 3.0


def split(params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(log weights, means, log widths)`` each ``(..., K)`` from ``(..., 3 K)``."""
    logits, mean, log_width = params.chunk(3, dim=-1)
    return F.log_softmax(logits, -1), mean, log_width.clamp(MIN_LOG_WIDTH, MAX_LOG_WIDTH)


def gaussian_mixture_log_prob(params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Log density of ``x`` (...) under the Gaussian mixture ``params`` (..., 3 K)."""
    log_w, mean, log_sd = split(params)
    z = (x.unsqueeze(-1) - mean) * torch.exp(-log_sd)
    return torch.logsumexp(log_w - 0.5 * z * z - log_sd - LOG_SQRT_2PI, -1)


def draw_component(log_w: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Index (..., 1) of a component drawn with probabilities proportional to ``exp(log_w)`` (..., K)
    (normalised or not: logits do), by inverse CDF."""
    cdf = torch.cumsum(torch.exp(log_w - log_w.max(-1, keepdim=True).values), -1)
    u = torch.rand((*log_w.shape[:-1], 1), generator=generator, device=log_w.device) * cdf[..., -1:]
    return (u > cdf[..., :-1]).sum(-1, keepdim=True)


def gaussian_mixture_sample(params: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One reparameterised draw (...) from each Gaussian mixture ``params`` (..., 3 K)."""
    logits, mean, log_sd = params.chunk(3, dim=-1)
    log_sd = log_sd.clamp(MIN_LOG_WIDTH, MAX_LOG_WIDTH)
    k = draw_component(logits.detach(), generator)
    noise = torch.randn(mean.shape[:-1], generator=generator, device=mean.device)
    return mean.gather(-1, k).squeeze(-1) + torch.exp(log_sd.gather(-1, k).squeeze(-1)) * noise


def gaussian_mixture_sample_np(params: np.ndarray, index: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draws (H,) from the mixtures ``params[index]`` of (M, 3 K), in numpy: many draws from few mixtures.

    The distribution of :func:`gaussian_mixture_sample` (component by inverse CDF, then a
    Gaussian), for draws that need no gradient. Works on one (H,) column per component
    rather than on (H, K) rows: numpy is slow along a short last axis.
    """
    k = params.shape[-1] // 3
    flat = np.ascontiguousarray(params, np.float32).reshape(-1)
    base = index * (3 * k)
    logits = [flat[base + j] for j in range(k)]
    top = np.maximum.reduce(logits) if k > 1 else logits[0]
    weights = [np.exp(x - top) for x in logits]
    u = rng.random(len(index), dtype=np.float32) * sum(weights)
    comp = np.zeros(len(index), np.int64)
    cdf = np.zeros(len(index), np.float32)
    for w in weights[:-1]:
        cdf += w
        comp += u > cdf
    log_sd = np.clip(flat[base + 2 * k + comp], MIN_LOG_WIDTH, MAX_LOG_WIDTH)
    return flat[base + k + comp] + np.exp(log_sd) * rng.standard_normal(len(index), dtype=np.float32)


def discrete_logistic_log_prob(params: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """Log probability of counts ``n >= 1`` (...) under a discretised logistic mixture in ``ln n``.

    ``P(n) = F(ln(n + 1/2)) - F(ln(n - 1/2))`` with ``F`` the mixture CDF; the bin of ``n = 1``
    extends to ``-inf``, so the probabilities of all ``n >= 1`` sum to 1.
    """
    log_w, mean, log_s = split(params)
    n = n.to(mean.dtype).unsqueeze(-1)
    inv_s = torch.exp(-log_s)
    hi = (torch.log(n + 0.5) - mean) * inv_s
    lo = (torch.log((n - 0.5).clamp_min(1e-6)) - mean) * inv_s
    first = n <= 1
    log_cdf_hi = F.logsigmoid(hi)
    # log(sigmoid(hi) - sigmoid(lo)), stable: sigmoid(hi) - sigmoid(lo) = e^hi - e^lo over (1 + e^hi)(1 + e^lo)
    diff = torch.log(-torch.expm1((lo - hi).clamp_max(-1e-6))) + hi - F.softplus(hi) - F.softplus(lo)
    log_p = torch.where(first, log_cdf_hi, diff)
    return torch.logsumexp(log_w + log_p, -1)


def discrete_logistic_sample(params: torch.Tensor, generator: torch.Generator, n_max: int) -> torch.Tensor:
    """Counts in ``[1, n_max]`` (...) drawn from the discretised logistic mixtures ``params`` (..., 3 K)."""
    logits, mean, log_s = params.chunk(3, dim=-1)
    log_s = log_s.clamp(MIN_LOG_WIDTH, MAX_LOG_WIDTH)
    k = draw_component(logits, generator)
    u = torch.rand(mean.shape[:-1], generator=generator, device=mean.device).clamp(1e-7, 1 - 1e-7)
    s = mean.gather(-1, k).squeeze(-1) + torch.exp(log_s.gather(-1, k).squeeze(-1)) * (torch.log(u) - torch.log1p(-u))
    return torch.round(torch.exp(s.clamp(max=math.log(n_max + 1.0)))).clamp(1, n_max).long()
