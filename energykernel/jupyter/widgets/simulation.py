"""The workflow simulator widget: an ipywidgets view over :mod:`energykernel.sim`.

Every number shown comes from the pure function :func:`energykernel.sim.whatif.compute`
(field values → scaled workflow, environment, the three modes' results, totals, the
per-instance and per-component breakdown, Gantt lanes, and errors keyed by field), testable
without a browser; the Gantt chart is :func:`energykernel.viz.gantt.gantt_figure`'s picture,
redrawn into one kept figure (:class:`energykernel.viz.gantt.GanttChart`). The
widget reads its fields, shows errors next to them (never a traceback), puts the chart
into an ``ipywidgets.Image`` and keeps the latest numbers: ``.result`` (the selected mode's
Dataset, the documented schema), ``.simulation`` (its
:class:`~energykernel.sim.SimulationResult`) and ``.results`` (all three modes).

Updates are debounced (``debounce_s`` after the last change, default 150 ms) and
serialised by a lock; :meth:`Simulator.update` applies the fields synchronously. An update
whose inputs other than the mode are those of the last valid one runs no mode again: it
takes the chosen mode's result from the last output (breakdown, lanes and start-hour summary
made for it, as :func:`compute` makes them), and a chart already drawn for that result is
shown again, not redrawn.
"""

from __future__ import annotations

import html
import operator
from collections.abc import Mapping
from typing import Any

from energykernel.core.units import number
from energykernel.sim import MODES, ComputeEnvironment, SimulationResult, Workflow
from energykernel.sim.timing import hhmm
from energykernel.sim.whatif import (
    TIME_FIELDS,
    WORKLOAD_FIELDS,
    breakdown,
    compute,
    default_environment,
    default_workflow,
    lanes,
    shift_summary,
)
from energykernel.viz.plot import COLORS, IDLE_COLOR

from ._common import Debouncer, caption_html, chart_image, error_html

_COLOURS = {**COLORS, "idle": IDLE_COLOR}


# -- views ------------------------------------------------------------------------------------

#: What each field is, in words with units, and the parameter it sets (its tooltip).
UNITS = {"cpu": "cores", "gpu": "GPUs", "ram": "GB", "storage": "MB/s"}
FIELD_LABELS = {
    "speed": ("speed (×)", "speed: relative speed; a task runs duration_s / speed"),
    "idle_power_w": ("idle power (W)", "idle_power_w: drawn over the makespan once used"),
    "pue": ("PUE (×)", "pue: datacentre power usage effectiveness, ≥ 1"),
    "intensity_g_per_kwh": ("grid (gCO2e/kWh)",
                            "intensity_g_per_kwh: empty when unknown or set by a profile"),
}


def field_label(key: str) -> tuple[str, str]:
    """``(label, tooltip)`` of an instance field: words with units; the tooltip names the
    parameter (``resources.ram.capacity``, …)."""
    if key in FIELD_LABELS:
        return FIELD_LABELS[key]
    comp, _, part = key.partition(".")
    if part == "cost":
        return f"{comp} power (W/unit)", f"resources.{comp}.cost: W per {comp} unit in use"
    unit = UNITS.get(comp, "units")
    return f"{comp} capacity ({unit})", f"resources.{comp}.capacity: {unit} available"


def _stale(body: str, stale: bool) -> str:
    """``body`` greyed out under a note when it no longer matches the fields."""
    if not stale:
        return body
    return ("<div class='ek-sim-stale' style='color:#a15c00'>⚠ stale — the fields have an "
            "error (shown next to it); these are the last valid numbers</div>"
            f"<div style='opacity:0.45'>{body}</div>")


