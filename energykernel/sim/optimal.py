"""``optimal`` mode: the instance of every task chosen to minimise energy (or carbon).

The semantics leave one freedom — which instance each task runs on; for a given assignment
the schedule follows the same workflow-order rule as the other modes (a task waits for its
predecessors and its instance). The objective is task energy plus idle energy over the
makespan (× intensity for carbon), subject to ``makespan ≤ deadline_s`` when given.

* **Heuristic** (always run; the answer beyond :data:`EXACT_MAX_STEPS` steps or
  :data:`EXACT_MAX_VARS` step×instance pairs): evaluate by simulation ``optimize`` (and,
  with idle power, its ranking by task energy alone), ``monitor``, "each task on its
  cheapest instance" (exact when no instance has idle power and there is no deadline), and
  both rules restricted to the 1, 2, 4, … cheapest instances (fewer instances → less idle
  power, longer makespan); keep the best that meets the deadline. ``optimize`` is a
  candidate, so the result is never worse than it.
* **Exact** (small cases): a MILP (``scipy.optimize.milp``) over assignment variables whose
  makespan is a lower bound (longest task — with dependencies, the longest chain: a
  completion time per step, ``C_s ≥ C_p + runtime_s`` for each predecessor *p* — and per
  instance and component the work area over capacity) solved in a loop: each solution is
  simulated; an assignment that is not better (or misses the deadline) is excluded by a
  no-good cut; the loop stops when the MILP bound reaches the best simulated objective
  (proved optimal) or after :data:`MAX_CUTS` cuts / ``time_limit_s`` (then
  ``info["proven_optimal"]`` is False).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from ..core.units import J_PER_KWH
from .heft import run_heft
from .model import OBJECTIVES, SimulationInputError, UnschedulableError, _number
from .result import SimulationResult
from .schedule import Problem, run_schedule
from .timing import Timing

EXACT_MAX_STEPS = 50
EXACT_MAX_VARS = 500
MAX_CUTS = 300
_REL = 1e-9


def _weights(prob: Problem, objective: str) -> tuple[str, np.ndarray]:
    if objective not in OBJECTIVES:
        raise SimulationInputError(
            f"objective: must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    known = np.isfinite(prob.intensity)
    if objective == "auto":
        objective = "carbon" if known.all() else "energy"
    if objective == "energy":
        return objective, np.ones(prob.n)
    if not known.all():
        missing = [prob.env.instances[i].name for i in np.flatnonzero(~known)]
        raise SimulationInputError(
            f"objective 'carbon': instances without intensity_g_per_kwh: {', '.join(missing)}")
    return objective, prob.intensity / J_PER_KWH


class _Search:
    """Evaluates assignments by simulation and keeps the best that meets the deadline.

    With hourly profiles and the carbon objective, each schedule is placed at its greenest
    start in the workflow's window (:mod:`.timing`) and scored by its integrated carbon.
    """

    def __init__(self, prob: Problem, weight: np.ndarray, deadline_s: float | None,
                 timing: Timing | None = None, carbon: bool = False) -> None:
        self.prob, self.weight, self.deadline_s = prob, weight, deadline_s
        self.timing = timing or Timing()
        self.varying = carbon and any(i.intensity_profile is not None for i in prob.env)
        self.best: tuple[float, SimulationResult, str] | None = None
        self.shortest = np.inf
        self.evaluations = 0
        self.milp_bound = 0.0  # the exact loop's lower bound, where it ran

    def objective(self, r: SimulationResult) -> float:
        if self.varying:
            self.timing.place(r, shift=True)
            return float(r.instance_emissions_g[r.used].sum())
        per_inst = r.instance_energy_j.sum(axis=1) + r._idle
        return float((per_inst * self.weight).sum())

    def consider(self, label: str, inst: np.ndarray, start: np.ndarray, end: np.ndarray
                 ) -> float:
        self.evaluations += 1
        r = SimulationResult.build(self.prob, "optimal", inst, start, end)
        self.shortest = min(self.shortest, r.makespan_s)
        if self.deadline_s is not None and r.makespan_s > self.deadline_s * (1 + _REL):
            return np.inf
        if not self.timing.fits(r.makespan_s):
            return np.inf
        obj = self.objective(r)
        if not obj < np.inf:  # overflowed (inf or NaN): worse than any finite schedule
            obj = np.inf
        if self.best is None or obj < self.best[0] * (1 - 1e-12):
            self.best = (obj, r, label)
        return obj

    def assigned(self, label: str, assign: np.ndarray) -> float:
        return self.consider(label, *run_schedule(self.prob, "assigned", assign.tolist()))


def _rates(prob: Problem, weight: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Objective per second-at-speed-1 of demand ``rows`` (k × components) on every instance."""
    per_unit = prob.cost * (prob.pue * weight / prob.speed)[:, None]  # (n, NC)
    with np.errstate(over="ignore", invalid="ignore"):
        rates = rows @ per_unit.T
    return np.where(np.isnan(rates), np.inf, rates)  # 0 × an overflowed rate: never cheap


