"""The ageing study end to end in its quick mode, through the CLI."""

import json
import subprocess
import sys

import yaml


def test_quick_ageing_study_writes_a_complete_run_folder(tmp_path):
    out = tmp_path / "ageing"
    cmd = [sys.executable, "-c", "from calolab.cli import main; main()", "study", "ageing", "--quick",
           "--methods", "moments,quantile,mip,hierarchical", "--repeats", "3", "-o", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["events"] == 1000 and config["seed"] == 1
    metrics = json.loads((out / "metrics.json").read_text())
    linear = metrics["scenarios"]["linear"]
    assert linear["start_mae"] > 0.01
    # the hierarchical model beats the per-cell baselines and leaves the data better than it found them
    maes = {m: linear["methods"][m]["mae"] for m in ("moments", "quantile", "mip", "hierarchical")}
    assert maes["hierarchical"] < min(maes["moments"], maes["quantile"], maes["mip"])
    assert maes["hierarchical"] < 0.7 * linear["start_mae"]
    assert linear["scan"]["events"] == [100, 300, 1000]
    # the draw-to-draw spread is reported with its worst draw, not only the mean
    draws = linear["repeats"]["hierarchical"]
    assert linear["repeats"]["repeats"] == 3 and len(draws["mae"]) == 3
    assert draws["mae_worst"] == max(draws["mae"]) and min(draws["mae"]) <= draws["mae_median"] <= draws["mae_worst"]
    assert "MAE worst" in (out / "table.md").read_text()
    # the energy scale, which the MAE hides: the correction brings the damaged sum back towards the reference
    scale = linear["methods"]["hierarchical"]["energy_scale"]
    assert scale["sum_ratio_damaged"] < scale["sum_ratio_corrected"] <= 1.02
    assert scale["response_damaged"] < scale["response_corrected"] and scale["dead_cells_true"] > 0
    assert "E-weighted response" in (out / "table.md").read_text()
    assert set(metrics["scenarios"]) == {"linear", "exponential-spread-dead"}
    for figure in ("mae_vs_events.png", "predicted_vs_true.png", "energy_sums.png", "pulls.png"):
        assert (out / figure).read_bytes()[:4] == b"\x89PNG"
    assert "| hierarchical |" in (out / "table.md").read_text()
