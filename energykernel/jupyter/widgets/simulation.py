"""The workflow simulator widget: an ipywidgets view over :mod:`energykernel.sim`.

Every number shown comes from the pure function :func:`compute` (field values → scaled
workflow, environment, the three modes' results, totals, the per-instance and
per-component breakdown, Gantt lanes, and errors keyed by field), testable without a
browser. The widget reads its fields, shows errors next to them (never a traceback), draws
its charts with :class:`matplotlib.figure.Figure` into an ``ipywidgets.Image`` and keeps
the latest numbers: ``.result`` (the selected mode's Dataset, the documented schema),
``.simulation`` (its :class:`~energykernel.sim.SimulationResult`) and ``.results`` (all
three modes).

Updates are debounced (``debounce_s`` after the last change, default 150 ms) and
serialised by a lock; :meth:`Simulator.update` applies the fields synchronously.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from energykernel.sim import (
    MODES,
    ComputeEnvironment,
    ComputeInstance,
    Resource,
    SimulationInputError,
    SimulationResult,
    Task,
    Workflow,
)

from ._common import Debouncer, caption_html, error_html, figure_png

INSTANCE_FIELDS = ("speed", "idle_power_w", "pue", "intensity_g_per_kwh")
WORKLOAD_FIELDS = ("n_tasks", "duration_spread", "demand_scale", "seed")
COMPONENTS = ("cpu", "gpu", "ram", "storage")
COMPONENT_COLOURS = {"cpu": "#4c72b0", "gpu": "#dd8452", "ram": "#55a868",
                     "storage": "#8172b3", "idle": "#b8b8b8"}
J_PER_KWH = 3.6e6
LEGEND_MAX_TASKS = 16  # more distinct task names than this: no task legend


def default_environment() -> ComputeEnvironment:
    """A small fleet like ``examples/instances.json`` (CPU-only, GPU, high-memory)."""
    return ComputeEnvironment([
        ComputeInstance("cpu", {"cpu": Resource(64, 4.375), "ram": Resource(512, 0.375)},
                        idle_power_w=120, pue=1.2),
        ComputeInstance("gpu", {"cpu": Resource(64, 3.516), "gpu": Resource(4, 400.0),
                                "ram": Resource(1024, 0.375)}, idle_power_w=400, pue=1.2),
        ComputeInstance("highmem", {"cpu": Resource(80, 6.75), "ram": Resource(4096, 0.375)},
                        speed=1.1, idle_power_w=200, pue=1.2),
    ])


def default_workflow() -> Workflow:
    """A five-step ML pipeline for the default fleet."""
    return Workflow([
        Task("load", 120, {"cpu": 8, "ram": 64}), Task("join", 600, {"cpu": 32, "ram": 1500}),
        Task("train", 3600, {"cpu": 8, "gpu": 2, "ram": 128}),
        Task("evaluate", 240, {"cpu": 4, "gpu": 1, "ram": 32}), Task("report", 60, {"cpu": 2}),
    ])


# -- pure functions ---------------------------------------------------------------------------


def _parse_optional(value: Any, what: str) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise SimulationInputError(f"{what}: must be a number or empty, got {value!r}") from None


def _finite(value: Any, what: str) -> float:
    if isinstance(value, bool):
        raise SimulationInputError(f"{what}: must be a number, got {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise SimulationInputError(f"{what}: must be a number, got {value!r}") from None
    if not math.isfinite(x):
        raise SimulationInputError(f"{what}: must be finite, got {value!r}")
    return x


def scale_workflow(workflow: Workflow, *, n_tasks: Any = None, duration_spread: Any = 0.0,
                   demand_scale: Any = 1.0, seed: Any = 0) -> Workflow:
    """``workflow`` regenerated to ``n_tasks`` steps, deterministically.

    Step ``k`` is task ``k mod len(workflow)`` (same name); its duration is multiplied by
    a factor drawn uniformly from ``[1 - duration_spread, 1 + duration_spread]`` with
    ``numpy.random.default_rng(seed)`` (the first ``k`` factors do not depend on
    ``n_tasks``), and every demand by ``demand_scale``. The defaults (``n_tasks`` = its
    length, no spread, ×1) return the workflow's own tasks. Bad values raise
    :class:`SimulationInputError` ``"field: message"``.
    """
    base = list(workflow.tasks)
    if n_tasks is None:
        n = len(base)
    else:
        x = _finite(n_tasks, "n_tasks")
        if x != int(x) or x < 1:
            raise SimulationInputError(f"n_tasks: must be a whole number ≥ 1, got {n_tasks!r}")
        n = int(x)
    spread = _finite(duration_spread, "duration_spread")
    if not 0 <= spread < 1:
        raise SimulationInputError(
            f"duration_spread: must be ≥ 0 and < 1 (0.2 = ±20 %), got {duration_spread!r}")
    scale = _finite(demand_scale, "demand_scale")
    if not scale > 0:
        raise SimulationInputError(f"demand_scale: must be > 0, got {demand_scale!r}")
    s = _finite(seed, "seed")
    if s != int(s) or s < 0:
        raise SimulationInputError(f"seed: must be a whole number ≥ 0, got {seed!r}")
    if not base:
        return Workflow([], name=workflow.name)
    if n == len(base) and spread == 0 and scale == 1:
        return workflow
    factors = (np.random.default_rng(int(s)).uniform(1 - spread, 1 + spread, n)
               if spread else np.ones(n))
    tasks = []
    for k in range(n):
        t = base[k % len(base)]
        demand = t.demand if scale == 1 else {c: v * scale for c, v in t.demand.items()}
        if factors[k] == 1 and scale == 1:
            tasks.append(t)
        else:
            tasks.append(Task(t.name, t.duration_s * float(factors[k]), demand))
    return Workflow(tasks, name=workflow.name)


def lanes(result: SimulationResult) -> tuple[np.ndarray, np.ndarray]:
    """Gantt sub-rows: ``(lane per step, lanes per instance)``.

    Steps that overlap in time on one instance get different lanes (greedy by start time,
    lowest free lane first: the fewest lanes possible); every instance has ≥ 1 lane.
    """
    n_inst = len(result.instances)
    start = np.asarray(result.start_s, dtype=float)
    end = np.asarray(result.end_s, dtype=float)
    assign = np.asarray(result.assignment, dtype=int)
    lane = np.zeros(len(start), dtype=int)
    ends: list[list[float]] = [[] for _ in range(n_inst)]
    eps = 1e-9 * max(1.0, float(end.max()) if len(end) else 1.0)
    for s in np.lexsort((end, start)).tolist():
        busy = ends[assign[s]]
        for k, e in enumerate(busy):
            if e <= start[s] + eps:
                busy[k] = end[s]
                lane[s] = k
                break
        else:
            lane[s] = len(busy)
            busy.append(end[s])
    return lane, np.array([max(1, len(b)) for b in ends], dtype=int)


def breakdown(result: SimulationResult, env: ComputeEnvironment) -> dict[str, Any]:
    """Energy (kWh) and carbon (gCO2e) per instance and component, plus idle and total.

    ``components``: those some instance has; ``energy_kwh`` / ``emissions_g``: mapping
    ``component or "idle" or "total"`` → list per instance (emissions NaN where the
    instance has no intensity); ``tasks``: steps run per instance.
    """
    comps = [c for c in COMPONENTS if any(c in i.resources for i in env.instances)]
    per = result.instance_energy_j / J_PER_KWH  # (instances × COMPONENTS), PUE included
    idle = np.array([result.idle_energy_j[n] for n in result.instances]) / J_PER_KWH
    intensity = np.array([np.nan if i.intensity_g_per_kwh is None else i.intensity_g_per_kwh
                          for i in env.instances])
    energy = {c: per[:, COMPONENTS.index(c)] for c in comps}
    energy["idle"] = idle
    energy["total"] = per.sum(axis=1) + idle
    return {
        "instances": list(result.instances), "components": comps,
        "tasks": np.bincount(result.assignment, minlength=len(result.instances)).tolist(),
        "energy_kwh": {k: v.tolist() for k, v in energy.items()},
        "emissions_g": {k: (v * intensity).tolist() for k, v in energy.items()},
    }


def mode_totals(result: SimulationResult) -> dict[str, Any]:
    """A mode's totals: energy (kWh) per component and idle, makespan, emissions."""
    per = result.instance_energy_j.sum(axis=0) / J_PER_KWH
    t = result.totals()
    return {"energy_kwh": t["energy_j"] / J_PER_KWH, "makespan_s": t["makespan_s"],
            "emissions_g": t["emissions_g"], "idle_kwh": t["idle_energy_j"] / J_PER_KWH,
            "component_kwh": {c: float(per[k]) for k, c in enumerate(COMPONENTS)}}


