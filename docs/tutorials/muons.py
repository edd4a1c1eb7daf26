"""Paper 003: multi-TeV muon energy from the pbwo4 calorimeter, a tracker and their combination."""

import sys
from pathlib import Path

from calolab.studies.muons import MuonStudyConfig, run_muon_study

out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/tutorial-muons")
if __name__ == "__main__":  # the CNNs may train in worker processes
    metrics = run_muon_study(out, MuonStudyConfig.quick())  # MuonStudyConfig() for the full study
    headline = metrics["headline"]
    print(headline["regressor"], headline["crossover_gev"], "GeV crossover with the tracker")
