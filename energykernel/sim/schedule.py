"""The event-driven scheduler behind ``monitor``, ``optimize`` and fixed assignments.

Queueing rule ("tasks start in workflow order"): task *k* starts at the earliest
time ``now ≥ start(k-1)`` at which some instance can hold it; a task that must wait blocks
every later task (starts are non-decreasing, no overtaking). Because no task can start
before ``now``, free capacity from ``now`` on only grows, so the whole simulation is one
heap of completion events plus, per choice, a query of an index of free capacity:

* ``monitor``: a max-segment-tree over the instances in given order, per component; the
  first instance that can hold the task is found by a pruned descent, ``O(log n)`` usually.
* ``optimize``: the same tree over the instances sorted by the energy the task would use
  there (``runtime × Σ demand_c × cost_c × pue``, ties by given order). The order depends
  only on the *direction* of the demand vector, so one tree per distinct direction is kept
  and synced lazily; beyond :data:`MAX_ORDERS` directions a vectorised scan is used.
* fixed assignment (``optimal``): only the assigned instance is checked.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..core.units import COMPONENTS
from .model import (
    ComputeEnvironment,
    SimulationInputError,
    UnschedulableError,
    Workflow,
    check_mode,
)
from .result import SimulationResult

NC = len(COMPONENTS)
MAX_ORDERS = 64
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
        intensity=np.array([np.nan if i.intensity_g_per_kwh is None else i.intensity_g_per_kwh
                            for i in env.instances]),
        demand=demand, duration_s=np.array([t.duration_s for t in tasks], dtype=float),
        dem_pairs=pairs, dem_uniq=uniq, dem_row=dem_row,
    )
    _check_fits(prob, capa)
    return prob


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


def energy_rate(prob: Problem, direction: np.ndarray) -> np.ndarray:
    """W per unit of task duration (at speed 1) on every instance, for demand ``direction``."""
    return (prob.cost * direction[None, :]).sum(axis=1) * prob.pue / prob.speed


class _ScoreTree:
    """Max-tree over instances in a fixed order (``perm``) for one demand direction ``u``.

    A leaf holds ``min_c free_c / u_c``: a task of demand ``λ·u`` fits there iff the score
    is ≥ λ, so the first fitting instance is one root-to-leaf descent (no backtracking).
    Leaves are refreshed lazily from ``dirty`` before a query.
    """

    __slots__ = ("dirty", "free", "mx", "perm", "pos", "size", "u")

    def __init__(self, perm: Sequence[int], free: list[list[float]],
                 u: list[tuple[int, float]]) -> None:
        size = 1
        while size < max(1, len(perm)):
            size *= 2
        self.size, self.perm, self.free, self.u = size, list(perm), free, u
        self.pos = {i: p for p, i in enumerate(self.perm)}
        arr = [-1.0] * (2 * size)
        for p, i in enumerate(self.perm):
            arr[size + p] = self.score(i)
        for node in range(size - 1, 0, -1):
            a, b = arr[2 * node], arr[2 * node + 1]
            arr[node] = a if a > b else b
        self.mx = arr
        self.dirty: set[int] = set()

    def score(self, i: int) -> float:
        free = self.free
        best = float("inf")
        for c, uc in self.u:
            v = free[c][i] / uc
            if v < best:
                best = v
        return best

    def sync(self) -> None:
        arr, pos, size, free, u = self.mx, self.pos, self.size, self.free, self.u
        inf = float("inf")
        for i in self.dirty:
            score = inf
            for c, uc in u:
                v = free[c][i] / uc
                if v < score:
                    score = v
            node = size + pos[i]
            if arr[node] == score:
                continue
            arr[node] = score
            node >>= 1
            while node:
                a, b = arr[2 * node], arr[2 * node + 1]
                m = a if a > b else b
                if arr[node] == m:
                    break
                arr[node] = m
                node >>= 1
        self.dirty.clear()

    def first(self, lam: float) -> int:
        """The first instance in ``perm`` order with score ≥ ``lam``; -1 if none."""
        if self.dirty:
            self.sync()
        mx, size = self.mx, self.size
        if mx[1] < lam:
            return -1
        node = 1
        while node < size:
            node <<= 1
            if mx[node] < lam:
                node += 1
        return self.perm[node - size]


def _fits(free: list[list[float]], i: int, pairs) -> bool:
    for c, d in pairs:  # noqa: SIM110 - hot path, a loop beats all() here
        if free[c][i] < d:
            return False
    return True


class _Dynamic:
    """``monitor`` (order = given) or ``optimize`` (order = energy the task would use).

    One :class:`_ScoreTree` per distinct demand direction, over the instances that have every
    demanded component (and are ``allowed``); beyond :data:`MAX_ORDERS` directions, a
    vectorised scan of all instances per query instead.
    """

    def __init__(self, prob: Problem, free: list[list[float]], by_cost: bool,
                 allowed: np.ndarray | None = None) -> None:
        self.prob, self.free, self.by_cost = prob, free, by_cost
        self.allowed = np.ones(prob.n, dtype=bool) if allowed is None else allowed
        self.w = (prob.cost * (prob.pue / prob.speed)[:, None]).tolist()
        dem = prob.demand
        du = prob.dem_uniq
        dirs = du / np.maximum(du.max(axis=1, keepdims=True), 1e-300)
        uniq, inverse = np.unique(np.round(dirs, 12), axis=0, return_inverse=True)
        inverse = np.asarray(inverse).ravel()[prob.dem_row]
        self.dirs = uniq
        self.dir_of_task = inverse.tolist()
        # λ per task: the smallest scale of its direction that covers its demand.
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(uniq[inverse] > 0, dem / uniq[inverse], 0.0)
        lam = ratio.max(axis=1)
        self.lam = (lam * (1 - _TOL) - _TOL * 1e-3).tolist()
        self.trees: dict[int, _ScoreTree] = {}
        self.member: list[list[set[int]]] = [[] for _ in range(prob.n)]  # dirty sets per instance
        self.scan = len(uniq) > MAX_ORDERS
        if self.scan:  # component-major arrays: one contiguous row per component
            self.free_arr = np.array(free, dtype=float)
            self.w_arr = (prob.cost * (prob.pue / prob.speed)[:, None]).T.copy()

    def _tree(self, j: int) -> _ScoreTree:
        tree = self.trees.get(j)
        if tree is None:
            d = self.dirs[j]
            need = d > 0
            usable = self.prob.has[:, need].all(axis=1) & self.allowed
            if self.by_cost:
                order = np.lexsort((np.arange(self.prob.n), energy_rate(self.prob, d)))
            else:
                order = np.arange(self.prob.n)
            u = [(c, float(d[c])) for c in range(NC) if d[c] > 0]
            tree = self.trees[j] = _ScoreTree([int(i) for i in order if usable[i]], self.free, u)
            for i in tree.perm:
                self.member[i].append(tree.dirty)
        return tree

    def changed(self, i: int) -> None:
        if self.scan:
            for c in range(NC):
                self.free_arr[c, i] = self.free[c][i]
        else:
            for dirty in self.member[i]:
                dirty.add(i)

    def pick(self, k: int, pairs) -> int:
        if not self.scan:
            return self._tree(self.dir_of_task[k]).first(self.lam[k])
        fits = self.allowed.copy()
        for c, d in pairs:
            fits &= self.free_arr[c] >= d
        if not self.by_cost:
            i = int(np.argmax(fits))
            return i if fits[i] else -1
        rate = np.where(fits, self.prob.demand[k] @ self.w_arr, np.inf)
        i = int(np.argmin(rate))
        return i if fits[i] else -1

    def among(self, k: int, pairs, candidates: list[int]) -> int:
        """The choice among just-released ``candidates`` (nothing else changed)."""
        allowed = self.allowed
        fit = [i for i in candidates if _fits(self.free, i, pairs) and allowed[i]]
        if not fit:
            return -1
        if not self.by_cost:
            return min(fit)
        dem, w = self.prob.demand[k], self.w
        return min(fit, key=lambda i: (sum(d * w[i][c] for c, d in enumerate(dem) if d), i))


class _Assigned:
    def __init__(self, assign: Sequence[int], free: list[list[float]]) -> None:
        self.assign, self.free, self.step = list(assign), free, 0

    def changed(self, i: int) -> None:
        pass

    def pick(self, k: int, pairs) -> int:
        i = self.assign[self.step]
        return i if _fits(self.free, i, pairs) else -1

    def among(self, k: int, pairs, candidates: list[int]) -> int:
        i = self.assign[self.step]
        return i if i in candidates and _fits(self.free, i, pairs) else -1


def run_schedule(prob: Problem, mode: str, assign: Sequence[int] | None = None,
                 allowed: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(instance, start_s, end_s) per workflow step, under the queueing rule above.

    ``mode`` is ``monitor``, ``optimize`` (optionally only over ``allowed`` instances, which
    must hold every task) or ``assigned`` (step *s* runs on ``assign[s]``).
    """
    free = [list(col) for col in prob.cap]
    cap = prob.cap
    chooser: _Dynamic | _Assigned
    fixed: _Assigned | None = None  # the chooser when mode is "assigned"
    if mode in ("monitor", "optimize"):
        chooser = _Dynamic(prob, free, mode == "optimize", allowed)
    else:
        if assign is None:
            raise TypeError("run_schedule: mode 'assigned' needs assign")
        chooser = fixed = _Assigned(assign, free)
    steps, pairs_of, dur = prob.steps, prob.dem_pairs, prob.duration_s.tolist()
    demand = prob.demand.tolist()
    speed = prob.speed.tolist()
    running = [0] * prob.n
    heap: list[tuple[float, int, int, int]] = []
    pop, push = heapq.heappop, heapq.heappush
    n_steps = len(steps)
    inst = [0] * n_steps
    start = [0.0] * n_steps
    end = [0.0] * n_steps
    now = 0.0
    changed, pick, among = chooser.changed, chooser.pick, chooser.among
    assigned = fixed is not None

    def release(i: int, kk: int) -> None:
        running[i] -= 1
        if running[i] == 0:  # idle again: exact capacities, no float drift
            for c in range(NC):
                free[c][i] = cap[c][i]
        else:
            for c, d in enumerate(demand[kk]):
                if d:
                    free[c][i] += d
        changed(i)

    for s, k in enumerate(steps):
        pairs = pairs_of[k]
        if fixed is not None:
            fixed.step = s
        while heap and heap[0][0] <= now:
            _, _, i, kk = pop(heap)
            release(i, kk)
        i = pick(k, pairs)
        # Nothing fits at ``now``: only instances released later can change that, so wait
        # for the next completions and look at those instances only (no full rescan).
        while i < 0:
            if not heap:  # every instance empty and still no fit (checked at compile)
                raise UnschedulableError(
                    f"task {prob.tasks[k].name!r} fits no instance{' assigned' if assigned else ''}")
            now = heap[0][0]
            released = []
            while heap and heap[0][0] <= now:
                _, _, i, kk = pop(heap)
                release(i, kk)
                released.append(i)
            i = among(k, pairs, released)
        for c, d in enumerate(demand[k]):
            if d:
                free[c][i] -= d
        running[i] += 1
        changed(i)
        e = now + dur[k] / speed[i]
        push(heap, (e, s, i, k))
        inst[s], start[s], end[s] = i, now, e
    return np.array(inst, dtype=np.int64), np.array(start), np.array(end)


def simulate(env: ComputeEnvironment, workflow: Workflow, mode: str, *,
             deadline_s: float | None = None, objective: str = "auto") -> SimulationResult:
    """Simulate ``workflow`` on ``env`` in ``mode`` (see the module docstring)."""
    check_mode(mode)
    if deadline_s is not None and mode != "optimal":
        raise SimulationInputError("deadline_s: only the 'optimal' mode takes a deadline")
    prob = compile_problem(env, workflow)
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is named just below
        if mode == "optimal":
            from .optimal import solve

            result = solve(prob, deadline_s=deadline_s, objective=objective)
        else:
            inst, start, end = run_schedule(prob, mode)
            result = SimulationResult.build(prob, mode, inst, start, end)
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
