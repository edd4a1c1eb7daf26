"""Reading a YAML file a user wrote: a missing file or bad YAML is a one-line error naming it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from calolab.errors import CalolabError


def read_yaml(path: str | Path, what: str) -> Any:
    """The parsed content of ``path``; ``what`` names the kind of file in errors (e.g. ``detector``)."""
    import yaml

    path = Path(path)
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise CalolabError(f"{path}: no such {what} file") from None
    except yaml.YAMLError as exc:
        raise CalolabError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
