"""What-if arithmetic behind the simulator widget: field values → everything it shows.

:func:`compute` takes the widget's field values (instance overrides, workload scaling,
mode, deadline) and returns the scaled workflow, the environment, the three modes'
results, their totals, the per-instance and per-component breakdown, the Gantt lanes and
errors keyed by field. Pure Python/numpy: no ipywidgets, no matplotlib (see
:mod:`energykernel.jupyter.widgets.simulation` for the view, :mod:`energykernel.viz.gantt`
for the chart).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..core.units import COMPONENTS, J_PER_KWH
from .model import (
    MODES,
    ComputeEnvironment,
    ComputeInstance,
    Resource,
    SimulationInputError,
    Task,
    Workflow,
    _number,
)
from .result import SimulationResult

INSTANCE_FIELDS = ("speed", "idle_power_w", "pue", "intensity_g_per_kwh")
WORKLOAD_FIELDS = ("n_tasks", "duration_spread", "demand_scale", "seed")
UPDATE_TIME_LIMIT_S = 1.0  # optimal's time in an update (s): the widget stays interactive
TIME_FIELDS = ("profile", "start_hour")


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
    """A five-step ML pipeline (a chain: each step after the one before) for the default fleet."""
    return Workflow([
        Task("load", 120, {"cpu": 8, "ram": 64}),
        Task("join", 600, {"cpu": 32, "ram": 1500}, after=("load",)),
        Task("train", 3600, {"cpu": 8, "gpu": 2, "ram": 128}, after=("join",)),
        Task("evaluate", 240, {"cpu": 4, "gpu": 1, "ram": 32}, after=("train",)),
        Task("report", 60, {"cpu": 2}, after=("evaluate",)),
    ])


def _parse_optional(value: Any, what: str) -> float | None:
    """A text field's number, or None when it is empty."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise SimulationInputError(f"{what}: must be a number or empty, got {value!r}") from None


def _finite(value: Any, what: str) -> float:
    """``value`` as a finite float (any sign), else a named :class:`SimulationInputError`."""
    return _number(value, what, minimum=-math.inf)


def _whole(value: Any, what: str, minimum: int) -> int:
    x = _finite(value, what)
    if x != int(x) or x < minimum:
        raise SimulationInputError(f"{what}: must be a whole number ≥ {minimum}, got {value!r}")
    return int(x)


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
    n = len(base) if n_tasks is None else _whole(n_tasks, "n_tasks", 1)
    spread = _finite(duration_spread, "duration_spread")
    if not 0 <= spread < 1:
        raise SimulationInputError(
            f"duration_spread: must be ≥ 0 and < 1 (0.2 = ±20 %), got {duration_spread!r}")
    scale = _finite(demand_scale, "demand_scale")
    if not scale > 0:
        raise SimulationInputError(f"demand_scale: must be > 0, got {demand_scale!r}")
    s = _whole(seed, "seed", 0)
    if not base:
        return workflow
    if n == len(base) and spread == 0 and scale == 1:
        return workflow
    factors = (np.random.default_rng(s).uniform(1 - spread, 1 + spread, n)
               if spread else np.ones(n))
    tasks = []
    for k in range(n):
        t = base[k % len(base)]
        demand = t.demand if scale == 1 else {c: v * scale for c, v in t.demand.items()}
        if factors[k] == 1 and scale == 1:
            tasks.append(t)
        else:
            tasks.append(Task(t.name, t.duration_s * float(factors[k]), demand, t.after,
                              t.energy_band))
    return Workflow(tasks, name=workflow.name, start_after_s=workflow.start_after_s,
                    deadline_s=workflow.deadline_s)


