"""Evaluation of generative shower models against the simulator (CaloChallenge vocabulary).

High-level observables per event (:mod:`~calolab.evaluation.features`), their histograms,
separation power and Wasserstein-1 distances (:mod:`~calolab.evaluation.distances`),
classifier AUC and JSD on high- and low-level inputs (:mod:`~calolab.evaluation.classifier`),
FPD and KPD (:mod:`~calolab.evaluation.physics_distances`), and the report with the
simulator-against-simulator floor beside every number (:mod:`~calolab.evaluation.report`).

scikit-learn (the ``ml`` extra) is needed for the classifiers only; matplotlib for the figures.
"""

from calolab.evaluation.classifier import ClassifierResult, classifier_test
from calolab.evaluation.distances import (
    ObservableComparison,
    compare_observable,
    quantile_edges,
    separation_power,
    standardised_w1,
)
from calolab.evaluation.features import HighLevelFeatures, check_compatible, high_level_features, low_level_inputs
from calolab.evaluation.physics_distances import DistanceEstimate, fpd, frechet_distance, kpd, mmd2_unbiased
from calolab.evaluation.report import Comparison, EvaluationConfig, compare, evaluate, format_table

__all__ = [
    "ClassifierResult",
    "Comparison",
    "DistanceEstimate",
    "EvaluationConfig",
    "HighLevelFeatures",
    "ObservableComparison",
    "check_compatible",
    "classifier_test",
    "compare",
    "compare_observable",
    "evaluate",
    "format_table",
    "fpd",
    "frechet_distance",
    "high_level_features",
    "kpd",
    "low_level_inputs",
    "mmd2_unbiased",
    "quantile_edges",
    "separation_power",
    "standardised_w1",
]
