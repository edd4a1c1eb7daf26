"""Correlated uniforms for cells of a sub-module: a vine copula (pyvinecopulib) per sub-module.

Cells sharing front-end electronics, a bench calibration or upstream material respond
alike (paper 002). The detector is cut into sub-modules of ``block_layers x bx x by``
cells (default 2 x 2 cells through all layers: 300 cells in the 75-layer cusi module).
Within a sub-module the cells are exchangeable, linked through a latent root variable
``V_m``: a C-vine truncated after its first tree (root ``V_m``, one pair copula from the
root to each cell; :meth:`SubmoduleCopula.module_vine`). The cells are therefore
independent given ``V_m``, and every pair of cells of module ``m`` has the same Kendall
tau ``tau_m``, drawn per module uniformly in ``config.tau`` (the pair-copula parameter
follows from it: exactly for ``gaussian``, by quadrature for ``frank`` and ``clayton``).
The roots of consecutive modules are linked by a D-vine (a path) with Kendall tau
``between_tau``: 0 makes modules independent, a small negative value weakly
anti-correlated, decaying with the distance between modules in module order.

Sampling a truncated vine is one inverse h-function per cell, ``U_c = h^-1(W_c | V_m)``:
all cells are done in one :meth:`pyvinecopulib.Bicop.hinv1` call with one parameter per
row. The Gaussian family has a NumPy fast path in normal scores (the same transform,
``z_c = r_m z_m + sqrt(1 - r_m^2) g_c``), used for per-event noise; the tests check it
against the pyvinecopulib vines.

>>> cop = SubmoduleCopula(CopulaConfig(tau=(0.3, 0.3)), shape=(3, 4, 4), seed=1)
>>> cop.n_modules, cop.module.reshape(3, 4, 4)[0, :2, :].tolist()
(4, [[0, 0, 1, 1], [0, 0, 1, 1]])
>>> cop.module_vine(0).dim  # 12 cells and the latent root
13
>>> u = cop.sample([np.random.default_rng(0)])
>>> u.shape, bool(((u > 0) & (u < 1)).all())
((1, 48), True)
>>> beta22_ppf(np.array([0.0, 0.5, 1.0])).round(12).tolist()  # Beta(2, 2) quantiles
[0.0, 0.5, 1.0]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from calolab.effects.config import check_range, rng_for
from calolab.errors import CalolabError

FAMILIES = ("gaussian", "frank", "clayton", "independent")
MAX_TAU = 0.9
STREAM_MODULE_TAU = 21


@dataclass(frozen=True)
class CopulaConfig:
    """Correlation of cells within and between sub-modules.

    Parameters
    ----------
    family
        Pair-copula family: ``gaussian`` (fast), ``frank``, ``clayton`` or ``independent``.
    tau
        Range ``(low, high)`` of the Kendall tau between two cells of one sub-module; each
        module draws its own value uniformly in it. In [0, 0.9].
    between_tau
        Kendall tau between the roots of consecutive sub-modules (D-vine); 0: independent.
    block
        Sub-module size in cells along x and y.
    block_layers
        Sub-module depth in layers; ``None`` for all layers.
    """

    family: str = "gaussian"
    tau: tuple[float, float] = (0.1, 0.5)
    between_tau: float = 0.0
    block: tuple[int, int] = (2, 2)
    block_layers: int | None = None

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise CalolabError(f"copula family {self.family!r}: expected one of {', '.join(FAMILIES)}")
        low, high = self.tau
        check_range("within-module Kendall tau", low, 0.0, MAX_TAU)
        check_range("within-module Kendall tau", high, 0.0, MAX_TAU)
        if high < low:
            raise CalolabError(f"within-module Kendall tau range {low:g}:{high:g}: the upper end is below the lower")
        check_range("between-module Kendall tau", self.between_tau, -MAX_TAU, MAX_TAU)
        if min(self.block) < 1 or (self.block_layers is not None and self.block_layers < 1):
            raise CalolabError(f"sub-module block must be at least 1 cell, got {self.block} x {self.block_layers}")

    @property
    def independent(self) -> bool:
        return self.family == "independent" or (self.tau == (0.0, 0.0) and self.between_tau == 0.0)


def beta22_ppf(u: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Quantile of Beta(2, 2), ``0.5 + cos((arccos(2u - 1) + pi) / 3)``, in the dtype of ``u``.

    The closed-form inverse of ``F(x) = 3x^2 - 2x^3``; equal to ``scipy.stats.beta(2, 2).ppf``
    to rounding, without its iterative root finding, and in place when ``out`` is given.
    """
    u = np.asarray(u)
    if out is None:
        out = np.empty(u.shape, u.dtype if u.dtype.kind == "f" else np.float64)
    x = np.multiply(u, 2, out=out)
    x -= 1
    np.clip(x, -1, 1, out=x)
    np.arccos(x, out=x)
    x += np.pi
    x /= 3
    np.cos(x, out=x)
    x += 0.5
    return x


