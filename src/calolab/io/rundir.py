"""Run folders: every study writes its config, metrics and figures into one folder.

The helpers write plain JSON/YAML (NumPy arrays and scalars become lists and numbers) and
figures (PDF or PNG, by the file's extension), each atomically (see :mod:`calolab.io.atomic`).
:func:`write_config` writes ``config.yaml`` together with ``provenance.json``: the command
line that made the run and the git commit of the calolab code that ran it, which
``calolab report`` names beside the run's results.

>>> import json, tempfile
>>> out = Path(tempfile.mkdtemp())
>>> sorted(p.name for p in write_config(out, {"seed": 1}).parent.iterdir())
['config.yaml', 'provenance.json']
>>> sorted(json.loads((out / PROVENANCE).read_text()))
['argv', 'calolab', 'command', 'commit', 'python']
"""

from __future__ import annotations

import json
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from calolab.errors import CalolabError
from calolab.io.atomic import atomic_path


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def write_json(path: Path, data: dict) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_plain(data), indent=2))
    return path


def write_yaml(path: Path, data: dict) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(_plain(data), sort_keys=False))
    return path


CONFIG = "config.yaml"
PROVENANCE = "provenance.json"
FIGURE_FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg"}


def git_commit(where: str | Path | None = None) -> str:
    """``git rev-parse HEAD`` of the checkout holding ``where`` (default: the calolab code), else ``"unknown"``.

    A checkout with uncommitted changes to tracked files gets ``-dirty`` appended.
    """
    where = Path(where) if where is not None else Path(__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=where, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return "unknown"
    return commit + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def provenance(argv: list[str] | None = None) -> dict[str, Any]:
    """What made a run: the command line (``sys.argv``), the calolab commit and version, Python."""
    from calolab import __version__

    argv = list(sys.argv if argv is None else argv)
    program = "python -c" if argv and argv[0] == "-c" else Path(argv[0]).name if argv else ""
    shown = [program, *argv[1:]] if argv else []
    command = shlex.join(shown).replace("'python -c'", "python -c", 1)
    return {"command": command, "argv": argv, "commit": git_commit(), "calolab": __version__,
            "python": platform.python_version()}


def write_config(out: str | Path, config: dict, argv: list[str] | None = None) -> Path:
    """Write ``config`` as ``out/config.yaml`` and :func:`provenance` as ``out/provenance.json``; returns the YAML."""
    out = Path(out)
    write_json(out / PROVENANCE, provenance(argv))
    return write_yaml(out / CONFIG, config)


def save_figure(fig, path: Path) -> Path:
    """Save a matplotlib figure atomically, as PDF, PNG or SVG by ``path``'s extension, and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    fmt = FIGURE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise CalolabError(f"{path}: unknown figure format; expected {', '.join(FIGURE_FORMATS)}")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format=fmt)
    plt.close(fig)
    return path
