"""A differentiable form of calolab's electron simulation: resolution as a function of the absorber layout.

For an electron of energy E the simulator (:mod:`calolab.simulation.em`,
:mod:`calolab.simulation.sampling`) draws a GFLASH longitudinal profile with correlated
log-normal fluctuations of T and alpha, integrates it over the layer boundaries (in X0),
and sees the energy ``E f_L`` of layer L through ``N_L ~ Poisson(E f_L c_L)`` charged-track
crossings, each leaving a Landau (Moyal) loss over a path ``d_Si / cos theta`` with cos theta
uniform in [0.15, 1], plus local deposits of mean ``E f_L l_L`` and variance ``E f_L l_L m_L``
(the sampling model of :mod:`calolab.simulation.sampling`; its split is the template's).
The reconstruction (:func:`calolab.reconstruction.weighted_sum`) weights
layer L by ``dE_mip(L) / MPV_L`` and, with ``rear_leakage``, adds the last layer again divided by ``0.5 dt_last``.

Given the profile parameters theta = (T, alpha), the layers are independent compound
Poisson sums, so the reconstructed energy ``R = sum_L w_L S_L`` has

    E[R | theta]   = E sum_L w_L (c_L <s_L> + l_L)          f_L(theta),
    Var[R | theta] = E sum_L w_L^2 (c_L <s_L^2> + l_L m_L)  f_L(theta),

with ``<s>``, ``<s^2>`` the moments of one crossing's signal; the profile fluctuations are
averaged by two-dimensional Gauss-Hermite quadrature over (z1, z2) (deterministic, so the
objective is smooth): Var R = E_theta Var[R|theta] + Var_theta E[R|theta]. Leakage out of
the back is the part of the gamma CDF beyond the last boundary. Lateral leakage (the
``siw-ecal`` grid is 8 Moliere radii wide) is neglected.

Everything is a torch function of the absorber thicknesses (mm, one per layer); the
effective medium (Ec, Z_eff, F_S), hence T and alpha, follows them too.

>>> import torch
>>> from calolab.geometry import load_detector
>>> model = ResolutionSurrogate(load_detector("siw-ecal"))
>>> res = model.resolution(model.initial_thickness(), torch.tensor([10.0], dtype=torch.float64))
>>> 0.06 < float(res[0]) < 0.08  # sigma/E of 10 GeV electrons in the prototype
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from calolab.design.gamma import gammainc
from calolab.errors import CalolabError
from calolab.geometry import Detector
from calolab.reconstruction.sums import EM_TAIL_SLOPE
from calolab.simulation.em import MIN_LNY_FLUCT
from calolab.simulation.sampling import (
    INV_COS_SQ_MEAN,
    LANDAU_TO_MOYAL,
    MEAN_INVERSE_COS,
    MOYAL_MEAN,
    MOYAL_VARIANCE,
    delta_equilibrium,
    sampling_model,
)


@dataclass(frozen=True)
class Moments:
    """Mean and variance of the reconstructed energy (MeV on the MIP scale), shape (energies,) each."""

    mean: torch.Tensor
    variance: torch.Tensor

    @property
    def relative_resolution(self) -> torch.Tensor:
        """sigma / mean, (energies,)."""
        return torch.sqrt(self.variance) / self.mean


class ResolutionSurrogate:
    """Electron resolution of a sampling calorimeter whose absorber thicknesses are free.

    Parameters
    ----------
    detector
        Template: absorber and active materials and active thicknesses per layer are kept;
        the absorber thicknesses are the variables (every layer must have an absorber).
    rear_leakage
        Model :func:`calolab.reconstruction.weighted_sum` with its rear-leakage correction.
    quadrature
        Gauss-Hermite nodes per dimension for the (ln T, ln alpha) fluctuations.
    """

    def __init__(self, detector: Detector, rear_leakage: bool = True, quadrature: int = 12):
        if any(layer.absorber is None for layer in detector.layers):
            raise CalolabError(f"detector {detector.name!r}: every layer needs an absorber for the design surrogate")
        if detector.homogeneous:
            raise CalolabError(f"detector {detector.name!r}: the design surrogate needs a sampling calorimeter")
        if quadrature < 2:
            raise CalolabError(f"quadrature: expected at least 2 Gauss-Hermite nodes, got {quadrature}")
        self.detector = detector
        self.rear_leakage = rear_leakage
        self.quadrature = quadrature
        absorbers = [layer.absorber_material for layer in detector.layers]
        actives = [layer.active_material for layer in detector.layers]
        d_act = np.array([layer.active_thickness for layer in detector.layers])
        k = delta_equilibrium(detector)
        self._np = {
            "abs_x0": np.array([m.x0 for m in absorbers]),
            "abs_rho": np.array([m.density for m in absorbers]),
            "abs_z": np.array([m.z for m in absorbers]),
            "abs_a": np.array([m.a for m in absorbers]),
            "abs_dedx": np.array([m.mip_dedx for m in absorbers]),
            "act_d": d_act,
            "act_x0": d_act / np.array([m.x0 for m in actives]),  # X0 of each active slab
            "act_mass": d_act * np.array([m.density for m in actives]),
            "act_z": np.array([m.z for m in actives]),
            "act_a": np.array([m.a for m in actives]),
            "act_mip": detector.mip_mean,
            "mpv": detector.mip_mpv,
            # one crossing's signal: Moyal loss times the knock-on equilibrium ratio k and 1/cos;
            # first and second moments, MeV and MeV^2
            "s1": detector.mip_mean * MEAN_INVERSE_COS,
            "s2": (k**2 * ((detector.mip_mpv + detector.landau_xi * LANDAU_TO_MOYAL * MOYAL_MEAN) ** 2
                           + (detector.landau_xi * LANDAU_TO_MOYAL) ** 2 * MOYAL_VARIANCE) * INV_COS_SQ_MEAN),
        }
        # the split of the signal into crossings and local deposits (calolab.simulation.sampling)
        # is the template's: it depends on the materials and the active slabs, not on the absorbers
        model = sampling_model(detector)
        self._np["local_share"] = model.local / model.visible
        self._np["crossing_share"] = 1.0 - self._np["local_share"]
        self._np["local_moment"] = model.local_moment
        # e_hat depends on the materials only (mean Z of absorbers and of active layers)
        self.e_hat = detector.e_hat
        nodes, weights = np.polynomial.hermite_e.hermegauss(quadrature)
        z1, z2 = np.meshgrid(nodes, nodes, indexing="ij")
        self._nodes = (z1.ravel(), z2.ravel(), np.outer(weights, weights).ravel() / (2 * np.pi))

    # ------------------------------------------------------------- helpers
    def _t(self, name: str, like: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(self._np[name], dtype=like.dtype, device=like.device)

    def initial_thickness(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """The template's absorber thicknesses in mm, (layers,)."""
        return torch.tensor([layer.absorber_thickness for layer in self.detector.layers], dtype=dtype)

    def total_x0(self, thickness: torch.Tensor) -> torch.Tensor:
        """Absorber depth in X0 of ``thickness`` (mm, (layers,)): a scalar tensor."""
        return torch.sum(thickness / self._t("abs_x0", thickness))

    def boundaries_x0(self, thickness: torch.Tensor) -> torch.Tensor:
        """Layer back faces in X0 (absorber + active), (layers,) (the front face 0 is left out)."""
        return torch.cumsum(thickness / self._t("abs_x0", thickness) + self._t("act_x0", thickness), 0)

    def effective_medium(self, thickness: torch.Tensor) -> dict[str, torch.Tensor]:
        """GFLASH effective medium of the stack, as :attr:`Detector._effective` computes it (scalars)."""
        t = self._t
        act_d = t("act_d", thickness)
        total = thickness.sum() + act_d.sum()
        abs_mass = thickness * t("abs_rho", thickness)
        mass = abs_mass.sum() + t("act_mass", thickness).sum()
        z = (torch.sum(abs_mass * t("abs_z", thickness)) + torch.sum(t("act_mass", thickness) * t("act_z", thickness)))
        a = (torch.sum(abs_mass * t("abs_a", thickness)) + torch.sum(t("act_mass", thickness) * t("act_a", thickness)))
        z, a = z / mass, a / mass
        x0 = total / (self.total_x0(thickness) + t("act_x0", thickness).sum())
        rho = mass / total
        ec = 2.66 * (x0 / 10 * rho * z / a) ** 1.1
        f_s = x0 / (total / len(thickness))
        return {"z": z, "x0": x0, "ec": ec, "f_s": f_s}

    def profile_nodes(self, thickness: torch.Tensor, energy_mev: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Quadrature nodes of (T, alpha) per energy, (energies, nodes) each, and their weights (nodes,)."""
        med = self.effective_medium(thickness)
        inv_fs, one_e = 1.0 / med["f_s"], 1.0 - self.e_hat
        lny = torch.log(torch.clamp(energy_mev / med["ec"], min=2.0))[:, None]  # (K, 1)
        mean_ln_t = torch.log(torch.clamp(lny - 0.812 - 0.55 * inv_fs - 0.69 * one_e, min=0.15))
        mean_ln_a = torch.log(torch.clamp(0.81 + (0.458 + 2.26 / med["z"]) * lny - 0.476 * inv_fs, min=1.05))
        lny_s = torch.clamp(lny, min=float(MIN_LNY_FLUCT))
        s_t, s_a, rho = 1 / (-2.5 + 1.25 * lny_s), 1 / (-0.82 + 0.79 * lny_s), 0.784 - 0.023 * lny_s
        z1, z2, w = (torch.as_tensor(v, dtype=thickness.dtype) for v in self._nodes)
        plus, minus = torch.sqrt((1 + rho) / 2), torch.sqrt((1 - rho) / 2)
        t_max = torch.exp(mean_ln_t + s_t * (plus * z1 + minus * z2))
        alpha = torch.clamp(torch.exp(mean_ln_a + s_a * (plus * z1 - minus * z2)), min=1.05)
        return t_max, alpha, w

    def layer_fractions(self, thickness: torch.Tensor, energy_mev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Energy fraction in each layer at each quadrature node, (energies, nodes, layers), and the weights."""
        t_max, alpha, w = self.profile_nodes(thickness, energy_mev)
        beta = (alpha - 1.0) / t_max
        cdf = gammainc(alpha[..., None], beta[..., None] * self.boundaries_x0(thickness))  # (K, Q, L)
        frac = torch.diff(cdf, dim=-1, prepend=torch.zeros_like(cdf[..., :1]))
        return frac, w

    def layer_coefficients(self, thickness: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per MeV deposited in layer L: mean and variance of its reconstructed energy, (layers,) each."""
        mip_loss = thickness * self._t("abs_dedx", thickness) + self._t("act_mip", thickness)
        t = self._t
        visible = self.e_hat * t("act_mip", thickness) / mip_loss  # per MeV
        crossings = visible * t("crossing_share", thickness) / t("s1", thickness)
        local = visible * t("local_share", thickness)
        weight = mip_loss / t("mpv", thickness)
        if self.rear_leakage:
            dt_last = thickness[-1] / self._t("abs_x0", thickness)[-1] + self._t("act_x0", thickness)[-1]
            weight = torch.cat([weight[:-1], weight[-1:] * (1.0 + 1.0 / (EM_TAIL_SLOPE * dt_last))])
        variance = crossings * t("s2", thickness) + local * t("local_moment", thickness)
        return weight * visible, weight**2 * variance

    # ------------------------------------------------------------- results
    def moments(self, thickness: torch.Tensor, energy_gev: torch.Tensor) -> Moments:
        """Mean and variance of the reconstructed energy (MeV, MIP scale) for electrons.

        Parameters
        ----------
        thickness : (layers,) tensor
            Absorber thickness of each layer in mm.
        energy_gev : (energies,) tensor
            Electron energies in GeV.
        """
        energy = energy_gev.to(thickness.dtype) * 1e3
        frac, w = self.layer_fractions(thickness, energy)  # (K, Q, L), (Q,)
        mean_coef, var_coef = self.layer_coefficients(thickness)
        cond_mean = energy[:, None] * (frac @ mean_coef)  # (K, Q)
        cond_var = energy[:, None] * (frac @ var_coef)
        mean = cond_mean @ w
        variance = cond_var @ w + ((cond_mean - mean[:, None]) ** 2) @ w
        return Moments(mean, variance)

    def resolution(self, thickness: torch.Tensor, energy_gev: torch.Tensor) -> torch.Tensor:
        """sigma/E of the reconstructed energy, (energies,)."""
        return self.moments(thickness, energy_gev).relative_resolution

    def leakage(self, thickness: torch.Tensor, energy_gev: torch.Tensor) -> torch.Tensor:
        """Mean fraction of the energy leaking out of the back, (energies,)."""
        frac, w = self.layer_fractions(thickness, energy_gev.to(thickness.dtype) * 1e3)
        return (1.0 - frac.sum(-1)) @ w


def fit_terms(energy_gev: np.ndarray, resolution: np.ndarray) -> tuple[float, float]:
    """Stochastic and constant terms (a, c) of ``sigma/E = a/sqrt(E) ⊕ c`` (E in GeV).

    Linear least squares in (sigma/E)^2 with every point weighted by its own (sigma/E)^-2
    (equal relative errors), so the high-energy points constrain the constant term.

    >>> e = np.array([1.0, 10.0, 100.0])
    >>> a, c = fit_terms(e, np.sqrt(0.2**2 / e + 0.01**2))
    >>> round(a, 4), round(c, 4)
    (0.2, 0.01)
    """
    res2 = np.asarray(resolution, float) ** 2
    design = np.column_stack([1.0 / np.asarray(energy_gev, float), np.ones(len(energy_gev))]) / res2[:, None]
    (a2, c2), *_ = np.linalg.lstsq(design, np.ones(len(res2)), rcond=None)
    return float(np.sqrt(max(a2, 0.0))), float(np.sqrt(max(c2, 0.0)))
