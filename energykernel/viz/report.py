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
from ..core.units import J_PER_KWH, si

if TYPE_CHECKING:
    import xarray as xr

METHODS_TEXT = {
    "rapl": "hardware energy counters (Intel/AMD RAPL) read through Linux powercap",
    "pyrapl": "hardware energy counters (RAPL) read through the pyRAPL package",
    "nvml": "NVIDIA GPU energy counters read through NVML",
    "amdsmi": "AMD GPU energy counters read through ROCm's AMD SMI",
    "levelzero": "Intel GPU energy counters read through Level Zero Sysman",
    "apple": "Apple Silicon energy as macOS IOReport models it (model-based figures from "
             "utilisation, frequency and voltage, not power sensors)",
    "hwmon": "Linux hwmon power meters (NVIDIA Grace / Grace Hopper), integrated over time",
    "estimate": "an estimate from a model (busy CPU time × watts per thread, memory in use "
                "× W/GB, bytes moved × J/byte) — no counter could be read for it",
    "simulated": "a simulation of the workflow, not a measurement",
}

HOW_TO_READ = """\
<p>Each <b>task</b> is a labelled piece of work: a notebook cell (<code>cell-N</code>, by
its execution count, or its <code># task:</code> label), a function or a block. The table
shows each with its source where the dataset has it (written by <code>energykernel
measure</code>; the number links to the cell), its energy with the interval the true
energy lies in (<code>≈ x ± y</code>, a range when wide, <code>&lt; x</code> below the
counter's resolution), a bar split by <b>component</b> (cpu, gpu, ram, storage; hatched
where estimated), its <b>active</b> share (the part above the machine's idle power, where
idle power was known), duration and carbon. A task's energy includes that of blocks
measured inside it (e.g. an <code>ek.measure</code> inside a cell); where there are such,
<b>self</b> is the task's energy without them, and the totals count every joule once.
Counters measure the whole machine unless a run used <code>scope="process"</code>, so
background activity is included. In the charts, <b>hatched</b> bars are estimates, dotted
ones simulated, solid ones hardware counters; the power timeline shows the sampled power
of each component with each task's span shaded. Units are SI: 1 kJ = 1000 J,
3.6 MJ = 1 kWh; 1 mgCO2e = 0.001 gCO2e.</p>"""


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


def total_duration_s(data: ReportData) -> float:
    """The time of the top-level runs (nested ones run inside them), NaN if unknown."""
    runs = data.runs
    if runs is not None and "run" in runs.dims and "duration" in runs:
        top = runs.parent.values == "" if "parent" in runs.coords else slice(None)
        return float(runs.duration.values[top].sum())
    cube = data.cube
    nested = "self_energy" in cube and bool(
        (cube.self_energy.fillna(0) < cube.energy.fillna(0) - 1e-12).any())
    return float("nan") if nested or "duration" not in cube else float(cube.duration.sum())


def total_energy_j(cube: xr.Dataset) -> float:
    """Every joule of a cube once: the sum of ``self_energy`` (runs nested inside others
    are not counted twice), or of ``energy`` for a cube without nesting information."""
    name = "self_energy" if "self_energy" in cube else "energy"
    return float(cube[name].sum(skipna=True))


def _methods(data: ReportData, common: dict[str, str]) -> str:
    """Each component's method, stated once with what it means; the tasks that used
    another are marked in the table."""
    used = sorted({part for m in data.cube.method.values.ravel() if m for part in str(m).split("+")})
    if not used:
        return "<p>No methods recorded.</p>"
    per_comp = "".join(f"<li><b>{escape(c)}</b>: {escape(m)}</li>" for c, m in common.items())
    meaning = "".join(f"<li><b>{escape(m)}</b>: {escape(METHODS_TEXT.get(m, 'unknown method'))}"
                      "</li>" for m in used)
    others = sorted(set(used) - {p for m in common.values() for p in m.split("+")})
    odd = (f"<p>Tasks that used another method ({escape(', '.join(others))}) say so in the "
           "table.</p>" if others else "")
    return (f'<ul id="methods">{per_comp}</ul>{odd}<p>What each method is:</p>'
            f"<ul>{meaning}</ul>")


