"""The report's two ways of running a simulation, and data products that keep history.

1. Decorator: ``@tag_tracker`` / ``@tag_tracker("name")`` on functions records the order in
   which they start (thread-safe); afterwards ``execute_tracking(instances=..., tasks=...)``
   looks each recorded name up in ``tasks`` and simulates that sequence.
2. Pre-emptive: no decorator ran; ``execute_tracking`` simulates ``tasks`` in their given
   order (a list, a mapping in insertion order, or a tasks JSON file in file order).

Dependencies: a run is ``after`` the tasks its decorator names (``@tag_tracker("fit",
after=["load"])``), the tasks ``execute_tracking(after={...})`` names, and the data
dependencies the tracker sees — a decorated call given, as an argument, the object another
decorated call returned (matched by identity; values Python shares between unrelated uses —
``None``, numbers, strings, bytes — are not followed, nor objects inside containers, nor a
function fed its own earlier result, since a task cannot be after itself).

``DataProduct(name, tasks)`` follows some tasks; every simulation it observes appends one
history entry per run of a followed task; ``.to_log(path)`` writes the history as JSON
lines, ``.summary()`` says in words what it cost.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, overload

import numpy as np

from ..core._atomic import write_text_atomic
from ..core.units import COMPONENTS, si
from .model import ComputeEnvironment, ComputeInstance, SimulationInputError, Task, Workflow
from .result import SimulationResult

F = TypeVar("F", bound=Callable[..., Any])


def _default_name(func: Callable[..., Any]) -> str:
    return func.__qualname__.rpartition("<locals>.")[2]


_SHARED_VALUES = (type(None), bool, int, float, complex, str, bytes)


def _names(value: Any, what: str) -> tuple[str, ...]:
    """``value`` as a tuple of task names (a list of non-empty strings)."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise SimulationInputError(f"{what}: must be a list of task names, got {value!r}")
    out = tuple(value)
    for j, name in enumerate(out):
        if not isinstance(name, str) or not name.strip():
            raise SimulationInputError(f"{what}[{j}]: must be a non-empty string, got {name!r}")
    return out


class TagTracker:
    """Records the names of decorated functions in the order they start running, and what
    each run was after (its decorator's ``after`` and the data dependencies seen)."""

    def __init__(self) -> None:
        self._order: list[str] = []
        self._after: list[tuple[str, ...]] = []
        self._made_by: dict[int, tuple[int, weakref.ref | None]] = {}  # id(result) → run
        self._lock = threading.RLock()  # re-entered by a weakref callback

    @overload
    def __call__(self, func: F) -> F: ...
    @overload
    def __call__(self, func: str | None = None, *,
                 after: Iterable[str] = ()) -> Callable[[F], F]: ...

    def __call__(self, func=None, *, after=()):
        """``@tracker``, ``@tracker()``, ``@tracker("name")`` or ``@tracker(after=[...])``.

        The default name is the function's qualified name without enclosing function scopes
        (``Model.fit``, ``load``; not ``main.<locals>.load``), so it matches a tasks file.
        ``after``: names of tasks every run of this function waits for.
        """
        if callable(func):
            return self._wrap(func, _default_name(func), ())
        if func is not None and (not isinstance(func, str) or not func):
            raise SimulationInputError(f"tag_tracker: name must be a non-empty string, got {func!r}")
        names = _names(after, "tag_tracker: after")
        return lambda f: self._wrap(f, func or _default_name(f), names)

    def _wrap(self, func: F, name: str, after: tuple[str, ...]) -> F:
        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def awrapper(*args, **kwargs):
                run = self.record(name, after, (*args, *kwargs.values()))
                result = await func(*args, **kwargs)
                self._produced(run, result)
                return result
            wrapper: Any = awrapper
        else:
            @functools.wraps(func)
            def wrapper(*args, **kwargs):
                run = self.record(name, after, (*args, *kwargs.values()))
                result = func(*args, **kwargs)
                self._produced(run, result)
                return result
        wrapper.task_name = name
        wrapper.task_after = after
        return wrapper

    def record(self, name: str, after: Iterable[str] = (), inputs: Iterable[Any] = ()) -> int:
        """Append ``name`` to the recorded order (what a decorated call does), after the
        tasks in ``after`` and the decorated calls that returned one of ``inputs``; returns
        the run's number."""
        deps = dict.fromkeys(after)
        with self._lock:
            for obj in inputs:
                made = self._made_by.get(id(obj))
                if made is not None and (made[1] is None or made[1]() is obj):
                    deps[self._order[made[0]]] = None
            deps.pop(name, None)
            self._order.append(name)
            self._after.append(tuple(deps))
            return len(self._order) - 1

    def _produced(self, run: int, result: Any) -> None:
        """Remember that run ``run`` returned ``result`` (by identity, while it lives)."""
        if isinstance(result, _SHARED_VALUES):
            return
        key = id(result)
        ref: weakref.ref | None
        try:
            ref = weakref.ref(result, functools.partial(self._forget, key))
        except TypeError:  # lists, dicts, tuples: no weak references (kept until clear())
            ref = None
        with self._lock:
            self._made_by[key] = (run, ref)

    def _forget(self, key: int, ref: weakref.ref) -> None:
        with self._lock:
            made = self._made_by.get(key)
            if made is not None and made[1] is ref:
                del self._made_by[key]

    @property
    def order(self) -> list[str]:
        """The recorded task names, in start order (a copy)."""
        with self._lock:
            return list(self._order)

    @property
    def dependencies(self) -> list[tuple[str, ...]]:
        """Per recorded run, the names of the tasks it was after (a copy)."""
        with self._lock:
            return list(self._after)

    def clear(self) -> None:
        with self._lock:
            self._order.clear()
            self._after.clear()
            self._made_by.clear()

    def __len__(self) -> int:
        return len(self._order)

    def __repr__(self) -> str:
        return f"<TagTracker: {len(self._order)} calls recorded>"


