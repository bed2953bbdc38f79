"""The report's profile of a notebook: one row per task (a cell, or a block measured inside
one) with its source, energy and interval, an in-line bar, active share, duration, carbon
and the change since the previous run; the cells that cost most first; a total that counts
each joule once; the method of each component stated once.

Cell sources, numbers, ids and the previous run come from the runs' ``extra["cell"]``
(written by ``energykernel measure``); a dataset without them shows its task names.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from dataclasses import dataclass, field
from html import escape
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.units import COMPONENTS, J_PER_KWH, duration, short_label, si, si_interval
from ..data.history import verdict as verdict_of

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

#: Key of the runner's cell fields in a run's ``extra``.
CELL_KEY = "cell"
#: How many tasks "Where the energy went" names.
TOP_N = 5
_COLORS = {"cpu": "#4C72B0", "gpu": "#DD8452", "ram": "#55A868", "storage": "#8172B3"}


@dataclass
class CellInfo:
    """What the dataset knows of the notebook cell behind a task."""

    number: int | None = None  # 1-based position in the notebook
    cell_id: str = ""
    source: str = ""  # the first lines
    more: bool = False  # the source goes on
    nested: bool = False  # a block measured inside the cell, not the cell itself
    previous: dict[str, float] = field(default_factory=dict)  # total_j, lo_j, hi_j
    previous_at: str = ""


def cell_infos(runs: xr.Dataset | None) -> tuple[dict[str, CellInfo], dict[str, float]]:
    """Per task: its :class:`CellInfo` (from the first run that has one), and its place
    in notebook order (cell number, else the order its first run started)."""
    if runs is None or "run" not in runs.dims:
        return {}, {}
    infos: dict[str, CellInfo] = {}
    starts: dict[str, float] = {}
    extras = runs["extra"].values if "extra" in runs else [""] * runs.sizes["run"]
    start = runs["start"].values.astype("datetime64[ns]").astype(np.int64)
    for task, text, t0 in zip(runs.task.values, extras, start, strict=True):
        task = str(task)
        starts[task] = min(starts.get(task, t0), t0)
        if task in infos or not text:
            continue
        try:
            cell = json.loads(str(text)).get(CELL_KEY)
        except (ValueError, AttributeError):
            continue
        if isinstance(cell, dict):
            infos[task] = _info(cell)
    rank = {t: float(k) for k, t in enumerate(sorted(starts, key=starts.__getitem__))}
    order = {}
    for task, k in rank.items():
        info = infos.get(task)
        # cells by their number; a nested block just after its cell; others by time
        order[task] = (info.number + (0.5 if info.nested else 0.0) if info and info.number
                       else 1e6 + k)
    return infos, order


def _info(cell: dict[str, Any]) -> CellInfo:
    prev = cell.get("previous") if isinstance(cell.get("previous"), dict) else {}
    number = cell.get("number")
    return CellInfo(number=number if isinstance(number, int) else None,
                    cell_id=str(cell.get("id") or ""), source=str(cell.get("source") or ""),
                    more=bool(cell.get("more")), nested=bool(cell.get("nested")),
                    previous={k: float(v) for k, v in prev.items()
                              if k in ("total_j", "lo_j", "hi_j") and isinstance(v, (int, float))},
                    previous_at=str(prev.get("at", "")))


def highlight(source: str) -> str:
    """``source`` as HTML, Python syntax-highlighted (Pygments, CSS classes of :func:`code_css`),
    every character escaped; plain escaped text without Pygments."""
    tools = _pygments()
    if tools is None:
        return escape(source)
    run, lexer, formatter = tools
    return run(source, lexer, formatter).rstrip("\n")


@functools.lru_cache(maxsize=1)
def _pygments() -> tuple[Any, Any, Any] | None:
    try:
        from pygments import highlight as run
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import PythonLexer
    except ImportError:
        return None
    return run, PythonLexer(), HtmlFormatter(nowrap=True)


def code_css() -> str:
    """The style of :func:`highlight`'s classes, scoped to ``.src``."""
    try:
        from pygments.formatters import HtmlFormatter
    except ImportError:
        return ""
    return HtmlFormatter(style="default").get_style_defs(".src")


