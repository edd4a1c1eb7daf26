"""Detector geometry: materials, layers, presets and YAML detectors."""

from calolab.geometry.cylinder import CylindricalGrid, calochallenge_detector
from calolab.geometry.detector import Detector
from calolab.geometry.layer import Layer, Readout, Slab
from calolab.geometry.materials import MATERIALS, Material, get_material
from calolab.geometry.presets import load_detector, preset_names

__all__ = ["MATERIALS", "CylindricalGrid", "Detector", "Layer", "Material", "Readout", "Slab",
           "calochallenge_detector", "get_material", "load_detector", "preset_names"]
