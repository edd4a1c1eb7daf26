"""Validation of the simulator against published measurements (``calolab validate``).

Each physics module provides ``run(out_dir, scale, seed) -> list[Check]``: it simulates,
compares with the references of ``physics.md`` and writes its plots into ``out_dir``.
"""

from calolab.validation.core import (
    Check,
    fit_resolution,
    gaussian_core,
    linearity_fit,
    resolution_model,
)

__all__ = ["Check", "fit_resolution", "gaussian_core", "linearity_fit", "resolution_model"]
