"""What every calolab file format shares: the detector as YAML, ``meta`` as JSON, checks.

``meta`` may hold numbers, strings, lists, tuples, dicts and numpy arrays or scalars; it is
stored as JSON in which numpy values, tuples and unusual dicts carry a tag, so that
reading gives back exactly what was written (same values, dtypes and container types).
Arrays go inline (zlib-compressed, base64) unless the format has a better place for them
(HDF5 stores them as datasets).

>>> import numpy as np
>>> meta = {"seed": 7, "scale": np.float32(1.5), "gains": np.arange(3.0), "span": (1, 2)}
>>> back = meta_from_json(meta_to_json(meta))
>>> type(back["scale"]).__name__, back["span"], back["gains"].dtype
('float32', (1, 2), dtype('float64'))
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from calolab.errors import CalolabError
from calolab.geometry import Detector, load_detector
from calolab.showers import Showers

FORMAT = "calolab-showers"
FORMAT_VERSION = 1
_TAGS = ("__ndarray__", "__scalar__", "__tuple__", "__items__")
DECODE_ERRORS = (ValueError, KeyError, TypeError, AttributeError, IndexError, zlib.error)
"""What decoding a corrupt JSON string or array may raise."""


def calolab_version() -> str:
    import calolab

    return calolab.__version__


def index_dtype(detector: Detector) -> np.dtype:
    """Smallest signed integer dtype (int16 or int32) holding every layer, x and y index."""
    return np.dtype(np.int16 if max(detector.shape) <= np.iinfo(np.int16).max else np.int32)


# ------------------------------------------------------------------ arrays
def array_to_json(arr: np.ndarray) -> dict[str, Any]:
    """An array as a JSON-able dict: dtype, shape and zlib-compressed base64 bytes."""
    arr = np.asarray(arr)
    if arr.dtype.kind in "OV":
        raise CalolabError(f"cannot store an array of dtype {arr.dtype}: expected numbers, bools or strings")
    data = base64.b64encode(zlib.compress(arr.tobytes(order="C"))).decode("ascii")
    return {"dtype": arr.dtype.str, "shape": list(arr.shape), "zlib_base64": data}


def array_from_json(obj: dict[str, Any]) -> np.ndarray:
    """Inverse of :func:`array_to_json`; a writable array."""
    raw = zlib.decompress(base64.b64decode(obj["zlib_base64"]))
    return np.frombuffer(raw, np.dtype(obj["dtype"])).reshape(tuple(obj["shape"])).copy()


# ------------------------------------------------------------------ meta
def meta_to_json(
    meta: dict[str, Any], put_array: Callable[[np.ndarray], Any] = array_to_json
) -> str:
    """``meta`` as a JSON string; ``put_array`` stores an array and returns a JSON-able reference."""
    return json.dumps(_encode(meta, put_array, "meta"))


def meta_from_json(
    text: str, get_array: Callable[[Any], np.ndarray] = array_from_json
) -> dict[str, Any]:
    """Inverse of :func:`meta_to_json`; ``get_array`` resolves what ``put_array`` returned."""
    return _decode(json.loads(text), get_array)


def _encode(value: Any, put: Callable[[np.ndarray], Any], where: str) -> Any:
    if isinstance(value, np.ndarray):
        return {"__ndarray__": put(value)}
    if isinstance(value, np.generic):
        return {"__scalar__": array_to_json(np.asarray(value))}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, put, f"{where}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, put, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        if all(isinstance(k, str) and k not in _TAGS for k in value):
            return {k: _encode(v, put, f"{where}[{k!r}]") for k, v in value.items()}
        return {"__items__": [[_encode(k, put, where), _encode(v, put, f"{where}[{k!r}]")]
                              for k, v in value.items()]}
    raise CalolabError(
        f"{where} is a {type(value).__name__}, which cannot be stored in a file: "
        "expected numbers, strings, lists, tuples, dicts or numpy arrays"
    )


def _decode(value: Any, get: Callable[[Any], np.ndarray]) -> Any:
    if isinstance(value, list):
        return [_decode(v, get) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1 and next(iter(value)) in _TAGS:
        tag, body = next(iter(value.items()))
        if tag == "__ndarray__":
            return get(body)
        if tag == "__scalar__":
            return array_from_json(body)[()]
        if tag == "__tuple__":
            return tuple(_decode(v, get) for v in body)
        return {_decode(k, get): _decode(v, get) for k, v in body}
    return {k: _decode(v, get) for k, v in value.items()}


# ------------------------------------------------------------------ detector
def resolve_detector(stored_yaml: str | None, detector: Any, path: Path) -> Detector:
    """The detector of a file: ``detector`` if given (its shape must match), else the stored YAML."""
    import yaml

    stored = None
    if stored_yaml is not None:
        try:
            spec = yaml.safe_load(stored_yaml)
        except yaml.YAMLError:
            raise CalolabError(f"{path}: stored detector geometry is not valid YAML") from None
        stored = Detector.from_dict(spec, source=str(path))
    if detector is None:
        if stored is None:
            raise CalolabError(f"{path}: file carries no detector geometry: pass detector= (--detector)")
        return stored
    detector = load_detector(detector)
    if stored is not None and stored.shape != detector.shape:
        raise CalolabError(
            f"{path}: written for detector {stored.name!r} of shape {stored.shape}, "
            f"not {detector.name!r} of shape {detector.shape}"
        )
    return detector


# ------------------------------------------------------------------ checks
def check_extras(showers: Showers, path: Path) -> None:
    """Extras must be 1-D numeric or bool arrays with names usable as dataset and branch names."""
    for name, arr in showers.extras.items():
        arr = np.asarray(arr)
        if not isinstance(name, str) or not name or "/" in name:
            raise CalolabError(f"{path}: extra name {name!r} must be a non-empty string without '/'")
        if arr.ndim != 1 or arr.dtype.kind not in "biuf":
            raise CalolabError(
                f"{path}: extra {name!r} is {arr.dtype} of shape {arr.shape}: "
                f"expected a numeric or bool array of shape ({len(showers)},)"
            )


def build_showers(path: Path, detector: Detector, **arrays: Any) -> Showers:
    """A :class:`Showers` from arrays read from ``path``; inconsistencies name the file."""
    try:
        return Showers(detector, **arrays)
    except CalolabError as exc:
        raise CalolabError(f"{path}: {str(exc).removeprefix('showers: ')}") from None
    except ValueError as exc:  # per-event arrays that do not broadcast to (N,)
        raise CalolabError(f"{path}: per-event arrays of inconsistent lengths ({exc})") from None


def optional_modules(names: tuple[str, ...], extra: str, action: str) -> tuple[Any, ...]:
    """Import optional libraries by name; if one is missing, name the extra that installs it."""
    import importlib

    try:
        return tuple(importlib.import_module(name) for name in names)
    except ImportError:
        raise CalolabError(f"{action} needs the {extra!r} extra: pip install 'calolab[{extra}]'") from None
