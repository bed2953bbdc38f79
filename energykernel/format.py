"""Human-readable figures: energy with SI prefixes, the one-line run summary."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .backends.base import COMPONENTS

if TYPE_CHECKING:
    from .window import Measurement

_PREFIXES = ((1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"), (1e-6, "µ"))


def si(value: float, unit: str, digits: int = 3) -> str:
    """``si(1234.5, "J") == "1.23 kJ"``; zero and NaN are written plainly."""
    if value != value:  # NaN
        return f"— {unit}"
    if value == 0:
        return f"0 {unit}"
    magnitude = abs(value)
    for factor, prefix in _PREFIXES:
        if magnitude >= factor:
            return f"{value / factor:.{digits}g} {prefix}{unit}"
    return f"{value / 1e-9:.{digits}g} n{unit}"


def duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1e3:.3g} ms"
    if seconds < 120:
        return f"{seconds:.3g} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 120:
        return f"{int(minutes)} min {secs:.0f} s"
    hours, minutes = divmod(minutes, 60)
    return f"{int(hours)} h {int(minutes)} min"


def measurement_line(m: Measurement, emissions_g: float | None = None) -> str:
    """``⚡ train: 12.3 J in 1.20 s — cpu 10.1 J (rapl) · ram 2.2 J (estimate)``."""
    parts = [
        f"{comp} {si(m.energy_j[comp], 'J')} ({m.method[comp]})"
        for comp in COMPONENTS
        if comp in m.energy_j
    ]
    line = f"⚡ {m.task}: {si(m.total_j, 'J')} in {duration(m.duration_s)}"
    if parts:
        line += " — " + " · ".join(parts)
    if emissions_g is not None:
        line += f" — {si(emissions_g, 'gCO2e')}"
    if m.status != "ok":
        line += f" [{m.status}]"
    return line
