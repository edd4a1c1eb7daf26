"""Spectrum of e+e- pair production by muons (Kelner, Kokoulin and Petrukhin).

The differential cross section in the pair's share v = eps / E of the muon's total energy E is

    d sigma / d v  ~  (1 - v) / v  int_0^rho_max [Phi_e + (m_e / m_mu)^2 Phi_mu] d rho

with rho the pair's energy asymmetry, rho_max = [1 - 6 m_mu^2 / (E^2 (1 - v))] sqrt(1 - 4 m_e / eps),
and Phi_e, Phi_mu the electron and muon terms with Thomas-Fermi screening (B = 183) as written in
the Geant4 Physics Reference Manual ("Positron-electron pair production by muons"). The overall
factor Z (Z + zeta) (alpha r_e)^2 does not change the shape and is left out: the simulation
normalises the spectrum to the PUMAS b_pair of physics.md. The shape hardly depends on Z
(losses above 100 MeV from a 4 TeV muon per unit of b_pair: 899 for Z = 8, 913 for Z = 82), so it
is evaluated once, for lead.

What matters for calorimetry is the low-v tail: at 4 TeV half of the pair loss sits below
v = 6.1e-3 and a tenth below 5.2e-4, and the number of losses above a fixed energy grows with E
(above 100 MeV: 556 at 1 TeV, 914 at 4 TeV per unit b_pair), which a muon's energy is read from.

The spectrum is tabulated on a grid of ln E and of t = ln(v / v_min) / ln(1 / v_min), v_min = 4 m_e / E,
with the number of losses above t and the share of the loss below t, normalised so that
int v g(v) dv = 1 (:func:`number_above`, :func:`fraction_below`, :func:`sample`). Between energy
nodes the tables are interpolated linearly in ln E at the same t.

With its own normalisation the cross section gives the energy-loss coefficient b_pair
(:func:`b_pair`), which agrees with the PUMAS table of physics.md within 0.3%:

>>> [round(b_pair(e, 82.0, 207.2) * 1e6, 2) for e in (1e5, 1e6, 1e7)]  # lead, 1e-6 cm2/g (PUMAS 7.91, 10.15, 10.83)
[7.9, 10.15, 10.85]
>>> e = np.array([1e6, 4e6])  # MeV
>>> [round(float(x)) for x in number_above(100.0 / e, e)]  # losses above 100 MeV per unit b_pair
[556, 914]
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np

from calolab.geometry.materials import ELECTRON_MASS

MUON_MASS = 105.6583755  # MeV
AVOGADRO = 6.02214076e23
CLASSICAL_ELECTRON_RADIUS_CM = 2.8179403262e-13
FINE_STRUCTURE = 1 / 137.035999
SHAPE_Z = 82.0  # lead: the shape is nearly Z-independent (see above)
SCREENING_B = 183.0  # Thomas-Fermi
TABLE_ENERGIES = np.geomspace(1e3, 1e8, 41)  # MeV, 1 GeV to 100 TeV
TABLE_T = np.linspace(0.0, 1.0, 401)
_RHO_NODES = 16  # Gauss-Legendre points in ln(1 - rho)


def cross_section_shape(energy: np.ndarray, v: np.ndarray, z: float = SHAPE_Z) -> np.ndarray:
    """d sigma / d v up to a constant factor, for muons of total ``energy`` (MeV) and pair shares ``v``.

    ``energy`` and ``v`` broadcast; outside the kinematic limits the result is 0.
    """
    e, v = np.broadcast_arrays(np.asarray(energy, float), np.asarray(v, float))
    e, v = e[..., None], np.clip(v, 1e-12, 1 - 1e-12)[..., None]
    z13, z23 = z ** (1 / 3), z ** (2 / 3)
    sqrt_e = np.sqrt(np.e)
    eps = v * e
    beta = v * v / (2 * (1 - v))
    mass_ratio2 = (MUON_MASS / ELECTRON_MASS) ** 2
    allowed = (eps > 4 * ELECTRON_MASS) & (e * (1 - v) > 0.75 * sqrt_e * MUON_MASS * z13)
    rho_max = (1 - 6 * MUON_MASS**2 / (e * e * (1 - v))) * np.sqrt(np.clip(1 - 4 * ELECTRON_MASS / eps, 0, None))
    allowed &= rho_max > 0
    # integrate over s = ln(1 - rho) from ln(1 - rho_max) to 0; the integrand is peaked near rho = rho_max
    s_min = np.log(np.clip(1 - rho_max, 1e-300, 1.0))
    nodes, weights = np.polynomial.legendre.leggauss(_RHO_NODES)
    s = s_min * (nodes + 1) / 2
    one_minus_rho = np.exp(s)
    rho2 = (1 - one_minus_rho) ** 2
    w = 1 - rho2  # 1 - rho^2
    xi = mass_ratio2 / 4 * v * v / (1 - v) * w
    screening = 2 * ELECTRON_MASS * sqrt_e * SCREENING_B / (z13 * eps) * (1 + xi) / w
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        y_e = (5 - rho2 + 4 * beta * (1 + rho2)) / (
            2 * (1 + 3 * beta) * np.log(3 + 1 / xi) - rho2 - 2 * beta * (2 - rho2))
        l_e = (np.log(SCREENING_B / z13 * np.sqrt((1 + xi) * (1 + y_e)) / (1 + screening * (1 + y_e)))
               - 0.5 * np.log(1 + 2.25 * z23 * (1 + xi) * (1 + y_e) / mass_ratio2))
        phi_e = np.where(
            xi <= 1e3,
            ((2 + rho2) * (1 + beta) + xi * (3 + rho2)) * np.log1p(1 / xi) + (w - beta) / (1 + xi) - (3 + rho2),
            (3 - rho2 + 2 * beta * (1 + rho2)) / (2 * xi))  # large-xi limit
        y_mu = (4 + rho2 + 3 * beta * (1 + rho2)) / ((1 + rho2) * (1.5 + 2 * beta) * np.log(3 + xi) + 1 - 1.5 * rho2)
        l_mu = np.log(SCREENING_B * np.sqrt(mass_ratio2) / (1.5 * z23 * (1 + screening * (1 + y_mu))))
        phi_mu = np.where(
            xi >= 1e-3,
            ((1 + rho2) * (1 + 1.5 * beta) - (1 + 2 * beta) * w / xi) * np.log1p(xi) + xi * (w - beta) / (1 + xi)
            + (1 + 2 * beta) * w,
            (5 - rho2 + beta * (3 + rho2)) * xi / 2)  # small-xi limit
    integrand = np.clip(phi_e * l_e, 0, None) + np.clip(phi_mu * l_mu, 0, None) / mass_ratio2
    integral = -s_min[..., 0] * 0.5 * np.sum(weights * one_minus_rho * np.nan_to_num(integrand), axis=-1)
    return np.where(allowed[..., 0], integral * (1 - v[..., 0]) / v[..., 0], 0.0)


def b_pair(energy: float, z: float, a: float) -> float:
    """Pair-production energy-loss coefficient b_pair (cm2/g) of an element (``z``, ``a`` g/mol) at ``energy`` MeV.

    b_pair = N_A / A int v d sigma / dv dv with the prefactor (4 / 3 pi) Z (Z + zeta) (alpha r_e)^2, where
    zeta accounts for pair production on the atomic electrons.
    """
    v, shape = _shape_on_grid(energy, np.linspace(0.0, 1.0, 4001), z)
    gamma = energy / MUON_MASS
    zeta_num = 0.073 * math.log(gamma / (1 + 1.95e-5 * z ** (2 / 3) * gamma)) - 0.26
    zeta = zeta_num / (0.058 * math.log(gamma / (1 + 5.3e-5 * z ** (1 / 3) * gamma)) - 0.14) if zeta_num > 0 else 0.0
    prefactor = 4 / (3 * math.pi) * z * (z + zeta) * (FINE_STRUCTURE * CLASSICAL_ELECTRON_RADIUS_CM) ** 2
    return float(AVOGADRO / a * prefactor * np.trapezoid(v * v * shape, np.log(v)))


def _v_of_t(t: np.ndarray, v_min: np.ndarray) -> np.ndarray:
    return v_min ** (1 - t)


def _shape_on_grid(energy: float, t: np.ndarray, z: float = SHAPE_Z) -> tuple[np.ndarray, np.ndarray]:
    """Pair shares v at grid points ``t`` and the spectrum shape there, for one muon ``energy`` (MeV)."""
    v = _v_of_t(t, 4 * ELECTRON_MASS / energy)
    return v, cross_section_shape(np.full_like(v, energy), v, z)


@cache
def _tables() -> tuple[np.ndarray, np.ndarray]:
    """(number above t, fraction of the loss below t), each (energies, t), for int v g dv = 1."""
    v_min = 4 * ELECTRON_MASS / TABLE_ENERGIES[:, None]
    v = _v_of_t(TABLE_T[None, :], v_min)
    g = cross_section_shape(TABLE_ENERGIES[:, None], v)
    # integrate in ln v (trapezoid): number density v g, energy density v^2 g
    dlnv = np.diff(np.log(v), axis=1)
    n_cells = 0.5 * (v[:, 1:] * g[:, 1:] + v[:, :-1] * g[:, :-1]) * dlnv
    e_cells = 0.5 * (v[:, 1:] ** 2 * g[:, 1:] + v[:, :-1] ** 2 * g[:, :-1]) * dlnv
    norm = e_cells.sum(1, keepdims=True)
    zero = np.zeros((len(TABLE_ENERGIES), 1))
    above = np.concatenate([np.cumsum(n_cells[:, ::-1], 1)[:, ::-1], zero], 1) / norm
    below = np.concatenate([zero, np.cumsum(e_cells, 1)], 1) / norm
    return above, below


def _t_of(v: np.ndarray, v_min: np.ndarray) -> np.ndarray:
    return np.clip(np.log(np.maximum(v, v_min) / v_min) / np.log(1 / v_min), 0.0, 1.0)


def _node(energy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower table node and the weight of the upper one, linear in ln E (clamped at the table ends)."""
    x = np.interp(np.log(energy), np.log(TABLE_ENERGIES), np.arange(len(TABLE_ENERGIES), dtype=float))
    lo = np.minimum(x.astype(np.int64), len(TABLE_ENERGIES) - 2)
    return lo, x - lo