def _backends(statuses: list[Any] | None) -> str:
    if not statuses:
        return ""
    rows = "".join(
        f"<tr><td>{escape(s.name)}</td><td>{'yes' if s.available else 'no'}</td>"
        f"<td>{escape(s.reason)}</td></tr>" for s in statuses)
    return ("<h3>Backends on the measuring machine</h3><table><thead><tr><th>backend</th>"
            f"<th>available</th><th>why / what</th></tr></thead><tbody>{rows}</tbody></table>")


CSS = """body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;
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
    return (f"<p id=\"carbon\">Carbon: <b>{escape(si(grams, 'gCO2e'))}</b> at "
            f"{info.value_g_per_kwh:.4g} gCO2e/kWh, {escape(_where(info, region))}; "
            f"location-based grid intensity, {info.year}, {escape(info.source)}.</p>")


def _where(info: Any, region: str | None) -> str:
    return (f"{info.name} ({info.code})" if region else
            "the world average — no region given (energykernel measure/report --region CODE)")


def render(data: ReportData, *, title: str, source: str, statuses: list[Any] | None = None,
           note: str | None = None, notes: Sequence[str] = (),
           region: str | None = None) -> str:
    """The report as one HTML string (no external resources). ``region``: grid intensity
    for the carbon figure (ISO country or cloud region code; default the world average)."""
    from ..carbon import intensity_info
    from . import report_cells as cells

    total = total_energy_j(data.cube)
    runs = int(data.cube.runs.sum()) if "runs" in data.cube else 0
    info = intensity_info(region or "WORLD")
    prof = cells.profile(data.cube, data.runs, info.value_g_per_kwh)
    parts = [f"<h1>{escape(title)}</h1>",
             f'<p class="meta">source: {escape(source)} · generated '
             f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} · {runs} runs · "
             f"total {escape(si(total, 'J'))}</p>", carbon_text(total, region)]
    if prof.methods:
        parts.append('<p id="measured-by">Measured by: ' + escape(", ".join(
            f"{c} {m}" for c, m in prof.methods.items())) + ' (<a href="#how">how and why'
            "</a>)</p>")
    if note:
        parts.append(f'<p class="note">{escape(note)}</p>')
    if notes:  # what the notebook asked (cells interrupted, unmeasured, lines not shown)
        items = "".join(f"<li>{escape(n)}</li>" for n in notes)
        parts.append(f'<ul class="note" id="notes">{items}</ul>')
    parts += [cells.top_section(prof, total), cells.changes_section(prof),
              "<h2>Every task</h2>",
              cells.cells_table(prof, data.cube, total, total_duration_s(data)),
              "<h2>Energy per task</h2>"]
    for kind in ("tasks", "timeline", "instances"):
        if kind == "timeline" and data.timeline is None:
            continue
        if kind == "instances" and data.cube.sizes.get("instance", 0) < 2:
            continue
        svg = _figure(data, kind)
        if svg:
            parts.append(f'<div class="fig" id="plot-{kind}">{svg}</div>')
    parts += ["<h2>How to read this report</h2>", HOW_TO_READ,
              '<h2 id="how">How it was measured</h2>', _methods(data, prof.methods),
              _backends(statuses)]
    body = "\n".join(p for p in parts if p)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{escape(title)}</title><style>{CSS}{cells.CSS}{cells.code_css()}"
            f"</style></head><body>\n{body}\n</body></html>\n")


def write_report(data: ReportData, out: str | os.PathLike, **kwargs: Any) -> Path:
    """Render ``data`` and write it to ``out`` atomically."""
    return write_text_atomic(out, render(data, **kwargs))