def module_index(shape: tuple[int, int, int], block: tuple[int, int], block_layers: int | None = None) -> np.ndarray:
    """Sub-module number of every cell, int64 ``(layers * nx * ny,)`` (flat cell order).

    Modules are numbered ``(layer_block * nbx + x_block) * nby + y_block``; blocks that do
    not divide the grid leave smaller modules at the edges.
    """
    layers, nx, ny = shape
    bl = layers if block_layers is None else block_layers
    nbx, nby = -(-nx // block[0]), -(-ny // block[1])
    lb = np.arange(layers) // bl
    xb, yb = np.arange(nx) // block[0], np.arange(ny) // block[1]
    return ((lb[:, None, None] * nbx + xb[None, :, None]) * nby + yb[None, None, :]).ravel().astype(np.int64)


def _pv() -> Any:
    try:
        import pyvinecopulib
    except ImportError:
        raise CalolabError("correlated cells need pyvinecopulib: pip install 'calolab[copula]'") from None
    return pyvinecopulib


def bicop(family: str, tau: float) -> Any:
    """A ``pyvinecopulib.Bicop`` of ``family`` with Kendall ``tau`` (negative: rotated 90 degrees if needed)."""
    pv = _pv()
    fam = getattr(pv.BicopFamily, "indep" if family == "independent" or tau == 0 else family)
    if fam == pv.BicopFamily.indep:
        return pv.Bicop(family=fam)
    rotation = 90 if (family == "clayton" and tau < 0) else 0
    template = pv.Bicop(family=fam)
    parameters = template.tau_to_parameters(abs(tau) if rotation else tau)
    return pv.Bicop(family=fam, rotation=rotation, parameters=parameters)


def link_to_pair_tau(family: str, link_tau: float, grid: int = 200) -> float:
    """Kendall tau between two cells each linked to the root with a ``family`` copula of ``link_tau``.

    For ``gaussian``: ``2/pi asin(sin(pi link_tau / 2)^2)``. Otherwise by quadrature of
    ``C(u, v) = int h(u|w) h(v|w) dw`` on a ``grid`` x ``grid`` mesh (accurate to about 1e-3).
    """
    if link_tau == 0 or family == "independent":
        return 0.0
    if family == "gaussian":
        return 2 / math.pi * math.asin(math.sin(math.pi * link_tau / 2) ** 2)
    b = bicop(family, link_tau)
    w = (np.arange(grid) + 0.5) / grid
    edges = np.linspace(0.0, 1.0, grid + 1)
    ww, uu = np.meshgrid(w, edges, indexing="ij")
    h = b.hfunc1(np.column_stack([ww.ravel(), uu.ravel()])).reshape(grid, grid + 1)  # P(U <= u | W = w)
    joint = h.T @ h / grid  # C(u, v) on the edges
    mass = np.diff(np.diff(joint, axis=0), axis=1)
    mid = 0.25 * (joint[1:, 1:] + joint[:-1, 1:] + joint[1:, :-1] + joint[:-1, :-1])
    return float(4 * np.sum(mass * mid) - 1)


@lru_cache(maxsize=8)
def _tau_table(family: str) -> tuple[np.ndarray, np.ndarray]:
    link = np.concatenate([np.linspace(0, 0.9, 37), [0.93, 0.96, 0.98]])
    return link, np.array([link_to_pair_tau(family, t) for t in link])


def pair_to_link_tau(family: str, pair_tau: np.ndarray) -> np.ndarray:
    """Kendall tau of the root-to-cell pair copula that gives cells a Kendall tau ``pair_tau``."""
    pair_tau = np.asarray(pair_tau, np.float64)
    if family == "independent":
        return np.zeros_like(pair_tau)
    if family == "gaussian":
        return 2 / np.pi * np.arcsin(np.sqrt(np.sin(np.pi * pair_tau / 2)))
    link, pair = _tau_table(family)
    return np.interp(pair_tau, pair, link)


class SubmoduleCopula:
    """The vine copula of a whole detector: per-module C-vines under a D-vine of module roots.

    Parameters
    ----------
    config
        Family, Kendall tau range, between-module tau and sub-module shape.
    shape
        Detector grid ``(layers, nx, ny)``.
    seed
        Seed of the per-module Kendall taus (drawn uniformly in ``config.tau``).

    Attributes
    ----------
    module : int64 (n_cells,)
        Sub-module of each cell (flat cell order).
    module_tau : float64 (n_modules,)
        Kendall tau between two cells of each module.
    link_parameter : float64 (n_modules,)
        Parameter of the root-to-cell pair copula of each module (the Gaussian correlation).
    """

    def __init__(self, config: CopulaConfig, shape: tuple[int, int, int], seed: int) -> None:
        self.config = config
        self.shape = tuple(shape)
        self.module = module_index(self.shape, config.block, config.block_layers)
        self.n_modules = int(self.module.max()) + 1
        self.n_cells = self.module.size
        low, high = config.tau
        draws = rng_for(seed, STREAM_MODULE_TAU).uniform(low, high, self.n_modules)
        self.module_tau = np.zeros(self.n_modules) if config.family == "independent" else draws
        self.link_tau = pair_to_link_tau(config.family, self.module_tau)
        if config.family == "gaussian":
            self.link_parameter = np.sin(np.pi * self.link_tau / 2)
        elif config.family == "independent":
            self.link_parameter = np.zeros(self.n_modules)
        else:
            self.link_parameter = np.array([bicop(config.family, t).parameters[0, 0] if t > 0 else 0.0
                                            for t in self.link_tau])

    # ------------------------------------------------------------ the vines
    def module_vine(self, m: int) -> Any:
        """Module ``m`` as a ``pyvinecopulib.Vinecop``: variable 1 the latent root, then its cells."""
        pv = _pv()
        d = int(np.sum(self.module == m)) + 1
        link = bicop(self.config.family, float(self.link_tau[m]))
        structure = pv.CVineStructure(order=list(range(d, 0, -1)), trunc_lvl=1)
        return pv.Vinecop.from_structure(structure=structure, pair_copulas=[[link] * (d - 1)])

    def root_vine(self) -> Any:
        """The module roots as a ``pyvinecopulib.Vinecop``: a D-vine path 1 - 2 - ... - n_modules."""
        pv = _pv()
        m = self.n_modules
        link = bicop(self.config.family, self.config.between_tau)
        structure = pv.DVineStructure(order=list(range(m, 0, -1)), trunc_lvl=1)
        return pv.Vinecop.from_structure(structure=structure, pair_copulas=[[link] * (m - 1)] if m > 1 else [])

    # ------------------------------------------------------------ sampling
    def sample(self, rngs: Sequence[np.random.Generator], dtype: type = np.float64) -> np.ndarray:
        """One joint draw of all cells per Generator: uniforms of shape ``(len(rngs), n_cells)``.

        Each row depends only on its own Generator, so rows can be drawn in any grouping.
        Gaussian and independent draws are made in ``dtype``; other families in float64.
        """
        n, m, c = len(rngs), self.n_modules, self.n_cells
        if self.config.independent:
            out = np.empty((n, c), dtype)
            for i, rng in enumerate(rngs):
                rng.random(out=out[i], dtype=dtype)
            return out
        if self.config.family == "gaussian":
            roots, cells = np.empty((n, m), dtype), np.empty((n, c), dtype)
            for i, rng in enumerate(rngs):
                rng.standard_normal(out=roots[i], dtype=dtype)
                rng.standard_normal(out=cells[i], dtype=dtype)
            return self.from_normals(roots, cells)
        roots, cells = np.empty((n, m)), np.empty((n, c))
        for i, rng in enumerate(rngs):
            rng.random(out=roots[i])
            rng.random(out=cells[i])
        return self.from_uniforms(roots, cells)

    def from_uniforms(self, roots: np.ndarray, cells: np.ndarray) -> np.ndarray:
        """Inverse Rosenblatt transform with pyvinecopulib: independent uniforms ``(n, n_modules)``
        and ``(n, n_cells)`` to correlated cell uniforms ``(n, n_cells)``, float64."""
        pv = _pv()
        roots = np.asarray(roots, np.float64)
        if self.config.between_tau != 0 and self.n_modules > 1:
            roots = self.root_vine().inverse_rosenblatt(np.asfortranarray(roots))
        out = np.array(cells, np.float64)
        cell_tau = self.link_tau[self.module]
        linked = np.broadcast_to(cell_tau > 0, out.shape)
        if self.config.family != "independent" and linked.any():
            u = np.asfortranarray(np.stack([roots[:, self.module][linked], out[linked]], axis=1))
            par = np.broadcast_to(self.link_parameter[self.module], out.shape)[linked][:, None]
            out[linked] = _hinv1_per_row(pv, self.config.family, u, par)
        return out

    def from_normals(self, roots: np.ndarray, cells: np.ndarray) -> np.ndarray:
        """The Gaussian vine in normal scores: independent N(0, 1) draws ``(n, n_modules)`` and
        ``(n, n_cells)`` to correlated cell uniforms ``(n, n_cells)``, in the dtype of ``cells``.

        ``cells`` is overwritten (it is scratch space).
        """
        from scipy.special import ndtr

        if self.config.family != "gaussian":
            raise CalolabError(f"from_normals is the Gaussian fast path, not for {self.config.family!r}")
        dtype = cells.dtype
        rho = math.sin(math.pi * self.config.between_tau / 2)
        if rho != 0:
            roots = roots.copy()
            for j in range(1, roots.shape[1]):  # D-vine path = Gaussian AR(1) in module order
                roots[:, j] = rho * roots[:, j - 1] + math.sqrt(1 - rho**2) * roots[:, j]
        r = self.link_parameter[self.module].astype(dtype)
        out = roots[:, self.module]
        out *= r
        scaled = np.multiply(cells, np.sqrt(1 - r * r), out=cells if cells.flags.writeable else None)
        out += scaled
        return ndtr(out, out=out)


def _hinv1_per_row(pv: Any, family: str, u: np.ndarray, parameter: np.ndarray) -> np.ndarray:
    """``h^-1`` of ``family`` at rows ``u`` (n, 2), each row with its own parameter (n, 1): one C++ call."""
    fam = getattr(pv.BicopFamily, family)
    try:
        return pv.Bicop(family=fam).hinv1(u, parameters=np.asfortranarray(parameter))
    except TypeError:  # pyvinecopulib < 1.0 has no per-row parameters: one call per distinct parameter
        out = np.empty(len(u))
        values, inverse = np.unique(parameter[:, 0], return_inverse=True)
        for j, value in enumerate(values):
            rows = inverse == j
            out[rows] = pv.Bicop(family=fam, parameters=np.array([[value]])).hinv1(np.asfortranarray(u[rows]))
        return out