def common_methods(cube: xr.Dataset) -> dict[str, str]:
    """Per component, the method most tasks used (the one the report states once)."""
    out = {}
    for comp in COMPONENTS:
        if comp not in cube.component.values:
            continue
        names = [str(m) for m in cube.method.sel(component=comp).values.ravel() if m]
        if names:
            out[comp] = Counter(names).most_common(1)[0][0]
    return out


def methods_by_task(cube: xr.Dataset) -> dict[str, dict[str, str]]:
    """Per task, per component, the method(s) of its runs (``a+b`` where they differ)."""
    values = cube.method.transpose("task", ..., "component").values
    values = values.reshape(values.shape[0], -1, values.shape[-1])
    comps = [str(c) for c in cube.method.component.values]
    out = {}
    for j, task in enumerate(cube.task.values):
        names = {c: "+".join(sorted({str(m) for m in values[j, :, k] if m}))
                 for k, c in enumerate(comps)}
        out[str(task)] = {c: m for c, m in names.items() if m}
    return out


def _bar(row: pd.Series, comps: list[str], methods: dict[str, str], scale_j: float) -> str:
    """An in-line bar, one segment per component (hatched where estimated)."""
    parts, tips = [], []
    for comp in comps:
        joules = row.get(f"{comp}_j", float("nan"))
        if not joules > 0:  # NaN too
            continue
        width = 100.0 * joules / scale_j if scale_j > 0 else 0.0
        color = _COLORS[comp]
        fill = (f"repeating-linear-gradient(135deg,{color} 0 3px,{color}88 3px 6px)"
                if "estimate" in methods.get(comp, "") else color)
        parts.append(f'<i style="width:{width:.2f}%;background:{fill}"></i>')
        tips.append(f"{comp} {si(joules, 'J')} ({methods.get(comp, '?')})")
    return f'<div class="bar" title="{escape(" · ".join(tips))}">{"".join(parts)}</div>'


def _change(info: CellInfo | None, total: float, lo: float, hi: float) -> tuple[str, str]:
    """The change cell's HTML and its verdict: ``rose``, ``fell``, ``same`` or ``""``."""
    prev = info.previous if info else {}
    if "total_j" not in prev:
        return "", ""
    delta = total - prev["total_j"]
    verdict = verdict_of(lo, hi, prev)
    ratio = ""
    if prev["total_j"] > 0:
        r = total / prev["total_j"]
        ratio = f" (×{r:.3g})" if r >= 2 or r <= 0.5 else f" ({r - 1:+.0%})"
    sign = "+" if delta > 0 else ""
    flag = {"rose": '<br><b class="up" title="its energy rose beyond both intervals">▲ rose'
                    '</b>',
            "fell": '<br><b class="down" title="its energy fell beyond both intervals">▼ fell'
                    '</b>'}.get(verdict, "")
    when = f' title="previous run {escape(info.previous_at)}"' if info and info.previous_at \
        else ""
    return (f'<span{when}>was {escape(si(prev["total_j"], "J"))}<br>'
            f'{escape(sign + si(delta, "J"))}{escape(ratio)}</span>{flag}', verdict)


def _task_cell(task: str, info: CellInfo | None, odd: dict[str, str]) -> tuple[str, str]:
    """(the cell-number column, the source column) of a task's row."""
    label = escape(short_label(task))
    tip = escape(task[:2000])
    if info is None or info.number is None:
        number = ""
    else:
        where = f"cell {info.number}" + (f", id {info.cell_id}" if info.cell_id else "")
        number = (f'<a href="#cell-{info.number}" title="{escape(where)}">'
                  f"{'in ' if info.nested else ''}{info.number}</a>")
    name = f'<span class="task" title="{tip}">{label}</span>'
    if odd:
        name += ' <span class="odd">' + escape(", ".join(f"{c}: {m}" for c, m in odd.items())) \
            + "</span>"
    if info is not None and info.source and not info.nested:
        code = highlight(info.source) + ("\n…" if info.more else "")
        return number, f'{name}<pre class="src">{code}</pre>'
    return number, name


@dataclass
class Profile:
    """The rows of the report's table, built once, drawn by several sections."""

    table: pd.DataFrame  # ds.ek.summary(): energy per task, largest first
    infos: dict[str, CellInfo]
    order: dict[str, float]
    methods: dict[str, str]  # component → the method most tasks used
    comps: list[str]
    g_per_j: float  # grid intensity, gCO2e per J
    by_task: dict[str, dict[str, str]]  # task → component → method(s)


