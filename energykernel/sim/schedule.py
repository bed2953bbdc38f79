"""The event-driven scheduler behind ``monitor``, ``optimize`` and fixed assignments.

Queueing rule ("tasks start in workflow order"): a step is *ready* once every step it is
``after`` has ended (:mod:`.dag`); the ready steps start in workflow order, the first of
them at the earliest time ``now`` at which some instance can hold it, and a ready step that
must wait blocks every later ready step (no overtaking; without dependencies every step is
ready at 0, so starts follow workflow order). Every start is at the current ``now``, so
free capacity from ``now`` on only grows: the whole simulation is one heap of completion
events, a heap of steps made ready by them, and per choice a query of an index of free
capacity (:mod:`.choose`: which instance, by mode).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..core.units import COMPONENTS, short_repr
from .choose import NC, Assigned, Dynamic, releaser
from .fields import _number
from .idle import IdleAware
from .model import (
    ComputeEnvironment,
    SimulationInputError,
    UnschedulableError,
    Workflow,
    check_mode,
)
from .result import SimulationResult
from .timing import Timing

if TYPE_CHECKING:
    from .dag import Dag

_TOL = 1e-9


@dataclass
class Problem:
    """A workflow compiled against an environment: plain arrays and lists."""

    env: ComputeEnvironment
    tasks: list  # distinct Task objects
    steps: list[int]  # workflow position → index into tasks
    cap: list[list[float]]  # [component][instance] capacity (0 where absent)
    has: np.ndarray  # (n, NC) bool: instance has the component
    cost: np.ndarray  # (n, NC) W per unit
    speed: np.ndarray
    pue: np.ndarray
    idle_w: np.ndarray
    intensity: np.ndarray  # NaN where not given
    demand: np.ndarray  # (K, NC) per distinct task
    duration_s: np.ndarray  # (K,)
    dem_pairs: list[tuple[tuple[int, float], ...]]  # per task: (component, demand - tol)
    dem_uniq: np.ndarray  # (U, NC) distinct demand vectors
    dem_row: np.ndarray  # (K,) task → row of dem_uniq
    dag: Dag | None = None  # dependencies between steps (None: none)

    @property
    def n(self) -> int:
        return len(self.env.instances)

    def step_demand(self) -> np.ndarray:
        return self.demand[self.steps]


def compile_problem(env: ComputeEnvironment, workflow: Workflow) -> Problem:
    """Arrays for the scheduler; checks that every task fits some (empty) instance."""
    if not len(env):
        raise SimulationInputError("environment: no instances")
    index: dict[int, int] = {}
    tasks: list = []
    steps: list[int] = []
    for t in workflow.tasks:
        k = index.get(id(t))
        if k is None:
            k = index[id(t)] = len(tasks)
            tasks.append(t)
        steps.append(k)
    n = len(env.instances)
    has = np.zeros((n, NC), dtype=bool)
    capa = np.zeros((n, NC))
    cost = np.zeros((n, NC))
    for i, inst in enumerate(env.instances):
        for c, comp in enumerate(COMPONENTS):
            r = inst.resources.get(comp)
            if r is not None:
                has[i, c], capa[i, c], cost[i, c] = True, r.capacity, r.cost
    # Distinct demand vectors (first-appearance order): most workflows have few.
    row_of: dict[tuple, int] = {}
    rows: list[int] = []
    for t in tasks:
        key = tuple(t.demand.items())
        j = row_of.get(key)
        if j is None:
            j = row_of[key] = len(row_of)
        rows.append(j)
    comp_ix = {comp: c for c, comp in enumerate(COMPONENTS)}
    uniq = np.zeros((len(row_of), NC))
    for key, j in row_of.items():
        for comp, d in key:
            uniq[j, comp_ix[comp]] = d
    dem_row = np.array(rows, dtype=np.int64)
    demand = uniq[dem_row] if len(rows) else np.zeros((0, NC))
    pairs_u = [tuple((c, float(d) - _TOL * max(1.0, float(d))) for c, d in enumerate(row) if d > 0)
               for row in uniq]
    pairs = [pairs_u[j] for j in rows]
    prob = Problem(
        env=env, tasks=tasks, steps=steps, cap=[capa[:, c].tolist() for c in range(NC)],
        has=has, cost=cost,
        speed=np.array([i.speed for i in env.instances]),
        pue=np.array([i.pue for i in env.instances]),
        idle_w=np.array([i.idle_power_w for i in env.instances]),
        intensity=np.array([_intensity(i) for i in env.instances]),
        demand=demand, duration_s=np.array([t.duration_s for t in tasks], dtype=float),
        dem_pairs=pairs, dem_uniq=uniq, dem_row=dem_row, dag=workflow.dag,
    )
    _check_fits(prob, capa)
    return prob


def _intensity(inst) -> float:
    """An instance's constant intensity: its profile's mean where it has one (the
    optimal mode's weights; results integrate the profile itself), NaN where unknown."""
    if inst.intensity_profile is not None:
        return inst.intensity_profile.mean_g_per_kwh
    return np.nan if inst.intensity_g_per_kwh is None else inst.intensity_g_per_kwh


def _check_fits(prob: Problem, capa: np.ndarray) -> None:
    """Each distinct demand must fit some empty instance; else name task and component."""
    uniq = prob.dem_uniq
    shapes = np.unique(capa, axis=0)  # distinct capacity vectors: few in a real fleet
    ok = np.zeros(len(uniq), dtype=bool)
    need = uniq * (1 - _TOL) - _TOL
    for lo in range(0, len(uniq), 4096):
        ok[lo:lo + 4096] = np.all(shapes[None, :, :] >= need[lo:lo + 4096, None, :],
                                  axis=2).any(axis=1)
    for j in np.flatnonzero(~ok)[:1]:
        task = prob.tasks[int(np.argmax(prob.dem_row == j))]
        per_comp = [(COMPONENTS[c], d) for c, d in enumerate(uniq[j]) if d > 0]
        lacking = [f"{comp} (needs {d:g}, largest capacity {capa[:, COMPONENTS.index(comp)].max():g})"
                   for comp, d in per_comp if d > capa[:, COMPONENTS.index(comp)].max() * (1 + _TOL)]
        if lacking:
            what = "; ".join(lacking)
        else:
            what = ("no single instance has enough of every demanded component at once: "
                    + ", ".join(f"{comp}={d:g}" for comp, d in per_comp))
        raise UnschedulableError(f"task {task.name!r} fits no instance: {what}")


def run_schedule(prob: Problem, mode: str, assign: Sequence[int] | None = None,
                 allowed: np.ndarray | None = None, idle_aware: bool = False
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(instance, start_s, end_s) per workflow step, under the queueing rule above.

    ``mode`` is ``monitor``, ``optimize`` (optionally only over ``allowed`` instances, which
    must hold every task; ranked by task energy, or with ``idle_aware`` by the energy the
    choice adds, idle included) or ``assigned``
    (step *s* runs on ``assign[s]``).
    """
    free = [list(col) for col in prob.cap]
    cap = prob.cap
    chooser: Dynamic | Assigned
    fixed: Assigned | None = None  # the chooser when mode is "assigned"
    if mode == "optimize" and idle_aware and IdleAware.applies(prob, allowed):
        chooser = IdleAware(prob, free, allowed)
    elif mode in ("monitor", "optimize"):
        chooser = Dynamic(prob, free, mode == "optimize", allowed)
    else:
        if assign is None:
            raise TypeError("run_schedule: mode 'assigned' needs assign")
        chooser = fixed = Assigned(assign, free)
    placed = chooser.placed if isinstance(chooser, IdleAware) else None
    steps, pairs_of, dur = prob.steps, prob.dem_pairs, prob.duration_s.tolist()
    demand = prob.demand.tolist()
    speed = prob.speed.tolist()
    running = [0] * prob.n
    heap: list[tuple[float, int, int, int]] = []  # (end, step, instance, task)
    pop, push = heapq.heappop, heapq.heappush
    n_steps = len(steps)
    inst = [0] * n_steps
    start = [0.0] * n_steps
    end = [0.0] * n_steps
    changed, pick, among = chooser.changed, chooser.pick, chooser.among

    release = releaser(free, cap, running, demand, changed)

    def place(s: int, k: int, i: int, now: float) -> None:
        for c, d in enumerate(demand[k]):
            if d:
                free[c][i] -= d
        running[i] += 1
        e = now + dur[k] / speed[i]
        if placed is not None:
            placed(i, e)
        changed(i)
        push(heap, (e, s, i, k))
        inst[s], start[s], end[s] = i, now, e

    def unschedulable(k: int) -> UnschedulableError:  # every instance empty, still no fit
        return UnschedulableError(f"task {prob.tasks[k].name!r} fits no instance"
                                  f"{' assigned' if fixed is not None else ''}")

    now = 0.0
    if prob.dag is None:  # every step ready at 0: workflow order
        for s, k in enumerate(steps):
            pairs = pairs_of[k]
            if fixed is not None:
                fixed.step = s
            while heap and heap[0][0] <= now:
                _, _, i, kk = pop(heap)
                release(i, kk)
            i = pick(k, pairs, now)
            # Nothing fits at ``now``: only instances released later can change that, so
            # wait for the next completions and look at those instances only.
            while i < 0:
                if not heap:
                    raise unschedulable(k)
                now = heap[0][0]
                released = []
                while heap and heap[0][0] <= now:
                    _, _, i, kk = pop(heap)
                    release(i, kk)
                    released.append(i)
                i = among(k, pairs, released, now)
            place(s, k, i, now)
    else:
        _by_readiness(prob.dag, steps, pairs_of, fixed, heap, release, place, pick, among,
                      unschedulable)
    return np.array(inst, dtype=np.int64), np.array(start), np.array(end)


def _by_readiness(dag: Dag, steps: list[int], pairs_of: list, fixed: Assigned | None,
                  heap: list[tuple[float, int, int, int]], release: Callable, place: Callable,
                  pick: Callable, among: Callable, unschedulable: Callable) -> None:
    """The loop of :func:`run_schedule` with dependencies: the head of the ready steps (a
    heap of positions) is placed at ``now`` or blocks; completions make steps ready."""
    pop, push = heapq.heappop, heapq.heappush
    succ = dag.succ
    indeg = [len(ps) for ps in dag.preds]
    ready = [s for s, d in enumerate(indeg) if not d]  # sorted: already a heap
    now, blocked, left = 0.0, -1, len(steps)
    while left:
        released: list[int] = []
        while heap and heap[0][0] <= now:
            _, s, i, kk = pop(heap)
            release(i, kk)
            released.append(i)
            for t in succ[s]:
                indeg[t] -= 1
                if not indeg[t]:
                    push(ready, t)
        if not ready:  # the next completion makes some step ready (the DAG is acyclic)
            now = heap[0][0]
            continue
        s = ready[0]
        k = steps[s]
        pairs = pairs_of[k]
        if fixed is not None:
            fixed.step = s
        # After a failed choice only the instances released since can change it.
        i = among(k, pairs, released, now) if s == blocked else pick(k, pairs, now)
        if i < 0:
            if not heap:
                raise unschedulable(k)
            blocked, now = s, heap[0][0]
            continue
        blocked = -1
        pop(ready)
        place(s, k, i, now)
        left -= 1


def check_algorithm(mode: str, algorithm: object, idle_aware: object) -> str:
    """``algorithm`` validated: one of :data:`.heft.ALGORITHMS`; not greedy only with optimize."""
    from .heft import ALGORITHMS

    if not isinstance(idle_aware, bool):
        raise SimulationInputError(f"idle_aware: must be True or False, got {idle_aware!r}")
    if algorithm not in ALGORITHMS:
        raise SimulationInputError(
            f"algorithm: must be one of {', '.join(ALGORITHMS)}, got {short_repr(algorithm)}")
    if algorithm != "greedy" and mode != "optimize":
        raise SimulationInputError(f"algorithm: {algorithm!r} is an option of the 'optimize' "
                                   f"mode, not of {mode!r}")
    if algorithm != "greedy" and idle_aware:
        raise SimulationInputError(f"idle_aware: not with algorithm {algorithm!r}")
    return str(algorithm)


def schedule_for(prob: Problem, mode: str, algorithm: str = "greedy",
                 idle_aware: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(instance, start_s, end_s) per step for monitor/optimize and an algorithm."""
    if algorithm == "greedy":
        return run_schedule(prob, mode, idle_aware=idle_aware)
    from .heft import run_heft

    return run_heft(prob, energy_first=algorithm == "heft-energy")


def simulate(env: ComputeEnvironment, workflow: Workflow, mode: str, *,
             deadline_s: float | None = None, objective: str = "auto",
             idle_aware: bool = False, algorithm: str = "greedy",
             timing: Timing | None = None, time_limit_s: float | None = None
             ) -> SimulationResult:
    """Simulate ``workflow`` on ``env`` in ``mode`` (see the module docstring);
    ``idle_aware``: optimize ranks by the energy a choice adds, idle included;
    ``algorithm``: optimize's rule (:mod:`.heft`); ``timing``: hour, windows, shift
    (:mod:`.timing`); ``time_limit_s``: optimal's time (None: 10 s)."""
    check_mode(mode)
    if deadline_s is not None and mode != "optimal":
        raise SimulationInputError("deadline_s: only the 'optimal' mode takes a deadline")
    if time_limit_s is not None:
        if mode != "optimal":
            raise SimulationInputError("time_limit_s: only the 'optimal' mode takes a time limit")
        time_limit_s = _number(time_limit_s, "time_limit_s", strict=True)
    check_algorithm(mode, algorithm, idle_aware)
    prob = compile_problem(env, workflow)
    timing = timing if timing is not None else Timing.of(workflow)
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is named just below
        if mode == "optimal":
            from .optimal import TIME_LIMIT_S, solve

            result = solve(prob, deadline_s=deadline_s, objective=objective, timing=timing,
                           time_limit_s=TIME_LIMIT_S if time_limit_s is None else time_limit_s)
        else:
            inst, start, end = schedule_for(prob, mode, algorithm, idle_aware)
            result = SimulationResult.build(prob, mode, inst, start, end)
            timing.place(result, prob=prob)
        if algorithm != "greedy":
            result.info["algorithm"] = algorithm
        check_finite(prob, result)
    return result


def check_finite(prob: Problem, result: SimulationResult) -> None:
    """Raise :class:`SimulationInputError` naming what overflowed if a time, an energy or an
    emission of ``result`` is not finite (the field bounds of :func:`.model._number` keep
    validated inputs clear of it; this guards values set around them)."""
    def step(s: int) -> str:
        name = prob.env.instances[int(result.assignment[s])].name
        return f"task {prob.tasks[prob.steps[s]].name!r} on instance {name!r}"

    bad = np.flatnonzero(~np.isfinite(result.end_s))
    if bad.size:
        raise SimulationInputError(f"result is not finite: end time of {step(int(bad[0]))}: "
                                   "start + duration_s / speed overflows")
    bad_energy = ~np.isfinite(result.step_energy_j) & prob.has[result.assignment]
    if bad_energy.any():
        s, c = (int(v[0]) for v in np.nonzero(bad_energy))
        raise SimulationInputError(
            f"result is not finite: {COMPONENTS[c]} energy of {step(s)}: "
            "duration_s / speed × demand × cost × pue overflows")
    for name, idle in result.idle_energy_j.items():
        if not np.isfinite(idle):
            raise SimulationInputError(f"result is not finite: idle energy of instance "
                                       f"{name!r}: idle_power_w × pue × makespan overflows")
    if not np.isfinite(result.energy_j):
        raise SimulationInputError("result is not finite: total energy (the sum over steps "
                                   "and idle) overflows")
    emitted = result.instance_emissions_g
    bad = np.flatnonzero(result.used & np.isfinite(prob.intensity) & ~np.isfinite(emitted))
    if bad.size:
        raise SimulationInputError(
            f"result is not finite: emissions of instance {prob.env.instances[bad[0]].name!r}: "
            "energy × intensity_g_per_kwh overflows")
    if np.isfinite(prob.intensity[result.used]).all() and not np.isfinite(result.emissions_g):
        raise SimulationInputError("result is not finite: total emissions overflow")
