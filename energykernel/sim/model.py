"""The simulation model: resources, instances, tasks, workflows, environments.

Every constructor validates its arguments and raises :class:`SimulationInputError` (a
``ValueError``) naming the offending field, so a bad entry never reaches the scheduler.
Energy model: task *t* on instance *i* runs ``duration_s / speed_i`` seconds and uses, per
component *c*, ``runtime × demand_c × cost_ic × pue_i`` joules; ``idle_power_w × pue_i``
is charged for the makespan on every instance that ran at least one task.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.units import COMPONENTS, short_repr
from .errors import SimulationInputError, UnschedulableError
from .fields import MAX_VALUE, _after, _band, _component, _name, _number, _profile

if TYPE_CHECKING:
    from .dag import Dag
    from .result import SimulationResult

#: Re-exported: the errors (:mod:`.errors`) and the field checks (:mod:`.fields`).
__all__ = ["MAX_VALUE", "MODES", "OBJECTIVES", "ComputeEnvironment", "ComputeInstance",
           "Resource", "SimulationInputError", "Task", "UnschedulableError", "Workflow",
           "_number", "_profile", "check_mode"]

MODES: tuple[str, ...] = ("monitor", "optimize", "optimal")
OBJECTIVES: tuple[str, ...] = ("auto", "energy", "carbon")


@dataclass(frozen=True)
class Resource:
    """One component of an instance: ``capacity`` units (cores, GPUs, GB, MB/s) and
    ``cost`` in W per unit in use."""

    capacity: float
    cost: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "capacity", _number(self.capacity, "capacity"))
        object.__setattr__(self, "cost", _number(self.cost, "cost"))

    def to_dict(self) -> dict[str, float]:
        return {"capacity": self.capacity, "cost": self.cost}


@dataclass(frozen=True)
class ComputeInstance:
    """A machine: per-component resources, relative ``speed``, idle power (W), PUE and an
    optional grid carbon intensity (gCO2e/kWh)."""

    name: str
    resources: Mapping[str, Resource] = field(default_factory=dict)
    speed: float = 1.0
    idle_power_w: float = 0.0
    pue: float = 1.0
    intensity_g_per_kwh: float | None = None
    intensity_profile: Any = None  # an IntensityProfile (or what .profile.as_profile takes)

    def __post_init__(self) -> None:
        _name(self.name, "name")
        if not isinstance(self.resources, Mapping):
            raise SimulationInputError(
                "resources: must be a mapping component → Resource, got "
                f"{short_repr(self.resources)}")
        res: dict[str, Resource] = {}
        for comp in COMPONENTS:  # canonical order
            if comp in self.resources:
                res[comp] = self._resource(comp, self.resources[comp])
        for comp in self.resources:
            _component(comp, f"resources.{comp}")
        object.__setattr__(self, "resources", res)
        object.__setattr__(self, "speed", _number(self.speed, "speed", strict=True))
        object.__setattr__(self, "idle_power_w", _number(self.idle_power_w, "idle_power_w"))
        object.__setattr__(self, "pue", _number(self.pue, "pue", minimum=1.0))
        if self.intensity_g_per_kwh is not None:
            object.__setattr__(self, "intensity_g_per_kwh",
                               _number(self.intensity_g_per_kwh, "intensity_g_per_kwh"))
        if self.intensity_profile is not None:
            object.__setattr__(self, "intensity_profile", _profile(self.intensity_profile))

    @staticmethod
    def _resource(comp: str, value: Any) -> Resource:
        if isinstance(value, Resource):
            return value
        if isinstance(value, Mapping):
            for key in value:
                if key not in ("capacity", "cost"):
                    raise SimulationInputError(
                        f"resources.{comp}.{key}: unknown field (expected capacity, cost)")
            for key in ("capacity", "cost"):
                if key not in value:
                    raise SimulationInputError(f"resources.{comp}.{key}: missing")
            try:
                return Resource(value["capacity"], value["cost"])
            except SimulationInputError as exc:
                raise SimulationInputError(f"resources.{comp}.{exc}") from None
        raise SimulationInputError(
            f"resources.{comp}: must be a Resource or {{capacity, cost}}, "
            f"got {short_repr(value)}")

    def with_changes(self, **changes: Any) -> ComputeInstance:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "speed": self.speed, "idle_power_w": self.idle_power_w,
               "pue": self.pue, "intensity_g_per_kwh": self.intensity_g_per_kwh,
               "resources": {c: r.to_dict() for c, r in self.resources.items()}}
        if self.intensity_profile is not None:
            out["intensity_profile"] = self.intensity_profile.to_json()
        return out


@dataclass(frozen=True, eq=True)
class Task:
    """A unit of work: ``duration_s`` seconds at speed 1, holding ``demand`` units of each
    component while it runs (zero demands are dropped), starting only once the tasks named
    in ``after`` have ended (see :mod:`energykernel.sim.dag` for repeated names)."""

    name: str
    duration_s: float
    demand: Mapping[str, float] = field(default_factory=dict)
    after: tuple[str, ...] = ()
    #: The task's energy is known within ``[lo × E, hi × E]`` (e.g. measured bounds).
    energy_band: tuple[float, float] = (1.0, 1.0)

    def __post_init__(self) -> None:
        _name(self.name, "name")
        object.__setattr__(self, "duration_s", _number(self.duration_s, "duration_s"))
        if not isinstance(self.demand, Mapping):
            raise SimulationInputError(
                f"demand: must be a mapping component → units, got {short_repr(self.demand)}")
        for comp in self.demand:
            _component(comp, f"demand.{comp}")
        dem = {c: _number(self.demand[c], f"demand.{c}") for c in COMPONENTS if c in self.demand}
        object.__setattr__(self, "demand", {c: v for c, v in dem.items() if v > 0})
        if self.after != ():
            object.__setattr__(self, "after", _after(self.after, self.name))
        if self.energy_band != (1.0, 1.0):
            object.__setattr__(self, "energy_band", _band(self.energy_band))

    def __hash__(self) -> int:  # demand is a dict; equal tasks share name and duration
        return hash((self.name, self.duration_s))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "duration_s": self.duration_s,
                               "demand": dict(self.demand)}
        if self.after:
            out["after"] = list(self.after)
        if self.energy_band != (1.0, 1.0):
            out["energy_band"] = list(self.energy_band)
        return out


class Workflow:
    """An ordered list of tasks (a task may appear several times), validated as a DAG.

    ``after`` names are resolved to steps when the workflow is built (:mod:`.dag`): an
    unknown name or a cycle is a :class:`SimulationInputError` naming the step, the task
    and the field ``after``. ``start_after_s`` and ``deadline_s`` (s from t = 0) are the
    workflow's window: it starts no earlier and, where a schedule allows, ends no later
    (see :mod:`.timing`).
    """

    def __init__(self, tasks: Iterable[Task] = (), name: str = "workflow", *,
                 start_after_s: float = 0.0, deadline_s: float | None = None) -> None:
        self.name = name
        self.start_after_s = _number(start_after_s, "start_after_s")
        self.deadline_s = (None if deadline_s is None else
                           _number(deadline_s, "deadline_s", strict=True))
        if self.deadline_s is not None and self.deadline_s <= self.start_after_s:
            raise SimulationInputError(f"deadline_s: must be after start_after_s "
                                       f"({self.start_after_s:g} s), got {self.deadline_s:g}")
        self.tasks: list[Task] = list(tasks)
        for k, t in enumerate(self.tasks):
            if not isinstance(t, Task):
                raise SimulationInputError(f"workflow[{k}]: must be a Task, got {short_repr(t)}")
        self._resolve()

    def _resolve(self) -> None:
        from .dag import resolve

        self._dag: Dag | None = resolve(self.tasks)
        self._dag_of: list[Task] = list(self.tasks)

    @property
    def dag(self) -> Dag | None:
        """The steps' dependencies (None when no task has ``after``); resolved again if
        ``tasks`` was changed in place."""
        tasks = self.tasks
        if len(self._dag_of) != len(tasks) or not all(map(operator.is_, self._dag_of, tasks)):
            self._resolve()
        return self._dag

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> Workflow:
        """Tasks from a tasks JSON file (``{"tasks": [...]}``), in file order; a bad
        ``after`` names the file, the entry and the field."""
        from .dag import DagError
        from .jsonio import load_tasks, load_window

        window = load_window(path)
        try:
            return cls(load_tasks(path), name=os.path.basename(str(path)), **window)
        except DagError as exc:
            raise exc.located(f"{Path(path)}: tasks") from None

    def to_json(self, path: str | os.PathLike) -> None:
        """Write the distinct tasks (first occurrence order) as a tasks JSON file."""
        from .jsonio import save_tasks

        seen: dict[str, Task] = {}
        for t in self.tasks:
            seen.setdefault(t.name, t)
        window: dict[str, float] = {}
        if self.start_after_s:
            window["start_after_s"] = self.start_after_s
        if self.deadline_s is not None:
            window["deadline_s"] = self.deadline_s
        save_tasks(list(seen.values()), path, window)

    def __iter__(self) -> Iterator[Task]:
        return iter(self.tasks)

    def __len__(self) -> int:
        return len(self.tasks)

    def __getitem__(self, k: int) -> Task:
        return self.tasks[k]

    def __repr__(self) -> str:
        return f"<Workflow {self.name!r}: {len(self.tasks)} tasks>"


class ComputeEnvironment:
    """A set of compute instances (names unique), in the order ``monitor`` tries them."""

    def __init__(self, instances: Iterable[ComputeInstance]) -> None:
        self.instances: list[ComputeInstance] = list(instances)
        seen: set[str] = set()
        for k, inst in enumerate(self.instances):
            if not isinstance(inst, ComputeInstance):
                raise SimulationInputError(
                    f"instances[{k}]: must be a ComputeInstance, got {short_repr(inst)}")
            if inst.name in seen:
                raise SimulationInputError(
                    f"instances[{k}] ({inst.name!r}): field 'name': duplicate instance name")
            seen.add(inst.name)

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> ComputeEnvironment:
        """Instances from a JSON file (``{"instances": [...]}``)."""
        from .jsonio import load_instances

        return cls(load_instances(path))

    def to_json(self, path: str | os.PathLike) -> None:
        from .jsonio import save_instances

        save_instances(self.instances, path)

    def __iter__(self) -> Iterator[ComputeInstance]:
        return iter(self.instances)

    def __len__(self) -> int:
        return len(self.instances)

    def __getitem__(self, key: int | str) -> ComputeInstance:
        if isinstance(key, str):
            for inst in self.instances:
                if inst.name == key:
                    return inst
            raise KeyError(key)
        return self.instances[key]

    def __repr__(self) -> str:
        return f"<ComputeEnvironment: {', '.join(i.name for i in self.instances)}>"

    def replace_instance(self, name: str, **changes: Any) -> ComputeEnvironment:
        """A new environment where instance ``name`` has some fields changed."""
        return ComputeEnvironment(
            i.with_changes(**changes) if i.name == name else i for i in self.instances)

    def with_profile(self, profile: Any) -> ComputeEnvironment:
        """A new environment where every instance has the hourly ``intensity_profile``
        (an :class:`~.profile.IntensityProfile`, a list, a file or a shipped name)."""
        prof = _profile(profile)
        return ComputeEnvironment(i.with_changes(intensity_profile=prof) for i in self.instances)

    def run(self, workflow: Workflow | Sequence[Task], mode: str = "monitor", *,
            deadline_s: float | None = None, objective: str = "auto",
            products: Iterable[Any] = (), idle_aware: bool = False,
            algorithm: str = "greedy", start_hour: float = 0.0,
            shift: bool | str = False, time_limit_s: float | None = None
            ) -> SimulationResult:
        """Simulate ``workflow`` here: ``mode`` is ``monitor``, ``optimize`` or ``optimal``.

        ``deadline_s`` (optimal only) bounds the makespan; ``objective`` (optimal only) is
        ``energy``, ``carbon`` or ``auto`` (carbon when every instance has an intensity).
        ``idle_aware`` (optimize only): rank instances by the energy a choice adds, the
        idle power it commits included, instead of the task's own energy there (the
        default, DESIGN §5); greedy, so it can lose on some fleets. ``algorithm``
        (optimize only): ``greedy`` (DESIGN §5), ``heft`` or ``heft-energy``
        (:mod:`.heft`). ``start_hour``: where t = 0 falls on the instances' hourly
        ``intensity_profile`` clock; ``shift``: delay the workflow, within its window, to
        the greenest start (:mod:`.timing`; optimal always may), and with ``"tasks"`` then
        single steps within their slack (:mod:`.shift`). ``time_limit_s`` (optimal only;
        default 10 s): the whole call's time, its exact search stopping there. Each
        :class:`~energykernel.sim.DataProduct` in ``products`` records the result.
        """
        from .schedule import simulate
        from .timing import Timing

        if not isinstance(workflow, Workflow):
            workflow = Workflow(workflow)
        timing = Timing.of(workflow, start_hour=start_hour, shift=shift)
        result = simulate(self, workflow, mode, deadline_s=deadline_s, objective=objective,
                          idle_aware=idle_aware, algorithm=algorithm, timing=timing,
                          time_limit_s=time_limit_s)
        for product in products:
            product.observe(result)
        return result


def check_mode(mode: Any) -> str:
    if mode not in MODES:
        raise SimulationInputError(
            f"mode: must be one of {', '.join(MODES)}, got {short_repr(mode)}")
    return mode
