"""What-if sweeps of :func:`energykernel.carbon.nn_total`: one input varied, the others fixed.

Pure arithmetic behind the NN calculator widget's sweep plot
(:mod:`energykernel.jupyter.widgets.carbon`; figure in :mod:`energykernel.viz.carbon`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from energykernel.carbon.calculators import nn_total

#: Where a sweep of 0 to twice the current value starts from when there is none (or it is 0).
DEFAULT_SPAN = {"intensity_g_per_kwh": 500.0}
_DEFAULT = 50.0


def sweep_points(field: str, current: float, n: int = 11) -> list[float]:
    """``n`` x values of a sweep of ``field``: PUE 1.0 to 2.0; otherwise 0 to twice
    ``current`` (0–1000 for an intensity, 0–100 for anything else when ``current`` is not a
    positive finite number)."""
    if n < 2:
        raise ValueError(f"n must be >= 2 (a sweep has two ends), got {n!r}")
    if field == "pue":
        return [1.0 + k / (n - 1) for k in range(n)]
    if not (math.isfinite(current) and current > 0):
        current = DEFAULT_SPAN.get(field, _DEFAULT)
    return [2 * current * k / (n - 1) for k in range(n)]


def sweep_totals(phases: Mapping[str, Mapping[str, Any]], phase: str, field: str,
                 points: Sequence[float]) -> list[float]:
    """Total gCO2e of ``nn_total(**phases)`` with ``phases[phase][field]`` set to each of
    ``points`` (the rest fixed); NaN where a point is invalid or its total overflows."""
    out = []
    for p in points:
        changed = {k: dict(v) for k, v in phases.items()}
        changed.setdefault(phase, {})[field] = p
        try:
            out.append(float(nn_total(**changed).total_g))
        except (TypeError, ValueError):
            out.append(math.nan)
    return out
