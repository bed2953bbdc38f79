"""``simulator()``: an ipywidgets view over :mod:`energykernel.sim`.

Every number shown comes from the pure function :func:`compute` (fields → environment,
workflow, the three modes' results, errors keyed by field), testable without a browser.
The widget reads its fields, shows errors next to them (never a traceback), draws a Gantt
chart of the selected mode and keeps the latest :class:`SimulationResult` in ``.result``.
Text fields update on commit (``continuous_update=False``), which debounces typing.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

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

INSTANCE_FIELDS = ("speed", "idle_power_w", "pue", "intensity_g_per_kwh")


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
    return Workflow([
        Task("load", 120, {"cpu": 8, "ram": 64}), Task("join", 600, {"cpu": 32, "ram": 1500}),
        Task("train", 3600, {"cpu": 8, "gpu": 2, "ram": 128}),
        Task("evaluate", 240, {"cpu": 4, "gpu": 1, "ram": 32}), Task("report", 60, {"cpu": 2}),
    ])


def _parse_optional(value: Any, what: str) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise SimulationInputError(f"{what}: must be a number or empty, got {value!r}") from None
    return x


def compute(env: ComputeEnvironment, workflow: Workflow, *, mode: str = "optimize",
            instances: Mapping[str, Mapping[str, Any]] | None = None, repeat: int = 1,
            deadline_s: Any = None, compare: bool = True) -> dict[str, Any]:
    """Everything the widget shows, from field values.

    ``instances``: name → {``speed``, ``idle_power_w``, ``pue``, ``intensity_g_per_kwh``,
    ``"<component>.cost"``, ``"<component>.capacity"``} overrides. Returns ``result`` (the
    selected mode, or None), ``results`` (mode → result, with ``compare``) and ``errors``
    (``"instance.field"``, ``"deadline"``, ``"repeat"``, ``"run"`` → message).
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
    out: dict[str, Any] = {"result": None, "results": {}, "errors": errors}
    try:
        deadline = _parse_optional(deadline_s, "deadline")
        if deadline is not None and not deadline > 0:
            raise SimulationInputError("deadline: must be > 0 s, or empty for none")
    except SimulationInputError as exc:
        errors["deadline"] = str(exc).partition(": ")[2]
        deadline = None
    if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
        errors["repeat"] = f"must be a whole number ≥ 1, got {repeat!r}"
    if errors:
        return out
    env2 = ComputeEnvironment(new)
    wf = Workflow(list(workflow.tasks) * repeat)
    for m in (MODES if compare else (mode,)):
        try:
            out["results"][m] = env2.run(wf, m, deadline_s=deadline if m == "optimal" else None)
        except SimulationInputError as exc:
            key = "deadline" if m == "optimal" and str(exc).startswith("deadline_s") else "run"
            if m == mode or key == "deadline":
                errors[key] = str(exc)
    out["result"] = out["results"].get(mode)
    out["environment"], out["workflow"] = env2, wf
    return out


def _totals_html(results: Mapping[str, SimulationResult], selected: str) -> str:
    rows = []
    for m, r in results.items():
        t = r.totals()
        em = "–" if t["emissions_g"] != t["emissions_g"] else f"{t['emissions_g']:,.1f}"
        style = " style='font-weight:bold'" if m == selected else ""
        rows.append(f"<tr{style}><td>{m}</td><td>{t['energy_j'] / 3.6e6:,.4f}</td>"
                    f"<td>{t['makespan_s']:,.1f}</td><td>{em}</td></tr>")
    return ("<table><tr><th>mode</th><th>energy (kWh)</th><th>makespan (s)</th>"
            "<th>emissions (gCO2e)</th></tr>" + "".join(rows) + "</table>")


def gantt(result: SimulationResult, ax=None):
    """Matplotlib Gantt chart of ``result``: one row per instance, one bar per task."""
    if ax is None:
        from matplotlib.figure import Figure

        ax = Figure(figsize=(8, 0.5 + 0.45 * len(result.instances))).subplots()
    from matplotlib.patches import Patch

    names = sorted(set(result.task_names))
    colours = {n: f"C{k % 10}" for k, n in enumerate(names)}
    width = result.end_s - result.start_s
    for i in range(len(result.instances)):  # one collection per instance: fast to draw
        steps = [s for s, a in enumerate(result.assignment.tolist()) if a == i]
        if steps:
            ax.broken_barh([(result.start_s[s], width[s]) for s in steps], (i - 0.4, 0.8),
                           facecolors=[colours[result.task_names[s]] for s in steps],
                           edgecolor="white", linewidth=0.5)
    ax.set_yticks(range(len(result.instances)), result.instances)
    ax.set_xlabel("time (s)")
    ax.set_title(f"{result.mode}: {result.energy_j / 3.6e6:.4g} kWh, "
                 f"makespan {result.makespan_s:.4g} s")
    if len(names) <= 12:
        ax.legend([Patch(color=colours[n]) for n in names], names, fontsize="small",
                  loc="upper right")
    return ax.figure


