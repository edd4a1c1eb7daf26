"""Detector presets shipped with calolab, and loading a detector by preset name or YAML path.

>>> preset_names()  # doctest: +NORMALIZE_WHITESPACE
['ahcal', 'alice-emcal', 'atlas-emb', 'atlas-hec', 'calice-siw', 'calochallenge-ds1-photons',
 'calochallenge-ds1-pions', 'calochallenge-ds2', 'calochallenge-ds3', 'cms-ecal-tb', 'cusi',
 'hgcal-ce-e-tb', 'pbsci-compensating', 'pbwo4', 'siw-ecal', 'tilecal']
>>> load_detector("cusi").n_cells
187500
"""

from functools import cache
from importlib import resources
from pathlib import Path

import yaml

from calolab.errors import CalolabError
from calolab.geometry.detector import Detector

_PRESET_DIR = resources.files("calolab.geometry") / "presets"


def preset_names() -> list[str]:
    """Names of the shipped presets, sorted."""
    return sorted(p.name.removesuffix(".yaml") for p in _PRESET_DIR.iterdir() if p.name.endswith(".yaml"))


@cache
def _load_preset(name: str) -> Detector:
    text = (_PRESET_DIR / f"{name}.yaml").read_text()
    return Detector.from_dict(yaml.safe_load(text), source=f"preset {name}")


def load_detector(spec: "str | Path | Detector") -> Detector:
    """Return a :class:`Detector` from a preset name, a YAML file path, a CaloChallenge binning XML
    (:func:`~calolab.geometry.cylinder.calochallenge_detector`, W/Si layers), or a detector."""
    if isinstance(spec, Detector):
        return spec
    text = str(spec)
    if text in preset_names():
        return _load_preset(text)
    if text.endswith(".xml"):
        from calolab.geometry.cylinder import calochallenge_detector

        return calochallenge_detector(text)
    if text.endswith((".yaml", ".yml")) or Path(text).exists():
        return Detector.from_yaml(text)
    raise CalolabError(f"unknown detector {text!r}: expected a preset ({', '.join(preset_names())}), a YAML file "
                       "or a CaloChallenge binning .xml")
