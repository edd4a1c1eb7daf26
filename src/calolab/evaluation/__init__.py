"""Evaluation of generative shower models against the simulator (CaloChallenge vocabulary).

High-level observables per event (:mod:`~calolab.evaluation.features`), their histograms,
separation power and Wasserstein-1 distances (:mod:`~calolab.evaluation.distances`),
classifier AUC and JSD on high- and low-level inputs (:mod:`~calolab.evaluation.classifier`),
FPD and KPD (:mod:`~calolab.evaluation.physics_distances`), and the report with the
simulator-against-simulator floor beside every number (:mod:`~calolab.evaluation.report`).
On cylindrical detectors, CaloChallenge's own metrics as its ``evaluate.py`` computes them
(:mod:`~calolab.evaluation.calochallenge`, with
:mod:`~calolab.evaluation.calochallenge_classifier` and :mod:`~calolab.evaluation.jetnet_distances`).

scikit-learn (the ``ml`` extra) is needed for the classifiers only, and torch for CaloChallenge's;
matplotlib for the figures.
"""

from calolab.evaluation.calochallenge import (
    CaloChallengeConfig,
    ChallengeFeatures,
    ChallengeSample,
    calochallenge_metrics,
    challenge_features,
    challenge_sample,
)
from calolab.evaluation.calochallenge_classifier import DNNRecipe, DNNResult, dnn_classifier_test
from calolab.evaluation.classifier import ClassifierResult, classifier_test
from calolab.evaluation.distances import (
    ObservableComparison,
    compare_observable,
    quantile_edges,
    separation_power,
    standardised_w1,
)
from calolab.evaluation.features import HighLevelFeatures, check_compatible, high_level_features, low_level_inputs
from calolab.evaluation.jetnet_distances import fpd_jetnet, kpd_jetnet
from calolab.evaluation.physics_distances import DistanceEstimate, fpd, frechet_distance, kpd, mmd2_unbiased
from calolab.evaluation.report import Comparison, EvaluationConfig, compare, evaluate, format_table

__all__ = [
    "CaloChallengeConfig",
    "ChallengeFeatures",
    "ChallengeSample",
    "ClassifierResult",
    "Comparison",
    "DNNRecipe",
    "DNNResult",
    "DistanceEstimate",
    "EvaluationConfig",
    "HighLevelFeatures",
    "ObservableComparison",
    "calochallenge_metrics",
    "challenge_features",
    "challenge_sample",
    "check_compatible",
    "classifier_test",
    "compare",
    "compare_observable",
    "dnn_classifier_test",
    "evaluate",
    "format_table",
    "fpd",
    "fpd_jetnet",
    "frechet_distance",
    "high_level_features",
    "kpd",
    "kpd_jetnet",
    "low_level_inputs",
    "mmd2_unbiased",
    "quantile_edges",
    "separation_power",
    "standardised_w1",
]
