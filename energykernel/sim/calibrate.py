"""Calibrate simulated tasks from measured runs: "what if this notebook ran on that fleet?"

A measured run of duration *T* s on an instance of speed *v* that used *E_c* J of component
*c* becomes a task of ``duration_s = T × v`` (seconds at speed 1) demanding
``demand_c = (E_c / T) / cost_c`` units: the mean measured power divided by the described
instance's W per unit. Simulating the tasks on the described instance reproduces the
measured energy (× its PUE). Measured energy is whole-machine (or process-scoped) as
recorded; the described instance's ``idle_power_w`` is not subtracted from it. The runs'
bounds (``energy_lo``, ``energy_hi``: the counters' resolution, the estimate's spread)
become the task's ``energy_band`` ``(Σ lo / Σ E, Σ hi / Σ E)``, so a simulated result
carries them as a band on its totals (:meth:`~energykernel.sim.SimulationResult.band`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from .model import ComputeInstance, SimulationInputError, Task

if TYPE_CHECKING:
    import xarray as xr


def _instance(description: Any) -> ComputeInstance:
    if isinstance(description, ComputeInstance):
        return description
    if isinstance(description, Mapping):
        try:
            return ComputeInstance(**description)
        except TypeError as exc:
            raise SimulationInputError(f"instance_description: {exc}") from None
    raise SimulationInputError(
        f"instance_description: expected a ComputeInstance or its JSON entry, got "
        f"{type(description).__name__}")


def _band(energy: np.ndarray, bounds: tuple[np.ndarray, np.ndarray] | None,
          idx: list[int], cols: list[int]) -> tuple[float, float]:
    """``(Σ lo / Σ E, Σ hi / Σ E)`` over runs ``idx`` and components ``cols`` where all
    three are known; ``(1, 1)`` where none are."""
    if bounds is None or not cols:
        return 1.0, 1.0
    e = energy[np.ix_(idx, cols)]
    lo, hi = (b[np.ix_(idx, cols)] for b in bounds)
    ok = np.isfinite(e) & np.isfinite(lo) & np.isfinite(hi)
    total = float(e[ok].sum())
    if not ok.any() or total <= 0:
        return 1.0, 1.0
    return (min(1.0, max(0.0, float(lo[ok].sum()) / total)),
            max(1.0, float(hi[ok].sum()) / total))


def tasks_from_runs(runs_ds: xr.Dataset, instance_description: ComputeInstance | Mapping,
                    *, per_run: bool = False, include_failed: bool = False) -> list[Task]:
    """Tasks from a runs Dataset (``ek.runs()``) measured on ``instance_description``.

    One task per task name (first-appearance order; mean duration per run, demand from the
    mean power over all its runs) or, with ``per_run=True``, one per run in start order
    (names repeat, so ``Workflow(tasks)`` replays the session). Runs whose status is not
    ``ok`` are skipped unless ``include_failed``. A demand above the instance's capacity is
    clipped to it, and a measured component the instance lacks (or prices at 0 W) is left
    out — both with a warning naming the task and the component.
    """
    inst = _instance(instance_description)
    for name in ("energy", "duration", "task"):
        if name not in runs_ds.variables:
            raise SimulationInputError(f"runs_ds: not an energykernel runs Dataset (no {name!r})")
    comps = [str(c) for c in runs_ds.component.values]
    energy = runs_ds.energy.transpose("run", "component").values.astype(float)
    bounds = None
    if "energy_lo" in runs_ds.variables and "energy_hi" in runs_ds.variables:
        bounds = (runs_ds.energy_lo.transpose("run", "component").values.astype(float),
                  runs_ds.energy_hi.transpose("run", "component").values.astype(float))
    duration = runs_ds.duration.values.astype(float)
    task = [str(t) for t in runs_ds.task.values]
    keep = np.ones(len(task), dtype=bool)
    if not include_failed and "status" in runs_ds.variables:
        keep &= np.array([str(s) == "ok" for s in runs_ds.status.values], dtype=bool)
    keep &= np.isfinite(duration)
    runs = np.flatnonzero(keep)
    if per_run and "start" in runs_ds.variables:
        runs = runs[np.argsort(runs_ds.start.values[runs], kind="stable")]
    groups: dict[str, list[int]] = {}
    if per_run:
        items = [(task[j], [int(j)]) for j in runs]
    else:
        for j in runs:
            groups.setdefault(task[j], []).append(int(j))
        items = list(groups.items())
    warned: set[tuple[str, str]] = set()
    out: list[Task] = []
    for name, idx in items:
        dur = duration[idx]
        total_s = float(dur.sum())
        demand: dict[str, float] = {}
        for k, comp in enumerate(comps):
            e = energy[idx, k]
            measured = np.isfinite(e)
            if not measured.any() or total_s <= 0:
                continue
            power_w = float(e[measured].sum() / dur[measured].sum()) if dur[measured].sum() else 0.0
            if power_w <= 0:
                continue
            res = inst.resources.get(comp)
            if res is None or res.cost <= 0:
                if (name, comp) not in warned:
                    why = "has no such resource" if res is None else "prices it at 0 W per unit"
                    warnings.warn(f"tasks_from_runs: task {name!r}: measured {comp} power "
                                  f"{power_w:.3g} W left out: instance {inst.name!r} {why}",
                                  stacklevel=2)
                    warned.add((name, comp))
                continue
            units = power_w / res.cost
            if units > res.capacity:
                if (name, comp) not in warned:
                    warnings.warn(f"tasks_from_runs: task {name!r}: {comp} demand {units:.3g} "
                                  f"(from {power_w:.3g} W) exceeds instance {inst.name!r} "
                                  f"capacity {res.capacity:g}; clipped", stacklevel=2)
                    warned.add((name, comp))
                units = res.capacity
            demand[comp] = units
        band = _band(energy, bounds, idx, [comps.index(c) for c in demand])
        try:
            out.append(Task(name, total_s / len(idx) * inst.speed, demand, energy_band=band))
        except SimulationInputError as exc:  # e.g. a measured value beyond the field bounds
            raise SimulationInputError(f"tasks_from_runs: task {name!r}: {exc}") from None
    return out
