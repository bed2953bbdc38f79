"""Dependencies between workflow steps (``Task.after``): resolution, validation, order.

A name in ``after`` refers to a step of the same workflow: the latest step of that name
*before* this one (when a task repeats, the run whose output this one would use), else the
first step of that name after it. A name no step has, or a cycle, is a :class:`DagError`
naming the step, the task and the field ``after`` (and, from a tasks file, the file: see
:meth:`energykernel.sim.Workflow.from_json`). Everything is ``O(steps + edges)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..core.units import short_repr
from .model import SimulationInputError

if TYPE_CHECKING:
    from .model import Task


_CYCLE_SHOWN = 8  # names of a longer cycle shown in its error


class DagError(SimulationInputError):
    """A bad ``after``: ``step`` (workflow position), ``task`` (its name), ``detail``."""

    def __init__(self, step: int, task: str, detail: str, where: str = "workflow") -> None:
        self.step, self.task, self.detail = step, task, detail
        super().__init__(f"{where}[{step}] ({task!r}): field 'after': {detail}")

    def located(self, where: str) -> DagError:
        """The same error with ``where`` (e.g. ``"path/tasks.json: tasks"``) in front."""
        return DagError(self.step, self.task, self.detail, where)


@dataclass(frozen=True)
class Dag:
    """Predecessor and successor steps of every workflow step, and a topological order."""

    preds: list[tuple[int, ...]]
    succ: list[list[int]]
    order: list[int]

    @property
    def edges(self) -> int:
        return sum(map(len, self.preds))


def longest_chain_s(runtime_s: Sequence[float], dag: Dag | None) -> float:
    """The longest path of steps (s, 0 for none) when step *s* takes ``runtime_s[s]`` and
    starts once its predecessors have ended."""
    fin = list(runtime_s)
    if dag is not None:
        preds = dag.preds
        for s in dag.order:
            if preds[s]:
                fin[s] += max(fin[p] for p in preds[s])
    return max(fin, default=0.0)


def resolve(tasks: Sequence[Task]) -> Dag | None:
    """The dependencies of a workflow's steps; None when no task has ``after``."""
    if not any(t.after for t in tasks):
        return None
    first: dict[str, int] = {}
    for s, t in enumerate(tasks):
        first.setdefault(t.name, s)
    last: dict[str, int] = {}
    preds: list[tuple[int, ...]] = []
    append, get = preds.append, last.get
    for s, t in enumerate(tasks):
        if t.after:
            ps = tuple(get(name, first.get(name, -1)) for name in t.after)
            if -1 in ps:
                name = t.after[ps.index(-1)]
                raise DagError(s, t.name, f"unknown task {short_repr(name)} "
                                          "(no step of the workflow has that name)")
            append(ps)
        else:
            append(())
        last[t.name] = s
    succ: list[list[int]] = [[] for _ in preds]
    for s, ps in enumerate(preds):
        for p in ps:
            succ[p].append(s)
    return Dag(preds, succ, _topological(tasks, preds, succ))


def _topological(tasks: Sequence[Task], preds: list[tuple[int, ...]],
                 succ: list[list[int]]) -> list[int]:
    """Kahn's order (smallest step first among the ready); a cycle is a :class:`DagError`."""
    import heapq

    indeg = [len(ps) for ps in preds]
    ready = [s for s, d in enumerate(indeg) if not d]
    order: list[int] = []
    push, pop = heapq.heappush, heapq.heappop
    while ready:
        s = pop(ready)
        order.append(s)
        for t in succ[s]:
            indeg[t] -= 1
            if not indeg[t]:
                push(ready, t)
    if len(order) < len(preds):
        raise _cycle_error(tasks, preds, indeg)
    return order


def _cycle_error(tasks: Sequence[Task], preds: list[tuple[int, ...]],
                 indeg: list[int]) -> DagError:
    """Every step left by Kahn's algorithm waits for another one left: walking back from
    the first of them must close a cycle."""
    left = [s for s in range(len(preds)) if indeg[s] > 0]
    on_path: dict[int, int] = {}
    path: list[int] = []
    s = left[0]
    while s not in on_path:
        on_path[s] = len(path)
        path.append(s)
        s = next(p for p in preds[s] if indeg[p] > 0)
    cycle = path[on_path[s]:]
    k = cycle.index(min(cycle))  # start the message at the earliest step of the cycle
    cycle = cycle[k:] + cycle[:k]
    names = [short_repr(tasks[c].name) for c in [*cycle, cycle[0]]]
    if len(names) > _CYCLE_SHOWN:  # a long cycle: its ends and its length
        names = [*names[:_CYCLE_SHOWN // 2], "…", *names[-(_CYCLE_SHOWN // 2):]]
        return DagError(cycle[0], tasks[cycle[0]].name, "dependency cycle of "
                        f"{len(cycle):,} tasks: {' after '.join(names)}")
    return DagError(cycle[0], tasks[cycle[0]].name, f"dependency cycle: {' after '.join(names)}")