def profile(cube: xr.Dataset, runs: xr.Dataset | None, g_per_kwh: float) -> Profile:
    """Everything the table needs, from the cube and (where there is one) its runs."""
    from ..data import accessor  # noqa: F401  (registers ds.ek)

    table = cube.ek.summary()
    infos, order = cell_infos(runs)
    if not order:
        order = {str(t): float(k) for k, t in enumerate(cube.task.values)}
    comps = [c for c in COMPONENTS if f"{c}_j" in table.columns]
    return Profile(table, infos, order, common_methods(cube), comps, g_per_kwh / J_PER_KWH,
                   methods_by_task(cube))


def cells_table(p: Profile, cube: xr.Dataset, total_j: float, total_s: float) -> str:
    """The table of every task (sortable by energy or notebook order), with its total row
    (``total_j``: each joule once; ``total_s``: the top-level runs' time, NaN if unknown)."""
    if p.table.empty:
        return "<p>No runs.</p>"
    nan = float("nan")
    nested = bool((p.table["self_j"] < p.table["total_j"] - 1e-12).any())
    active = "active_j" in p.table and bool(p.table["active_j"].notna().any())
    history = any(info.previous for info in p.infos.values())
    scale = float(p.table["total_j"].max())
    head = ["cell", "task and source", "energy", "", *(["self"] if nested else []),
            *(["active"] if active else []), "duration", "carbon",
            *(["previous run"] if history else [])]
    rows = []
    for task, row in p.table.iterrows():
        task = str(task)
        info = p.infos.get(task)
        methods = p.by_task.get(task, {})
        odd = {c: m for c, m in methods.items() if p.methods.get(c) != m}
        number, source = _task_cell(task, info, odd)
        total, lo, hi = row["total_j"], row.get("lo_j", nan), row.get("hi_j", nan)
        change, verdict = _change(info, total, lo, hi)
        share = row.get("active_j", nan) / total if total > 0 else nan
        cells = [number, source, escape(si_interval(total, lo, hi, "J")),
                 _bar(row, p.comps, methods, scale),
                 *([escape(si(row["self_j"], "J"))] if nested else []),
                 *([f"{share:.0%}" if share == share else "—"] if active else []),
                 _duration(row.get("duration_s", nan)),
                 escape(si(total * p.g_per_j, "gCO2e")),
                 *([change] if history else [])]
        anchor = f' id="cell-{info.number}"' if info and info.number and not info.nested else ""
        cls = f' class="{verdict}"' if verdict in ("rose", "fell") else ""
        tds = [f"<td>{c}</td>" for c in cells]
        if history:
            tds[-1] = f'<td class="chg">{cells[-1]}</td>'
        rows.append(f'<tr{anchor}{cls} data-energy="{total:.17g}" '
                    f'data-order="{p.order.get(task, 1e9):.6g}">' + "".join(tds) + "</tr>")
    foot = ["", "<b>total</b>, each joule once", f"<b>{escape(si(total_j, 'J'))}</b>", "",
            *([""] if nested else []), *([""] if active else []),
            _duration(total_s),
            f"<b>{escape(si(total_j * p.g_per_j, 'gCO2e'))}</b>", *([""] if history else [])]
    sort = ('<p class="sort">Sort: <button type="button" data-key="energy" '
            'aria-pressed="true">by energy</button> <button type="button" data-key="order" '
            'aria-pressed="false">in notebook order</button></p>')
    return (sort + '<table id="cells"><thead><tr>'
            + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr></thead><tbody>"
            + "".join(rows) + "</tbody><tfoot><tr>"
            + "".join(f"<td>{c}</td>" for c in foot) + "</tr></tfoot></table>" + SORT_SCRIPT)


def _duration(seconds: float) -> str:
    return escape(duration(seconds)) if seconds == seconds else "—"