def compute(env: ComputeEnvironment, workflow: Workflow, *, mode: str = "optimize",
            instances: Mapping[str, Mapping[str, Any]] | None = None, n_tasks: Any = None,
            duration_spread: Any = 0.0, demand_scale: Any = 1.0, seed: Any = 0,
            deadline_s: Any = None, compare: bool = True) -> dict[str, Any]:
    """Everything the widget shows, from field values.

    ``instances``: name → {``speed``, ``idle_power_w``, ``pue``, ``intensity_g_per_kwh``,
    ``"<component>.cost"``, ``"<component>.capacity"``} overrides; ``n_tasks``,
    ``duration_spread``, ``demand_scale``, ``seed``: see :func:`scale_workflow`;
    ``deadline_s`` applies to ``optimal``.

    Returns ``errors`` (``"instance.field"``, a workload field, ``"deadline"`` or ``"run"``
    → message; nothing is computed while a field is invalid), ``simulation`` (the selected
    mode's SimulationResult, or None), ``results`` (mode → result, all three with
    ``compare``), ``totals`` (mode → :func:`mode_totals`), ``breakdown`` (selected mode,
    :func:`breakdown`), ``lanes`` (selected mode, :func:`lanes`), ``environment`` and
    ``workflow`` (after the overrides). The widget's ``.result`` is
    ``out["simulation"].dataset``.
    """
    errors: dict[str, str] = {}
    new = []
    for inst in env.instances:
        fields = dict((instances or {}).get(inst.name, {}))
        changes: dict[str, Any] = {}
        try:
            for f in INSTANCE_FIELDS:
                if f in fields:
                    changes[f] = (_parse_optional(fields[f], f) if f == "intensity_g_per_kwh"
                                  else fields[f])
            res = {c: r.to_dict() for c, r in inst.resources.items()}
            for key, v in fields.items():
                comp, _, part = key.partition(".")
                if comp in res and part in ("cost", "capacity"):
                    res[comp][part] = v
            changes["resources"] = res
            new.append(inst.with_changes(**changes))
        except SimulationInputError as exc:
            field, _, msg = str(exc).partition(": ")
            key = field.removeprefix("resources.")
            errors[f"{inst.name}.{key}"] = msg or str(exc)
    out: dict[str, Any] = {"simulation": None, "results": {}, "totals": {}, "breakdown": None,
                           "lanes": None, "errors": errors}
    try:
        deadline = _parse_optional(deadline_s, "deadline")
        if deadline is not None and not (math.isfinite(deadline) and deadline > 0):
            raise SimulationInputError("deadline: must be > 0 s, or empty for none")
    except SimulationInputError as exc:
        errors["deadline"] = str(exc).partition(": ")[2]
        deadline = None
    try:
        wf = scale_workflow(workflow, n_tasks=n_tasks, duration_spread=duration_spread,
                            demand_scale=demand_scale, seed=seed)
    except SimulationInputError as exc:
        field, _, msg = str(exc).partition(": ")
        errors[field if field in WORKLOAD_FIELDS else "run"] = msg or str(exc)
    if mode not in MODES:
        errors["mode"] = f"must be one of {', '.join(MODES)}, got {mode!r}"
    if errors:
        return out
    env2 = ComputeEnvironment(new)
    for m in (MODES if compare else (mode,)):
        try:
            out["results"][m] = env2.run(wf, m, deadline_s=deadline if m == "optimal" else None)
        except SimulationInputError as exc:
            key = "deadline" if m == "optimal" and str(exc).startswith("deadline_s") else "run"
            if m == mode or key == "deadline":
                errors[key] = str(exc)
    sim = out["results"].get(mode)
    out["totals"] = {m: mode_totals(r) for m, r in out["results"].items()}
    if sim is not None:
        out["simulation"] = sim
        out["breakdown"] = breakdown(sim, env2)
        out["lanes"] = lanes(sim)
    out["environment"], out["workflow"] = env2, wf
    return out


