"""Detector geometry: materials, layers, presets and YAML detectors."""

from calolab.geometry.detector import Detector
from calolab.geometry.layer import Layer, Readout, Slab
from calolab.geometry.materials import MATERIALS, Material, get_material
from calolab.geometry.presets import load_detector, preset_names

__all__ = ["MATERIALS", "Detector", "Layer", "Material", "Readout", "Slab", "get_material", "load_detector",
           "preset_names"]
