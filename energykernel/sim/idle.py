"""``optimize`` with idle power: the instance whose choice adds the least energy.

Idle power is charged for the makespan on every instance that ran a task, so a choice
costs more than the task's own energy when it puts a task on an instance not used yet, or
makes the schedule longer. :class:`IdleAware` ranks by that added energy; without idle
power anywhere the ranking is the task energy alone (:class:`.choose.Dynamic`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .choose import Dynamic, Pairs

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
        self.cap_arr = np.array(prob.cap)  # (NC, n)
        self.dem_row = prob.dem_row.tolist()
        self.dem_list = [[(c, v) for c, v in enumerate(row) if v] for row in prob.dem_uniq.tolist()]
        self.version = 0  # bumped whenever an instance with idle power is first used
        self._least_idle: tuple[int, float] = (-1, 0.0)
        self._unused: dict[int, tuple[int, np.ndarray]] = {}
        self._least_rate: dict[int, float] = {}

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
                self.version += 1

    def _least_idle_w(self) -> float:
        """The smallest idle × pue among allowed instances not used yet (inf if none)."""
        version, value = self._least_idle
        if version != self.version:
            left = self.p_arr[self.allowed & ~self.in_use_arr]
            value = float(left.min()) if left.size else _INF
            self._least_idle = (self.version, value)
        return value

    def _least_rate_j(self, k: int, j: int) -> float:
        """The smallest task energy per second (at speed 1) of task ``k`` on any instance
        of its direction ``j``."""
        row = self.dem_row[k]
        value = self._least_rate.get(row)
        if value is None:
            rates = (self.w_rows @ self.prob.dem_uniq[row])[self.usable[j]]
            value = float(rates.min()) if rates.size else _INF
            self._least_rate[row] = value
        return value

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
        tree, lam = self._tree(j), self.lam[k]
        d, w = self.dur[k], self.w
        dem = self.dem_list[self.dem_row[k]]
        rate_u = self.idle_rate_w
        ext_min = now + d * self.inv_fastest - self.makespan_s
        ext_min = ext_min if ext_min > 0 else 0.0
        best, best_i = _INF, -1
        perm = tree.perm
        pos = tree.first_from(lam, 0)
        while pos >= 0:
            i = perm[pos]
            wi = w[i]
            energy = 0.0
            for c, v in dem:
                energy += v * wi[c]
            energy *= d
            if energy + rate_u * ext_min >= best:
                break
            ext = self._extension(d, i, now)
            cost = energy + rate_u * ext
            if cost < best:
                best, best_i = cost, i
            if ext <= ext_min or not rate_u:  # nothing later in the order can cost less
                break
            pos = tree.first_from(lam, pos + 1)
        least_idle = self._least_idle_w()
        if least_idle < _INF and d * self._least_rate_j(k, j) + least_idle * self.makespan_s < best:
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
        cost = self._idle_costs(k, idx, now, opened=False)
        m = int(np.argmin(cost))
        if cost[m] < best or (cost[m] == best and idx[m] < best_i):
            return int(idx[m])
        return best_i

    def _idle_costs(self, k: int, idx: np.ndarray, now: float, opened: bool | np.ndarray
                    ) -> np.ndarray:
        """Cost (class docstring) of task ``k`` on instances ``idx`` (``opened``: used)."""
        d = self.dur[k]
        energy = d * (self.w_rows[idx] @ self.prob.demand[k])
        ext = np.maximum(now + d * self.inv_speed_arr[idx] - self.makespan_s, 0.0)
        cost = energy + self.idle_rate_w * ext
        p = np.where(opened, 0.0, self.p_arr[idx])
        return cost + p * (self.makespan_s + ext)

    def _pick_scan(self, k: int, pairs: Pairs, now: float) -> int:
        idx = np.flatnonzero(self._fits_now(pairs))
        if not idx.size:
            return -1
        cost = self._idle_costs(k, idx, now, opened=self.in_use_arr[idx])
        return int(idx[int(np.argmin(cost))])

    def cost(self, k: int, i: int, now: float) -> float:
        """The cost (class docstring) on ``i``, an instance in use."""
        w, d = self.w[i], self.dur[k]
        energy = d * sum(v * w[c] for c, v in self.dem_list[self.dem_row[k]])
        return energy + self.idle_rate_w * self._extension(d, i, now)
