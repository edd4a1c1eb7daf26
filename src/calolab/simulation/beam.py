"""Beams: particle, energy spectrum, beam spot and incidence angle.

>>> import numpy as np
>>> beam = Beam(particle="e-", energy=10e3)
>>> e, entry, direction = beam.sample(3, np.random.default_rng(1))
>>> e.tolist(), direction[0].tolist()
([10000.0, 10000.0, 10000.0], [0.0, 0.0, 1.0])
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from calolab.errors import CalolabError
from calolab.showers import particle_code

SPECTRA = ("fixed", "uniform", "log-uniform")


@dataclass(frozen=True)
class Beam:
    """A beam of one particle type.

    Parameters
    ----------
    particle
        ``e-``, ``e+``, ``gamma``, ``pi+``, ``pi-``, ``mu-`` or ``mu+``.
    energy
        Fixed energy in MeV (``spectrum="fixed"``).
    energy_min, energy_max
        Range in MeV for ``spectrum="uniform"`` or ``"log-uniform"``.
    spot_sigma
        Gaussian beam-spot width in mm (x and y).
    position
        Beam centre (x, y) on the front face in mm.
    theta, phi
        Incidence angle to the z axis and its azimuth, in degrees.
    energy_spread
        Relative Gaussian spread of the beam momentum (sigma_E / E, e.g. 0.005 for a
        test-beam line), applied on top of the spectrum; 0 for none.
    """

    particle: str = "e-"
    energy: float | None = None
    energy_min: float | None = None
    energy_max: float | None = None
    spectrum: str = "fixed"
    spot_sigma: float = 0.0
    position: tuple[float, float] = (0.0, 0.0)
    theta: float = 0.0
    phi: float = 0.0
    energy_spread: float = 0.0

    def __post_init__(self) -> None:
        particle_code(self.particle)
        if self.spectrum not in SPECTRA:
            raise CalolabError(f"unknown spectrum {self.spectrum!r}: expected one of {', '.join(SPECTRA)}")
        if self.spectrum == "fixed":
            if self.energy is None or not self.energy > 0:
                raise CalolabError(f"a fixed-energy beam needs a positive energy, got {self.energy!r}")
        elif not (self.energy_min and self.energy_max and 0 < self.energy_min < self.energy_max):
            raise CalolabError(f"a {self.spectrum} beam needs 0 < energy_min < energy_max")
        if not 0 <= self.theta < 80:
            raise CalolabError(f"incidence angle theta must be in [0, 80) degrees, got {self.theta}")
        if not 0 <= self.energy_spread < 0.2:
            raise CalolabError(f"relative energy spread must be in [0, 0.2), got {self.energy_spread}")
        if self.spot_sigma < 0:
            raise CalolabError(f"beam spot sigma must be >= 0 mm, got {self.spot_sigma}")

    @property
    def pdg(self) -> int:
        return particle_code(self.particle)

    def to_dict(self) -> dict:
        return {**asdict(self), "position": list(self.position)}

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Draw ``n`` incident energies (MeV, (n,)), entry points (mm, (n, 2)) and directions ((n, 3))."""
        if self.spectrum == "fixed":
            energy = np.full(n, float(self.energy))
        elif self.spectrum == "uniform":
            energy = rng.uniform(self.energy_min, self.energy_max, n)
        else:
            energy = np.exp(rng.uniform(math.log(self.energy_min), math.log(self.energy_max), n))
        entry = np.asarray(self.position, float) + self.spot_sigma * rng.standard_normal((n, 2))
        if self.energy_spread > 0:  # drawn after the spot, so that a beam without spread keeps its bits
            energy = energy * np.maximum(1.0 + self.energy_spread * rng.standard_normal(n), 1e-3)
        th, ph = math.radians(self.theta), math.radians(self.phi)
        direction = np.tile([math.sin(th) * math.cos(ph), math.sin(th) * math.sin(ph), math.cos(th)], (n, 1))
        return energy, entry, direction
