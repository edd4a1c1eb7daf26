"""Validation of the simulator against published measurements (``calolab validate``).

Each physics module provides ``run(out_dir, scale, seed) -> list[Check]``: it simulates,
compares with the references of ``physics.md`` and writes its plots into ``out_dir``.
Resolution curves are fitted with :func:`calolab.reconstruction.metrics.fit_resolution`.
"""

from calolab.validation.core import Check, gaussian_core, linearity_fit

__all__ = ["Check", "gaussian_core", "linearity_fit"]
