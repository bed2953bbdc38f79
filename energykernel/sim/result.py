"""The outcome of a simulation: schedule, energy, makespan, emissions, and the §4 Dataset.

Idle power is kept apart from task energy: the cube's ``energy`` (task × instance ×
component) is what the tasks used, and ``idle_energy (instance)`` is ``idle_power_w × pue ×
makespan`` on every instance that ran a task (idle power belongs to no component, so it is
not forced into one). ``total_energy`` = ``energy`` summed + ``idle_energy`` summed. All
energies include the instance's PUE.

Carbon: ``energy × intensity_g_per_kwh`` per instance, or, on an instance with an hourly
``intensity_profile``, ``∫ power × intensity(t) dt`` over each step's run and over the
idle span — the schedule runs from ``offset_s`` after t = 0, and t = 0 is ``clock_s`` on
the profile's clock (:mod:`.timing`). A task's ``energy_band`` gives lo/hi totals
(:meth:`SimulationResult.band`).
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.record import RunRecord
from ..core.units import COMPONENTS, J_PER_KWH

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

    from .schedule import Problem



class SimulationResult:
    """Schedule and energy of one simulated workflow (from ``ComputeEnvironment.run``).

    Per workflow step: ``task_names``, ``instance_names``, ``start_s``, ``end_s``,
    ``step_energy_j`` (steps × components, NaN where the instance lacks the component).
    Totals: ``energy_j`` (tasks + idle), ``task_energy_j``, ``idle_energy_j`` (per instance),
    ``makespan_s``, ``emissions_g`` (NaN if a used instance has no intensity).
    ``predecessors``: per step, the steps it waited for (``Task.after`` resolved), or None
    when the workflow has no dependencies.
    """

    def __init__(self, *, mode: str, task_names: list[str], instances: list[str],
                 assignment: np.ndarray, start_s: np.ndarray, end_s: np.ndarray,
                 step_energy_j: np.ndarray, idle_energy_j: np.ndarray,
                 intensity: np.ndarray, info: dict[str, Any] | None = None,
                 predecessors: list[tuple[int, ...]] | None = None,
                 profiles: list[Any] | None = None,
                 band: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        self.mode = mode
        self.task_names = task_names
        self.instances = instances
        self.assignment = assignment
        self.start_s = start_s
        self.end_s = end_s
        self.step_energy_j = step_energy_j
        self._idle = idle_energy_j
        self._intensity = intensity
        self.info: dict[str, Any] = dict(info or {})
        self.predecessors = predecessors
        #: Per instance its IntensityProfile or None; None when no instance has one.
        self.profiles = profiles
        self.offset_s = 0.0  # the schedule's t = 0, in s after the run's t = 0
        self.clock_s = 0.0  # the run's t = 0 on the profiles' clock (start_hour × 3600)
        self._band = band  # per step (lo, hi) energy factors, or None

    @classmethod
    def build(cls, prob: Problem, mode: str, inst: np.ndarray, start: np.ndarray,
              end: np.ndarray, info: dict[str, Any] | None = None) -> SimulationResult:
        """Energies of a schedule: per step and component, plus idle over the makespan."""
        step_dem = prob.step_demand()
        runtime = prob.duration_s[prob.steps] / prob.speed[inst] if len(inst) else np.zeros(0)
        e = (runtime * prob.pue[inst])[:, None] * step_dem * prob.cost[inst]
        e = np.where(prob.has[inst], e, np.nan)
        makespan = float(end.max()) if len(end) else 0.0
        used = np.zeros(prob.n, dtype=bool)
        used[inst] = True
        idle = np.where(used, prob.idle_w * prob.pue * makespan, 0.0)
        names = [t.name for t in prob.tasks]
        profiles = [i.intensity_profile for i in prob.env.instances]
        band = None
        if any(t.energy_band != (1.0, 1.0) for t in prob.tasks):
            lo_hi = np.array([t.energy_band for t in prob.tasks], dtype=float)[prob.steps]
            band = (lo_hi[:, 0], lo_hi[:, 1])
        return cls(mode=mode, task_names=[names[k] for k in prob.steps],
                   instances=[i.name for i in prob.env.instances], assignment=inst,
                   start_s=start, end_s=end, step_energy_j=e, idle_energy_j=idle,
                   intensity=prob.intensity, info=info,
                   predecessors=None if prob.dag is None else prob.dag.preds,
                   profiles=profiles if any(p is not None for p in profiles) else None,
                   band=band)

    # -- totals ------------------------------------------------------------------------
    @property
    def makespan_s(self) -> float:
        return float(self.end_s.max()) if len(self.end_s) else 0.0

    @property
    def task_energy_j(self) -> float:
        return float(np.nansum(self.step_energy_j))

    @property
    def idle_energy_j(self) -> dict[str, float]:
        return {name: float(e) for name, e in zip(self.instances, self._idle, strict=True)}

    @property
    def energy_j(self) -> float:
        """Total energy (J): tasks plus idle, PUE included."""
        return self.task_energy_j + float(self._idle.sum())

    @cached_property
    def instance_energy_j(self) -> np.ndarray:
        """(instances × components) task energy in J."""
        out = np.zeros((len(self.instances), len(COMPONENTS)))
        np.add.at(out, self.assignment, np.nan_to_num(self.step_energy_j))
        return out

    @property
    def used(self) -> np.ndarray:
        used = np.zeros(len(self.instances), dtype=bool)
        used[self.assignment] = True
        return used

    @property
    def emissions_g(self) -> float:
        """Total gCO2e; NaN if some instance that ran a task has no intensity."""
        per = self.instance_emissions_g
        if not len(per):
            return 0.0
        return float(per[self.used].sum()) if self.used.any() else 0.0

    @property
    def instance_emissions_g(self) -> np.ndarray:
        """gCO2e per instance: its tasks and its idle energy (module docstring)."""
        if self.profiles is None:
            energy = self.instance_energy_j.sum(axis=1) + self._idle
            return energy * self._intensity / J_PER_KWH
        step, idle = self.intensities()
        out = self._idle * idle
        np.add.at(out, self.assignment, np.nansum(self.step_energy_j, axis=1) * step)
        return out / J_PER_KWH

    def intensities(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean gCO2e/kWh per step over its run, and per instance over the idle span."""
        step = self._intensity[self.assignment].astype(float)
        idle = self._intensity.astype(float).copy()
        if self.profiles is None:
            return step, idle
        t0 = self.clock_s + self.offset_s
        span = self.makespan_s
        for i, prof in enumerate(self.profiles):
            if prof is not None:
                idle[i] = float(prof.mean(t0, t0 + span))
        for prof in {id(p): p for p in self.profiles if p is not None}.values():
            on = np.array([p is prof for p in self.profiles])[self.assignment]
            step[on] = prof.mean(t0 + self.start_s[on], t0 + self.end_s[on])
        return step, idle

    def band(self) -> dict[str, float]:
        """Totals at the low and high end of the tasks' ``energy_band`` (idle energy is
        not banded): ``energy_lo_j``, ``energy_hi_j``, ``emissions_lo_g``, ``emissions_hi_g``."""
        task_e = np.nansum(self.step_energy_j, axis=1)
        lo, hi = self._band if self._band is not None else (np.ones(len(task_e)),) * 2
        idle = float(self._idle.sum())
        step_i, idle_i = self.intensities()
        idle_g = float((self._idle * idle_i)[self.used].sum()) / J_PER_KWH
        out = {"energy_lo_j": float((task_e * lo).sum()) + idle,
               "energy_hi_j": float((task_e * hi).sum()) + idle}
        if np.isnan(self.emissions_g):
            out["emissions_lo_g"] = out["emissions_hi_g"] = float("nan")
        else:
            g = task_e * step_i / J_PER_KWH
            out["emissions_lo_g"] = float((g * lo).sum()) + idle_g
            out["emissions_hi_g"] = float((g * hi).sum()) + idle_g
        return out

    def totals(self) -> dict[str, float]:
        """``energy_j``, ``task_energy_j``, ``idle_energy_j``, ``makespan_s``, ``emissions_g``."""
        return {"energy_j": self.energy_j, "task_energy_j": self.task_energy_j,
                "idle_energy_j": float(self._idle.sum()), "makespan_s": self.makespan_s,
                "emissions_g": self.emissions_g}

    # -- tables ------------------------------------------------------------------------
    def summary(self) -> pd.DataFrame:
        """Per instance: tasks run, busy time, energy per component, idle, total, emissions;
        plus a ``TOTAL`` row."""
        import pandas as pd

        n = len(self.instances)
        counts = np.bincount(self.assignment, minlength=n)
        busy = np.zeros(n)
        np.add.at(busy, self.assignment, self.end_s - self.start_s)
        table = pd.DataFrame(index=pd.Index(self.instances, name="instance"))
        table["tasks"] = counts
        table["busy_s"] = busy
        for c, comp in enumerate(COMPONENTS):
            table[f"{comp}_j"] = self.instance_energy_j[:, c]
        table["idle_j"] = self._idle
        table["total_j"] = self.instance_energy_j.sum(axis=1) + self._idle
        table["emissions_g"] = self.instance_emissions_g
        total = table.sum(numeric_only=True, min_count=1)
        total["emissions_g"] = self.emissions_g
        table.loc["TOTAL"] = total
        table["tasks"] = table["tasks"].astype(int)
        return table

    def compare(self, other: SimulationResult) -> pd.DataFrame:
        """Side by side totals of this result and ``other``, with difference and ratio."""
        import pandas as pd

        a, b = self.totals(), other.totals()
        left = self.mode if self.mode != other.mode else f"{self.mode} (self)"
        right = other.mode if self.mode != other.mode else f"{other.mode} (other)"
        rows = {k: {left: a[k], right: b[k], "difference": b[k] - a[k],
                    "ratio": (b[k] / a[k]) if a[k] else np.nan} for k in a}
        return pd.DataFrame.from_dict(rows, orient="index")

    def schedule(self) -> pd.DataFrame:
        """One row per workflow step: task, instance, start_s, end_s, energy_j."""
        import pandas as pd

        return pd.DataFrame({
            "task": self.task_names,
            "instance": [self.instances[i] for i in self.assignment],
            "start_s": self.start_s, "end_s": self.end_s,
            "energy_j": np.nansum(self.step_energy_j, axis=1),
        })

    # -- the Dataset -------------------------------------------------------------------
    def records(self) -> list[RunRecord]:
        """Run records (one per step, seconds from t=0) for :func:`energykernel.data.schema.cube`."""
        out: list[RunRecord] = []
        inst_names = self.instances
        energy = self.step_energy_j.tolist()
        for s, (task, i, t0, t1) in enumerate(zip(self.task_names, self.assignment.tolist(),
                                                  self.start_s.tolist(), self.end_s.tolist(),
                                                  strict=True)):
            ej = {comp: e for comp, e in zip(COMPONENTS, energy[s], strict=True) if e == e}
            out.append({"id": f"sim-{s}", "task": task, "instance": inst_names[i],
                        "start_s": t0, "end_s": t1, "duration_s": t1 - t0, "energy_j": ej,
                        "method": dict.fromkeys(ej, "simulated"), "device_energy_j": {},
                        "status": "ok", "scope": "machine", "pid": 0, "parent_id": ""})
        return out

    @cached_property
    def dataset(self) -> xr.Dataset:
        """The §4 cube (method "simulated") plus the schedule and idle energy (see module)."""
        from ..data.schema import cube

        ds = cube(self.records())
        ds = ds.reindex(instance=np.array(self.instances, dtype=object),
                        fill_value={"energy": np.nan, "duration": 0.0, "runs": 0, "method": ""})
        e_units = {"units": "J"}
        intensity = self._intensity
        ds["idle_energy"] = ("instance", self._idle,
                             {"units": "J", "long_name": "idle_power_w × pue × makespan, "
                              "on instances that ran a task"})
        ds["intensity"] = ("instance", intensity, {"units": "gCO2e/kWh"})
        if self.profiles is None:
            ds["emissions"] = ds.energy * ds.intensity / J_PER_KWH
            ds["idle_emissions"] = ds.idle_energy * ds.intensity / J_PER_KWH
        else:
            ds = self._varying_emissions(ds)
        ds["emissions"].attrs = {"units": "gCO2e", "long_name": "task emissions"}
        ds["idle_emissions"].attrs = {"units": "gCO2e"}
        ds["total_energy"] = ((), self.energy_j,
                              {**e_units, "long_name": "task energy + idle energy"})
        ds["makespan"] = ((), self.makespan_s, {"units": "s"})
        ds["total_emissions"] = ((), self.emissions_g, {"units": "gCO2e"})
        ds = ds.assign_coords(step=np.arange(len(self.task_names)),
                              step_task=("step", np.array(self.task_names, dtype=object)))
        ds["start"] = ("step", self.start_s, {"units": "s", "long_name": "start, s from t=0"})
        ds["end"] = ("step", self.end_s, {"units": "s", "long_name": "end, s from t=0"})
        ds["assigned_instance"] = ("step", np.array(
            [self.instances[i] for i in self.assignment], dtype=object))
        ds["step_energy"] = (("step", "component"), self.step_energy_j, e_units)
        if self._band is not None:
            b = self.band()
            ds["step_energy_band"] = (("step", "bound"), np.column_stack(self._band), {
                "long_name": "factors on step_energy: the task's energy_band (lo, hi)"})
            ds["total_energy_lo"] = ((), b["energy_lo_j"], e_units)
            ds["total_energy_hi"] = ((), b["energy_hi_j"], e_units)
        ds["after"] = ("step", self._after_labels(), {
            "long_name": "steps this step waited for (step numbers, comma-separated)"})
        ds.attrs.update({
            "title": "energykernel simulation", "method": "simulated", "mode": self.mode,
            "idle": "idle_energy (instance), not part of energy; total_energy includes it",
            "pue": "included in every energy", "steps": "one per workflow position (dim step)",
            "offset_s": self.offset_s, "start_hour": self.clock_s / 3600.0,
            **{f"sim_{k}": (int(v) if isinstance(v, bool) else v)
               for k, v in self.info.items() if isinstance(v, (str, int, float))},
        })
        return ds

    def _varying_emissions(self, ds: xr.Dataset) -> xr.Dataset:
        """``emissions`` and ``idle_emissions`` with hourly profiles: per step energy ×
        its mean intensity, summed into the cube; ``intensity`` becomes the idle span's."""
        step_i, idle_i = self.intensities()
        tasks = {str(t): k for k, t in enumerate(ds.task.values)}
        t_ix = np.array([tasks[t] for t in self.task_names], dtype=np.int64)
        cube_g = np.zeros(ds.energy.shape)
        g = np.nan_to_num(self.step_energy_j) * step_i[:, None] / J_PER_KWH
        np.add.at(cube_g, (t_ix, self.assignment), g)
        cube_g = np.where(np.isnan(ds.energy.values), np.nan, cube_g)
        ds["emissions"] = (("task", "instance", "component"), cube_g)
        ds["intensity"] = ("instance", idle_i, {
            "units": "gCO2e/kWh", "long_name": "mean intensity over the schedule's span"})
        ds["idle_emissions"] = ds.idle_energy * ds.intensity / J_PER_KWH
        return ds

    def _after_labels(self) -> np.ndarray:
        out = np.full(len(self.task_names), "", dtype=object)
        if self.predecessors is not None:
            for s, ps in enumerate(self.predecessors):
                if ps:
                    out[s] = ",".join(map(str, ps))
        return out

    def __repr__(self) -> str:
        em = self.emissions_g
        ems = "" if np.isnan(em) else f", {em:.4g} gCO2e"
        return (f"<SimulationResult {self.mode}: {len(self.task_names)} tasks, "
                f"{self.energy_j:.6g} J, makespan {self.makespan_s:.6g} s{ems}>")
