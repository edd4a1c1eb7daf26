"""Paper 002: a CNN ensemble against trees and sums on cusi pions, zero-suppressed at 0.6 MeV."""

import sys
from pathlib import Path

from calolab.studies.pions import PionStudyConfig, run_pion_study

out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/tutorial-pions")
if __name__ == "__main__":  # the CNNs may train in worker processes
    metrics = run_pion_study(out, PionStudyConfig.quick())  # PionStudyConfig() for the full study
    print(metrics["headline"]["cnn_vs_sum"]["statement"], metrics["headline"]["cnn_vs_sum"]["improvement"])
