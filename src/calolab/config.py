"""Config helpers every component shares: command-line overrides and the unknown-field check.

A configurable component is a frozen dataclass (see :mod:`calolab.effects.config` for
building one from YAML). Commands apply their options with :func:`with_overrides`, where an
option left out (``None``) keeps the config's value; readers of mappings reject fields the
config does not have with :func:`check_fields`. Imports are stdlib only, so that the CLI
stays fast.

>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Run:
...     events: int = 100
...     seed: int = 0
>>> with_overrides(Run(), events=None, seed=3)
Run(events=100, seed=3)
>>> check_fields({"events": 10, "colour": "red"}, {"events", "seed"}, "run config")
Traceback (most recent call last):
...
calolab.errors.CalolabError: run config: unknown field 'colour'; expected some of events, seed
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any, TypeVar

from calolab.errors import CalolabError

T = TypeVar("T")


def with_overrides(config: T, **overrides: Any) -> T:
    """``config`` (a dataclass) with the non-None ``overrides`` applied; ``None`` keeps the value."""
    return dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})


def check_fields(mapping: Iterable[str], known: Iterable[str], where: str) -> None:
    """Raise :class:`~calolab.errors.CalolabError` naming the first (sorted) key of ``mapping`` not in ``known``.

    The message reads ``{where}: unknown field 'x'; expected some of a, b, c``.
    """
    known = set(known)
    unknown = sorted(set(mapping) - known)
    if unknown:
        raise CalolabError(f"{where}: unknown field {unknown[0]!r}; expected some of {', '.join(sorted(known))}")