def totals_html(totals: Mapping[str, Mapping[str, Any]], selected: str,
                components: list[str] | None = None, stale: bool = False) -> str:
    """The three modes side by side: one row each (the selected one bold), with a bar of
    its energy stacked by component and idle, its value, and a scale under the bars
    (drawn in HTML: no figure to render). ``components``: those shown (default: all with
    energy in some mode)."""
    if components is None:
        components = [c for c in next(iter(totals.values()))["component_kwh"]
                      if any(t["component_kwh"][c] > 0 for t in totals.values())] if totals else []

    def parts(t: Mapping[str, Any]) -> list[tuple[str, float]]:
        return [*((c, t["component_kwh"].get(c, 0.0)) for c in components), ("idle", t["idle_kwh"])]

    width_px = 160
    widest = max((sum(v for _, v in parts(t)) for t in totals.values()), default=0.0) or 1.0
    rows = []
    for m, t in totals.items():
        style = " style='font-weight:bold'" if m == selected else ""
        bar = "".join(
            f"<span title='{c}: {v:,.4f} kWh' style='display:inline-block;height:0.9em;"
            f"width:{width_px * v / widest:.1f}px;background:{_COLOURS.get(c, '#999')}'>"
            "</span>" for c, v in parts(t) if v > 0)
        rows.append(f"<tr{style}><td>{m}</td><td>{t['energy_kwh']:,.4f}</td>"
                    f"<td>{t['makespan_s']:,.1f}</td>"
                    f"<td>{number(t['emissions_g'], ',.1f')}</td>"
                    f"<td style='white-space:nowrap'>{bar}</td></tr>")
    legend = " ".join(f"<span style='color:{_COLOURS.get(c, '#999')}'>■</span> {c}"
                      for c in [*components, "idle"]) if totals else ""
    scale = (f"<tr><td colspan='4'></td><td style='white-space:nowrap;font-size:smaller;"
             f"color:#555'><span style='display:inline-block;width:{width_px}px;"
             f"border-top:1px solid #555'><span style='float:left'>0</span>"
             f"<span style='float:right'>{widest:,.4g} kWh</span></span></td></tr>")
    notes = [f"{m} starts {t['offset_s'] / 3600:,.1f} h later (greener hours)"
             for m, t in totals.items() if t.get("offset_s", 0) > 0]
    for m, t in totals.items():  # optimal: proven, or how far from its bound it may be
        if t.get("proven_optimal"):
            notes.append(f"{m}: proven optimal")
        elif t.get("gap") is not None:
            notes.append(f"{m}: not proven, at most {100 * t['gap']:,.1f} % above its "
                         "lower bound")
    note = (f"<div style='font-size:smaller;color:#555'>{'; '.join(notes)}</div>"
            if notes else "")
    return _stale("<table class='ek-sim-totals'><tr><th>mode</th><th>energy (kWh)</th>"
                  "<th>makespan (s)</th><th>emissions (gCO2e)</th>"
                  f"<th style='font-weight:normal'>{legend}</th></tr>" + "".join(rows)
                  + (scale if totals else "") + "</table>" + note, stale)


def breakdown_html(b: Mapping[str, Any], mode: str, stale: bool = False) -> str:
    """Per instance: energy (kWh) of each component, idle and total, and carbon (gCO2e) —
    one quantity a column, scrolling sideways when narrow."""
    cols = [*b["components"], "idle", "total"]
    head = "".join(f"<th>{c} (kWh)</th>" for c in cols)
    rows = []
    for k, name in enumerate(b["instances"]):
        cells = "".join(f"<td>{number(b['energy_kwh'][c][k], ',.4f')}</td>" for c in cols)
        rows.append(f"<tr><td>{html.escape(name)}</td><td>{b['tasks'][k]}</td>{cells}"
                    f"<td>{number(b['emissions_g']['total'][k], ',.1f')}</td></tr>")
    return _stale(f"<div style='overflow-x:auto;max-width:100%'><table class='ek-sim-breakdown'>"
                  f"<caption style='text-align:left'>{mode}: energy and carbon per instance "
                  f"(PUE included)</caption>"
                  f"<tr><th>instance</th><th>tasks</th>{head}<th>carbon (gCO2e)</th></tr>"
                  + "".join(rows) + "</table></div>", stale)


