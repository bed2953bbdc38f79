"""``optimal``'s exact search: branch and bound over the scheduler's own decisions.

For a given assignment the schedule is the queueing rule of :mod:`.schedule`, and a step's
instance matters from the moment the step heads the ready steps. The search replays that
rule and branches there, over the instances the step may use; so each leaf is a schedule
the rule produces, and every partial schedule is exact as far as it goes: its task cost,
its clock ``now`` (no later step starts before it) and its end times.

With idle power every step is coupled to every other through the makespan. The search
therefore splits the assignments by the set *U* of idle-drawing instances they use, and
searches each *U* alone, best bound first, stopping at the first *U* whose bound reaches the
best schedule found: inside *U* the idle rate is known from the start (idle(*U*) ×
makespan), which makes the bound tight from the root. A node's bound
(:mod:`.branch`, which searches one set) is the cost so far + each unplaced step's cheapest
cost in *U* + idle(*U*) × the longest path of steps, a step on the path priced at its extra
cost + idle rate × runtime; the makespan is also bounded by the ends so far and, per
component and per instance, by the work left over the capacity, and, for steps without
dependencies, by the pooled queue of :mod:`.inorder` (the waits behind a step that does
not fit yet), where a node that another dominates is also cut. Before a set is searched
its root is bounded again with the capacity prices of its LP relaxation (:mod:`.relax`: a
step's cost on an instance then carries the capacity it takes there, and the makespan is
charged the idle rate the prices leave), the set goes back in line at that bound, and its
search uses the prices at every node. Options that alone lift
the bound to the best found, or leave no room before the deadline for the chain after
them, are dropped; a node that can no longer use every instance of *U* is cut. A set
holding an instance that an instance outside it dominates (same capacities, speed and idle
rate, no dearer per unit) is skipped, and identical twins are first used in index order.
Beyond :data:`MAX_SETS` sets, one search over all instances with the idle rate of the
instances used so far (a weaker bound).
"""

from __future__ import annotations

import heapq
import math
import time
from itertools import combinations
from typing import TYPE_CHECKING

import numpy as np

from .branch import Timeout, search_set
from .dag import longest_chain_s
from .inorder import pooled_span, queue_slack
from .relax import capacity_prices, within_rate

if TYPE_CHECKING:
    from .optimal import _Search
    from .schedule import Problem

MAX_SETS = 4096  # sets of idle-drawing instances searched one by one (2^12)
_EPS = 1e-9


def score(cost: np.ndarray, idle_rate: np.ndarray, assign: np.ndarray,
          makespan_s: float) -> float:
    """An assignment's objective in the searches' terms: its task cost (``cost``: steps ×
    instances) + the idle rate of the instances it uses × ``makespan_s``."""
    used = np.zeros(len(idle_rate), dtype=bool)
    used[assign] = True
    return (float(cost[np.arange(len(assign)), assign].sum())
            + float(idle_rate[used].sum()) * makespan_s)


