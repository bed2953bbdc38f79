"""Validation of the model's fields: numbers within bounds, names, components, ``after``,
``energy_band`` and ``intensity_profile``; each error names the field
(:class:`~.errors.SimulationInputError`)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..core.units import COMPONENTS, short_repr
from .errors import SimulationInputError

#: Largest value of every numeric field: durations (s), capacities and demands (units),
#: costs (W per unit), speed, idle power (W), PUE and intensity (gCO2e/kWh). See :func:`_number`.
MAX_VALUE = 1e15


def _number(value: Any, what: str, *, minimum: float = 0.0, strict: bool = False,
            maximum: float = MAX_VALUE) -> float:
    """``value`` as a finite float in ``[minimum, maximum]`` (``minimum`` excluded if
    ``strict``), else a :class:`SimulationInputError` naming ``what``.

    Bounds: every duration (s; 1e15 s is ~32 million years), capacity, demand, cost (W per
    unit), speed, idle power (W), PUE and intensity (gCO2e/kWh) is finite and at most
    :data:`MAX_VALUE` (1e15), so no product of a few of them overflows a float; ``speed``
    is > 0 (a speed so small that ``duration_s / speed`` overflows is named when the result
    is checked, :func:`.schedule.check_finite`). An integer too large for a float (``1``
    and 400 zeros) is out of range, not an ``OverflowError``.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            import numpy as np

            if not isinstance(value, np.number) or isinstance(value, np.complexfloating):
                raise TypeError
        except TypeError:
            raise SimulationInputError(
                f"{what}: must be a number, got {short_repr(value)} "
                f"({type(value).__name__})") from None
    try:
        x = float(value)
    except OverflowError:  # an int beyond the float range
        x = math.inf if value > 0 else -math.inf
    if math.isnan(x):
        raise SimulationInputError(f"{what}: must be a finite number, got {short_repr(value)}")
    if x > maximum or x == math.inf:
        bound = f" and ≤ {maximum:g}" if maximum < math.inf else ""
        raise SimulationInputError(
            f"{what}: out of range: must be finite{bound}, got {short_repr(value)}")
    if x < minimum or (strict and x == minimum):
        rel = ">" if strict else "≥"
        raise SimulationInputError(f"{what}: must be {rel} {minimum:g}, got {short_repr(value)}")
    if x == -math.inf:  # a check with no minimum
        raise SimulationInputError(f"{what}: out of range: must be finite, got {short_repr(value)}")
    return x


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SimulationInputError(
            f"{what}: must be a non-empty string, got {short_repr(value)}")
    return value


def _component(comp: Any, what: str) -> str:
    if comp not in COMPONENTS:
        raise SimulationInputError(
            f"{what}: unknown component {short_repr(comp)}; known: {', '.join(COMPONENTS)}")
    return comp


def _profile(value: Any, base: Path | None = None) -> Any:
    """``value`` as an :class:`~.profile.IntensityProfile`, errors under ``intensity_profile``."""
    from .profile import FIELD, as_profile

    try:
        return as_profile(value, base)
    except SimulationInputError as exc:
        msg = str(exc)
        if msg.startswith(FIELD):
            msg = "intensity_profile" + msg[len(FIELD):]
        elif not msg.startswith("intensity_profile"):
            msg = f"intensity_profile: {msg}"
        raise SimulationInputError(msg) from None


def _band(value: Any) -> tuple[float, float]:
    """``energy_band`` as ``(lo, hi)`` factors with ``0 ≤ lo ≤ 1 ≤ hi``."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise SimulationInputError(f"energy_band: must be [lo, hi], got {short_repr(value)}")
    vals = list(value)
    if len(vals) != 2:
        raise SimulationInputError(f"energy_band: must be [lo, hi], got {short_repr(value)}")
    lo = _number(vals[0], "energy_band[0]", maximum=1.0)
    hi = _number(vals[1], "energy_band[1]", minimum=1.0)
    return lo, hi


def _after(value: Any, name: str) -> tuple[str, ...]:
    """``after`` as a tuple of distinct task names (given order), never ``name`` itself."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        hint = f" (one name: write [{short_repr(value)}])" if isinstance(value, str) else ""
        raise SimulationInputError(
            f"after: must be a list of task names, got {short_repr(value)}{hint}")
    out: dict[str, None] = {}
    for j, item in enumerate(value):
        _name(item, f"after[{j}]")
        if item == name:
            raise SimulationInputError(f"after[{j}]: task {short_repr(name)} cannot run after itself")
        out[item] = None
    return tuple(out)
