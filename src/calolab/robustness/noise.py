"""Per-cell, per-event noise behind a zero-suppression threshold, drawn sparsely and exactly.

The noise of paper 002 is ``eps = n (2B - 1)`` with ``B ~ Beta(2, 2)`` in every cell of
every event, hit or empty, correlated within sub-modules by the vine copula of
:mod:`calolab.effects.copula`: the cells of module ``m`` hang from a latent root ``V_m``
with a Gaussian pair copula, ``Z_c = r_m z_m + sqrt(1 - r_m^2) g_c`` in normal scores
(``z_m``, ``g_c`` independent N(0, 1)), ``B_c = F^-1(Phi(Z_c))`` with ``F`` the Beta(2, 2)
CDF. In ``cusi`` that is 187,500 cells x 20,000 events, but behind a threshold only the
empty cells the noise pushes above it survive, so only those are drawn:

1. Draw the module roots ``z`` (events x modules) and the noise of every hit cell.
2. Given its root, the cells of a module are independent, and an empty cell survives when
   ``B_c > b_cut`` (:meth:`RobustnessGrid.b_cut`), i.e. ``g_c > c_m = (Phi^-1(F(b_cut)) -
   r_m z_m) / sqrt(1 - r_m^2)``, with the analytic probability ``p_m = Phi(-c_m)``. The
   number of surviving empty cells of each (event, module) is drawn from
   ``Binomial(n_empty, p_m)``.
3. Their positions: a uniform subset of that size of the module's empty cells, by
   rejection (uniform cell draws; hits and cells already taken are redrawn), bookkept in
   64-bit words per (event, module); above half the empty cells the complement is drawn.
   Where ``p_m`` exceeds ``dense_above`` (10%) that bookkeeping costs more than it saves,
   and each empty cell of the module gets its own Bernoulli(``p_m``) trial instead: the
   same law (binomial count, uniform positions), one uniform per cell of the module,
   drawn in blocks of events in the flat cell order, so the output comes sorted.
4. Their values: ``g`` from the normal truncated to ``g > c_m`` by inversion,
   ``g = -Phi^-1(v p_m)`` with ``v`` uniform in (0, 1], then
   ``B = F^-1(Phi(r_m z_m + sqrt(1 - r_m^2) g))``.

Each step is exact, so the surviving cells and their values have the same joint law as
a dense draw followed by the threshold (the tests compare both), at a cost proportional
to the number of surviving cells. With the ``independent`` family ``r_m = 0`` and ``p``
is the Beta tail ``1 - F(b_cut)`` in every module.

>>> import numpy as np
>>> from calolab.effects.copula import CopulaConfig
>>> noise = SparseNoise(CopulaConfig(tau=(0.3, 0.3)), shape=(4, 6, 6), seed=1)
>>> rng = np.random.default_rng(0)
>>> roots = noise.roots(rng, 2)
>>> event, cell, b = noise.draw_empty(roots, np.array([0]), np.array([7]), b_cut=0.9, rng=rng)
>>> bool(np.all(b > 0.9)), bool(np.all(np.diff(event * 144 + cell) > 0)), 7 not in cell[event == 0]
(True, True, True)
"""

from __future__ import annotations

import math

import numpy as np

from calolab.effects.copula import CopulaConfig, SubmoduleCopula, beta22_ppf
from calolab.errors import CalolabError

SPARSE_FAMILIES = ("gaussian", "independent")


def beta22_cdf(x: float) -> float:
    """CDF of Beta(2, 2), ``3x^2 - 2x^3`` on [0, 1]."""
    x = min(max(float(x), 0.0), 1.0)
    return 3 * x**2 - 2 * x**3


