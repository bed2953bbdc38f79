"""The outcome of a simulation: schedule, energy, makespan, emissions, and the §4 Dataset.

Idle power is kept apart from task energy: the cube's ``energy`` (task × instance ×
component) is what the tasks used, and ``idle_energy (instance)`` is ``idle_power_w × pue ×
makespan`` on every instance that ran a task (idle power belongs to no component, so it is
not forced into one). ``total_energy`` = ``energy`` summed + ``idle_energy`` summed. All
energies include the instance's PUE.
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
                 predecessors: list[tuple[int, ...]] | None = None) -> None:
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
        return cls(mode=mode, task_names=[names[k] for k in prob.steps],
                   instances=[i.name for i in prob.env.instances], assignment=inst,
                   start_s=start, end_s=end, step_energy_j=e, idle_energy_j=idle,
                   intensity=prob.intensity, info=info,
                   predecessors=None if prob.dag is None else prob.dag.preds)

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
        energy = self.instance_energy_j.sum(axis=1) + self._idle
        return energy * self._intensity / J_PER_KWH

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
        ds["emissions"] = ds.energy * ds.intensity / J_PER_KWH
        ds["emissions"].attrs = {"units": "gCO2e", "long_name": "task emissions"}
        ds["idle_emissions"] = ds.idle_energy * ds.intensity / J_PER_KWH
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
        ds["after"] = ("step", self._after_labels(), {
            "long_name": "steps this step waited for (step numbers, comma-separated)"})
        ds.attrs.update({
            "title": "energykernel simulation", "method": "simulated", "mode": self.mode,
            "idle": "idle_energy (instance), not part of energy; total_energy includes it",
            "pue": "included in every energy", "steps": "one per workflow position (dim step)",
            **{f"sim_{k}": (int(v) if isinstance(v, bool) else v)
               for k, v in self.info.items() if isinstance(v, (str, int, float))},
        })
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