#: The process-wide tracker behind ``@tag_tracker``.
tag_tracker = TagTracker()


def _environment(instances: Any) -> ComputeEnvironment:
    if isinstance(instances, ComputeEnvironment):
        return instances
    if isinstance(instances, (str, os.PathLike)):
        return ComputeEnvironment.from_json(instances)
    if isinstance(instances, ComputeInstance):
        return ComputeEnvironment([instances])
    if isinstance(instances, Iterable):
        return ComputeEnvironment(instances)
    raise SimulationInputError(
        f"instances: expected a path, a ComputeEnvironment or a list of ComputeInstance, "
        f"got {type(instances).__name__}")


def _catalogue(tasks: Any) -> list[Task]:
    if isinstance(tasks, Workflow):
        return list(tasks.tasks)
    if isinstance(tasks, (str, os.PathLike)):
        return Workflow.from_json(tasks).tasks
    if isinstance(tasks, Mapping):
        out = []
        for key, t in tasks.items():
            if not isinstance(t, Task):
                raise SimulationInputError(f"tasks[{key!r}]: must be a Task, got {t!r}")
            out.append(t if t.name == key else Task(key, t.duration_s, t.demand, t.after))
        return out
    if isinstance(tasks, Iterable):
        out = list(tasks)
        for k, t in enumerate(out):
            if not isinstance(t, Task):
                raise SimulationInputError(f"tasks[{k}]: must be a Task, got {t!r}")
        return out
    raise SimulationInputError(
        f"tasks: expected a path, a list of Task or a mapping name → Task, "
        f"got {type(tasks).__name__}")


def _with_after(sequence: list[Task], extra: list[tuple[str, ...]]) -> list[Task]:
    """``sequence`` with each step's ``extra`` names added to its task's ``after``."""
    made: dict[tuple[int, tuple[str, ...]], Task] = {}
    out = []
    for t, names in zip(sequence, extra, strict=True):
        names = tuple(n for n in names if n not in t.after)
        if not names:
            out.append(t)
            continue
        key = (id(t), names)
        if key not in made:
            made[key] = Task(t.name, t.duration_s, t.demand, (*t.after, *names))
        out.append(made[key])
    return out


