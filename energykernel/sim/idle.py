"""``optimize`` with idle power: the instance whose choice adds the least energy.

Idle power is charged for the makespan on every instance that ran a task, so a choice
costs more than the task's own energy when it puts a task on an instance not used yet, or
makes the schedule longer. :class:`IdleAware` ranks by that added energy; without idle
power anywhere the ranking is the task energy alone (:class:`.choose.Dynamic`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .choose import Dynamic, Pairs, ScoreTree, energy_rate

if TYPE_CHECKING:
    from .schedule import Problem

_INF = float("inf")


class IdleAware(Dynamic):
    """``optimize`` counting idle power. The cost of putting task *k* (runtime ``r`` on
    instance *i*) there at time ``now``, when the tasks placed so far end by ``T`` (the
    makespan so far) on the used instances ``U``, is the energy the choice adds to the
    schedule so far::

        task energy of k on i  +  Σ_{j∈U} idle_j·pue_j × max(0, now + r − T)  (makespan added)
                               +  [i ∉ U] idle_i·pue_i × max(T, now + r)      (i starts idling)

    so an instance not used yet pays its idle power over the whole makespan it joins (at
    least the run time it is on), and a task ending after ``T`` pays the makespan it adds on
    every used instance (instances without idle power count as used from the start). Ties
    go to the given order. Greedy: it never waits for a cheaper instance and does not
    foresee later tasks (it may avoid a big idle instance that later tasks open anyway).

    Used instances are searched in task-energy order on the trees of :class:`.Dynamic`
    (stopping once no later one can be cheaper), unused ones by a vectorised scan that is
    skipped when even the least idle and task energy cannot beat the best so far.
    """

    @staticmethod
    def applies(prob: Problem, allowed: np.ndarray | None) -> bool:
        """Whether some (allowed) instance has idle power."""
        idle = prob.idle_w * prob.pue > 0
        return bool((idle if allowed is None else idle & allowed).any())

    def __init__(self, prob: Problem, free: list[list[float]],
                 allowed: np.ndarray | None = None) -> None:
        super().__init__(prob, free, True, allowed)
        idle_w = prob.idle_w * prob.pue
        self.p, self.p_arr = idle_w.tolist(), idle_w
        # Instances without idle power cost nothing to open: they count as used from the start.
        self.in_use: list[bool] = (idle_w <= 0).tolist()
        self.in_use_arr = idle_w <= 0
        self.opened = [False] * prob.n
        self.idle_rate_w = 0.0  # Σ idle × pue over the instances that ran a task
        self.makespan_s = 0.0
        self.dur = prob.duration_s.tolist()
        self.inv_speed = (1 / prob.speed).tolist()
        self.inv_speed_arr = 1 / prob.speed
        self.inv_fastest = float(1 / prob.speed[self.allowed].max())
        self.inv_slowest = float(1 / prob.speed[self.allowed].min())
        self.p_new = np.where(self.in_use_arr, 0.0, idle_w)  # idle × pue of the unused
        self.cap_arr = np.array(prob.cap)  # (NC, n)
        self.dem_row = prob.dem_row.tolist()
        self.dem_list = [[(c, v) for c, v in enumerate(row) if v] for row in prob.dem_uniq.tolist()]
        self.version = 0  # bumped whenever an instance with idle power is first used
        self.least_idle_w = self._least_idle()
        self.least_rate: dict[int, float] = {}  # direction → least W per unit of it
        self._unused: dict[int, tuple[int, np.ndarray]] = {}

    def placed(self, i: int, end_s: float) -> None:
        """Called when a task is put on ``i`` (before :meth:`changed`), ending at ``end_s``."""
        if end_s > self.makespan_s:
            self.makespan_s = end_s
        if not self.opened[i]:
            self.opened[i] = True
            self.idle_rate_w += self.p[i]
            if not self.in_use[i]:
                self.in_use[i] = True
                self.in_use_arr[i] = True
                self.p_new[i] = 0.0
                self.version += 1
                self.least_idle_w = self._least_idle()

    def _least_idle(self) -> float:
        """The smallest idle × pue among allowed instances not used yet (inf if none)."""
        left = self.p_arr[self.allowed & ~self.in_use_arr]
        return float(left.min()) if left.size else _INF

    def _tree(self, j: int) -> ScoreTree:
        tree = super()._tree(j)
        rates = energy_rate(self.prob, self.dirs[j])[self.usable[j]]
        self.least_rate[j] = float(rates.min()) if rates.size else _INF
        return tree

    def _unused_of(self, j: int) -> np.ndarray:
        """Allowed instances of direction ``j`` that have idle power and ran no task yet."""
        got = self._unused.get(j)
        if got is None or got[0] != self.version:
            got = (self.version, np.flatnonzero(self.usable[j] & ~self.in_use_arr))
            self._unused[j] = got
        return got[1]

    def _extension(self, d: float, i: int, now: float) -> float:
        ext = now + d * self.inv_speed[i] - self.makespan_s
        return ext if ext > 0 else 0.0

    def pick(self, k: int, pairs: Pairs, now: float) -> int:
        return self._pick_scan(k, pairs, now) if self.scan else self._pick_tree(k, pairs, now)

    def _pick_tree(self, k: int, pairs: Pairs, now: float) -> int:
        """Least cost (class docstring): used instances in task-energy order from the tree,
        stopping once no later one can be cheaper; unused ones by a vectorised scan, skipped
        when even the least idle and energy could not beat the best so far."""
        j = self.dir_of_task[k]
        tree = self.trees.get(j) or self._tree(j)
        lam, d, w, inv_speed = self.lam[k], self.dur[k], self.w, self.inv_speed
        dem = self.dem_list[self.dem_row[k]]
        rate_u, makespan = self.idle_rate_w, self.makespan_s
        ext_min = now + d * self.inv_fastest - makespan
        ext_min = ext_min if ext_min > 0 else 0.0
        best, best_i = _INF, -1
        perm = tree.perm
        pos = tree.first_pos(lam)
        while pos >= 0:
            i = perm[pos]
            wi = w[i]
            energy = 0.0
            for c, v in dem:
                energy += v * wi[c]
            energy *= d
            if energy + rate_u * ext_min >= best:
                break
            ext = now + d * inv_speed[i] - makespan
            cost = energy + rate_u * ext if ext > 0 else energy
            if cost < best:
                best, best_i = cost, i
            if ext <= ext_min or not rate_u:  # nothing later in the order can cost less
                break
            pos = tree.first_from(lam, pos + 1)
        least_idle = self.least_idle_w
        if least_idle < _INF and d * lam * self.least_rate[j] + least_idle * makespan < best:
            best_i = self._pick_unused(k, j, pairs, now, best, best_i)
        return best_i

    def _pick_unused(self, k: int, j: int, pairs: Pairs, now: float, best: float,
                     best_i: int) -> int:
        idx = self._unused_of(j)
        if not idx.size:
            return best_i
        ok = np.ones(idx.size, dtype=bool)
        for c, v in pairs:  # an unused instance is empty: it holds the task iff it is big enough
            ok &= self.cap_arr[c, idx] >= v
        idx = idx[ok]
        if not idx.size:
            return best_i
        d, makespan = self.dur[k], self.makespan_s
        ext = np.maximum(d * self.inv_speed_arr[idx] + (now - makespan), 0.0)
        p = self.p_arr[idx]
        cost = (d * (self.w_rows[idx] @ self.prob.demand[k]) + (self.idle_rate_w + p) * ext
                + p * makespan)
        m = int(np.argmin(cost))
        if cost[m] < best or (cost[m] == best and idx[m] < best_i):
            return int(idx[m])
        return best_i

    def _pick_scan(self, k: int, pairs: Pairs, now: float) -> int:
        """Least cost over all instances at once (beyond ``MAX_ORDERS`` directions)."""
        ok = self._fits_now(pairs)
        d, makespan = self.dur[k], self.makespan_s
        cost = (self.prob.demand[k] @ self.w_arr) * d
        if now + d * self.inv_slowest > makespan:  # some choice makes the schedule longer
            ext = np.maximum(d * self.inv_speed_arr + (now - makespan), 0.0)
            cost += (self.idle_rate_w + self.p_new) * ext
        if makespan:
            cost += self.p_new * makespan
        i = int(np.argmin(np.where(ok, cost, np.inf)))
        return i if ok[i] else -1

    def cost(self, k: int, i: int, now: float) -> float:
        """The cost (class docstring) on ``i``, an instance in use."""
        w, d = self.w[i], self.dur[k]
        energy = d * sum(v * w[c] for c, v in self.dem_list[self.dem_row[k]])
        return energy + self.idle_rate_w * self._extension(d, i, now)