# -- views ------------------------------------------------------------------------------------


def _num(x: float, fmt: str) -> str:
    return "–" if x != x else format(x, fmt)


def totals_html(totals: Mapping[str, Mapping[str, Any]], selected: str) -> str:
    """The three modes side by side: one row each (the selected one bold), with a bar of
    its energy stacked by component and idle (drawn in HTML: no figure to render)."""
    def parts(t: Mapping[str, Any]) -> list[tuple[str, float]]:
        return [*t["component_kwh"].items(), ("idle", t["idle_kwh"])]

    widest = max((sum(v for _, v in parts(t)) for t in totals.values()), default=0.0) or 1.0
    rows = []
    for m, t in totals.items():
        style = " style='font-weight:bold'" if m == selected else ""
        bar = "".join(
            f"<span title='{c}: {v:,.4f} kWh' style='display:inline-block;height:0.9em;"
            f"width:{160 * v / widest:.1f}px;background:{COMPONENT_COLOURS.get(c, '#999')}'>"
            "</span>" for c, v in parts(t) if v > 0)
        rows.append(f"<tr{style}><td>{m}</td><td>{t['energy_kwh']:,.4f}</td>"
                    f"<td>{t['makespan_s']:,.1f}</td>"
                    f"<td>{_num(t['emissions_g'], ',.1f')}</td>"
                    f"<td style='white-space:nowrap'>{bar}</td></tr>")
    legend = " ".join(
        f"<span style='color:{COMPONENT_COLOURS.get(c, '#999')}'>■</span> {c}"
        for c, _ in parts(next(iter(totals.values())))) if totals else ""
    return ("<table class='ek-sim-totals'><tr><th>mode</th><th>energy (kWh)</th>"
            "<th>makespan (s)</th><th>emissions (gCO2e)</th>"
            f"<th style='font-weight:normal'>{legend}</th></tr>" + "".join(rows) + "</table>")


