"""The workflow simulator widget: an ipywidgets view over :mod:`energykernel.sim`.

Every number shown comes from the pure function :func:`energykernel.sim.whatif.compute`
(field values → scaled workflow, environment, the three modes' results, totals, the
per-instance and per-component breakdown, Gantt lanes, and errors keyed by field), testable
without a browser; the Gantt chart is :func:`energykernel.viz.gantt.gantt_figure`. The
widget reads its fields, shows errors next to them (never a traceback), puts the chart
into an ``ipywidgets.Image`` and keeps the latest numbers: ``.result`` (the selected mode's
Dataset, the documented schema), ``.simulation`` (its
:class:`~energykernel.sim.SimulationResult`) and ``.results`` (all three modes).

Updates are debounced (``debounce_s`` after the last change, default 150 ms) and
serialised by a lock; :meth:`Simulator.update` applies the fields synchronously.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from energykernel.core.units import number
from energykernel.sim import MODES, ComputeEnvironment, SimulationResult, Workflow
from energykernel.sim.whatif import (
    WORKLOAD_FIELDS,
    compute,
    default_environment,
    default_workflow,
)
from energykernel.viz.plot import COLORS, IDLE_COLOR, figure_png

from ._common import Debouncer, caption_html, chart_image, error_html

_COLOURS = {**COLORS, "idle": IDLE_COLOR}


# -- views ------------------------------------------------------------------------------------


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
            f"width:{160 * v / widest:.1f}px;background:{_COLOURS.get(c, '#999')}'>"
            "</span>" for c, v in parts(t) if v > 0)
        rows.append(f"<tr{style}><td>{m}</td><td>{t['energy_kwh']:,.4f}</td>"
                    f"<td>{t['makespan_s']:,.1f}</td>"
                    f"<td>{number(t['emissions_g'], ',.1f')}</td>"
                    f"<td style='white-space:nowrap'>{bar}</td></tr>")
    legend = " ".join(
        f"<span style='color:{_COLOURS.get(c, '#999')}'>■</span> {c}"
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
        cells = "".join(f"<td>{number(b['energy_kwh'][c][k], ',.4f')}</td>"
                        f"<td>{number(b['emissions_g'][c][k], ',.1f')}</td>" for c in cols)
        rows.append(f"<tr><td>{html.escape(name)}</td><td>{b['tasks'][k]}</td>{cells}</tr>")
    return (f"<div style='overflow-x:auto'><table class='ek-sim-breakdown'>"
            f"<caption style='text-align:left'>{mode}: energy and carbon per instance and "
            f"component (PUE included)</caption>"
            f"<tr><th rowspan='2'>instance</th><th rowspan='2'>tasks</th>{head}</tr>"
            f"<tr>{sub}</tr>" + "".join(rows) + "</table></div>")


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
        self.image, self.caption = chart_image("ek-sim-chart")
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
            from energykernel.viz.gantt import gantt_figure

            png = figure_png(gantt_figure(out["simulation"], out["lanes"]), dpi=80,
                             tight=False, compress_level=1)
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
