"""Papers 000/001: recover per-cell ageing coefficients of a damaged ahcal with every calibrator."""

import sys
from pathlib import Path

from calolab.studies.ageing import AgeingStudyConfig, run_ageing_study

out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/tutorial-ageing")
config = AgeingStudyConfig.quick()  # AgeingStudyConfig() for the papers' sizes
metrics = run_ageing_study(out, config)
for scenario, found in metrics["scenarios"].items():
    for method, score in found["methods"].items():
        print(f"{scenario:12s} {method:12s} MAE {score['mae']:.4f}")
