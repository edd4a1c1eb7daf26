"""The interface every energy regressor in calolab follows.

A regressor maps a batch of showers to one energy estimate per event, in MeV. The sums,
the trees and the CNN ensembles all follow it, so that the studies (pion and muon
resolution, robustness to miscalibration) treat them alike.

>>> import numpy as np
>>> from calolab.reconstruction.regressor import Regressor
>>> class Doubler:
...     name = "doubler"
...     def predict(self, showers):
...         return 2.0 * showers.energy_sum()
>>> isinstance(Doubler(), Regressor)
True
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from calolab.showers import Showers


@runtime_checkable
class Regressor(Protocol):
    """Something that estimates the incident energy of each event.

    Attributes
    ----------
    name : str
        Short label used in tables and plots (``"sum"``, ``"trees"``, ``"cnn"``).
    """

    name: str

    def predict(self, showers: Showers) -> np.ndarray:
        """Estimated incident energy per event, MeV, float64 (N,)."""
        ...
