"""Parse physical quantities typed by users: energies like ``10GeV`` or ``1.5 TeV``.

>>> parse_energy("10GeV")
10000.0
>>> parse_energy("250 MeV")
250.0
>>> parse_energy_range("1GeV:100GeV")
(1000.0, 100000.0)
"""

import re

from calolab.errors import CalolabError

ENERGY_UNITS = {"ev": 1e-6, "kev": 1e-3, "mev": 1.0, "gev": 1e3, "tev": 1e6}
_QUANTITY = re.compile(r"^\s*([-+]?\d*\.?\d+(?:[eE][-+]?\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_energy(text: str | float, default_unit: str = "MeV") -> float:
    """Return the energy in MeV of ``text`` (a number with an optional unit eV..TeV)."""
    if isinstance(text, int | float):
        return float(text) * ENERGY_UNITS[default_unit.lower()]
    match = _QUANTITY.match(text)
    unit = (match.group(2) if match else "") or default_unit
    if not match or unit.lower() not in ENERGY_UNITS:
        raise CalolabError(f"cannot read energy {text!r}: expected a number and a unit such as 10GeV")
    value = float(match.group(1)) * ENERGY_UNITS[unit.lower()]
    if value <= 0:
        raise CalolabError(f"energy {text!r} must be positive")
    return value


def parse_energy_range(text: str) -> tuple[float, float]:
    """Return ``(low, high)`` in MeV from ``"LOW:HIGH"``, e.g. ``"2GeV:100GeV"``."""
    parts = text.split(":")
    if len(parts) != 2:
        raise CalolabError(f"cannot read energy range {text!r}: expected LOW:HIGH such as 2GeV:100GeV")
    low, high = (parse_energy(p) for p in parts)
    if high <= low:
        raise CalolabError(f"energy range {text!r}: the upper end must exceed the lower end")
    return low, high
