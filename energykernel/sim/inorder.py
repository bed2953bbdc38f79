"""What the queueing rule's order tells :mod:`.branch`'s search when steps have no
dependencies.

Then every step is ready from the start and the rule starts them in index order: step
*j* starts at the first moment, no earlier than step *j* − 1's start, when its instance
has room. Two facts follow, each true for every assignment of the steps not yet placed:

* **Pooled queue** (:func:`pooled_span`): the same rule on one pooled instance — per
  component the capacity of the set's instances together, each step at its fastest
  runtime — starts every step no later than any real schedule does (by induction: what
  runs at a time in the pooled queue is a subset of what runs then in the real one, and a
  step that fits on its instance fits in the pool). Its makespan therefore bounds the
  real makespan, including the waits behind a step that does not fit yet, which bounds
  built on work over capacity do not see.
* **Dominance** (:class:`NodeMemo`): two partial schedules with the same next step, the
  same instances in use and the same running steps (instance, kind) face the same steps
  ahead; if one has no later clock, no later ends and no higher cost than the other, the
  same continuation does at least as well from it (by the same induction), so the other
  need not be searched.
"""

from __future__ import annotations

import heapq
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .exact import BranchAndBound

MEMO_ENTRIES = 16  # partial schedules kept per key
MEMO_KEYS = 200_000  # keys kept before the memo starts again (memory)


def queue_slack(bb: BranchAndBound, capsum: list[float]) -> list[float]:
    """Per component the rounding a pooled queue allows: every step's fit tolerance
    (:data:`.schedule._TOL`) on every instance at once, twice over."""
    return [2e-9 * (bb.S + 1) * max(1.0, v) for v in capsum]


def pooled_span(bb: BranchAndBound, capsum: list[float], slack: list[float],
                running: list[tuple[float, int]], now: float, maxend: float, head: int,
                runtime_s: list[float]) -> float:
    """The makespan of the queueing rule on one pooled instance (per component the
    capacity ``capsum`` of a set's instances together): steps ``head`` … last in index
    order, each for ``runtime_s``, from ``now`` with the ``running`` steps (end, kind)
    and ``maxend`` the latest end so far (module docstring; inf: a step never fits)."""
    dem_of, dem_of_kind, kind = bb.dem_of, bb.dem_of_kind, bb.kind
    free = capsum[:]
    for _e, k in running:
        for c, d in dem_of_kind[k]:
            free[c] -= d
    q = list(running)
    heapq.heapify(q)
    t, span = now, maxend
    for j in range(head, bb.S):
        need = dem_of[j]
        while True:
            for c, d in need:
                if free[c] < d - slack[c]:
                    break
            else:
                break
            if not q:
                return math.inf
            e, k = heapq.heappop(q)
            if e > t:
                t = e
            for c, d in dem_of_kind[k]:
                free[c] += d
        for c, d in need:
            free[c] -= d
        e = t + runtime_s[j]
        heapq.heappush(q, (e, kind[j]))
        if e > span:
            span = e
    return span


class NodeMemo:
    """The partial schedules met so far, per (next step, instances in use, running steps);
    :meth:`beaten` says whether one met earlier dominates a new one (module docstring)."""

    def __init__(self) -> None:
        self.seen: dict[tuple, list[tuple[float, float, float, tuple[float, ...]]]] = {}
        self.beaten_count = 0

    def beaten(self, head: int, used: tuple[int, ...], jobs: list[tuple[int, int, float]],
               now: float, cost: float, maxend: float) -> bool:
        """Whether a partial schedule met earlier dominates this one: next step ``head``,
        instances in use ``used``, running ``jobs`` (instance, kind, end), clock ``now``,
        ``cost`` so far and latest end ``maxend``; if not, it is kept."""
        jobs.sort()
        key = (head, used, tuple((i, k) for i, k, _e in jobs))
        ends = tuple(e for _i, _k, e in jobs)
        entries = self.seen.get(key)
        if entries is None:
            if len(self.seen) >= MEMO_KEYS:
                self.seen.clear()
            entries = self.seen[key] = []
        for now0, cost0, maxend0, ends0 in entries:
            if now0 <= now and cost0 <= cost and maxend0 <= maxend and all(
                    a <= b for a, b in zip(ends0, ends, strict=True)):
                self.beaten_count += 1
                return True
        if len(entries) < MEMO_ENTRIES:
            entries.append((now, cost, maxend, ends))
        return False