class BranchAndBound:
    """One exact search (module docstring); :meth:`run` says whether it finished."""

    def __init__(self, prob: Problem, search: _Search, cost: np.ndarray, runtime: np.ndarray,
                 ok: np.ndarray, weight: np.ndarray, deadline_s: float | None) -> None:
        self.prob, self.search = prob, search
        S, n = ok.shape
        self.S, self.n = S, n
        self.ok = ok
        self.cost = np.where(ok, cost, np.inf)
        self.runtime = np.where(ok, runtime, np.inf)
        self.weight = weight
        self.idle_rate = prob.idle_w * prob.pue * weight
        self.dom, self.twin = self._dominance()
        self.deadline = math.inf if deadline_s is None else deadline_s * (1 + _EPS)
        steps = prob.steps
        self.kind = list(steps)
        self.pairs = [prob.dem_pairs[k] for k in steps]
        self.demand = prob.demand.tolist()
        # per kind and per step its demanded components and amounts
        self.dem_of_kind = [[(c, d) for c, d in enumerate(row) if d] for row in self.demand]
        self.dem_of = [self.dem_of_kind[k] for k in self.kind]
        dag = prob.dag
        self.preds: list[tuple[int, ...]] = [()] * S if dag is None else dag.preds
        self.succ: list[list[int]] = [[] for _ in range(S)] if dag is None else dag.succ
        self.order = list(range(S)) if dag is None else dag.order
        self.cap = prob.cap
        self.nodes = 0
        self.dominated = 0  # nodes another dominated (:mod:`.inorder`)
        self.price_cache: dict[tuple[int, ...], np.ndarray | None] = {}  # per set
        self.last_prices: np.ndarray | None = None  # of the set last priced by its LP
        self.bound = 0.0  # a lower bound on every assignment not yet searched
        self.root_bound = 0.0  # the bound at the root of the set being searched
        self.incumbent = self._score_best()

    def again(self) -> BranchAndBound:
        """A fresh search of the same problem from the best schedule found so far (the
        sets' prices kept)."""
        bb = BranchAndBound(self.prob, self.search, self.cost, self.runtime, self.ok,
                            self.weight, self.search.deadline_s)
        bb.price_cache = self.price_cache
        return bb

    def limit(self) -> float:
        """What a schedule must beat to count: the best's objective, less a rounding margin."""
        inc = self.incumbent
        return inc if inc == math.inf else inc - _EPS * abs(inc)

    def _score_best(self) -> float:
        """The best candidate's objective in this search's own terms (task cost + idle)."""
        best = self.search.best
        if best is None:
            return math.inf
        return score(self.cost, self.idle_rate, best[1].assignment, best[1].makespan_s)

    def _dominance(self) -> tuple[np.ndarray, list[int]]:
        """``dom[a, b]``: instance *a* can replace *b* in any schedule at no more cost — same
        capacities, speed and idle rate, a rate per unit no higher in every component (ties:
        the lower index); and per instance the index of its previous identical twin (-1)."""
        prob, n = self.prob, self.n
        rate = prob.cost * (prob.pue * self.weight)[:, None]  # objective W per unit in use
        cap = np.array(prob.cap).T
        dom = np.zeros((n, n), dtype=bool)
        twin = [-1] * n
        groups: dict[tuple, list[int]] = {}
        for i in range(n):
            key = (tuple(cap[i]), tuple(prob.has[i]), prob.speed[i], self.idle_rate[i])
            groups.setdefault(key, []).append(i)
        for members in groups.values():
            if len(members) < 2:
                continue
            g = np.asarray(members)
            r = rate[g]  # (k, NC)
            no_dearer = (r[:, None, :] <= r[None, :, :]).all(axis=2)  # [a, b]: a ≤ b
            same = (r[:, None, :] == r[None, :, :]).all(axis=2)
            lower = g[:, None] < g[None, :]
            dom[np.ix_(g, g)] = no_dearer & (~same | lower)
            for jb, b in enumerate(members):
                earlier = [a for ja, a in enumerate(members) if a < b and same[ja, jb]]
                twin[b] = earlier[-1] if earlier else -1
        return dom, twin

    def _sets(self) -> list[tuple[float, np.ndarray, np.ndarray | None]]:
        """(root bound, allowed instances, required instances or None), best bound first;
        a set holding an instance that one outside it dominates is left out (swapping the
        two gives the same schedule at no more cost)."""
        drawing = np.flatnonzero(self.idle_rate > 0)
        free = np.flatnonzero(self.idle_rate <= 0)
        if len(drawing) == 0 or 2 ** len(drawing) > MAX_SETS:
            allowed = np.ones(self.n, dtype=bool)
            return [(self._root_bound(allowed, None), allowed, None)]
        out: list[tuple[float, np.ndarray, np.ndarray | None]] = []
        for size in range(len(drawing) + 1):
            for u in combinations(drawing.tolist(), size):
                inside = np.zeros(self.n, dtype=bool)
                inside[list(u)] = True
                if (self.dom[np.ix_(~inside, inside)]).any():
                    continue
                allowed = np.zeros(self.n, dtype=bool)
                allowed[free] = True
                allowed[list(u)] = True
                required = np.asarray(u, dtype=np.int64)
                if len(required) > self.S:
                    continue
                b = self._root_bound(allowed, required)
                if b < math.inf:
                    out.append((b, allowed, required))
        out.sort(key=lambda t: t[0])
        return out

    def _root_bound(self, allowed: np.ndarray, required: np.ndarray | None) -> float:
        cost = np.where(allowed[None, :], self.cost, np.inf)
        minc = cost.min(axis=1)
        if not np.isfinite(minc).all():
            return math.inf
        minrt = np.where(allowed[None, :], self.runtime, np.inf).min(axis=1)
        span = longest_chain_s(minrt.tolist(), self.prob.dag)
        area, capsum = self._areas(allowed)
        with np.errstate(divide="ignore", invalid="ignore"):
            per = np.where(capsum > 0, area.sum(axis=0) / capsum, 0.0)
        span = max(span, float(per.max()) if len(per) else 0.0, self.queue_makespan(allowed))
        if span > self.deadline:
            return math.inf
        idle = float(self.idle_rate[required].sum()) if required is not None else 0.0
        return float(minc.sum()) + idle * span

    def _areas(self, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per step and component the least capacity-seconds it takes in ``allowed``; per
        component the capacity of ``allowed``."""
        dem = self.prob.demand[self.kind]  # (S, NC)
        rt = np.where(allowed[None, :], self.runtime, np.inf)  # (S, n)
        with np.errstate(invalid="ignore"):  # inf × 0: a component the step does not use
            area = np.where(dem > 0, (rt[:, :, None] * dem[:, None, :]).min(axis=1), 0.0)
        return area, self.capacity(allowed)

    def capacity(self, allowed: np.ndarray) -> np.ndarray:
        """Per component the capacity of the ``allowed`` instances together."""
        return (np.array(self.cap).T * allowed[:, None]).sum(axis=0)

    def queue_makespan(self, allowed: np.ndarray) -> float:
        """A lower bound on the makespan of every schedule on ``allowed`` (steps without
        dependencies: the queueing rule on the set pooled, :func:`.inorder.pooled_span`;
        0 with dependencies)."""
        if self.prob.dag is not None:
            return 0.0
        capsum = self.capacity(allowed).tolist()
        minrt = np.where(allowed[None, :], self.runtime, np.inf).min(axis=1).tolist()
        return pooled_span(self, capsum, queue_slack(self, capsum), [], 0.0, 0.0, 0, minrt)

    def prices(self, allowed: np.ndarray, required: np.ndarray) -> np.ndarray | None:
        """The capacity prices (:mod:`.relax`) of the set that uses exactly ``required``
        of the idle-drawing instances and no instance outside ``allowed``."""
        return capacity_prices(self, allowed, float(self.idle_rate[required].sum()),
                               self.queue_makespan(allowed))

    def _borrowed_bound(self, allowed: np.ndarray, required: np.ndarray) -> float:
        """The set's root bound with the prices of the set last priced (any prices ≥ 0
        give a valid bound: theirs on the instances of this set, scaled to its idle
        rate), which spares most sets their own LP; -inf when there are none yet."""
        if self.last_prices is None:
            return -math.inf
        prices = within_rate(self.last_prices, allowed, np.array(self.cap),
                             float(self.idle_rate[required].sum()))
        search_set(self, allowed, required, prices, root_only=True)
        return self.root_bound

    def set_root_bound(self, allowed: np.ndarray, required: np.ndarray,
                       prices: np.ndarray | None = None) -> float:
        """The bound at the root of one set's search (with ``prices``: the priced one),
        as if no schedule had been found (the search caps it at the best found)."""
        best, self.incumbent = self.incumbent, math.inf
        self.root_bound, self.t_end = math.inf, math.inf
        try:
            search_set(self, allowed, required, prices, root_only=True)
        finally:
            self.incumbent = min(best, self.incumbent)
        return self.root_bound

    def run(self, time_limit_s: float) -> bool:
        """Search until done (True: the best schedule is optimal) or ``time_limit_s``.

        The sets are taken best bound first; a set's first bound is the plain root bound,
        and before it is searched its root is bounded again with its capacity prices
        (:mod:`.relax`) and the set goes back in line at that bound (most sets end there)."""
        self.t_end = time.perf_counter() + time_limit_s
        sets = self._sets()
        line = [(b, j, False) for j, (b, _a, _r) in enumerate(sets)]
        heapq.heapify(line)
        cache = self.price_cache
        while line and line[0][0] < self.limit():
            b, j, priced = heapq.heappop(line)
            _b, allowed, required = sets[j]
            self.root_bound = b
            try:
                key = () if required is None else tuple(required.tolist())
                if not priced and required is not None:
                    if key not in cache and self._borrowed_bound(allowed, required) >= self.limit():
                        continue  # another set's prices already bound it past the best
                    if key not in cache:
                        cache[key] = self.prices(allowed, required)
                        if cache[key] is not None:
                            self.last_prices = cache[key]
                    if cache[key] is not None:
                        search_set(self, allowed, required, cache[key], root_only=True)
                        heapq.heappush(line, (max(b, self.root_bound), j, True))
                        continue
                search_set(self, allowed, required, cache.get(key))
            except Timeout:
                # what is left: this set below its root, and the sets not yet searched
                later = line[0][0] if line else math.inf
                self.bound = min(self.incumbent, max(b, self.root_bound), later)
                return False
            if time.perf_counter() > self.t_end and line and line[0][0] < self.limit():
                self.bound = min(self.incumbent, line[0][0])
                return False
        self.bound = self.incumbent
        return True
