"""The one line shown after a measured cell: HTML in Jupyter, plain text in a terminal."""

from __future__ import annotations

from typing import Any

from ..core.config import settings
from ..core.record import Measurement
from ..core.units import COMPONENTS, duration, si

#: Key of the run summary in the display's metadata (read back by ``energykernel measure``).
METADATA_KEY = "energykernel"


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


def carbon(energy_j: float) -> tuple[float | None, str | None]:
    """(gCO2e, None) when a region is configured; (None, why not) if it cannot be had."""
    region = settings().region
    if not region:
        return None, None
    try:
        from ..carbon import emissions, intensity
    except ImportError as exc:
        return None, f"no carbon figure: the carbon module is unavailable ({exc})"
    try:
        grams = float(emissions(energy_j, intensity=intensity(region)))
    except (LookupError, ValueError, TypeError) as exc:
        return None, f"no carbon figure for region {region!r}: {exc}"
    return grams, None


def run_metadata(m: Measurement) -> dict[str, Any]:
    """What a notebook cell's metadata keeps of its run."""
    return {
        "task": m.task,
        "instance": m.instance,
        "energy_j": m.energy_j,
        "total_j": m.total_j,
        "method": m.method,
        "duration_s": m.duration_s,
        "status": m.status,
        "run_id": m.id,
    }


def bundle(m: Measurement) -> tuple[dict[str, str], dict[str, Any]]:
    """(mime bundle, metadata) of the one-line summary of ``m``."""
    grams, note = carbon(m.total_j)
    text = m.summary(emissions_g=grams)
    if grams is not None:
        text += f" ({settings().region})"
    if note:
        text += f" ({note})"
    html = measurement_html(m, emissions_g=grams, note=note)
    return {"text/plain": text, "text/html": html}, {METADATA_KEY: run_metadata(m)}


def show(m: Measurement) -> None:
    """Display the one-line summary of ``m`` in the current cell's output."""
    from IPython.display import display

    data, metadata = bundle(m)
    display(data, raw=True, metadata=metadata)
