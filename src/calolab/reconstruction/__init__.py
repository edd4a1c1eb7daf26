"""Energy reconstruction: calibrated sums, features, baseline regressors, response calibration, metrics.

Heavy libraries (scikit-learn, matplotlib) are imported inside the functions that use them.
"""

from calolab.reconstruction.baselines import (
    CompensationRegressor,
    LayerWeightedRegressor,
    SumRegressor,
    TreesRegressor,
    density_sums,
    load_regressor,
    save_regressor,
)
from calolab.reconstruction.features import feature_names, high_level_features, segment_sums
from calolab.reconstruction.metrics import (
    ResolutionFit,
    ResolutionTable,
    binned_metrics,
    combine_estimates,
    combined_resolution,
    crossover_energy,
    fit_resolution,
    tracker_resolution,
)
from calolab.reconstruction.muon_features import muon_feature_names, muon_features
from calolab.reconstruction.regressor import Regressor
from calolab.reconstruction.response import ResponseCalibration
from calolab.reconstruction.sums import layer_weights, weighted_sum

__all__ = [
    "CompensationRegressor",
    "LayerWeightedRegressor",
    "Regressor",
    "ResolutionFit",
    "ResolutionTable",
    "ResponseCalibration",
    "SumRegressor",
    "TreesRegressor",
    "binned_metrics",
    "combine_estimates",
    "combined_resolution",
    "crossover_energy",
    "density_sums",
    "feature_names",
    "fit_resolution",
    "high_level_features",
    "layer_weights",
    "load_regressor",
    "muon_feature_names",
    "muon_features",
    "save_regressor",
    "segment_sums",
    "tracker_resolution",
    "weighted_sum",
]
