"""Path checks shared by every ``energykernel`` command (``measure``, ``report``, ``simulate``).

An input must be a readable file; an output must have one of its command's suffixes, a
writable directory that exists, and must never be one of the command's inputs, whether
named through a symlink, a hard link or a relative path. A failed check is a
:class:`CliError` naming the option, the path and what is wrong, raised before anything is
written.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path


class CliError(Exception):
    """Bad input: reported as one line on stderr, exit code 2."""


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether ``a`` and ``b`` name one file: :func:`os.path.samefile` when both exist
    (symlinks, hard links), else their resolved absolute paths are compared."""
    try:
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)
    except OSError:
        pass
    return Path(a).resolve() == Path(b).resolve()


def input_file(path: str | os.PathLike[str], what: str) -> Path:
    """``path`` as a Path if it is a readable file, else a :class:`CliError`."""
    p = Path(path)
    if not p.exists():
        raise CliError(f"{what} {str(p)!r} does not exist")
    if not p.is_file():
        raise CliError(f"{what} {str(p)!r} is not a file")
    if not os.access(p, os.R_OK):
        raise CliError(f"{what} {str(p)!r} is not readable")
    return p


def output_file(path: str | os.PathLike[str], what: str, suffixes: tuple[str, ...],
                inputs: Sequence[str | os.PathLike[str]] = ()) -> Path:
    """``path`` as a Path if a command may write it, else a :class:`CliError`.

    It must end in one of ``suffixes``, not be a directory, lie in a writable directory that
    exists, and be none of ``inputs`` (compared with :func:`same_file`).
    """
    p = Path(path)
    if p.suffix.lower() not in suffixes:
        raise CliError(f"{what} {str(p)!r} must end in {' or '.join(suffixes)}")
    if p.is_dir():
        raise CliError(f"{what} {str(p)!r} is a directory")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise CliError(f"{what} {str(p)!r}: directory {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise CliError(f"{what} {str(p)!r} is not writable")
    for q in inputs:
        if same_file(p, q):
            raise CliError(f"{what} {str(p)!r} would overwrite the input {str(q)!r}")
    return p
