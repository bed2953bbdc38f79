"""The errors of :mod:`energykernel.sim` (re-exported by :mod:`.model`)."""

from __future__ import annotations

import os
from pathlib import Path


class SimulationInputError(ValueError):
    """Bad simulation input: a file, an entry, a field, or a task that fits nowhere."""


class UnschedulableError(SimulationInputError):
    """A task fits no instance, or no schedule meets the requested deadline."""


def read_input_text(path: str | os.PathLike) -> tuple[Path, str]:
    """(path, its UTF-8 text): a missing or unreadable file is a SimulationInputError
    naming it."""
    p = Path(path)
    try:
        return p, p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SimulationInputError(f"{p}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SimulationInputError(f"{p}: cannot read ({exc})") from None