def breakdown_html(b: Mapping[str, Any], mode: str) -> str:
    """Per instance: energy (kWh) and carbon (gCO2e) of each component, idle and total."""
    cols = [*b["components"], "idle", "total"]
    head = "".join(f"<th colspan='2'>{c}</th>" for c in cols)
    sub = "".join("<th>kWh</th><th>gCO2e</th>" for _ in cols)
    rows = []
    for k, name in enumerate(b["instances"]):
        cells = "".join(f"<td>{_num(b['energy_kwh'][c][k], ',.4f')}</td>"
                        f"<td>{_num(b['emissions_g'][c][k], ',.1f')}</td>" for c in cols)
        rows.append(f"<tr><td>{html.escape(name)}</td><td>{b['tasks'][k]}</td>{cells}</tr>")
    return (f"<div style='overflow-x:auto'><table class='ek-sim-breakdown'>"
            f"<caption style='text-align:left'>{mode}: energy and carbon per instance and "
            f"component (PUE included)</caption>"
            f"<tr><th rowspan='2'>instance</th><th rowspan='2'>tasks</th>{head}</tr>"
            f"<tr>{sub}</tr>" + "".join(rows) + "</table></div>")


def _rects(ax: Any, x: Any, y: Any, width: Any, height: Any, colours: list[Any],
           **kwargs: Any) -> None:
    """Axis-aligned rectangles as one PolyCollection (far cheaper than one patch each)."""
    from matplotlib.collections import PolyCollection

    x, y, width, height = np.broadcast_arrays(*(np.atleast_1d(np.asarray(v, dtype=float))
                                                for v in (x, y, width, height)))
    if not x.size:
        return
    verts = np.stack([np.stack([x, y], -1), np.stack([x + width, y], -1),
                      np.stack([x + width, y + height], -1), np.stack([x, y + height], -1)], 1)
    ax.add_collection(PolyCollection(verts, facecolors=colours, **kwargs), autolim=False)


