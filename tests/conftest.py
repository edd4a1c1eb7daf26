import pytest

from calolab.geometry import Detector


@pytest.fixture
def small_detector() -> Detector:
    """A small Fe/scintillator stack: 6 layers x 8 x 8 cells of 20 mm."""
    return Detector.from_dict({
        "name": "small", "cells": {"nx": 8, "ny": 8, "pitch": 20.0},
        "layers": [{"absorber": "Fe", "absorber_thickness": 20, "active": "Scintillator",
                    "active_thickness": 5, "repeat": 6}],
    })
