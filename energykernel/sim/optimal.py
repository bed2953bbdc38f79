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
* **Exact** (up to :data:`EXACT_MAX_STEPS` steps and :data:`EXACT_MAX_VARS` step×instance
  pairs): a branch and bound over the scheduler's own decisions (:mod:`.exact`), started
  from the best heuristic schedule; it stops when every assignment not searched is bounded
  by the best found (``info["proven_optimal"]``) or at ``time_limit_s`` (then the bound on
  what is left is ``info["lower_bound"]``, and ``info["gap"]`` the best's distance to it).
  When a short first search (:data:`FIRST_EXACT_S`) does not finish, a local search
  (:mod:`.local`: steps moved, instances emptied, kicks) spends :data:`LOCAL_SHARE` of the
  time left improving the best schedule, and the branch and bound starts again from it:
  a better schedule to beat prunes more, and the answer at the time limit is better.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from ..core.units import J_PER_KWH
from .dag import longest_chain_s
from .heft import run_heft
from .model import OBJECTIVES, SimulationInputError, UnschedulableError, _number
from .result import SimulationResult
from .schedule import Problem, run_schedule
from .timing import Timing

if TYPE_CHECKING:
    from .exact import BranchAndBound

TIME_LIMIT_S = 10.0  # the default time of a call (s)
EXACT_MAX_STEPS = 50
EXACT_MAX_VARS = 500
FIRST_EXACT_S, FIRST_EXACT_SHARE = 1.0, 0.1  # the first exact search: at most (s, share)
LOCAL_SHARE = 0.3  # of the time left then, for the local search
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
        self.exact_bound = 0.0  # the exact search's lower bound, where it ran

    def objective(self, r: SimulationResult, place: bool = True) -> float:
        """``r``'s objective; with profiles, at its greenest start (``place``) or as placed."""
        if self.varying:
            if place:
                self.timing.place(r, shift=True)
            return float(r.instance_emissions_g[r.used].sum())
        per_inst = r.instance_energy_j.sum(axis=1) + r._idle
        return float((per_inst * self.weight).sum())

    def fits(self, makespan_s: float) -> bool:
        """Whether a schedule of ``makespan_s`` meets the deadline and the workflow's window."""
        if self.deadline_s is not None and makespan_s > self.deadline_s * (1 + _REL):
            return False
        return self.timing.fits(makespan_s)

    def consider(self, label: str, inst: np.ndarray, start: np.ndarray, end: np.ndarray
                 ) -> float:
        self.evaluations += 1
        r = SimulationResult.build(self.prob, "optimal", inst, start, end)
        self.shortest = min(self.shortest, r.makespan_s)
        if not self.fits(r.makespan_s):
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
    """A bound no schedule beats: each step on its cheapest feasible instance, plus idle —
    at least the least idle rate (of an instance some step can use) over the shortest
    possible makespan (the longest chain at each step's fastest feasible runtime), and at
    least what the used instances idle while they provide the capacity-seconds the work
    needs (per component, each step's least demand × runtime): an LP over each instance's
    idle time z_i ≤ makespan (≤ the deadline), Σ_i capacity_ic z_i ≥ work_c. 0 if none is
    known."""
    steps = np.asarray(prob.steps)
    if not len(steps):
        return 0.0
    ks = np.arange(len(prob.tasks))
    ok = _feasible(prob, ks, deadline_s)
    rate = np.where(ok, _rates(prob, weight, prob.demand), np.inf)
    task_part = float((rate.min(axis=1) * prob.duration_s)[steps].sum())
    runtime = np.where(ok, prob.duration_s[:, None] / prob.speed[None, :], np.inf)  # (K, n)
    chain_s = longest_chain_s(runtime.min(axis=1)[steps].tolist(), prob.dag)
    idle = prob.idle_w * prob.pue * weight
    usable = ok.any(axis=0)
    least_idle = float(idle[usable].min()) if usable.any() else 0.0
    out = task_part + max(least_idle * chain_s,
                          _idle_for_work(prob, idle, runtime, deadline_s))
    return out if np.isfinite(out) else 0.0


def _idle_for_work(prob: Problem, idle: np.ndarray, runtime: np.ndarray,
                   deadline_s: float | None) -> float:
    """The LP of :func:`lower_bound`'s idle for the capacity the work needs (0 if it
    fails); ``runtime``: per distinct task and instance (s, inf where it cannot run)."""
    from scipy.optimize import linprog

    count = np.bincount(np.asarray(prob.steps), minlength=len(prob.tasks))
    cap = np.array(prob.cap).T  # (n, NC)
    work = np.zeros(cap.shape[1])
    for c in range(cap.shape[1]):
        d = prob.demand[:, c]
        if (d > 0).any():
            least = (d[d > 0, None] * runtime[d > 0]).min(axis=1)
            work[c] = float((least * count[d > 0]).sum())
    comps = np.flatnonzero(work > 0)
    if not len(comps) or not (idle > 0).any() or not np.isfinite(work).all():
        return 0.0
    res = linprog(idle, A_ub=-cap[:, comps].T, b_ub=-work[comps],
                  bounds=(0, deadline_s), method="highs")
    return float(res.fun) if res.status == 0 and np.isfinite(res.fun) else 0.0


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


def branch_and_bound(prob: Problem, search: _Search, weight: np.ndarray
                     ) -> BranchAndBound | None:
    """:mod:`.exact`'s search of ``prob`` from ``search``'s best schedule (None when some
    cost or runtime overflows)."""
    from .exact import BranchAndBound

    steps = np.asarray(prob.steps)
    cost = _rates(prob, weight, prob.demand[steps]) * prob.duration_s[steps][:, None]
    ok = _feasible(prob, steps, search.deadline_s)
    runtime = prob.duration_s[steps][:, None] / prob.speed[None, :]
    if not (np.isfinite(cost[ok]).all() and np.isfinite(runtime[ok]).all()):
        return None
    return BranchAndBound(prob, search, cost, runtime, ok, weight, search.deadline_s)


def _exact(prob: Problem, search: _Search, weight: np.ndarray, t_end: float
           ) -> tuple[bool, int]:
    """The branch and bound of :mod:`.exact` for a short while (most small problems end
    there); if it did not finish, the local search of :mod:`.local`, then the branch and
    bound again from the better schedule, until ``t_end``: (proven optimal, nodes
    searched); the bound on what was not searched is kept in ``search.exact_bound``."""
    from .local import LocalSearch

    first = branch_and_bound(prob, search, weight)
    if first is None:
        return False, 0  # overflowing costs: no exact search (the result check names them)

    def search_for(limit_s: float, bb: BranchAndBound) -> tuple[bool, int]:
        done = bb.run(limit_s)
        search.exact_bound = max(search.exact_bound, bb.bound)
        return done, bb.nodes

    left = max(0.0, t_end - time.perf_counter())
    done, nodes = search_for(min(FIRST_EXACT_S, FIRST_EXACT_SHARE * left), first)
    if done:
        return True, nodes
    idle_rate = prob.idle_w * prob.pue * weight
    LocalSearch(prob, search, first.cost, first.ok, idle_rate).run(
        time.perf_counter() + LOCAL_SHARE * left,
        target=-np.inf if search.varying else search.exact_bound)
    done, more = search_for(max(0.0, t_end - time.perf_counter()), first.again())
    return done, nodes + more


def solve(prob: Problem, *, deadline_s: float | None = None, objective: str = "auto",
          time_limit_s: float = TIME_LIMIT_S, exact: Callable[[Problem], bool] | None = None,
          timing: Timing | None = None) -> SimulationResult:
    """The optimal-mode result for ``prob`` (module docstring); the exact search stops
    ``time_limit_s`` after the call began."""
    t_start = time.perf_counter()
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
    # the bound reported when no proof comes, computed first so that its time counts
    bound0 = 0.0 if search.varying else lower_bound(prob, weight, deadline_s)
    S = len(prob.steps)
    small = S <= EXACT_MAX_STEPS and S * prob.n <= EXACT_MAX_VARS if exact is None else exact(prob)
    proven, nodes = False, 0
    if small and S:
        proven, nodes = _exact(prob, search, weight, t_start + time_limit_s)
    elif prob.n == 1 or not S or (deadline_s is None and not (prob.idle_w * weight).any()):
        proven = True  # separable objective: each task on its cheapest instance is optimal
    if search.best is None:
        shortest = f"{search.shortest:g} s" if np.isfinite(search.shortest) else "none"
        how = "no assignment meets it" if proven else "none found"
        raise UnschedulableError(
            f"deadline_s={deadline_s:g}: no schedule with makespan ≤ deadline ({how}; "
            f"shortest makespan found: {shortest})")
    obj, result, label = search.best
    if search.varying:  # the search's weights are the profiles' means: no proof of the integral
        proven = False
        if timing.shift == "tasks":  # then single steps wait for greener hours too
            timing.place(result, prob=prob)
            obj = search.objective(result, place=False)
    else:
        timing.place(result, prob=prob)
        bound = obj if proven else max(bound0, min(search.exact_bound, obj))
        result.info["lower_bound"] = bound
        result.info["gap"] = (obj - bound) / obj if obj > 0 else 0.0
    result.info.update({"objective": objective, "objective_value": obj,
                        "solver": "exact" if small else "heuristic", "proven_optimal": proven,
                        "best_candidate": label, "nodes": nodes,
                        "evaluations": search.evaluations})
    if deadline_s is not None:
        result.info["deadline_s"] = deadline_s
    return result
