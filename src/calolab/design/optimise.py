"""Absorber-layout optimisation: Adam on a softmax parameterisation that keeps the total absorber fixed.

The thicknesses are ``d = d_min + (D - L d_min) softmax(logits)``: every layer keeps at
least ``d_min`` mm and the total ``D`` (hence the total absorber depth in X0, all layers
sharing one absorber material) is fixed by construction, at every step. The objective is
the mean over log-spaced energies of the surrogate's (sigma/E)^2, plus an optional cost:
the objective is multiplied by ``1 + tv_weight * TV``, TV the smoothed total variation of
the thicknesses between neighbouring layers in units of the mean thickness, which favours
layouts built from few distinct plate thicknesses.

>>> from calolab.geometry import load_detector
>>> from calolab.design.surrogate import ResolutionSurrogate
>>> model = ResolutionSurrogate(load_detector("siw-ecal"), quadrature=6)
>>> result = optimise_layout(model, OptimiseConfig(steps=20, energies=4))
>>> bool(result.objective[-1] < result.objective[0]), bool(abs(result.thickness.sum() - 8 * 4.2 - 7 * 5.6) < 1e-9)
(True, True)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from calolab.design.surrogate import ResolutionSurrogate, fit_terms
from calolab.errors import CalolabError


@dataclass(frozen=True)
class OptimiseConfig:
    """Settings of :func:`optimise_layout`; written to the run folder's ``config.yaml``.

    Parameters
    ----------
    energy_min_gev, energy_max_gev, energies
        The objective averages (sigma/E)^2 over ``energies`` log-spaced points in this range (GeV).
    min_thickness
        Smallest absorber thickness of a layer in mm.
    steps, learning_rate
        Adam iterations and step size on the logits.
    start
        ``"template"`` (the detector's own layout) or ``"uniform"``.
    init_noise
        Standard deviation of a seeded Gaussian jitter added to the starting logits.
    tv_weight
        Weight of the smoothed total-variation cost (0 = resolution only).
    """

    energy_min_gev: float = 1.0
    energy_max_gev: float = 100.0
    energies: int = 8
    min_thickness: float = 0.5
    steps: int = 300
    learning_rate: float = 0.05
    start: str = "template"
    init_noise: float = 0.0
    tv_weight: float = 0.0
    seed: int = 1

    def energy_grid(self) -> np.ndarray:
        """The objective's energies in GeV, (energies,)."""
        return np.geomspace(self.energy_min_gev, self.energy_max_gev, self.energies)


@dataclass
class OptimiseResult:
    """Trajectory and optimum of one optimisation; thicknesses in mm, (layers,) per step."""

    thickness: np.ndarray
    objective: np.ndarray  # (steps + 1,), including the cost term
    resolution_objective: np.ndarray  # (steps + 1,), mean (sigma/E)^2 only
    trajectory: np.ndarray  # (steps + 1, layers)
    total_mm: float
    energies_gev: np.ndarray
    resolution: np.ndarray  # sigma/E of the optimum at energies_gev
    terms: tuple[float, float]  # (a, c) of the optimum
    config: OptimiseConfig = field(default_factory=OptimiseConfig)

    def to_dict(self) -> dict:
        return {"thickness_mm": self.thickness, "objective": self.objective,
                "resolution_objective": self.resolution_objective, "total_mm": self.total_mm,
                "energies_gev": self.energies_gev, "resolution": self.resolution,
                "stochastic_term": self.terms[0], "constant_term": self.terms[1]}


def thickness_from_logits(logits: torch.Tensor, total: float, min_thickness: float) -> torch.Tensor:
    """Thicknesses (mm, (layers,)) summing to ``total`` exactly, each at least ``min_thickness``."""
    free = total - len(logits) * min_thickness
    return min_thickness + free * torch.softmax(logits, dim=0)


def logits_from_thickness(thickness: np.ndarray, min_thickness: float) -> np.ndarray:
    """Inverse of :func:`thickness_from_logits` (up to a constant), for layers thicker than the minimum."""
    excess = np.asarray(thickness, float) - min_thickness
    if np.any(excess <= 0):
        raise CalolabError(f"start layout: every absorber must be thicker than min_thickness = {min_thickness} mm")
    return np.log(excess / excess.sum())


def objective(model: ResolutionSurrogate, thickness: torch.Tensor, energies_gev: torch.Tensor,
              tv_weight: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(objective, mean (sigma/E)^2): the optimiser's loss and its resolution part (scalars)."""
    res2 = torch.mean(model.resolution(thickness, energies_gev) ** 2)
    if not tv_weight:
        return res2, res2
    steps = torch.diff(thickness) / thickness.mean()
    return res2 * (1.0 + tv_weight * torch.sum(torch.sqrt(steps**2 + 1e-4))), res2


def optimise_layout(model: ResolutionSurrogate, config: OptimiseConfig = OptimiseConfig()) -> OptimiseResult:
    """Minimise the mean (sigma/E)^2 over the energy grid with Adam; the total absorber stays fixed.

    Runs in float64 on one thread (the tensors are small: intra-op threads only add
    synchronisation), restoring torch's thread count afterwards. The same ``config`` (seed
    included) gives the same trajectory bits.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _optimise(model, config)
    finally:
        torch.set_num_threads(threads)


def _optimise(model: ResolutionSurrogate, config: OptimiseConfig) -> OptimiseResult:
    if config.start not in ("template", "uniform"):
        raise CalolabError(f"start: expected 'template' or 'uniform', got {config.start!r}")
    dtype = torch.float64
    start = model.initial_thickness(dtype).numpy()
    total = float(start.sum())
    n = len(start)
    if total <= n * config.min_thickness:
        raise CalolabError(f"min_thickness = {config.min_thickness} mm: {n} layers need more than the "
                           f"{total:g} mm of absorber available")
    logits0 = (logits_from_thickness(start, config.min_thickness) if config.start == "template" else np.zeros(n))
    logits = torch.tensor(logits0, dtype=dtype)
    if config.init_noise:
        generator = torch.Generator().manual_seed(config.seed)
        logits = logits + config.init_noise * torch.randn(n, generator=generator, dtype=dtype)
    logits.requires_grad_(True)
    energies = torch.tensor(config.energy_grid(), dtype=dtype)
    opt = torch.optim.Adam([logits], lr=config.learning_rate)
    losses, res2s, path = [], [], []
    for step in range(config.steps + 1):
        thickness = thickness_from_logits(logits, total, config.min_thickness)
        loss, res2 = objective(model, thickness, energies, config.tv_weight)
        losses.append(loss.item())
        res2s.append(res2.item())
        path.append(thickness.detach().numpy().copy())
        if step == config.steps:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    best = thickness.detach()
    with torch.no_grad():
        resolution = model.resolution(best, energies).numpy()
    return OptimiseResult(thickness=best.numpy(), objective=np.array(losses), resolution_objective=np.array(res2s),
                          trajectory=np.array(path), total_mm=total, energies_gev=config.energy_grid(),
                          resolution=resolution, terms=fit_terms(config.energy_grid(), resolution), config=config)