def _feasible(prob: Problem, tasks: np.ndarray, deadline_s: float | None) -> np.ndarray:
    """(len(tasks) × n) bool: distinct task fits the empty instance (and its deadline)."""
    cap = np.array(prob.cap).T  # (n, NC)
    dem = prob.demand[tasks]
    ok = (cap[None, :, :] >= dem[:, None, :] * (1 - _REL) - _REL).all(axis=2)
    if deadline_s is not None:
        ok &= prob.duration_s[tasks][:, None] / prob.speed[None, :] <= deadline_s * (1 + _REL)
    return ok


def _cheapest(prob: Problem, weight: np.ndarray, deadline_s: float | None,
              allowed: np.ndarray) -> np.ndarray:
    """Per distinct task, its cheapest statically feasible allowed instance (-1 if none)."""
    k_all = np.arange(len(prob.tasks))
    best = np.empty(len(k_all), dtype=np.int64)
    for lo in range(0, len(k_all), 512):
        ks = k_all[lo:lo + 512]
        rate = _rates(prob, weight, prob.demand[ks])
        ok = _feasible(prob, ks, deadline_s) & allowed[None, :]
        rate = np.where(ok, rate, np.inf)
        best[lo:lo + 512] = np.where(ok.any(axis=1), rate.argmin(axis=1), -1)
    return best


def lower_bound(prob: Problem, weight: np.ndarray, deadline_s: float | None = None) -> float:
    """A bound no schedule beats: each step on its cheapest feasible instance, plus the
    least idle rate (of an instance some step can use) over the shortest possible makespan
    (the longest chain at each step's fastest feasible runtime). 0 if none is known."""
    steps = np.asarray(prob.steps)
    if not len(steps):
        return 0.0
    ks = np.arange(len(prob.tasks))
    ok = _feasible(prob, ks, deadline_s)
    rate = np.where(ok, _rates(prob, weight, prob.demand), np.inf)
    task_part = float((rate.min(axis=1) * prob.duration_s)[steps].sum())
    runtime = np.where(ok, prob.duration_s[:, None] / prob.speed[None, :], np.inf).min(axis=1)
    fin = runtime[steps].tolist()
    if prob.dag is not None:
        preds = prob.dag.preds
        for s in prob.dag.order:
            if preds[s]:
                fin[s] += max(fin[p] for p in preds[s])
    idle = prob.idle_w * prob.pue * weight
    usable = ok.any(axis=0)
    least_idle = float(idle[usable].min()) if usable.any() else 0.0
    out = task_part + least_idle * max(fin)
    return out if np.isfinite(out) else 0.0


def _heuristic(prob: Problem, search: _Search, weight: np.ndarray) -> None:
    deadline_s = search.deadline_s
    for mode in ("optimize", "monitor"):
        search.consider(mode, *run_schedule(prob, mode))
    for algorithm in ("heft", "heft-energy"):
        search.consider(f"optimize ({algorithm})", *run_heft(prob, algorithm == "heft-energy"))
    if (prob.idle_w > 0).any():
        search.consider("optimize counting idle power",
                        *run_schedule(prob, "optimize", idle_aware=True))
    steps = np.asarray(prob.steps)
    everywhere = np.ones(prob.n, dtype=bool)
    cheapest = _cheapest(prob, weight, deadline_s, everywhere)
    if (cheapest >= 0).all():
        search.assigned("cheapest instance per task", cheapest[steps])
    # Fleets of 1, 2, 4, ... instances, ranked by the cost of the workflow's whole work.
    work = (prob.demand * prob.duration_s[:, None])[steps].sum(axis=0)
    rank = np.argsort(_rates(prob, weight, work[None, :])[0] + prob.idle_w * prob.pue * weight,
                      kind="stable")
    size = 1
    while size < prob.n:
        allowed = np.zeros(prob.n, dtype=bool)
        allowed[rank[:size]] = True
        sub = _cheapest(prob, weight, deadline_s, allowed)
        for k in np.flatnonzero(sub < 0):  # add each stranded task's own cheapest instance
            if cheapest[k] >= 0:
                allowed[cheapest[k]] = True
        sub = _cheapest(prob, weight, deadline_s, allowed)
        if (sub >= 0).all():
            search.assigned(f"cheapest of {allowed.sum()} instances", sub[steps])
            search.consider(f"optimize on {allowed.sum()} instances",
                            *run_schedule(prob, "optimize", allowed=allowed))
        size *= 2