def gantt(result: SimulationResult, ax: Any = None,
          lane_info: tuple[np.ndarray, np.ndarray] | None = None) -> Any:
    """Gantt chart of ``result`` on a Matplotlib Axes: one band per instance, one sub-row
    per lane (:func:`lanes`, so concurrent tasks never overlap), the task legend below the
    axes. Returns the figure."""
    if ax is None:
        from matplotlib.figure import Figure

        ax = Figure(figsize=(9, 1.5 + 0.5 * len(result.instances))).subplots()
    from matplotlib.patches import Patch

    lane, count = lane_info if lane_info is not None else lanes(result)
    names = list(dict.fromkeys(result.task_names))
    colours = {n: f"C{k % 10}" for k, n in enumerate(names)}
    heights = np.minimum(count, 8) * 0.5 + 0.5  # a band grows with its lanes, up to a cap
    bottoms = np.concatenate([[0.0], np.cumsum(heights + 0.3)[:-1]])
    assign = np.asarray(result.assignment, dtype=int)
    odd = np.arange(1, len(result.instances), 2)  # shaded bands group an instance's lanes
    _rects(ax, 0.0, bottoms[odd] - 0.15, 2 * max(result.makespan_s, 1.0), heights[odd] + 0.3,
           ["0.95"] * len(odd), linewidth=0)
    h = heights[assign] / count[assign]
    _rects(ax, result.start_s, bottoms[assign] + (lane + 0.05) * h,
           result.end_s - result.start_s, 0.9 * h,
           [colours[n] for n in result.task_names], edgecolor="white", linewidth=0.5)
    ax.set_yticks(bottoms + heights / 2, result.instances)
    ax.set_ylim(float(bottoms[-1] + heights[-1] + 0.3) if len(bottoms) else 1, -0.3)  # 1st on top
    ax.set_xlim(0, max(result.makespan_s, 1e-9) * 1.01)
    ax.set_xlabel("time (s)")
    ax.set_title(f"{result.mode}: {result.energy_j / J_PER_KWH:.4g} kWh, "
                 f"makespan {result.makespan_s:,.0f} s", fontsize="medium", y=1.0, pad=4)
    if len(names) <= LEGEND_MAX_TASKS:
        fig = ax.figure
        axes_h = ax.get_position().height * fig.get_figheight()  # inches
        ax.legend([Patch(color=colours[n]) for n in names], names, fontsize="small",
                  loc="upper center", bbox_to_anchor=(0.5, -0.5 / max(axes_h, 0.1)),
                  ncol=min(4, len(names)), frameon=False)
    else:
        ax.text(1.0, 1.01, f"{len(names)} task names (no legend)", transform=ax.transAxes,
                ha="right", va="bottom", fontsize="x-small", color="0.4")
    return ax.figure


def chart_figure(out: Mapping[str, Any], mode: str) -> Any:
    """The widget's figure: the Gantt chart of ``mode``. The three modes side by side and
    the numbers per instance and component are HTML (:func:`totals_html`,
    :func:`breakdown_html`), which costs nothing to render."""
    from matplotlib.figure import Figure

    sim: SimulationResult = out["simulation"]
    _, count = out["lanes"]
    gantt_h = min(6.0, 0.6 + 0.3 * float((np.minimum(count, 8) * 0.5 + 0.8).sum()))  # inches
    n_names = len(set(sim.task_names))
    legend_h = 0.1 + 0.2 * math.ceil(n_names / 4) if n_names <= LEGEND_MAX_TASKS else 0.0
    top, foot = 0.35, 0.55 + legend_h  # title; x label and the task legend
    height = top + gantt_h + foot
    width = 9.5
    left = 0.3 + 0.085 * max((len(n) for n in out["breakdown"]["instances"]), default=4)
    fig = Figure(figsize=(width, height))
    ax = fig.add_axes((left / width, foot / height, 1 - (left + 0.15) / width,
                       gantt_h / height))
    gantt(sim, ax, out["lanes"])
    return fig


def chart_description(out: Mapping[str, Any], mode: str) -> str:
    """Text equivalent of the chart (its caption), with the totals as shown."""
    t = out["totals"][mode]
    return (f"Gantt chart of the {mode} schedule: {t['energy_kwh']:,.4f} kWh, makespan "
            f"{t['makespan_s']:,.1f} s")


