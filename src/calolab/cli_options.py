"""The options of every command that reads shower files: detector, column mapping, energy unit, tree.

:func:`read_options` adds ``--detector``, ``--columns``, ``--energy-unit`` and ``--tree``
to a click command and hands the command one ``reading`` argument: the keyword arguments
for :func:`calolab.io.read_showers` (empty when none was given, so that the command may
stream HDF5 files as before). Only click is imported here, so ``calolab --help`` stays fast.

>>> import click
>>> from click.testing import CliRunner
>>> @click.command()
... @read_options
... def show(reading):
...     click.echo(sorted(reading.items()))
>>> CliRunner().invoke(show, ["--detector", "ahcal", "--columns", "event=evt,energy_mev=e",
...                           "--energy-unit", "GeV"]).output.strip()
"[('columns', {'event': 'evt', 'energy_mev': 'e'}), ('detector', 'ahcal'), ('energy_unit', 'GeV')]"
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

ENERGY_UNITS = ("GeV", "MeV", "keV")


def read_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator: the reading options, collected into the command's ``reading`` argument."""

    @functools.wraps(command)
    def wrapper(*args: Any, detector: str | None, columns: str | None, energy_unit: str | None, tree: str | None,
                **kwargs: Any) -> Any:
        return command(*args, reading=read_kwargs(detector, columns, energy_unit, tree), **kwargs)

    options = [
        click.option("--detector", metavar="PRESET|YAML",
                     help="Detector of the files read: needed for hit tables and CaloChallenge files from elsewhere; "
                          "replaces the stored one (same shape) otherwise."),
        click.option("--columns", metavar="NAME=COLUMN,...",
                     help="Read hit tables (Parquet, ROOT, HDF5) whose columns have other names, e.g. "
                          "event=evt,layer=z,ix=i,iy=j,energy_mev=e[,incident_energy_mev=E0,particle=pdg]."),
        click.option("--energy-unit", type=click.Choice(ENERGY_UNITS),
                     help="Unit of a hit table's energy columns.  [MeV]"),
        click.option("--tree", metavar="NAME", help="The TTree of a ROOT hit table.  [the file's only one]"),
    ]
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


def read_kwargs(detector: str | None, columns: str | None, energy_unit: str | None,
                tree: str | None) -> dict[str, Any]:
    """Keyword arguments of :func:`calolab.io.read_showers` from the options given (none: ``{}``)."""
    out: dict[str, Any] = {}
    if detector is not None:
        out["detector"] = detector
    if columns is not None:
        from calolab.io.hittable import parse_columns

        out["columns"] = parse_columns(columns)
    if energy_unit is not None:
        out["energy_unit"] = energy_unit
    if tree is not None:
        out["tree"] = tree
    return out