def _milp(prob: Problem, search: _Search, weight: np.ndarray, time_limit_s: float
          ) -> tuple[bool, int]:
    """The exact loop (module docstring). Returns (proven optimal, cuts added); the last
    MILP's dual bound (a lower bound on every assignment not yet simulated) is kept in
    ``search.milp_bound``."""
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import coo_matrix, vstack

    steps = np.asarray(prob.steps)
    S, n = len(steps), prob.n
    deadline_s = search.deadline_s
    ok = _feasible(prob, steps, deadline_s)  # (S, n)
    runtime = prob.duration_s[steps][:, None] / prob.speed[None, :]
    cost = _rates(prob, weight, prob.demand[steps]) * prob.duration_s[steps][:, None]
    big_m = deadline_s if deadline_s is not None else float(
        np.where(ok, runtime, 0).max(axis=1).sum())
    nx = S * n
    ix_y, ix_m, ix_z = nx, nx + n, nx + n + 1
    preds = None if prob.dag is None else prob.dag.preds
    ix_c = nx + 2 * n + 1  # with dependencies: a completion time per step
    nv = ix_c + (S if preds is not None else 0)
    c = np.zeros(nv)
    c[:nx] = np.where(ok, cost, 0).ravel()
    c[ix_z:ix_z + n] = prob.idle_w * prob.pue * weight
    if not (np.isfinite(c).all() and np.isfinite(big_m)):
        return False, 0  # overflowing costs: no exact model (the result check names them)
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    lo: list[float] = []
    hi: list[float] = []

    def add(r_cols, r_vals, lb, ub):
        r = len(lo)
        rows.extend([r] * len(r_cols))
        cols.extend(r_cols)
        vals.extend(r_vals)
        lo.append(lb)
        hi.append(ub)

    xs = np.arange(nx).reshape(S, n)
    for s in range(S):
        add(xs[s].tolist(), [1.0] * n, 1.0, 1.0)  # one instance per step
        r_s = runtime[s].tolist()
        if preds is None:
            add([*xs[s].tolist(), ix_m], [*r_s, -1.0], -np.inf, 0.0)  # M ≥ runtime
        else:  # completion times: C_s ≥ C_p + runtime for each predecessor p; M ≥ C_s
            neg = [-v for v in r_s]
            if not preds[s]:
                add([*xs[s].tolist(), ix_c + s], [*neg, 1.0], 0.0, np.inf)  # C_s ≥ runtime
            for p in preds[s]:
                add([*xs[s].tolist(), ix_c + s, ix_c + p], [*neg, 1.0, -1.0], 0.0, np.inf)
            add([ix_m, ix_c + s], [1.0, -1.0], 0.0, np.inf)
        for i in range(n):
            add([xs[s, i], ix_y + i], [1.0, -1.0], -np.inf, 0.0)  # x ≤ y
    cap = np.array(prob.cap).T
    for i in range(n):
        for comp in range(cap.shape[1]):
            area = runtime[:, i] * prob.demand[steps, comp]
            if cap[i, comp] > 0 and area.any():  # M ≥ work area / capacity
                add([*xs[:, i].tolist(), ix_m], [*(area / cap[i, comp]).tolist(), -1.0],
                    -np.inf, 0.0)
        add([ix_z + i, ix_m, ix_y + i], [1.0, -1.0, -big_m], -big_m, np.inf)  # z ≥ M if used
    base = coo_matrix((vals, (rows, cols)), shape=(len(lo), nv)).tocsr()
    ub = np.concatenate([ok.ravel().astype(float), np.ones(n), [big_m], np.full(n, np.inf),
                         np.full(nv - ix_c, big_m)])
    bounds = Bounds(np.zeros(nv), ub)
    integrality = np.concatenate([np.ones(nx + n), np.zeros(nv - nx - n)])
    cuts: list[np.ndarray] = []
    t_end = time.perf_counter() + time_limit_s
    while len(cuts) <= MAX_CUTS:
        left = t_end - time.perf_counter()
        if left <= 0:
            return False, len(cuts)
        a = base
        if cuts:
            a = vstack([base, coo_matrix((np.ones(S * len(cuts)), (
                np.repeat(np.arange(len(cuts)), S), np.concatenate(cuts))),
                shape=(len(cuts), nv))]).tocsr()
        con = LinearConstraint(a, np.concatenate([lo, np.full(len(cuts), -np.inf)]),
                               np.concatenate([hi, np.full(len(cuts), S - 1.0)]))
        res = milp(c, constraints=con, integrality=integrality, bounds=bounds,
                   options={"time_limit": left, "mip_rel_gap": 1e-9, "disp": False})
        if res.status == 2:  # no assignment left: the best found is optimal (or none exists)
            return True, len(cuts)
        if res.status != 0 or res.x is None:
            dual = getattr(res, "mip_dual_bound", None)
            if dual is not None and np.isfinite(dual):
                search.milp_bound = max(search.milp_bound, float(dual))
            return False, len(cuts)
        bound = getattr(res, "mip_dual_bound", None)
        bound = res.fun if bound is None or not np.isfinite(bound) else bound
        search.milp_bound = max(search.milp_bound, float(bound))
        if search.best is not None and bound >= search.best[0] - 1e-9 * max(1.0, abs(bound)):
            return True, len(cuts)
        assign = res.x[:nx].reshape(S, n).argmax(axis=1)
        search.assigned("milp", assign)
        cuts.append(xs[np.arange(S), assign])
    return False, len(cuts)