def _lookup(table: np.ndarray, t: np.ndarray, lo: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``table`` at grid position ``t``, between energy nodes ``lo`` and ``lo + 1`` (weight ``w`` on the upper)."""
    pos = t * (len(TABLE_T) - 1)
    k = np.minimum(pos.astype(np.int64), len(TABLE_T) - 2)
    f = pos - k
    rows = [(1 - f) * table[j, k] + f * table[j, k + 1] for j in (lo, lo + 1)]
    return (1 - w) * rows[0] + w * rows[1]


def number_above(v_cut: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """Pair losses with share above ``v_cut`` per unit of b_pair rho dx, muons of total ``energy`` (MeV)."""
    energy = np.asarray(energy, float)
    v_min = 4 * ELECTRON_MASS / energy
    return _lookup(_tables()[0], _t_of(np.asarray(v_cut, float), v_min), *_node(energy))


def fraction_below(v_cut: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """Share of the mean pair loss carried by losses with share below ``v_cut``."""
    energy = np.asarray(energy, float)
    v_min = 4 * ELECTRON_MASS / energy
    return _lookup(_tables()[1], _t_of(np.asarray(v_cut, float), v_min), *_node(energy))


def second_moment(energy: float) -> float:
    """<v^2> per unit b_pair (int v^2 g dv with int v g dv = 1): the loss variance is b rho L E^2 times this."""
    v, g = _shape_on_grid(energy, TABLE_T)
    lnv = np.log(v)
    return float(np.trapezoid(v**3 * g, lnv) / np.trapezoid(v**2 * g, lnv))


def sample(v_cut: np.ndarray, energy: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw one pair share v >= ``v_cut`` per element, muons of total ``energy`` (MeV)."""
    v_cut, energy = np.asarray(v_cut, float), np.asarray(energy, float)
    above = _tables()[0]
    v_min = 4 * ELECTRON_MASS / energy
    lo, w = _node(energy)

    def number(k: np.ndarray) -> np.ndarray:  # interpolated "number above" at grid point k of each draw's energy
        return (1 - w) * above[lo, k] + w * above[lo + 1, k]

    t_cut = _t_of(v_cut, v_min)
    target = _lookup(above, t_cut, lo, w) * rng.random(len(v_cut))
    # bisect for the grid cell [lo_k, hi_k] that holds the target; "number above" falls with t
    lo_k = np.zeros(len(v_cut), np.int64)
    hi_k = np.full(len(v_cut), len(TABLE_T) - 1)
    for _ in range(int(np.ceil(np.log2(len(TABLE_T))))):
        mid = (lo_k + hi_k) // 2
        up = number(mid) > target
        lo_k, hi_k = np.where(up, mid, lo_k), np.where(up, hi_k, mid)
    n0, n1 = number(lo_k), number(hi_k)
    frac = np.clip((n0 - target) / np.maximum(n0 - n1, 1e-300), 0.0, 1.0)
    t = np.maximum((lo_k + frac) / (len(TABLE_T) - 1), t_cut)
    return np.minimum(_v_of_t(t, v_min), 1.0)