def shift_html(shift: Mapping[str, Any] | None, stale: bool = False) -> str:
    """The start hour's carbon, what waiting for the greenest start would save, and a strip
    of the carbon for each start hour of the day."""
    if not shift:
        return ""
    if not shift["varying"]:
        return ("<span style='color:#555'>No hourly grid profile on the instances used: the "
                "carbon does not depend on the start hour (choose an hourly grid).</span>")
    by_hour = shift["by_hour_g"]
    top = max(by_hour) or 1.0
    here = int(shift["start_hour"]) % 24
    cells = "".join(
        f"<span title='start at {h:02d}:00: {g:,.1f} gCO2e' style='display:inline-block;"
        f"width:9px;margin-right:1px;vertical-align:bottom;height:{3 + 27 * g / top:.1f}px;"
        f"background:{'#333' if h == here else '#7aa974'}'></span>"
        for h, g in enumerate(by_hour))
    delay_h = shift["delay_s"] / 3600
    wait = (f"waiting {delay_h:,.1f} h (start at {hhmm(shift['best_start_hour'])}) emits "
            f"{shift['best_emissions_g']:,.1f} gCO2e: <b>{shift['saved_g']:,.1f} gCO2e saved</b>"
            if shift["saved_g"] > 0 else "no later start within the window is greener")
    return _stale(f"<div class='ek-sim-shift'>Starting at {hhmm(shift['start_hour'])}: "
                  f"{shift['emissions_g']:,.1f} gCO2e; {wait}.<br>"
                  f"<span style='font-size:smaller;color:#555'>carbon by start hour "
                  f"(00–23, this one dark):</span><br>{cells}</div>", stale)