def solve(prob: Problem, *, deadline_s: float | None = None, objective: str = "auto",
          time_limit_s: float = 10.0, exact: Callable[[Problem], bool] | None = None,
          timing: Timing | None = None) -> SimulationResult:
    """The optimal-mode result for ``prob`` (module docstring)."""
    if deadline_s is not None:
        # a bound, never multiplied: any finite value (makespans may pass MAX_VALUE)
        deadline_s = _number(deadline_s, "deadline_s", strict=True, maximum=math.inf)
    timing = timing or Timing()
    if timing.deadline_s is not None:  # the workflow's window bounds the makespan too
        room = timing.deadline_s - timing.start_after_s
        deadline_s = room if deadline_s is None else min(deadline_s, room)
    objective, weight = _weights(prob, objective)
    search = _Search(prob, weight, deadline_s, timing, carbon=objective == "carbon")
    _heuristic(prob, search, weight)
    S = len(prob.steps)
    small = S <= EXACT_MAX_STEPS and S * prob.n <= EXACT_MAX_VARS if exact is None else exact(prob)
    proven, cuts = False, 0
    if small and S:
        proven, cuts = _milp(prob, search, weight, time_limit_s)
    elif prob.n == 1 or not S or (deadline_s is None and not (prob.idle_w * weight).any()):
        proven = True  # separable objective: each task on its cheapest instance is optimal
    if search.best is None:
        shortest = f"{search.shortest:g} s" if np.isfinite(search.shortest) else "none"
        how = "no assignment meets it" if proven else "none found"
        raise UnschedulableError(
            f"deadline_s={deadline_s:g}: no schedule with makespan ≤ deadline ({how}; "
            f"shortest makespan found: {shortest})")
    obj, result, label = search.best
    if search.varying:  # the MILP's weights are the profiles' means: no proof of the integral
        proven = False
    else:
        timing.place(result)
        bound = obj if proven else max(lower_bound(prob, weight, deadline_s),
                                       min(search.milp_bound, obj))
        result.info["lower_bound"] = bound
        result.info["gap"] = (obj - bound) / obj if obj > 0 else 0.0
    result.info.update({"objective": objective, "objective_value": obj,
                        "solver": "milp" if small else "heuristic", "proven_optimal": proven,
                        "best_candidate": label, "milp_cuts": cuts,
                        "evaluations": search.evaluations})
    if deadline_s is not None:
        result.info["deadline_s"] = deadline_s
    return result
