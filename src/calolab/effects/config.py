"""Frozen-dataclass configs of the detector effects: from and to plain dicts and YAML, and seeds.

Every effect is configured by a frozen dataclass whose fields are numbers, strings,
tuples or other such dataclasses. :func:`config_from_dict` builds one from a dict (read
from YAML or from a file's ``meta``), rejecting unknown or mistyped fields with a one-line
:class:`~calolab.errors.CalolabError`; :func:`config_to_dict` is its inverse.

>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Toy:
...     scale: float = 1.0
...     block: tuple[int, int] = (2, 2)
>>> config_from_dict(Toy, {"scale": 3, "block": [4, 4]})
Toy(scale=3.0, block=(4, 4))
>>> config_to_dict(Toy())
{'scale': 1.0, 'block': [2, 2]}
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from calolab.config import check_fields
from calolab.errors import CalolabError

T = TypeVar("T")
Seed = int | np.random.Generator | None
"""A seed: an integer, a :class:`numpy.random.Generator` (an integer seed is drawn from it) or ``None``."""


def config_from_dict(cls: type[T], spec: dict[str, Any] | None, where: str | None = None) -> T:
    """Build the frozen dataclass ``cls`` from ``spec``; missing fields take their defaults."""
    where = where or cls.__name__
    spec = {} if spec is None else spec
    if not isinstance(spec, dict):
        raise CalolabError(f"{where}: expected a mapping, got {spec!r}")
    hints = typing.get_type_hints(cls)
    check_fields(spec, (f.name for f in dataclasses.fields(cls)), where)  # type: ignore[arg-type]
    values = {key: _coerce(hints[key], value, f"{where}.{key}") for key, value in spec.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise CalolabError(f"{where}: {exc}") from None


def config_to_dict(config: Any) -> dict[str, Any]:
    """A plain dict (YAML/JSON-able: tuples become lists) of a config dataclass."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        out[f.name] = _plain(getattr(config, f.name))
    return out


def load_spec(path: str | Path) -> dict[str, Any]:
    """The config mapping in a YAML file: the file itself, or its ``config`` entry (a :func:`write_record`)."""
    from calolab.yamlfile import read_yaml

    path = Path(path)
    spec = read_yaml(path, "config")
    if isinstance(spec, dict) and isinstance(spec.get("config"), dict):
        spec = spec["config"]
    if not isinstance(spec, dict):
        raise CalolabError(f"{path}: expected a mapping of config fields")
    return spec


def load_config(cls: type[T], path: str | Path) -> T:
    """Read a config of type ``cls`` from a YAML file (see :func:`load_spec`)."""
    return config_from_dict(cls, load_spec(path), where=str(path))


def write_record(path: str | Path, effect: str, config: Any, seed: int, **extra: Any) -> Path:
    """Write ``{effect, seed, config, ...}`` as YAML to ``path``, atomically; :func:`load_config` reads it."""
    import yaml

    from calolab.io import atomic_path

    record = {"effect": effect, "seed": int(seed), **{k: _plain(v) for k, v in extra.items()},
              "config": config_to_dict(config)}
    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(record, sort_keys=False))
    return Path(path)


def resolve_seed(seed: Seed) -> int:
    """An integer seed: ``seed`` itself, one drawn from a Generator, or a fresh random one for ``None``."""
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(2**63))
    if seed is None:
        return int(np.random.SeedSequence().generate_state(2, np.uint64)[0] >> np.uint64(1))
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise CalolabError(f"seed must be a non-negative integer or a numpy Generator, got {seed!r}")
    return int(seed)


def rng_for(seed: int, *key: int) -> np.random.Generator:
    """An independent Generator for the stream ``key`` of ``seed`` (e.g. one per purpose, per event)."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


def check_range(where: str, value: float, low: float = -math.inf, high: float = math.inf,
                low_open: bool = False, high_open: bool = False) -> None:
    """Raise a :class:`CalolabError` unless ``value`` is finite and in the given interval."""
    bad = (not math.isfinite(value) or value < low or value > high
           or (low_open and value == low) or (high_open and value == high))
    if bad:
        lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
        raise CalolabError(f"{where} must be in {lo}{low:g}, {high:g}{hi}, got {value!r}")


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return config_to_dict(value)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _coerce(hint: Any, value: Any, where: str) -> Any:
    """``value`` converted to the annotated type ``hint`` (numbers, str, tuples, nested configs, Optional)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return _coerce(option, value, where)
            except CalolabError as exc:
                errors.append(str(exc))
        raise CalolabError(errors[0])
    if dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        return config_from_dict(hint, value, where)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise CalolabError(f"{where}: expected a list of {len(args)} values, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, where) for v in value)
        if len(value) != len(args):
            raise CalolabError(f"{where}: expected {len(args)} values, got {value!r}")
        return tuple(_coerce(a, v, where) for a, v in zip(args, value, strict=True))
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
            raise CalolabError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise CalolabError(f"{where}: expected an integer, got {value!r}")
        return int(value)
    if hint is str:
        if not isinstance(value, str):
            raise CalolabError(f"{where}: expected a string, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise CalolabError(f"{where}: expected true or false, got {value!r}")
        return value
    return value


def parse_range(text: str, what: str) -> tuple[float, float]:
    """``"LOW:HIGH"`` or a single ``"VALUE"`` as a ``(low, high)`` pair of floats."""
    try:
        parts = [float(p) for p in str(text).split(":")]
    except ValueError:
        raise CalolabError(f"{what}: expected LOW:HIGH or a number, got {text!r}") from None
    if len(parts) not in (1, 2):
        raise CalolabError(f"{what}: expected LOW:HIGH or a number, got {text!r}")
    return (parts[0], parts[-1])


def parse_block(text: str) -> tuple[int, int]:
    """``"2x2"`` as ``(2, 2)`` cells along x and y."""
    try:
        bx, by = (int(p) for p in str(text).lower().split("x"))
    except ValueError:
        raise CalolabError(f"sub-module block: expected NXxNY such as 2x2, got {text!r}") from None
    return bx, by


def merge_spec(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated by the entries of ``overrides`` that are not ``None``, recursing into dicts."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict):
            out[key] = merge_spec(out.get(key) or {}, value)
        elif value is not None:
            out[key] = value
    return out


def parse_threshold(text: str) -> float | None:
    """A threshold from the command line: a number, or ``none`` for no threshold."""
    if str(text).strip().lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise CalolabError(f"zero-suppression threshold: expected a number or 'none', got {text!r}") from None
