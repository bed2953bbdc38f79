"""The one line shown after a measured cell: HTML in Jupyter, plain text in a terminal."""

from __future__ import annotations

from typing import Any

from .config import settings
from .format import measurement_html, measurement_line
from .window import Measurement

#: Key of the run summary in the display's metadata (read back by ``energykernel measure``).
METADATA_KEY = "energykernel"


def carbon(energy_j: float) -> tuple[float | None, str | None]:
    """(gCO2e, None) when a region is configured; (None, why not) if it cannot be had."""
    region = settings().region
    if not region:
        return None, None
    try:
        from .carbon import emissions, intensity
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
    text = measurement_line(m, emissions_g=grams)
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
