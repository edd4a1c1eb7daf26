"""The scan grid of paper 002 (Table 1): calibration scale x noise scale x bias, and its units.

Every cell ``i`` of every event ``j`` reads ``E~ = C_i E_ij + u + eps_ij`` with
``C = 1 + s (2B - 1)`` and ``eps = n (2B' - 1)``, ``B, B' ~ Beta(2, 2)`` (paper 002,
equations 1.1-1.3), and readings at or below the zero-suppression threshold ``t`` are
dropped. The grid scans ``s`` (dimensionless), ``n`` and ``u``; ``n``, ``u`` and ``t`` are
in the grid's ``units``:

- ``MeV`` (the paper's choice and the default): the same numbers in every layer.
- ``MIP``: multiples of each layer's most probable MIP signal (``Detector.mip_mpv``). In
  ``cusi`` (2 mm Si per cell) a MIP leaves 0.63 MeV, so the two grids nearly agree there, as
  paper 002 intends ("0.6 MeV ... roughly the energy deposited by a single MIP"); in a
  detector with thinner silicon the MeV grid would remove most signal hits and, for
  ``n + u > t``, fill many empty cells with noise, while the MIP grid keeps the paper's
  numbers relative to the signal.

Table 1 lists the noise scale ``0.1`` twice; it is read as ``0, 0.1, 0.2, 0.3, 0.4, 0.5,
1.0, 1.5`` (the second 0.1 taken as 0.2), which gives the stated 5 x 8 x 3 = 120 points.

>>> grid = RobustnessGrid()
>>> len(grid.points()), grid.points()[1]
(120, GridPoint(index=1, calibration_scale=0.0, noise_scale=0.0, bias=-0.15))
>>> grid.b_cut(1.5, 0.15)  # noise B above 0.65 pushes an empty cell over 0.6 MeV
0.65
>>> [grid.crosses(n, 0.15) for n in (0.4, 0.5, 1.0)]  # can noise + bias exceed the threshold?
[False, True, True]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from calolab.effects.config import check_range
from calolab.errors import CalolabError
from calolab.geometry import Detector

UNITS = ("MeV", "MIP")
PAPER_CALIBRATION_SCALES = (0.0, 0.15, 0.2, 0.25, 0.3)
PAPER_NOISE_SCALES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 1.0, 1.5)  # Table 1 prints 0.1 twice: the second read as 0.2
PAPER_BIASES = (0.0, -0.15, 0.15)
PAPER_THRESHOLD = 0.6


class GridPoint(NamedTuple):
    """One point of the scan: ``s`` (dimensionless), ``n`` and ``u`` in the grid's units."""

    index: int
    calibration_scale: float
    noise_scale: float
    bias: float


@dataclass(frozen=True)
class RobustnessGrid:
    """The parameters scanned, the zero-suppression threshold and the unit of noise, bias and threshold.

    Parameters
    ----------
    calibration_scales
        ``s``: the miscalibration ``C`` spans ``[1 - s, 1 + s]``; each in [0, 1).
    noise_scales
        ``n`` >= 0: the noise spans ``[-n, n]`` (in ``units``).
    biases
        ``u``: added to every cell (in ``units``).
    zero_suppression
        ``t`` >= 0: readings ``<= t`` (in ``units``) are dropped.
    units
        ``MeV``, or ``MIP`` for multiples of each layer's most probable MIP signal.

    Points are numbered with the calibration scale slowest and the bias fastest, in the
    order given (Table 1's order by default).
    """

    calibration_scales: tuple[float, ...] = PAPER_CALIBRATION_SCALES
    noise_scales: tuple[float, ...] = PAPER_NOISE_SCALES
    biases: tuple[float, ...] = PAPER_BIASES
    zero_suppression: float = PAPER_THRESHOLD
    units: str = "MeV"

    def __post_init__(self) -> None:
        for name in ("calibration_scales", "noise_scales", "biases"):
            values = getattr(self, name)
            if not values:
                raise CalolabError(f"robustness grid: {name} must list at least one value")
            if len(set(values)) != len(values):
                raise CalolabError(f"robustness grid: {name} has repeated values {list(values)}")
        for s in self.calibration_scales:
            check_range("robustness grid: calibration scale", s, 0.0, 1.0, high_open=True)
        for n in self.noise_scales:
            check_range("robustness grid: noise scale", n, 0.0)
        for u in self.biases:
            check_range("robustness grid: bias", u)
        check_range("robustness grid: zero-suppression threshold", self.zero_suppression, 0.0)
        if self.units not in UNITS:
            raise CalolabError(f"robustness grid: units {self.units!r}: expected MeV or MIP")

    @classmethod
    def quick(cls, units: str = "MeV") -> RobustnessGrid:
        """2 x 3 x 2 points for tests: no noise, noise below and above the threshold, bias 0 and 0.15."""
        return cls((0.0, 0.3), (0.0, 0.4, 1.0), (0.0, 0.15), units=units)

    def points(self) -> list[GridPoint]:
        """All points, calibration scale slowest, bias fastest."""
        out = []
        for s in self.calibration_scales:
            for n in self.noise_scales:
                for u in self.biases:
                    out.append(GridPoint(len(out), float(s), float(n), float(u)))
        return out

    def pairs(self) -> list[tuple[float, float]]:
        """The (noise scale, bias) pairs, in point order; each is shared by every calibration scale."""
        return [(float(n), float(u)) for n in self.noise_scales for u in self.biases]

    def crosses(self, noise_scale: float, bias: float) -> bool:
        """Whether noise and bias can push an empty cell above the threshold (``n + u > t``)."""
        return noise_scale + bias > self.zero_suppression

    def b_cut(self, noise_scale: float, bias: float) -> float:
        """The noise variable ``B'`` above which an empty cell survives: ``u + n (2B' - 1) > t``.

        ``>= 1``: no empty cell survives; ``<= 0``: all do (``-inf`` / ``inf`` without noise).
        """
        if noise_scale == 0:
            return -math.inf if bias > self.zero_suppression else math.inf
        return ((self.zero_suppression - bias) / noise_scale + 1) / 2

    def unit_mev(self, detector: Detector) -> np.ndarray:
        """MeV per grid unit in each layer, float64 ``(layers,)``: 1, or the layer's MIP peak."""
        if self.units == "MeV":
            return np.ones(detector.n_layers)
        return np.asarray(detector.mip_mpv, np.float64)


def empty_cell_occupancy(grid: RobustnessGrid, noise_scale: float, bias: float) -> float:
    """Probability that an empty cell survives zero suppression, ``P(u + n (2B - 1) > t)``, B ~ Beta(2, 2).

    Without correlations this is the fraction of empty cells that noise fills; the same in every
    unit, since ``n``, ``u`` and ``t`` scale together.
    """
    from calolab.effects.miscalibration import DistortionConfig, noise_occupancy

    config = DistortionConfig(noise_scale=noise_scale, bias=bias, zero_suppression=grid.zero_suppression)
    return noise_occupancy(config)
