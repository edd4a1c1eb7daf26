"""Energy reconstruction: calibrated sums (and, later, learned regressors)."""

from calolab.reconstruction.sums import layer_weights, weighted_sum

__all__ = ["layer_weights", "weighted_sum"]