def top_section(p: Profile, total_j: float) -> str:
    """"Where the energy went": the tasks of largest self energy, with their share."""
    if p.table.empty or total_j <= 0:
        return ""
    top = p.table["self_j"].sort_values(ascending=False).head(TOP_N)
    items = []
    for task, own in top.items():
        info = p.infos.get(str(task))
        what = escape(short_label(str(task)))
        if info and info.number and not info.nested:
            first = _first_line(info.source)
            what = (f'<a href="#cell-{info.number}">cell {info.number}</a> '
                    f'<code>{escape(short_label(first, 60))}</code>' if first else
                    f'<a href="#cell-{info.number}">cell {info.number}</a> ({what})')
        items.append(f"<li>{what}: <b>{escape(si(own, 'J'))}</b>, "
                     f"{own / total_j:.0%} of the total, "
                     f"{escape(si(own * p.g_per_j, 'gCO2e'))}</li>")
    share = float(top.sum()) / total_j
    n = len(top)
    lead = (f"The {n} costliest of {len(p.table)} tasks hold {share:.0%} of the energy "
            "(each joule once: a block measured inside a cell counts there, not in the cell):"
            if len(p.table) > n else "Every task, costliest first:")
    return f'<h2>Where the energy went</h2><p>{lead}</p><ol id="top">{"".join(items)}</ol>'


def _first_line(source: str) -> str:
    """The line that says what a cell does: its first that is not blank, a comment or a
    magic (the first line at all if every line is)."""
    lines = [ln.strip() for ln in source.splitlines() if ln.strip()]
    return next((ln for ln in lines if not ln.startswith(("#", "%"))), lines[0] if lines
                else "")


def changes_section(p: Profile) -> str:
    """The tasks whose energy rose (or fell) beyond both intervals since the previous run."""
    flagged: dict[str, list[str]] = {"rose": [], "fell": []}
    compared = 0
    for task, row in p.table.iterrows():
        info = p.infos.get(str(task))
        if not info or "total_j" not in info.previous:
            continue
        compared += 1
        verdict = verdict_of(row.get("lo_j", float("nan")), row.get("hi_j", float("nan")),
                             info.previous)
        if verdict in flagged:
            where = f"cell {info.number}" if info.number else escape(short_label(str(task)))
            flagged[verdict].append(f"{where} ({escape(si(info.previous['total_j'], 'J'))} → "
                                    f"{escape(si(row['total_j'], 'J'))})")
    if not compared:
        return ""
    lines = [f"{compared} task(s) compared with their previous run (same source)."]
    if flagged["rose"]:
        lines.append('<b class="up">▲ Energy rose beyond both intervals</b> (a regression): '
                     + "; ".join(flagged["rose"]) + ".")
    if flagged["fell"]:
        lines.append('<b class="down">▼ Fell beyond both intervals</b>: '
                     + "; ".join(flagged["fell"]) + ".")
    if not flagged["rose"] and not flagged["fell"]:
        lines.append("None moved beyond what the intervals allow.")
    return '<h2>Since the previous run</h2><p id="changes">' + "<br>".join(lines) + "</p>"


SORT_SCRIPT = """<script>
document.querySelectorAll('.sort button').forEach(function (b) {
  b.addEventListener('click', function () {
    var body = document.querySelector('#cells tbody'), key = b.dataset.key;
    Array.prototype.slice.call(body.rows).sort(function (x, y) {
      return key === 'energy' ? y.dataset.energy - x.dataset.energy
                              : x.dataset.order - y.dataset.order;
    }).forEach(function (r) { body.appendChild(r); });
    document.querySelectorAll('.sort button').forEach(function (o) {
      o.setAttribute('aria-pressed', String(o === b)); });
  });
});
</script>"""

CSS = """#cells{width:100%}#cells td,#cells th{padding:3px 6px}#cells td{vertical-align:top;white-space:nowrap}
#cells td:nth-child(2),#cells th:nth-child(2){text-align:left;white-space:normal;
max-width:430px}#cells td.chg{font-size:.9em}#cells tfoot td{border-top:2px solid #999;border-bottom:0}
pre.src{margin:2px 0 0;min-width:280px;padding:3px 6px;background:#f6f8fa;border-radius:3px;font-size:.82em;
white-space:pre-wrap;word-break:break-word;max-height:5.4em;overflow:hidden}
.task{font-weight:600}.odd{color:#a60;font-size:.85em}.bar{width:90px;height:10px;
background:#f0f0f0;display:flex;margin-top:4px}.bar i{display:block;height:100%}
tr.rose{background:#fff1f0}.up{color:#c0392b}.down{color:#27864a}.sort button{font:inherit;
font-size:.85em;border:1px solid #bbb;background:#fff;border-radius:3px;padding:1px 8px;
cursor:pointer}.sort button[aria-pressed=true]{background:#e8eef8;border-color:#4C72B0}
#top code{font-size:.9em;background:#f6f8fa;padding:0 3px}"""
