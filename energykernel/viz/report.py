"""One self-contained HTML report of a Dataset: plots (inline SVG), summary table, methods.

``energykernel report DATASET -o OUT.html`` and the end of ``energykernel measure``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core._atomic import write_text_atomic
from ..core.units import COMPONENTS, J_PER_KWH, number, short_label, si, si_interval

if TYPE_CHECKING:
    import xarray as xr

METHODS_TEXT = {
    "rapl": "hardware energy counters (Intel/AMD RAPL) read through Linux powercap",
    "pyrapl": "hardware energy counters (RAPL) read through the pyRAPL package",
    "nvml": "NVIDIA GPU energy counters read through NVML",
    "amdsmi": "AMD GPU energy counters read through ROCm's AMD SMI",
    "hwmon": "Linux hwmon power meters (NVIDIA Grace / Grace Hopper), integrated over time",
    "estimate": "an estimate from a model (busy CPU time × watts per thread, memory in use "
                "× W/GB, bytes moved × J/byte) — no counter could be read for it",
    "simulated": "a simulation of the workflow, not a measurement",
}

HOW_TO_READ = """\
<p>Each <b>task</b> is a labelled piece of work (a notebook cell, a function, a block).
Energy is in joules (1 kJ = 1000 J; 3.6 MJ = 1 kWh) and is split by <b>component</b>
(cpu, gpu, ram, storage). A task's energy includes that of blocks measured inside it
(e.g. an <code>ek.measure</code> inside a cell); where there are such, <b>self</b> is the
task's energy without them, and the total at the top counts every joule once. Counters
measure the whole machine unless a run used <code>scope="process"</code>, so background
activity is included. Bars drawn
<b>hatched</b> are estimates, dotted ones simulated; solid bars come from hardware
counters. The power timeline shows the sampled power of each component with each task's
span shaded.</p>"""


@dataclass
class ReportData:
    """What a report is drawn from."""

    cube: xr.Dataset
    timeline: xr.Dataset | None = None
    runs: xr.Dataset | None = None


def open_dataset(path: str | os.PathLike) -> ReportData:
    """A file written by ``ek.save`` (runs, maybe a timeline) or a saved cube."""
    import numpy as np

    from ..data.schema import cube, open_netcdf, records_from_runs

    path = Path(path)
    ds = open_netcdf(path)
    if "run" in ds.dims:
        records = records_from_runs(ds, source=str(path))
        timeline = None
        if "power" in ds and "time" in ds.dims:
            names = {k: v for k, v in (("time_task", "task"), ("time_instance", "instance"))
                     if k in ds.coords}
            timeline = ds[[v for v in ("power", "interval") if v in ds]].rename(names)
        runs_ds = ds.drop_dims([d for d in ("time",) if d in ds.dims])
        return ReportData(cube(records), timeline, runs_ds)
    if {"task", "instance", "component"} <= set(ds.dims) and "energy" in ds:
        for name in ("energy", "self_energy", "duration", "runs"):
            if name in ds and not np.issubdtype(ds[name].dtype, np.number):
                raise ValueError(f"{path}: {name!r} holds {ds[name].dtype} values, not numbers")
        if "method" not in ds:
            raise ValueError(f"{path}: a cube without its 'method' variable")
        return ReportData(ds)
    raise ValueError(f"{path}: not an energykernel dataset (neither runs nor a cube)")


def _figure(data: ReportData, kind: str) -> str | None:
    from .plot import figure_svg, plot

    try:
        fig = plot(data.timeline if kind == "timeline" else data.cube, kind=kind)
    except ValueError:
        return None
    svg = figure_svg(fig)
    return svg[svg.find("<svg"):]  # drop the XML prolog and doctype


def _table(data: ReportData) -> str:
    from ..data import accessor  # noqa: F401  (registers ds.ek)

    table = data.cube.ek.summary()
    if table.empty:
        return "<p>No runs.</p>"
    comps = [c for c in COMPONENTS if f"{c}_j" in table.columns]
    nested = bool((table["self_j"] < table["total_j"] - 1e-12).any())
    active = "active_j" in table and bool(table["active_j"].notna().any())
    head = ["task", *[f"{c} (J)" for c in comps], "total (J)",
            *(["self (J)"] if nested else []), *(["active (J)"] if active else []),
            "duration (s)", "runs", "method"]
    rows = []
    for task, row in table.iterrows():
        cells = [f'<span title="{escape(str(task)[:2000])}">{escape(short_label(str(task)))}</span>']
        cells += [number(row[f"{c}_j"], nan="—") for c in comps]
        cells += [escape(si_interval(row["total_j"], row.get("lo_j", float("nan")),
                                     row.get("hi_j", float("nan")), "J")),
                  *([number(row["self_j"], nan="—")] if nested else []),
                  *([number(row["active_j"], nan="—")] if active else []),
                  number(row.get("duration_s", float("nan")), nan="—"),
                  str(int(row.get("runs", 0))), escape(str(row.get("method", "")))]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return ("<table><thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head)
            + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def total_energy_j(cube: xr.Dataset) -> float:
    """Every joule of a cube once: the sum of ``self_energy`` (runs nested inside others
    are not counted twice), or of ``energy`` for a cube without nesting information."""
    name = "self_energy" if "self_energy" in cube else "energy"
    return float(cube[name].sum(skipna=True))


def _methods(data: ReportData) -> str:
    used = sorted({part for m in data.cube.method.values.ravel() if m for part in str(m).split("+")})
    items = "".join(f"<li><b>{escape(m)}</b>: {escape(METHODS_TEXT.get(m, 'unknown method'))}</li>"
                    for m in used)
    return f"<ul>{items}</ul>" if items else "<p>No methods recorded.</p>"


def _backends(statuses: list[Any] | None) -> str:
    if not statuses:
        return ""
    rows = "".join(
        f"<tr><td>{escape(s.name)}</td><td>{'yes' if s.available else 'no'}</td>"
        f"<td>{escape(s.reason)}</td></tr>" for s in statuses)
    return ("<h2>Backends on the measuring machine</h2><table><thead><tr><th>backend</th>"
            f"<th>available</th><th>why / what</th></tr></thead><tbody>{rows}</tbody></table>")


CSS = """body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:980px;
margin:2em auto;padding:0 1em;color:#222}h1{font-size:1.5em}h2{font-size:1.15em;
margin-top:1.6em;border-bottom:1px solid #ddd}table{border-collapse:collapse;font-size:.9em}
td,th{padding:3px 8px;border-bottom:1px solid #eee;text-align:right}td:first-child,
th:first-child,td:last-child{text-align:left}.note{color:#a60}.fig svg{max-width:100%;
height:auto}.meta{color:#666;font-size:.85em}"""


def carbon_text(total_j: float, region: str | None) -> str:
    """One paragraph: the total's emissions at ``region``'s grid intensity (the world
    average, said so, without one), with the intensity's source and year."""
    from ..carbon import intensity_info

    info = intensity_info(region or "WORLD")
    grams = total_j / J_PER_KWH * info.value_g_per_kwh
    where = (f"{info.name} ({info.code})" if region else
             "the world average — no region given (energykernel measure/report --region CODE)")
    return (f"<p id=\"carbon\">Carbon: <b>{escape(si(grams, 'gCO2e'))}</b> at "
            f"{info.value_g_per_kwh:.4g} gCO2e/kWh, {escape(where)}; location-based grid "
            f"intensity, {info.year}, {escape(info.source)}.</p>")


def render(data: ReportData, *, title: str, source: str, statuses: list[Any] | None = None,
           note: str | None = None, notes: Sequence[str] = (),
           region: str | None = None) -> str:
    """The report as one HTML string (no external resources). ``region``: grid intensity
    for the carbon figure (ISO country or cloud region code; default the world average)."""
    total = total_energy_j(data.cube)
    runs = int(data.cube.runs.sum()) if "runs" in data.cube else 0
    parts = [f"<h1>{escape(title)}</h1>",
             f'<p class="meta">source: {escape(source)} · generated '
             f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} · {runs} runs · "
             f"total {escape(si(total, 'J'))}</p>", carbon_text(total, region)]
    if note:
        parts.append(f'<p class="note">{escape(note)}</p>')
    if notes:  # what the notebook asked (cells interrupted, unmeasured, lines not shown)
        items = "".join(f"<li>{escape(n)}</li>" for n in notes)
        parts.append(f'<ul class="note" id="notes">{items}</ul>')
    parts += ["<h2>How to read this report</h2>", HOW_TO_READ, "<h2>Energy per task</h2>"]
    for kind in ("tasks", "timeline", "instances"):
        if kind == "timeline" and data.timeline is None:
            continue
        if kind == "instances" and data.cube.sizes.get("instance", 0) < 2:
            continue
        svg = _figure(data, kind)
        if svg:
            parts.append(f'<div class="fig" id="plot-{kind}">{svg}</div>')
    parts += ["<h2>Summary</h2>", _table(data), "<h2>Methods used</h2>", _methods(data),
              _backends(statuses)]
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{escape(title)}</title><style>{CSS}</style></head>"
            f"<body>\n{body}\n</body></html>\n")


def write_report(data: ReportData, out: str | os.PathLike, **kwargs: Any) -> Path:
    """Render ``data`` and write it to ``out`` atomically."""
    return write_text_atomic(out, render(data, **kwargs))