def execute_tracking(instances: Any, tasks: Any, mode: str = "monitor", *,
                     order: Sequence[str] | None = None,
                     after: Mapping[str, Sequence[str]] | None = None,
                     tracker: TagTracker | None = None,
                     products: Iterable[DataProduct] = (), deadline_s: float | None = None,
                     objective: str = "auto", clear: bool = False) -> SimulationResult:
    """Simulate what ran (or what will run) on ``instances``.

    ``instances``: a path to an instances JSON file, a ``ComputeEnvironment`` or a list of
    ``ComputeInstance``. ``tasks``: a tasks JSON path, a list of ``Task`` or a mapping
    name → ``Task``. The sequence simulated is ``order`` (task names) if given, else the
    names ``tracker`` (default :data:`tag_tracker`) recorded if any, else ``tasks`` in their
    given order. Each step waits for its task's ``after``, for the dependencies the tracker
    recorded for that run (when the sequence is the recorded one), and for ``after[name]``
    (a mapping task name → names of tasks it runs after). ``clear=True`` forgets the
    recorded order afterwards.
    """
    env = _environment(instances)
    catalogue = _catalogue(tasks)
    tracker = tag_tracker if tracker is None else tracker
    recorded = order is None
    names = list(order) if order is not None else tracker.order
    if names:
        by_name: dict[str, Task] = {}
        for t in catalogue:
            by_name.setdefault(t.name, t)
        missing = sorted({n for n in names if n not in by_name})
        if missing:
            raise SimulationInputError(
                f"tasks: no task description for {', '.join(map(repr, missing))} "
                f"(known: {', '.join(by_name) or 'none'})")
        sequence = [by_name[n] for n in names]
    else:
        sequence = catalogue
    extra: list[tuple[str, ...]] = [()] * len(sequence)
    if names and recorded:
        deps = tracker.dependencies
        extra = deps if len(deps) == len(sequence) else extra
    if after is not None:
        if not isinstance(after, Mapping):
            raise SimulationInputError(
                f"after: must be a mapping task name → names of tasks it runs after, "
                f"got {type(after).__name__}")
        given = {name: _names(v, f"after[{name!r}]") for name, v in after.items()}
        extra = [(*e, *given.get(t.name, ())) for t, e in zip(sequence, extra, strict=True)]
    result = env.run(Workflow(_with_after(sequence, extra)), mode, deadline_s=deadline_s,
                     objective=objective, products=products)
    if clear:
        tracker.clear()
    return result


class DataProduct:
    """Something the workflow produces, following the tasks that make it.

    ``history`` holds one dict per observed run of a followed task: product, simulation
    number, mode, step, task, instance, start_s, end_s, energy_j (per component), total_j.
    """

    def __init__(self, name: str, tasks: Iterable[Task | str] = ()) -> None:
        if not isinstance(name, str) or not name:
            raise SimulationInputError(f"DataProduct: name must be a non-empty string, got {name!r}")
        self.name = name
        self.tasks: list[str] = []
        for t in tasks:
            self.follow(t)
        self.history: list[dict[str, Any]] = []
        self._simulations = 0
        self._lock = threading.Lock()

    def follow(self, task: Task | str) -> None:
        """Also follow ``task`` (a Task or a task name)."""
        name = task.name if isinstance(task, Task) else task
        if not isinstance(name, str) or not name:
            raise SimulationInputError(f"DataProduct {self.name!r}: bad task {task!r}")
        if name not in self.tasks:
            self.tasks.append(name)

    def observe(self, result: SimulationResult) -> int:
        """Record the followed tasks' runs in ``result``; returns how many were added."""
        followed = set(self.tasks)
        with self._lock:
            self._simulations += 1
            sim = self._simulations
            added = 0
            for s, task in enumerate(result.task_names):
                if task not in followed:
                    continue
                e = result.step_energy_j[s]
                energy = {c: float(v) for c, v in zip(COMPONENTS, e, strict=True) if not np.isnan(v)}
                self.history.append({
                    "product": self.name, "simulation": sim, "mode": result.mode, "step": s,
                    "task": task, "instance": result.instances[result.assignment[s]],
                    "start_s": float(result.start_s[s]), "end_s": float(result.end_s[s]),
                    "energy_j": energy, "total_j": float(sum(energy.values())),
                })
                added += 1
        return added

    @property
    def total_j(self) -> float:
        return float(sum(h["total_j"] for h in self.history))

    def to_log(self, path: str | os.PathLike) -> Path:
        """Write the history as JSON lines (one run per line), atomically."""
        p = Path(path)
        if not p.parent.exists():
            raise FileNotFoundError(f"to_log({str(p)!r}): directory {str(p.parent)!r} does not exist")
        return write_text_atomic(p, "".join(json.dumps(h) + "\n" for h in self.history))

    def summary(self) -> str:
        """A few readable lines: runs, energy per task and instance, share of the total."""
        if not self.history:
            return f"DataProduct {self.name!r}: no runs observed yet (follows {', '.join(self.tasks)})"
        total = self.total_j
        lines = [f"DataProduct {self.name!r}: {len(self.history)} runs over "
                 f"{self._simulations} simulation(s), {si(total, 'J')} in total"]
        for key in ("task", "instance"):
            agg: dict[str, list[float]] = {}
            for h in self.history:
                agg.setdefault(h[key], []).append(h["total_j"])
            for name, vals in sorted(agg.items(), key=lambda kv: -sum(kv[1])):
                share = 100 * sum(vals) / total if total else 0.0
                lines.append(f"  {key} {name}: {len(vals)} runs, {si(sum(vals), 'J')} ({share:.0f}%)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        return f"<DataProduct {self.name!r}: follows {self.tasks}, {len(self.history)} runs>"

