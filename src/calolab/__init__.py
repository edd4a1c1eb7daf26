"""calolab: machine learning on highly granular calorimeters.

Units everywhere: energies in MeV, lengths in mm; cells are indexed (layer, x, y).

>>> import calolab
>>> det = calolab.load_detector("siw-ecal")
>>> det.shape
(15, 32, 32)
"""

from calolab.errors import CalolabError
from calolab.geometry import Detector, Layer, load_detector, preset_names
from calolab.showers import Showers

__version__ = "0.1.0"

__all__ = [
    "CalolabError",
    "Detector",
    "Layer",
    "Showers",
    "__version__",
    "load_detector",
    "preset_names",
    "simulate",
]


def simulate(*args, **kwargs):
    """Simulate showers; see :func:`calolab.simulation.simulate`."""
    from calolab.simulation import simulate as _simulate

    return _simulate(*args, **kwargs)