def lanes(result: SimulationResult) -> tuple[np.ndarray, np.ndarray]:
    """Gantt sub-rows: ``(lane per step, lanes per instance)``.

    Steps that overlap in time on one instance get different lanes (greedy by start time,
    lowest free lane first: the fewest lanes possible); a step that waited for a
    predecessor on the same instance takes that step's lane when it is free, so a chain
    reads along one row. Every instance has ≥ 1 lane.
    """
    n_inst = len(result.instances)
    start = np.asarray(result.start_s, dtype=float)
    end = np.asarray(result.end_s, dtype=float)
    assign = np.asarray(result.assignment, dtype=int)
    preds = result.predecessors
    lane = np.zeros(len(start), dtype=int)
    ends: list[list[float]] = [[] for _ in range(n_inst)]
    eps = 1e-9 * max(1.0, float(end.max()) if len(end) else 1.0)
    for s in np.lexsort((end, start)).tolist():
        busy = ends[assign[s]]
        mine = [int(lane[p]) for p in preds[s] if assign[p] == assign[s]] if preds else []
        k = next((k for k in mine if busy[k] <= start[s] + eps), None)
        if k is None:
            k = next((k for k, e in enumerate(busy) if e <= start[s] + eps), len(busy))
        if k == len(busy):
            busy.append(end[s])
        else:
            busy[k] = end[s]
        lane[s] = k
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
    """A mode's totals: energy (kWh) per component and idle, makespan, emissions; for
    optimal also whether it is proven and its gap to its lower bound (None if unknown)."""
    per = result.instance_energy_j.sum(axis=0) / J_PER_KWH
    t = result.totals()
    out = {"energy_kwh": t["energy_j"] / J_PER_KWH, "makespan_s": t["makespan_s"],
           "offset_s": result.offset_s,
           "emissions_g": t["emissions_g"], "idle_kwh": t["idle_energy_j"] / J_PER_KWH,
           "component_kwh": {c: float(per[k]) for k, c in enumerate(COMPONENTS)}}
    if "proven_optimal" in result.info:
        out["proven_optimal"] = bool(result.info["proven_optimal"])
        out["gap"] = result.info.get("gap")
    return out


def shift_summary(result: SimulationResult, workflow: Workflow,
                  start_hour: float) -> dict[str, Any]:
    """What waiting would save ("Let's Wait Awhile"): carbon if the workflow starts at
    ``start_hour`` (as simulated), at the greenest start its window allows (see
    :mod:`.timing`), the hour of that start, and the carbon for each start hour 0–23 of the
    day (``by_hour_g``, the same schedule). ``varying`` is False (and nothing saved) where no
    used instance has an hourly profile."""
    from .timing import Timing, best_offset, varying_emissions

    base = {"varying": False, "start_hour": start_hour, "emissions_g": result.emissions_g,
            "best_start_hour": start_hour, "best_emissions_g": result.emissions_g,
            "saved_g": 0.0, "delay_s": 0.0, "by_hour_g": []}
    used = result.used
    if result.profiles is None or not any(p is not None and used[i]
                                          for i, p in enumerate(result.profiles)):
        return base
    timing = Timing.of(workflow, start_hour=start_hour)
    lo = workflow.start_after_s  # as submitted (optimal's result may already have waited)
    best = best_offset(result, lo, timing.latest_offset(result.makespan_s))
    hours = np.arange(24)
    offsets = np.concatenate([[lo, best], ((hours - start_hour) % 24) * 3600.0])
    g = varying_emissions(result, np.concatenate([[result.offset_s], offsets]))
    fixed = result.emissions_g - g[0]
    g = g[1:]
    base["emissions_g"] = float(fixed + g[0])
    return {**base, "varying": True, "best_emissions_g": float(fixed + g[1]),
            "saved_g": float(g[0] - g[1]), "delay_s": best - lo,
            "best_start_hour": float((start_hour + best / 3600.0) % 24),
            "by_hour_g": (fixed + g[2:]).tolist()}


def dependencies(workflow: Workflow) -> list[tuple[str, list[str]]]:
    """``(task, [names it runs after])`` for every step with dependencies, in order."""
    return [(t.name, list(t.after)) for t in workflow.tasks if t.after]


def _field_error(exc: SimulationInputError) -> tuple[str, str]:
    """``"field: message"`` → ``(field, message)`` (the whole text when there is no field)."""
    field, _, msg = str(exc).partition(": ")
    return field, msg or str(exc)


def _override(inst: ComputeInstance, fields: Mapping[str, Any]) -> ComputeInstance:
    """``inst`` with the widget's overrides (``speed``, …, ``"<component>.cost"``) applied."""
    changes: dict[str, Any] = {}
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
    return inst.with_changes(**changes)