class Simulator:
    """The widget: ``.widget`` (displayable); ``.result`` (latest Dataset), ``.simulation``
    (its SimulationResult), ``.results`` (all three modes), ``.errors``, ``.output`` (the
    latest :func:`compute` output); :meth:`update` applies the fields now."""

    def __init__(self, env: ComputeEnvironment | None = None, workflow: Workflow | None = None,
                 chart: bool = True, debounce_s: float = 0.15, seed: int = 0) -> None:
        import ipywidgets as w

        if env is None:
            env = default_environment()
        self.env = env if isinstance(env, ComputeEnvironment) else ComputeEnvironment(env)
        if workflow is None:
            workflow = default_workflow()
        self.workflow = workflow if isinstance(workflow, Workflow) else Workflow(workflow)
        self.chart = chart
        self.simulation: SimulationResult | None = None
        self.results: dict[str, SimulationResult] = {}
        self.errors: dict[str, str] = {}
        self.output: dict[str, Any] = {}
        self._debouncer = Debouncer(self._apply, debounce_s, on_error=self._show_failure)

        narrow = w.Layout(width="230px")
        wide_label = {"description_width": "110px"}
        self.mode = w.Dropdown(options=list(MODES), value="optimize", description="mode",
                               layout=narrow)
        self.deadline = w.Text(value="", description="deadline (s)", placeholder="none",
                               continuous_update=False, layout=narrow,
                               tooltip="optimal only: the longest makespan allowed")
        self.n_tasks = w.IntText(value=len(self.workflow), description="tasks",
                                 tooltip="number of tasks: the workflow repeated or cut",
                                 style=wide_label, layout=narrow)
        self.duration_spread = w.FloatText(
            value=0.0, step=0.05, description="duration spread", style=wide_label,
            layout=narrow, tooltip="each duration × a seeded random factor in [1-s, 1+s]")
        self.demand_scale = w.FloatText(value=1.0, step=0.1, description="demand ×",
                                        style=wide_label, layout=narrow,
                                        tooltip="every task's demand × this")
        self.seed = w.IntText(value=int(seed), description="seed", style=wide_label,
                              layout=narrow, tooltip="random seed of the duration spread")
        self.workload = {"n_tasks": self.n_tasks, "duration_spread": self.duration_spread,
                         "demand_scale": self.demand_scale, "seed": self.seed}
        self.error_labels: dict[str, Any] = {k: w.HTML() for k in
                                             ("mode", "deadline", *WORKLOAD_FIELDS, "run")}
        wrap = w.Layout(flex_flow="row wrap", align_items="flex-start")
        header = w.HBox([w.VBox([self.mode, self.error_labels["mode"]]),
                         w.VBox([self.deadline, self.error_labels["deadline"]])], layout=wrap)
        workload = w.HBox([w.VBox([c, self.error_labels[k]]) for k, c in self.workload.items()],
                          layout=wrap)
        self.controls: dict[str, dict[str, Any]] = {}
        rows = []
        for inst in self.env.instances:
            ctl: dict[str, Any] = {
                "speed": w.FloatText(inst.speed, description="speed"),
                "idle_power_w": w.FloatText(inst.idle_power_w, description="idle W"),
                "pue": w.FloatText(inst.pue, description="PUE"),
                "intensity_g_per_kwh": w.Text(
                    "" if inst.intensity_g_per_kwh is None else f"{inst.intensity_g_per_kwh:g}",
                    description="gCO2e/kWh", placeholder="unknown"),
            }
            for comp, res in inst.resources.items():
                ctl[f"{comp}.cost"] = w.FloatText(res.cost, description=f"{comp} W/unit")
                ctl[f"{comp}.capacity"] = w.FloatText(res.capacity, description=f"{comp} units")
            self.controls[inst.name] = ctl
            boxes = []
            for key, widget in ctl.items():
                widget.continuous_update = False
                widget.layout = w.Layout(width="210px")
                err = self.error_labels[f"{inst.name}.{key}"] = w.HTML()
                boxes.append(w.VBox([widget, err]))
            rows.append(w.VBox([w.HTML(f"<b>{html.escape(inst.name)}</b>"),
                                w.HBox(boxes, layout=wrap)]))
        self.totals = w.HTML()
        self.totals.add_class("ek-sim-totals")
        self.breakdown = w.HTML()
        self.breakdown.add_class("ek-sim-breakdown")
        self.image = w.Image(format="png", layout=w.Layout(max_width="100%", height="auto"))
        self.image.add_class("ek-sim-chart")
        self.caption = w.HTML()
        self.caption.add_class("ek-sim-chart-caption")
        self.widget = w.VBox([
            header, w.HTML("<b>workload</b>"), workload, *rows, self.error_labels["run"],
            self.totals, self.breakdown,
            *([self.image, self.caption] if chart else [])],
            layout=w.Layout(width="100%"))
        for widget in [self.mode, self.deadline, *self.workload.values(),
                       *(c for ctl in self.controls.values() for c in ctl.values())]:
            widget.observe(self._changed, names="value")
        self.update()

    # -- state ------------------------------------------------------------------------------
    @property
    def result(self) -> Any:
        """The selected mode's latest Dataset (the documented schema, method "simulated")."""
        sim = self.simulation
        return None if sim is None else sim.dataset

    @property
    def dataset(self) -> Any:
        """Alias of :attr:`result`."""
        return self.result

    @property
    def pending(self) -> bool:
        """Whether a debounced update is scheduled and not yet applied."""
        return self._debouncer.pending

    def values(self) -> dict[str, dict[str, Any]]:
        """Per-instance field values, as :func:`compute` takes them."""
        return {name: {k: c.value for k, c in ctl.items()} for name, ctl in self.controls.items()}

    def fields(self) -> dict[str, Any]:
        """Every field, as keyword arguments of :func:`compute`."""
        return {"mode": self.mode.value, "instances": self.values(),
                "deadline_s": self.deadline.value,
                **{k: c.value for k, c in self.workload.items()}}

    # -- updates ----------------------------------------------------------------------------
    def _changed(self, _change: Any) -> None:
        self._debouncer.trigger()

    def update(self) -> None:
        """Apply the fields now (synchronously), cancelling a pending debounced update."""
        self._debouncer.flush()

    refresh = update

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a pending debounced update; True when none is left."""
        return self._debouncer.wait(timeout)

    def _apply(self) -> None:
        """Recompute from the fields and refresh errors, chart and totals (under the lock)."""
        try:
            out = compute(self.env, self.workflow, **self.fields())
        except Exception as exc:  # a view never shows a traceback
            out = {"simulation": None, "results": {},
                   "errors": {"run": f"{type(exc).__name__}: {exc}"}}
        self.errors = dict(out["errors"])
        shown = {k: v for k, v in self.errors.items() if k in self.error_labels}
        other = [f"{k}: {v}" for k, v in self.errors.items() if k not in self.error_labels]
        if other:
            shown["run"] = "; ".join([*other, *([shown["run"]] if "run" in shown else [])])
        for key, label in self.error_labels.items():
            label.value = error_html(shown.get(key))
        if out["simulation"] is None:
            return  # keep showing the last valid result
        mode = self.mode.value if self.mode.value in out["results"] else out["simulation"].mode
        self.output = out
        self.results = dict(out["results"])
        self.simulation = out["simulation"]
        self.breakdown.value = breakdown_html(out["breakdown"], mode)
        self.totals.value = totals_html(out["totals"], mode)
        if self.chart:  # numbers first, then the slower chart (same update, same lock)
            self._draw(out, mode)

    def _draw(self, out: Mapping[str, Any], mode: str) -> None:
        try:
            png = figure_png(chart_figure(out, mode), dpi=80, tight=False)
        except ImportError:  # pragma: no cover - matplotlib is optional
            return
        self.image.value = png
        self.caption.value = caption_html(chart_description(out, mode))

    def _show_failure(self, exc: BaseException) -> None:
        self.error_labels["run"].value = error_html(f"{type(exc).__name__}: {exc}")

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


def simulator(env: ComputeEnvironment | None = None, workflow: Workflow | None = None,
              chart: bool = True, debounce_s: float = 0.15, seed: int = 0) -> Simulator:
    """The workflow simulator widget; display it in a notebook, read ``.result``."""
    return Simulator(env=env, workflow=workflow, chart=chart, debounce_s=debounce_s, seed=seed)
