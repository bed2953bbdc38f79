"""The errors of :mod:`energykernel.sim` (re-exported by :mod:`.model`)."""

from __future__ import annotations


class SimulationInputError(ValueError):
    """Bad simulation input: a file, an entry, a field, or a task that fits nowhere."""


class UnschedulableError(SimulationInputError):
    """A task fits no instance, or no schedule meets the requested deadline."""
