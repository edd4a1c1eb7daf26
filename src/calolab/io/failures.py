"""Failures in the middle of a read, and hit energies a command cannot take, as one-line errors.

A damaged file often opens: its header and index are intact, and the damage sits inside a
compressed chunk (HDF5 gzip, a ROOT basket, a Parquet page) or past a truncation point.
The failure then comes from deep inside h5py, uproot or pyarrow, mid-read. Every reader
wraps each such read in :func:`reading`, which turns it into a :class:`CalolabError` naming
the file and what was being read (dataset, branch or row group), so the CLI prints one line
and exits with status 2, and an output being written is never completed (see
:mod:`calolab.io.atomic`).

>>> import numpy as np
>>> try:
...     with reading("run.h5", "dataset 'energy' (events 0-100)"):
...         raise OSError("Can't synchronously read data (filter returned failure during read)")
... except CalolabError as exc:
...     print(exc)
run.h5: cannot read dataset 'energy' (events 0-100): Can't synchronously read data (filter returned failure during read)
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from calolab.errors import CalolabError
from calolab.showers import Showers

READ_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # h5py filter and I/O failures, uproot short chunks, pyarrow's ArrowIOError
    EOFError,
    ValueError,  # pyarrow's ArrowInvalid ("Data corruption detected", checksum mismatch)
    zlib.error,  # uproot's zlib baskets
    struct.error,
    IndexError,
    KeyError,
    RuntimeError,
    MemoryError,  # a corrupt length field that asks for an absurd buffer
)
"""What a library raises when the bytes under a read are damaged."""


def _extra_errors() -> tuple[type[BaseException], ...]:
    """Errors of the optional readers that derive from none of :data:`READ_ERRORS`."""
    extra: list[type[BaseException]] = []
    try:
        import pyarrow

        extra.append(pyarrow.ArrowException)
    except ImportError:
        pass
    try:
        from uproot.deserialization import DeserializationError

        extra.append(DeserializationError)
    except ImportError:
        pass
    return tuple(extra)


@contextmanager
def reading(path: str | Path, what: str) -> Iterator[None]:
    """Run a read of ``what`` in ``path``; a failure of the bytes becomes a one-line :class:`CalolabError`.

    Parameters
    ----------
    path
        The file being read.
    what
        What is being read, as the error should name it: ``"dataset 'cell' (events 0-4096)"``,
        ``"branch 'energy' of TTree 'showers'"``, ``"row group 3"``.
    """
    try:
        yield
    except CalolabError:
        raise
    except READ_ERRORS + _extra_errors() as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise CalolabError(f"{path}: cannot read {what}: {reason[:300]}") from None


def require_non_negative(showers: Showers, source: str | Path, task: str) -> Showers:
    """``showers``, unless some hit energy is negative; then a one-line :class:`CalolabError`.

    calolab's readers accept negative hit energies, as pedestal-subtracted data have them,
    and ``calolab info`` counts them. Calibrators (log energies, MIP fits), the features,
    regressors, CNNs, generative models and the event display need energies >= 0: their
    commands call this first, so that the user learns which file, how many hits and what to do.

    >>> from calolab.geometry import load_detector
    >>> dense = np.zeros((1, 15, 32, 32), np.float32); dense[0, 0, 0, 0] = -0.1
    >>> s = Showers.from_dense(load_detector("siw-ecal"), dense, particle=11, incident_energy=[1e3])
    >>> try:
    ...     require_non_negative(s, "pedestal.h5", "calolab regress")
    ... except CalolabError as exc:
    ...     print(exc)  # doctest: +ELLIPSIS
    pedestal.h5: 1 of 1 hits have negative energies (down to -0.1 MeV): calolab regress needs ...
    """
    negative = int(np.count_nonzero(showers.energy < 0))
    if negative:
        raise CalolabError(
            f"{source}: {negative} of {showers.n_hits} hits have negative energies (down to "
            f"{float(showers.energy.min()):.3g} MeV): {task} needs energies >= 0 MeV; suppress them first, "
            "e.g. calolab suppress IN -o OUT --threshold 0.5 --unit MIP"
        )
    return showers


def require_incident_energies(showers: Showers, source: str | Path, task: str) -> Showers:
    """``showers``, unless some incident energy is unknown (NaN); then a one-line :class:`CalolabError`.

    Hit tables read without an incident-energy column have NaN incident energies; the
    regressors (their target) and the evaluation (its conditioning) need them.

    >>> from calolab.geometry import load_detector
    >>> dense = np.zeros((2, 15, 32, 32), np.float32)
    >>> s = Showers.from_dense(load_detector("siw-ecal"), dense, particle=11, incident_energy=[np.nan, 1e3])
    >>> try:
    ...     require_incident_energies(s, "hits.parquet", "calolab regress")
    ... except CalolabError as exc:
    ...     print(exc)  # doctest: +ELLIPSIS
    hits.parquet: 1 of 2 events have no incident energy (NaN): calolab regress needs them; ...
    """
    unknown = int(np.count_nonzero(np.isnan(showers.incident_energy)))
    if unknown:
        raise CalolabError(
            f"{source}: {unknown} of {len(showers)} events have no incident energy (NaN): {task} needs them; "
            "read a hit table with its incident-energy column mapped (--columns incident_energy_mev=NAME)"
        )
    return showers
