"""Atomic file writes: write a hidden temporary file next to the target, then rename it.

A reader never sees a half-written file, and a write that fails (an exception, Ctrl-C)
leaves the old file, if any, untouched and no temporary file behind.

>>> import tempfile
>>> from pathlib import Path
>>> target = Path(tempfile.mkdtemp()) / "out.txt"
>>> with atomic_path(target) as tmp:
...     _ = tmp.write_text("done")
>>> target.read_text(), sorted(p.name for p in target.parent.iterdir())
('done', ['out.txt'])
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from calolab.errors import CalolabError


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the directory of ``path``; on success it replaces ``path``.

    Parameters
    ----------
    path
        The file to write. Missing parent directories are created.

    Yields
    ------
    Path
        ``.<name>.tmp-<pid>-<random>`` in the same directory (same file system, so the
        final :func:`os.replace` is atomic). On any exception it is removed and the
        exception propagates; an :class:`OSError` becomes a one-line :class:`CalolabError`.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        reason = exc.strerror or str(exc).splitlines()[0]
        raise CalolabError(f"{path}: could not write ({reason})") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