def _deadline(deadline_s: Any) -> float | None:
    deadline = _parse_optional(deadline_s, "deadline")
    if deadline is not None and not (math.isfinite(deadline) and deadline > 0):
        raise SimulationInputError("deadline: must be > 0 s, or empty for none")
    return deadline


def compute(env: ComputeEnvironment, workflow: Workflow, *, mode: str = "optimize",
            instances: Mapping[str, Mapping[str, Any]] | None = None, n_tasks: Any = None,
            duration_spread: Any = 0.0, demand_scale: Any = 1.0, seed: Any = 0,
            deadline_s: Any = None, compare: bool = True, profile: Any = None,
            start_hour: Any = 0, time_limit_s: float = UPDATE_TIME_LIMIT_S) -> dict[str, Any]:
    """Everything the widget shows, from field values.

    ``instances``: name → {``speed``, ``idle_power_w``, ``pue``, ``intensity_g_per_kwh``,
    ``"<component>.cost"``, ``"<component>.capacity"``} overrides; ``n_tasks``,
    ``duration_spread``, ``demand_scale``, ``seed``: see :func:`scale_workflow`;
    ``deadline_s`` applies to ``optimal``; ``profile`` (a shipped name, a profile, or
    None/"" for the instances' own) gives every instance an hourly intensity;
    ``start_hour`` (0–24) is when the workflow is submitted on that clock;
    ``time_limit_s``: optimal's time (short, so that an update stays interactive: on a
    small workflow its exact search may then stop before a proof, as its ``info`` says).

    Returns ``errors`` (``"instance.field"``, a workload field, ``"deadline"`` or ``"run"``
    → message; nothing is computed while a field is invalid), ``simulation`` (the selected
    mode's SimulationResult, or None), ``results`` (mode → result, all three with
    ``compare``), ``totals`` (mode → :func:`mode_totals`), ``breakdown`` (selected mode,
    :func:`breakdown`), ``lanes`` (selected mode, :func:`lanes`), ``environment`` and
    ``workflow`` (after the overrides), ``shift`` (selected mode, :func:`shift_summary`),
    ``dependencies`` (:func:`dependencies`). The widget's ``.result`` is
    ``out["simulation"].dataset``.
    """
    errors: dict[str, str] = {}
    new = []
    for inst in env.instances:
        try:
            new.append(_override(inst, (instances or {}).get(inst.name, {})))
        except SimulationInputError as exc:
            field, msg = _field_error(exc)
            errors[f"{inst.name}.{field.removeprefix('resources.')}"] = msg
    out: dict[str, Any] = {"simulation": None, "results": {}, "totals": {}, "breakdown": None,
                           "lanes": None, "errors": errors}
    deadline = None
    try:
        deadline = _deadline(deadline_s)
    except SimulationInputError as exc:
        errors["deadline"] = str(exc).partition(": ")[2]
    try:
        wf = scale_workflow(workflow, n_tasks=n_tasks, duration_spread=duration_spread,
                            demand_scale=demand_scale, seed=seed)
    except SimulationInputError as exc:
        field, msg = _field_error(exc)
        errors[field if field in WORKLOAD_FIELDS else "run"] = msg
    if mode not in MODES:
        errors["mode"] = f"must be one of {', '.join(MODES)}, got {mode!r}"
    hour = 0.0
    try:
        hour = _finite(start_hour, "start_hour")
        if not 0 <= hour <= 24:
            raise SimulationInputError(f"start_hour: must be between 0 and 24, got {start_hour!r}")
    except SimulationInputError as exc:
        errors["start_hour"] = _field_error(exc)[1]
    env2 = ComputeEnvironment(new) if not errors else env
    if profile not in (None, "") and not errors:
        try:
            env2 = env2.with_profile(profile)
        except SimulationInputError as exc:
            errors["profile"] = str(exc).removeprefix("intensity_profile: ")
    if errors:
        return out
    for m in (MODES if compare else (mode,)):
        try:
            optimal = m == "optimal"
            out["results"][m] = env2.run(wf, m, deadline_s=deadline if optimal else None,
                                         start_hour=hour,
                                         time_limit_s=time_limit_s if optimal else None)
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
        out["shift"] = shift_summary(sim, wf, hour)
    out["dependencies"] = dependencies(wf)
    out["environment"], out["workflow"] = env2, wf
    return out
