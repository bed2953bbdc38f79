"""The HTML page of a comparison (``energykernel compare A B -o OUT.html``), in the
report's style: the tasks that moved most first, with both figures, the change, the
ratio and whether the change exceeds what the counters can resolve."""

from __future__ import annotations

from datetime import datetime, timezone
from html import escape
from typing import TYPE_CHECKING

from ..core.units import number, short_label, si

if TYPE_CHECKING:
    import xarray as xr


def _signed(value: float) -> str:
    return "—" if value != value else ("+" if value > 0 else "") + si(value, "J")


def render_comparison(comparison: xr.Dataset, *, a: str, b: str) -> str:
    """The comparison as one self-contained HTML string."""
    from .report import CSS

    total_a = comparison.energy.sel(version="a").sum("component", min_count=1).values
    total_b = comparison.energy.sel(version="b").sum("component", min_count=1).values
    changed = comparison["changed"].values if "changed" in comparison else None
    rows = []
    for j, task in enumerate(comparison.task.values):
        verdict = "" if changed is None else ("changed" if changed[j] else "within bounds")
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in (
            f'<span title="{escape(str(task)[:2000])}">{escape(short_label(str(task)))}</span>',
            escape(si(total_a[j], "J")), escape(si(total_b[j], "J")),
            escape(_signed(float(comparison.total_delta.values[j]))),
            number(float(comparison.total_ratio.values[j]), ".3g", nan="—"),
            escape(verdict))) + "</tr>")
    head = ["task", "a", "b", "b − a", "b / a", ""]
    table = ("<table><thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head)
             + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>")
    body = (f"<h1>Energy comparison</h1><p class=\"meta\">a: {escape(a)} · b: {escape(b)} · "
            f"generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}</p>"
            "<p>Tasks that moved most first. <b>changed</b>: the difference is larger than "
            "both figures' intervals allow; <b>within bounds</b>: it may be measurement "
            "resolution alone.</p>" + table)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>Energy comparison</title><style>{CSS}</style></head>"
            f"<body>\n{body}\n</body></html>\n")
