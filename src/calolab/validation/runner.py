"""Run every validation module, print the checks and write a run folder."""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Callable
from pathlib import Path

from calolab.io.atomic import atomic_path
from calolab.io.rundir import write_config
from calolab.validation.core import Check, kind_counts

MODULES = ("em", "em_testbeams", "hadron", "muon")


def run_validation(out_dir: str | Path, scale: float = 1.0, seed: int = 1, only: tuple[str, ...] = MODULES,
                   echo: Callable[[str], None] = print) -> list[Check]:
    """Simulate, compare with published numbers, and write ``checks.json`` and plots into ``out_dir``.

    ``checks.json`` holds every check (with its ``kind``), the counts that agree (``passed``,
    ``failed``) and the same per kind (``by_kind``: predictions and calibrations apart).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    checks: list[Check] = []
    timing = {}
    for name in only:
        module = importlib.import_module(f"calolab.validation.{name}")
        start = time.perf_counter()
        found = module.run(out, scale=scale, seed=seed)
        timing[name] = time.perf_counter() - start
        for check in found:
            echo(check.line())
        checks.extend(found)
    report = {
        "config": {"scale": scale, "seed": seed, "modules": list(only)},
        "seconds": timing,
        "passed": sum(c.passed for c in checks),
        "failed": sum(not c.passed for c in checks),
        "by_kind": kind_counts(checks),
        "checks": [c.to_dict() for c in checks],
    }
    with atomic_path(out / "checks.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2))
    write_config(out, report["config"])
    return checks
