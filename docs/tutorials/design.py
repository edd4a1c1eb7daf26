"""Paper 004: optimise the siw-ecal tungsten layout through the differentiable surrogate."""

import sys
from pathlib import Path

from calolab.studies.design import DesignStudyConfig, run_design_study

out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/tutorial-design")
metrics = run_design_study(out, DesignStudyConfig.quick())  # DesignStudyConfig() for the full study
print(metrics["optimised_vs_prototype"]["statement"], metrics["optimised_vs_prototype"]["objective_diff_z"])
