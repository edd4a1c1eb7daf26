"""Detector design: a differentiable resolution surrogate and absorber-layout optimisation (paper 004).

torch is needed (``pip install 'calolab[ml]'``); the CLI command imports this package only
when it runs.
"""

from calolab.design.optimise import OptimiseConfig, OptimiseResult, optimise_layout, thickness_from_logits
from calolab.design.surrogate import Moments, ResolutionSurrogate, fit_terms

__all__ = ["Moments", "OptimiseConfig", "OptimiseResult", "ResolutionSurrogate", "fit_terms", "optimise_layout",
           "thickness_from_logits"]