class Simulator:
    """The widget: ``.widget`` (displayable), ``.result`` (latest SimulationResult)."""

    def __init__(self, env: ComputeEnvironment | None = None, workflow: Workflow | None = None,
                 chart: bool = True) -> None:
        import ipywidgets as w

        if env is None:
            env = default_environment()
        self.env = env if isinstance(env, ComputeEnvironment) else ComputeEnvironment(env)
        if workflow is None:
            workflow = default_workflow()
        self.workflow = workflow if isinstance(workflow, Workflow) else Workflow(workflow)
        self.chart = chart
        self.result: SimulationResult | None = None
        self.results: dict[str, SimulationResult] = {}
        self.errors: dict[str, str] = {}
        self.mode = w.Dropdown(options=list(MODES), value="optimize", description="mode")
        self.deadline = w.Text(value="", description="deadline (s)", placeholder="none",
                               continuous_update=False)
        self.repeat = w.BoundedIntText(value=1, min=1, max=10_000, description="repeat ×",
                                       continuous_update=False)
        self.error_labels: dict[str, Any] = {"deadline": w.HTML(), "repeat": w.HTML(),
                                             "run": w.HTML()}
        self.controls: dict[str, dict[str, Any]] = {}
        rows = []
        for inst in self.env.instances:
            ctl: dict[str, Any] = {
                "speed": w.FloatText(inst.speed, description="speed"),
                "idle_power_w": w.FloatText(inst.idle_power_w, description="idle W"),
                "pue": w.FloatText(inst.pue, description="PUE"),
                "intensity_g_per_kwh": w.Text(
                    "" if inst.intensity_g_per_kwh is None else f"{inst.intensity_g_per_kwh:g}",
                    description="gCO2e/kWh", continuous_update=False),
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
            rows.append(w.VBox([w.HTML(f"<b>{inst.name}</b>"),
                                w.HBox(boxes, layout=w.Layout(flex_flow="row wrap"))]))
        self.totals = w.HTML()
        self.plot = w.Output()
        header = w.HBox([self.mode, w.VBox([self.deadline, self.error_labels["deadline"]]),
                         w.VBox([self.repeat, self.error_labels["repeat"]])])
        self.widget = w.VBox([header, *rows, self.error_labels["run"], self.totals, self.plot])
        for widget in [self.mode, self.deadline, self.repeat,
                       *(c for ctl in self.controls.values() for c in ctl.values())]:
            widget.observe(self._changed, names="value")
        self.update()

    def values(self) -> dict[str, dict[str, Any]]:
        return {name: {k: c.value for k, c in ctl.items()} for name, ctl in self.controls.items()}

    def _changed(self, _change: Any) -> None:
        self.update()

    def update(self) -> None:
        """Recompute from the fields and refresh totals, errors and chart."""
        try:
            out = compute(self.env, self.workflow, mode=self.mode.value,
                          instances=self.values(), repeat=self.repeat.value,
                          deadline_s=self.deadline.value)
        except Exception as exc:  # a view never shows a traceback
            out = {"result": None, "results": {}, "errors": {"run": f"{type(exc).__name__}: {exc}"}}
        self.errors = dict(out["errors"])
        shown = {k: v for k, v in self.errors.items() if k in self.error_labels}
        other = [f"{k}: {v}" for k, v in self.errors.items() if k not in self.error_labels]
        if other:
            shown["run"] = "; ".join([*other, *([shown["run"]] if "run" in shown else [])])
        for key, label in self.error_labels.items():
            msg = html.escape(shown.get(key, ""))
            label.value = f"<span style='color:#b00020'>{msg}</span>" if msg else ""
        if out["result"] is None:
            return  # keep showing the last valid result
        self.results = out["results"]
        self.result = out["result"]
        self.totals.value = _totals_html(self.results, self.mode.value)
        if self.chart and self.result is not None:
            self._draw()

    def _draw(self) -> None:
        try:
            from IPython.display import display

            if getattr(self, "_ax", None) is None:
                from matplotlib.figure import Figure

                self._ax = Figure(figsize=(8, 0.5 + 0.45 * len(self.env))).subplots()
            self._ax.clear()
            fig = gantt(self.result, ax=self._ax)
        except ImportError:  # pragma: no cover - matplotlib is optional
            return
        self.plot.clear_output(wait=True)
        with self.plot:
            display(fig)

    @property
    def dataset(self):
        """The latest result's Dataset (§4 schema, method "simulated")."""
        return None if self.result is None else self.result.dataset

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def simulator(env: ComputeEnvironment | None = None, workflow: Workflow | None = None,
              chart: bool = True) -> Simulator:
    """The workflow simulator widget; display it in a notebook, read ``.result``."""
    return Simulator(env=env, workflow=workflow, chart=chart)
