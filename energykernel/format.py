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


_METHOD_NOTE = {
    "estimate": "estimated from a model, not read from a counter",
    "simulated": "simulated, not measured",
}


def measurement_html(m: Measurement, emissions_g: float | None = None,
                     note: str | None = None) -> str:
    """The one-line summary as compact HTML; estimated components are set in italics."""
    from html import escape

    parts = []
    for comp in COMPONENTS:
        if comp not in m.energy_j:
            continue
        method = m.method[comp]
        title = _METHOD_NOTE.get(method, f"read from {method} counters")
        text = f"{comp} {escape(si(m.energy_j[comp], 'J'))} ({escape(method)})"
        if method in _METHOD_NOTE:
            text = f"<i>{text}</i>"
        parts.append(f'<span title="{escape(title)}">{text}</span>')
    html = (f"⚡ <b>{escape(m.task)}</b>: <b>{escape(si(m.total_j, 'J'))}</b> "
            f"in {escape(duration(m.duration_s))}")
    if parts:
        html += " — " + " · ".join(parts)
    if emissions_g is not None:
        html += f" — <b>{escape(si(emissions_g, 'gCO2e'))}</b>"
    if note:
        html += f' <span style="color:#a60">({escape(note)})</span>'
    if m.status != "ok":
        html += f' <span style="color:#b00">[{escape(m.status)}]</span>'
    return ('<div class="energykernel-line" style="font-family:monospace;font-size:85%;'
            f'color:#555;margin:2px 0">{html}</div>')
