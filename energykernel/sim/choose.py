"""Which instance a task goes to: the choice rules of ``monitor``, ``optimize`` and fixed
assignments, over an index of free capacity kept by :func:`.schedule.run_schedule`.

* ``monitor``: a max-segment-tree over the instances in given order, per demand direction;
  the first instance that can hold the task is one pruned descent, ``O(log n)``.
* ``optimize``: the same tree over the instances sorted by the energy the task would use
  there (``runtime × Σ demand_c × cost_c × pue``, ties by given order); with idle power,
  plus the idle energy the choice adds (:class:`.idle.IdleAware`). The order depends only
  on the *direction* of the demand vector, so one tree per distinct direction is kept and
  synced lazily; beyond :data:`MAX_ORDERS` directions a vectorised scan is used.
* fixed assignment (``optimal``): only the assigned instance is checked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..core.units import COMPONENTS

if TYPE_CHECKING:
    from .schedule import Problem

NC = len(COMPONENTS)
MAX_ORDERS = 64
TOL = 1e-9
_INF = float("inf")

Pairs = tuple[tuple[int, float], ...]


def releaser(free: list[list[float]], cap: list[list[float]], running: list[int],
             demand: list[list[float]], changed: Callable[[int], None]
             ) -> Callable[[int, int], None]:
    """``release(i, k)``: a task of kind ``k`` ended on instance ``i`` — give its demand back
    (the instance's exact capacities once nothing runs on it, so no float drift) and tell
    the chooser (``changed``). One rule for every scheduler's event loop."""

    def release(i: int, k: int) -> None:
        running[i] -= 1
        if running[i] == 0:
            for c in range(NC):
                free[c][i] = cap[c][i]
        else:
            for c, d in enumerate(demand[k]):
                if d:
                    free[c][i] += d
        changed(i)

    return release


def energy_rate(prob: Problem, direction: np.ndarray) -> np.ndarray:
    """W per unit of task duration (at speed 1) on every instance, for demand ``direction``."""
    return (prob.cost * direction[None, :]).sum(axis=1) * prob.pue / prob.speed


class ScoreTree:
    """Max-tree over instances in a fixed order (``perm``) for one demand direction ``u``.

    A leaf holds ``min_c free_c / u_c``: a task of demand ``λ·u`` fits there iff the score
    is ≥ λ, so the first fitting instance is one root-to-leaf descent (no backtracking).
    Leaves are refreshed lazily from ``dirty`` before a query. With a ``member`` list, an
    instance whose entry is False scores -1 (never found).
    """

    __slots__ = ("dirty", "free", "member", "mx", "perm", "pos", "size", "u")

    def __init__(self, perm: Sequence[int], free: list[list[float]],
                 u: list[tuple[int, float]], member: list[bool] | None = None) -> None:
        size = 1
        while size < max(1, len(perm)):
            size *= 2
        self.size, self.perm, self.free, self.u = size, list(perm), free, u
        self.member = member
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
        if self.member is not None and not self.member[i]:
            return -1.0
        free = self.free
        best = _INF
        for c, uc in self.u:
            v = free[c][i] / uc
            if v < best:
                best = v
        return best

    def sync(self) -> None:
        arr, pos, size, free, u, member = (self.mx, self.pos, self.size, self.free, self.u,
                                           self.member)
        for i in self.dirty:
            score = _INF
            if member is not None and not member[i]:
                score = -1.0
            else:
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
        """The first instance in ``perm`` order with score ≥ ``lam``; -1 if none (one
        descent, inline: the hot path of ``monitor`` and ``optimize``)."""
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

    def first_pos(self, lam: float) -> int:
        """The first *position* in ``perm`` with score ≥ ``lam``; -1 if none."""
        i = self.first(lam)
        return -1 if i < 0 else self.pos[i]

    def first_from(self, lam: float, p: int) -> int:
        """The first *position* ≥ ``p`` in ``perm`` with score ≥ ``lam``; -1 if none."""
        if self.dirty:
            self.sync()
        mx, size = self.mx, self.size
        if p >= size:
            return -1
        node = size + p
        if mx[node] >= lam:
            return p
        while node > 1:
            if not node & 1 and mx[node + 1] >= lam:  # the right sibling holds one
                node += 1
                while node < size:
                    node <<= 1
                    if mx[node] < lam:
                        node += 1
                return node - size
            node >>= 1
        return -1


def fits(free: list[list[float]], i: int, pairs: Pairs) -> bool:
    for c, d in pairs:  # noqa: SIM110 - hot path, a loop beats all() here
        if free[c][i] < d:
            return False
    return True


class Dynamic:
    """``monitor`` (order = given) or ``optimize`` (order = cost of the choice).

    One :class:`ScoreTree` per distinct demand direction, over the instances that have every
    demanded component (and are ``allowed``); beyond :data:`MAX_ORDERS` directions, a
    vectorised scan of all instances per query instead.
    """

    #: Per instance, whether the trees may find it (None: all; see :class:`.idle.IdleAware`).
    in_use: list[bool] | None = None

    def __init__(self, prob: Problem, free: list[list[float]], by_cost: bool,
                 allowed: np.ndarray | None = None, fastest: bool = False) -> None:
        self.prob, self.free, self.by_cost = prob, free, by_cost or fastest
        self.fastest = fastest  # HEFT's earliest finish: fastest first, then by cost
        self.speed = prob.speed.tolist()
        self.allowed = np.ones(prob.n, dtype=bool) if allowed is None else allowed
        w_rows = prob.cost * (prob.pue / prob.speed)[:, None]  # (n, NC) W per unit at speed 1
        self.w_rows = w_rows
        self.w = w_rows.tolist()
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
        self.lam = (lam * (1 - TOL) - TOL * 1e-3).tolist()
        self.trees: dict[int, ScoreTree] = {}
        self.usable: dict[int, np.ndarray] = {}
        self.member: list[list[set[int]]] = [[] for _ in range(prob.n)]  # dirty sets per instance
        self.scan = len(uniq) > MAX_ORDERS
        if self.scan:  # component-major arrays: one contiguous row per component
            self.free_arr = np.array(free, dtype=float)
            self.w_arr = w_rows.T.copy()

    # -- the choice ------------------------------------------------------------------------
    def _tree(self, j: int) -> ScoreTree:
        tree = self.trees.get(j)
        if tree is None:
            d = self.dirs[j]
            need = d > 0
            usable = self.prob.has[:, need].all(axis=1) & self.allowed
            self.usable[j] = usable
            if self.fastest:
                order = np.lexsort((np.arange(self.prob.n), energy_rate(self.prob, d),
                                    -self.prob.speed))
            elif self.by_cost:
                order = np.lexsort((np.arange(self.prob.n), energy_rate(self.prob, d)))
            else:
                order = np.arange(self.prob.n)
            u = [(c, float(d[c])) for c in range(NC) if d[c] > 0]
            tree = self.trees[j] = ScoreTree([int(i) for i in order if usable[i]], self.free, u,
                                             self.in_use)
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

    def pick(self, k: int, pairs: Pairs, now: float) -> int:
        if not self.scan:
            return self._tree(self.dir_of_task[k]).first(self.lam[k])
        ok = self._fits_now(pairs)
        if not self.by_cost:
            i = int(np.argmax(ok))
            return i if ok[i] else -1
        if self.fastest:  # the fastest that fits, then the cheapest of those
            ok &= self.prob.speed >= np.where(ok, self.prob.speed, -np.inf).max()
        rate = np.where(ok, self.prob.demand[k] @ self.w_arr, np.inf)
        i = int(np.argmin(rate))
        return i if ok[i] else -1

    def _fits_now(self, pairs: Pairs) -> np.ndarray:
        ok = self.allowed.copy()
        for c, d in pairs:
            ok &= self.free_arr[c] >= d
        return ok

    def among(self, k: int, pairs: Pairs, candidates: list[int], now: float) -> int:
        """The choice among just-released ``candidates`` (nothing else changed)."""
        allowed = self.allowed
        fit = [i for i in candidates if fits(self.free, i, pairs) and allowed[i]]
        if not fit:
            return -1
        if not self.by_cost:
            return min(fit)
        if self.fastest:
            speed = self.speed
            return min(fit, key=lambda i: (-speed[i], self.cost(k, i, now), i))
        return min(fit, key=lambda i: (self.cost(k, i, now), i))

    def cost(self, k: int, i: int, now: float) -> float:
        """What ``optimize`` ranks by: here, task ``k``'s energy rate on ``i``."""
        w = self.w[i]
        return sum(d * w[c] for c, d in enumerate(self.prob.demand[k]) if d)


class Assigned:
    """Step *s* runs on ``assign[s]`` (``step`` is set by the scheduler before each choice)."""

    def __init__(self, assign: Sequence[int], free: list[list[float]]) -> None:
        self.assign, self.free, self.step = list(assign), free, 0

    def changed(self, i: int) -> None:
        pass

    def pick(self, k: int, pairs: Pairs, now: float) -> int:
        i = self.assign[self.step]
        return i if fits(self.free, i, pairs) else -1

    def among(self, k: int, pairs: Pairs, candidates: list[int], now: float) -> int:
        i = self.assign[self.step]
        return i if i in candidates and fits(self.free, i, pairs) else -1