def dependencies_html(deps: list[tuple[str, list[str]]]) -> str:
    """The workflow's dependencies, one task a line ("clean ← load-data")."""
    if not deps:
        return "<span style='color:#555'>No dependencies: every task may start at once.</span>"
    seen: dict[str, list[str]] = {}
    for name, after in deps:
        seen.setdefault(name, after)
    items = "".join(f"<li>{html.escape(n)} ← {', '.join(map(html.escape, a))}</li>"
                    for n, a in seen.items())
    return (f"<details class='ek-sim-deps'><summary>dependencies ({len(seen)} tasks wait for "
            f"others)</summary><ul style='margin:0;columns:2'>{items}</ul></details>")


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
                 chart: bool = True, debounce_s: float = 0.15, seed: int = 0,
                 profile: str = "", start_hour: int = 0) -> None:
        import ipywidgets as w

        from energykernel.sim.profile import named_profiles

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
        self._gantt: Any = None  # the chart's kept figure (GanttChart), made on first draw
        self._memo: tuple[tuple[Any, ...], dict[str, Any]] | None = None  # last valid compute
        self._pngs: list[tuple[SimulationResult, bytes]] = []  # charts of the memo's results
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
        choices = [("as the instances say", ""), *((n, n) for n in named_profiles())]
        if profile and profile not in dict(choices).values():
            choices.append((str(profile), profile))
        self.profile = w.Dropdown(options=choices, value=profile, description="hourly grid",
                                  tooltip="profile: an hourly intensity for every instance "
                                          "(the shipped ones are synthetic)",
                                  style=wide_label, layout=w.Layout(width="330px"))
        self.start_hour = w.IntSlider(value=int(start_hour), min=0, max=23, step=1,
                                      description="start hour", continuous_update=False,
                                      tooltip="start_hour: when the workflow is submitted, "
                                              "on the hourly grid's clock",
                                      style=wide_label, layout=w.Layout(width="330px"))
        self.error_labels: dict[str, Any] = {k: w.HTML() for k in
                                             ("mode", "deadline", *WORKLOAD_FIELDS,
                                              *TIME_FIELDS, "run")}
        wrap = w.Layout(flex_flow="row wrap", align_items="flex-start")
        header = w.HBox([w.VBox([self.mode, self.error_labels["mode"]]),
                         w.VBox([self.deadline, self.error_labels["deadline"]])], layout=wrap)
        workload = w.HBox([w.VBox([c, self.error_labels[k]]) for k, c in self.workload.items()],
                          layout=wrap)
        timing = w.HBox([w.VBox([self.profile, self.error_labels["profile"]]),
                         w.VBox([self.start_hour, self.error_labels["start_hour"]])],
                        layout=wrap)
        self.controls: dict[str, dict[str, Any]] = {}
        rows = []
        for inst in self.env.instances:
            ctl: dict[str, Any] = {
                "speed": w.FloatText(inst.speed),
                "idle_power_w": w.FloatText(inst.idle_power_w),
                "pue": w.FloatText(inst.pue),
                "intensity_g_per_kwh": w.Text(
                    "" if inst.intensity_g_per_kwh is None else f"{inst.intensity_g_per_kwh:g}",
                    placeholder="unknown"),
            }
            for comp, res in inst.resources.items():
                ctl[f"{comp}.cost"] = w.FloatText(res.cost)
                ctl[f"{comp}.capacity"] = w.FloatText(res.capacity)
            self.controls[inst.name] = ctl
            boxes = []
            for key, widget in ctl.items():
                widget.description, widget.tooltip = field_label(key)
                widget.continuous_update = False
                widget.style = {"description_width": "148px"}
                widget.layout = w.Layout(width="250px")
                err = self.error_labels[f"{inst.name}.{key}"] = w.HTML()
                boxes.append(w.VBox([widget, err]))
            rows.append(w.VBox([w.HTML(f"<b>{html.escape(inst.name)}</b>"),
                                w.HBox(boxes, layout=wrap)]))
        self.totals = w.HTML()
        self.totals.add_class("ek-sim-totals")
        self.breakdown = w.HTML(layout=w.Layout(max_width="100%", overflow="auto"))
        self.breakdown.add_class("ek-sim-breakdown")
        self.shift = w.HTML()
        self.shift.add_class("ek-sim-shift")
        self.dependencies = w.HTML()
        self.dependencies.add_class("ek-sim-deps")
        self.image, self.caption = chart_image("ek-sim-chart")
        self.widget = w.VBox([
            header, w.HTML("<b>workload</b>"), workload, self.dependencies,
            w.HTML("<b>when</b>"), timing,
            w.HTML("<span style='color:#555;font-size:smaller'>An hourly grid replaces the "
                   "instances' constant grid (gCO2e/kWh); the shipped ones are synthetic. "
                   "The start hour is when the workflow is submitted.</span>"), *rows, self.error_labels["run"],
            self.totals, self.shift, self.breakdown,
            *([self.image, self.caption] if chart else [])],
            layout=w.Layout(width="100%"))
        for widget in [self.mode, self.deadline, *self.workload.values(), self.profile,
                       self.start_hour,
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
                "deadline_s": self.deadline.value, "profile": self.profile.value,
                "start_hour": self.start_hour.value,
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

    def _inputs(self, fields: Mapping[str, Any]) -> tuple[Any, ...]:
        """What :func:`compute` reads besides the mode: the other fields, the environment
        and workflow, and their instances, tasks and window as they are now (lists that
        may be changed in place)."""
        env, wf = self.env, self.workflow
        return (env, wf, tuple(env.instances), tuple(wf.tasks), wf.start_after_s,
                wf.deadline_s, {k: v for k, v in fields.items() if k != "mode"})

    def _compute(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """:func:`compute` of ``fields``, or the last valid output re-selected when only the
        mode changed since (its three results are those a new run would give)."""
        key = self._inputs(fields)
        memo = self._memo
        if memo is not None and _same_inputs(memo[0], key):
            prev, mode = memo[1], fields["mode"]
            if mode == prev["simulation"].mode:
                return prev
            if mode in prev["results"]:
                sim = prev["results"][mode]
                return {**prev, "simulation": sim, "errors": dict(prev["errors"]),
                        "breakdown": breakdown(sim, prev["environment"]), "lanes": lanes(sim),
                        "shift": shift_summary(sim, prev["workflow"],
                                               prev["shift"]["start_hour"])}
        out = compute(self.env, self.workflow, **fields)
        if out["simulation"] is not None:
            self._memo, self._pngs = (key, out), []
        return out

    def _apply(self) -> None:
        """Recompute from the fields and refresh errors, chart and totals (under the lock)."""
        try:
            out = self._compute(self.fields())
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
            self._mark_stale()  # the last valid result stays, marked as such
            return
        mode = self.mode.value if self.mode.value in out["results"] else out["simulation"].mode
        self.output = out
        self.results = dict(out["results"])
        self.simulation = out["simulation"]
        self._show(out, mode)
        if self.chart:  # numbers first, then the slower chart (same update, same lock)
            self._draw(out, mode)

    def _show(self, out: Mapping[str, Any], mode: str, stale: bool = False) -> None:
        self.breakdown.value = breakdown_html(out["breakdown"], mode, stale)
        self.totals.value = totals_html(out["totals"], mode, out["breakdown"]["components"],
                                        stale)
        self.shift.value = shift_html(out.get("shift"), stale)
        self.dependencies.value = dependencies_html(out.get("dependencies", []))

    def _mark_stale(self) -> None:
        if self.output.get("simulation") is not None:
            self._show(self.output, self.output["simulation"].mode, stale=True)
            self.caption.value = caption_html("stale: " + chart_description(
                self.output, self.output["simulation"].mode))

    def _draw(self, out: Mapping[str, Any], mode: str) -> None:
        sim = out["simulation"]
        png = next((p for s, p in self._pngs if s is sim), None)  # this result, drawn before
        if png is None:
            try:
                if self._gantt is None:
                    from energykernel.viz.gantt import GanttChart

                    self._gantt = GanttChart(dpi=80)
                png = self._gantt.png(sim, out["lanes"])
            except ImportError:  # pragma: no cover - matplotlib is optional
                return
            self._pngs.append((sim, png))
        self.image.value = png
        self.caption.value = caption_html(chart_description(out, mode))

    def _show_failure(self, exc: BaseException) -> None:
        self.error_labels["run"].value = error_html(f"{type(exc).__name__}: {exc}")

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


def _same_inputs(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    """Whether two :meth:`Simulator._inputs` are the same: the same objects (environment,
    workflow, each instance and task: all immutable but the two lists) and equal fields."""
    env_a, wf_a, inst_a, tasks_a, *rest_a = a
    env_b, wf_b, inst_b, tasks_b, *rest_b = b
    return (env_a is env_b and wf_a is wf_b and len(inst_a) == len(inst_b)
            and len(tasks_a) == len(tasks_b) and all(map(operator.is_, inst_a, inst_b))
            and all(map(operator.is_, tasks_a, tasks_b)) and rest_a == rest_b)


def simulator(env: ComputeEnvironment | None = None, workflow: Workflow | None = None,
              chart: bool = True, debounce_s: float = 0.15, seed: int = 0,
              profile: str = "", start_hour: int = 0) -> Simulator:
    """The workflow simulator widget; display it in a notebook, read ``.result``.
    ``profile``: a shipped hourly grid for every instance ("" keeps the instances' own);
    ``start_hour``: the slider's first value."""
    return Simulator(env=env, workflow=workflow, chart=chart, debounce_s=debounce_s, seed=seed,
                     profile=profile, start_hour=start_hour)