def _popcount(words: np.ndarray) -> np.ndarray:
    """Set bits per row of a ``(rows, W)`` uint64 array, int64 ``(rows,)``."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(words).sum(axis=1, dtype=np.int64)
    table = np.array([bin(i).count("1") for i in range(256)], np.int64)  # numpy < 2.0
    return table[words.view(np.uint8)].sum(axis=1)


class SparseNoise:
    """The noise copula of a detector grid, sampled sparsely (see the module docstring).

    Parameters
    ----------
    copula
        Noise copula config (``gaussian`` or ``independent``), or a built
        :class:`~calolab.effects.copula.SubmoduleCopula` (shares its module taus).
    shape
        Detector grid ``(layers, nx, ny)``.
    seed
        Seed of the per-module Kendall taus (ignored when ``copula`` is built).
    dense_above
        Modules whose survival probability exceeds this are drawn cell by cell (step 3).
    """

    def __init__(self, copula: CopulaConfig | SubmoduleCopula, shape: tuple[int, int, int], seed: int = 0,
                 dense_above: float = 0.1) -> None:
        if not isinstance(copula, SubmoduleCopula):
            copula = SubmoduleCopula(copula, shape, seed)
        family = copula.config.family
        if family not in SPARSE_FAMILIES:
            raise CalolabError(f"noise copula family {family!r}: the sparse noise sampler supports "
                               f"{' and '.join(SPARSE_FAMILIES)}")
        self.copula = copula
        self.shape = tuple(shape)
        self.n_cells = copula.n_cells
        self.n_modules = copula.n_modules
        self.module = copula.module
        r = np.zeros(self.n_modules) if family == "independent" else np.asarray(copula.link_parameter, np.float64)
        self.r, self.s = r, np.sqrt(1 - r * r)
        self.between = math.sin(math.pi * copula.config.between_tau / 2) if family == "gaussian" else 0.0
        self.size = np.bincount(self.module, minlength=self.n_modules)
        order = np.argsort(self.module, kind="stable")  # cells grouped by module, flat order inside
        self.start = np.concatenate([[0], np.cumsum(self.size)])
        self.cells_by_module = order.astype(np.int64)
        self.local = np.empty(self.n_cells, np.int64)
        self.local[order] = np.arange(self.n_cells) - np.repeat(self.start[:-1], self.size)
        self.words = -(-int(self.size.max()) // 64)
        self.dense_above = float(dense_above)

    # ------------------------------------------------------------ draws
    def roots(self, rng: np.random.Generator, n_events: int) -> np.ndarray:
        """Module roots in normal scores, float64 ``(n_events, n_modules)`` (a Gaussian AR(1) along modules)."""
        z = rng.standard_normal((n_events, self.n_modules))
        if self.between:
            for j in range(1, self.n_modules):
                z[:, j] = self.between * z[:, j - 1] + math.sqrt(1 - self.between**2) * z[:, j]
        return z

    def draw_cells(self, roots: np.ndarray, event: np.ndarray, cell: np.ndarray,
                   rng: np.random.Generator) -> np.ndarray:
        """Noise ``B`` of given cells (e.g. the hit cells), unconditioned, float64 in [0, 1].

        ``event`` indexes the rows of ``roots``; ``cell`` is the flat cell index.
        """
        m = self.module[cell]
        z = self.r[m] * roots[event, m] + self.s[m] * rng.standard_normal(len(cell))
        return _b_from_normal(z)

    def draw_empty(self, roots: np.ndarray, hit_event: np.ndarray, hit_cell: np.ndarray, b_cut: float,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The empty cells whose noise ``B`` exceeds ``b_cut``, and that ``B``.

        Parameters
        ----------
        roots : (n_events, n_modules)
            From :meth:`roots`.
        hit_event, hit_cell : (n_hits,)
            Cells that are not empty (row of ``roots``, flat cell); unique per event.
        b_cut
            Threshold on ``B`` in [0, 1] terms: ``>= 1`` selects nothing, ``<= 0`` every empty cell.

        Returns
        -------
        event, cell : int64 (k,)
            Sorted by ``event * n_cells + cell``.
        b : float64 (k,)
            Noise variable of each, ``> b_cut``.
        """
        n, n_mod = roots.shape
        empty = np.zeros(0, np.int64)
        if b_cut >= 1 or n == 0:
            return empty, empty, np.zeros(0)
        hit_group = np.asarray(hit_event, np.int64) * n_mod + self.module[hit_cell]
        n_hit = np.bincount(hit_group, minlength=n * n_mod)
        n_empty = np.tile(self.size, n) - n_hit
        if b_cut <= 0:
            c = np.full(n * n_mod, -np.inf)
        else:
            z_cut = _ndtri(beta22_cdf(b_cut))
            c = ((z_cut - self.r * roots) / self.s).ravel()  # (n * n_mod,) cut on g in each module
        p = _ndtr(-c)
        dense = p > self.dense_above
        sparse = np.flatnonzero(~dense & (n_empty > 0))
        count = rng.binomial(n_empty[sparse], p[sparse])
        group = sparse[count > 0]
        key = np.zeros(0, np.int64)
        if len(group):
            key = np.sort(self._positions(group, count[count > 0], n_empty[group], hit_group, self.local[hit_cell],
                                          n_mod, rng))
        if dense.any():
            hit_key = np.asarray(hit_event, np.int64) * self.n_cells + hit_cell
            dense_key = self._bernoulli(np.where(dense, p, 0.0).reshape(n, n_mod), np.sort(hit_key), rng)
            key = np.sort(np.concatenate([dense_key, key]), kind="stable")  # two sorted runs: a merge
        if len(key) == 0:
            return empty, empty, np.zeros(0)
        event, cell = np.divmod(key, self.n_cells)
        m = self.module[cell]
        g_index = event * n_mod + m
        v = 1.0 - rng.random(len(key))  # (0, 1]
        g = -_ndtri(v * p[g_index])  # N(0, 1) truncated to g > c, by inversion of the upper tail
        b = _b_from_normal(self.r[m] * roots.ravel()[g_index] + self.s[m] * g)
        if b_cut > 0:
            np.maximum(b, np.nextafter(b_cut, 2.0), out=b)  # rounding at the cut
        return event, cell, b

    def _bernoulli(self, p: np.ndarray, hit_key: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Sorted keys of the cells that pass a Bernoulli trial with their module's ``p`` (n, n_modules); hits
        (sorted keys) never pass. Blocks of events in the flat cell layout, one uniform per cell."""
        n, n_cells = p.shape[0], self.n_cells
        block = max(1, (1 << 21) // n_cells)
        u = np.empty((min(block, n), n_cells))
        out = []
        for e0 in range(0, n, block):
            e1 = min(n, e0 + block)
            chance = np.take(p[e0:e1], self.module, axis=1)  # (events, n_cells), C order
            lo, hi = np.searchsorted(hit_key, [e0 * n_cells, e1 * n_cells])
            chance.ravel()[hit_key[lo:hi] - e0 * n_cells] = 0.0
            draw = u[: e1 - e0]
            rng.random(out=draw)
            out.append(np.flatnonzero(draw < chance) + e0 * n_cells)
        return np.concatenate(out)

    def _positions(self, group: np.ndarray, count: np.ndarray, n_empty: np.ndarray, hit_group: np.ndarray,
                   hit_local: np.ndarray, n_mod: int, rng: np.random.Generator) -> np.ndarray:
        """Keys ``event * n_cells + cell`` of a uniform ``count``-subset of each group's empty cells.

        ``group`` (sorted) are (event, module) numbers ``event * n_mod + module``. Cells are
        drawn uniformly from the module and kept when free, a round at a time, until each
        group has its count; the bits of taken cells (hits included) live in ``W`` uint64
        words per group, so repeated draws of one cell count once. The result is invariant
        under permutations of a group's empty cells and has the right size, hence uniform.
        """
        rows, w = len(group), self.words
        row_of = np.full(int(group[-1]) + 1, -1, np.int64)
        row_of[group] = np.arange(rows)
        inside = hit_group <= group[-1]
        hit_row = row_of[hit_group[inside]]
        mine = hit_row >= 0
        taken = np.zeros(rows * w, np.uint64)
        _set_bits(taken, hit_row[mine], hit_local[inside][mine], w)
        hits = taken.reshape(rows, w).copy()
        base = _popcount(hits)
        flip = 2 * count > n_empty  # draw the cells left out instead: at most half the empty cells
        target = np.where(flip, n_empty - count, count)
        need = target.copy()
        size = self.size[group % n_mod]
        same_size = bool(np.all(self.size == self.size[0]))
        active = np.flatnonzero(need > 0)
        while len(active):
            row = np.repeat(active, need[active])
            local = rng.integers(0, int(self.size[0]) if same_size else size[row], len(row))
            _set_bits(taken, row, local, w)
            need[active] = target[active] - (_popcount(taken.reshape(rows, w)[active]) - base[active])
            active = active[need[active] > 0]
        taken = taken.reshape(rows, w)
        chosen = np.where(flip[:, None], ~taken & self._valid_words(size), taken & ~hits)
        row, local = np.nonzero(np.unpackbits(chosen.view(np.uint8), axis=1, bitorder="little"))
        event, m = np.divmod(group[row], n_mod)
        return event * self.n_cells + self.cells_by_module[self.start[m] + local]

    def _valid_words(self, size: np.ndarray) -> np.ndarray:
        """Words with the bits of local indices ``< size`` set, uint64 ``(rows, W)``."""
        bits = np.arange(self.words * 64)[None, :] < size[:, None]
        return np.packbits(bits, axis=1, bitorder="little").view(np.uint64)


def _set_bits(words: np.ndarray, row: np.ndarray, local: np.ndarray, w: int) -> None:
    """Set bit ``local`` of group ``row`` in the flat ``(rows * w,)`` uint64 ``words``, repeats allowed."""
    local = np.asarray(local, np.int64)
    bit = np.left_shift(np.uint64(1), (local & 63).astype(np.uint64))
    np.bitwise_or.at(words, np.asarray(row, np.int64) * w + (local >> 6), bit)


def _b_from_normal(z: np.ndarray) -> np.ndarray:
    """``F^-1(Phi(z))``: a normal score to the Beta(2, 2) variable, in place."""
    from scipy.special import ndtr

    u = ndtr(z, out=z)
    return beta22_ppf(u, out=u)


def _ndtr(x):
    from scipy.special import ndtr

    return ndtr(x)


def _ndtri(x):
    from scipy.special import ndtri

    return ndtri(x)
