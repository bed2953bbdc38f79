"""``optimize`` with ``algorithm="heft"`` or ``"heft-energy"``: a list scheduler of the HEFT
family (Topcuoglu et al., 2002) for instances that hold several tasks at once.

* **Priority** — the upward rank: a step's mean runtime (``duration_s`` over the mean speed
  of the instances that have every component it demands) plus the largest rank of the
  steps that wait for it, so the critical path goes first; ties by workflow order (a
  topological order, so a step never precedes its predecessors). Without dependencies it
  is the longest task first.
* **Choice** — at each moment, the ready steps are tried in rank order on the instances
  that can hold them now (:class:`.choose.Dynamic`): ``heft`` takes the earliest finish
  time (the fastest instance, then the cheapest of those), ``heft-energy`` the lowest task
  energy. A step that fits nowhere now does not block the lower-ranked ones (backfilling:
  up to :data:`MAX_TRIES` failed demand shapes per moment; steps of one demand shape fail
  together, so each shape is tried once per moment).

This departs from DESIGN §5's "tasks start in workflow order", which is why it is an
option of ``optimize`` (``env.run(wf, "optimize", algorithm="heft")``), not its default;
``optimal`` evaluates both as candidates.
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING

import numpy as np

from .choose import Dynamic, releaser
from .model import UnschedulableError

if TYPE_CHECKING:
    from .schedule import Problem

ALGORITHMS: tuple[str, ...] = ("greedy", "heft", "heft-energy")
MAX_TRIES = 64


def upward_rank(prob: Problem) -> np.ndarray:
    """Per workflow step: mean runtime + the largest upward rank of its successors (s)."""
    has = prob.has
    inv = 1.0 / prob.speed
    pattern_cache: dict[tuple[bool, ...], float] = {}
    mean_inv = np.empty(len(prob.tasks))
    needs = prob.demand > 0
    for k in range(len(prob.tasks)):
        key = tuple(needs[k].tolist())
        v = pattern_cache.get(key)
        if v is None:
            ok = has[:, needs[k]].all(axis=1)
            v = pattern_cache[key] = float(inv[ok].mean()) if ok.any() else float(inv.mean())
        mean_inv[k] = v
    rank = (prob.duration_s * mean_inv)[prob.steps].tolist()
    dag = prob.dag
    if dag is not None:
        succ = dag.succ
        for s in reversed(dag.order):
            nxt = succ[s]
            if nxt:
                rank[s] += max(rank[t] for t in nxt)
    return np.asarray(rank, dtype=float)


def run_heft(prob: Problem, energy_first: bool = False
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(instance, start_s, end_s) per workflow step under the rules of the module."""
    steps = prob.steps
    n_steps = len(steps)
    rank = upward_rank(prob)
    # Priority position of every step: rank descending, then workflow order.
    prio = np.empty(n_steps, dtype=np.int64)
    prio[np.lexsort((np.arange(n_steps), -rank))] = np.arange(n_steps)
    prio_l = prio.tolist()
    free = [list(col) for col in prob.cap]
    chooser = Dynamic(prob, free, by_cost=True, fastest=not energy_first)
    pick, changed = chooser.pick, chooser.changed
    pairs_of, dur, speed = prob.dem_pairs, prob.duration_s.tolist(), prob.speed.tolist()
    demand = prob.demand.tolist()
    row_of = prob.dem_row.tolist()
    dag = prob.dag
    succ = dag.succ if dag is not None else None
    indeg = [len(p) for p in dag.preds] if dag is not None else [0] * n_steps
    inst = [0] * n_steps
    start = [0.0] * n_steps
    end = [0.0] * n_steps
    running = [0] * prob.n
    events: list[tuple[float, int, int, int]] = []  # (end, step, instance, task)
    release = releaser(free, prob.cap, running, demand, changed)
    pop, push = heapq.heappop, heapq.heappush
    # Ready steps: one heap per demand shape (row) of (priority, step), and a heap of the
    # rows' heads (priority, row); an entry whose priority is no longer its row's head is
    # stale and skipped.
    by_row: dict[int, list[tuple[int, int]]] = {}
    heads: list[tuple[int, int]] = []

    def ready(s: int) -> None:
        r = row_of[steps[s]]
        q = by_row.get(r)
        if q is None:
            q = by_row[r] = []
        p = prio_l[s]
        if not q or p < q[0][0]:
            push(heads, (p, r))
        push(q, (p, s))

    for s in range(n_steps):
        if not indeg[s]:
            ready(s)
    now, left = 0.0, n_steps
    while left:
        failed: list[int] = []
        seen_failed: set[int] = set()
        while heads and len(failed) < MAX_TRIES:
            p, r = pop(heads)
            q = by_row.get(r)
            if not q or q[0][0] != p or r in seen_failed:
                continue  # stale
            s = q[0][1]
            k = steps[s]
            i = pick(k, pairs_of[k], now)
            if i < 0:
                failed.append(r)
                seen_failed.add(r)
                continue
            pop(q)
            if q:
                push(heads, (q[0][0], r))
            for c, d in enumerate(demand[k]):
                if d:
                    free[c][i] -= d
            running[i] += 1
            e = now + dur[k] / speed[i]
            changed(i)
            push(events, (e, s, i, k))
            inst[s], start[s], end[s] = i, now, e
            left -= 1
        for r in failed:
            push(heads, (by_row[r][0][0], r))
        if not left:
            break
        if not events:  # every instance empty and still nothing fits
            s = by_row[heads[0][1]][0][1]
            raise UnschedulableError(f"task {prob.tasks[steps[s]].name!r} fits no instance")
        now = events[0][0]
        while events and events[0][0] <= now:
            _, s, i, kk = pop(events)
            release(i, kk)
            if succ is not None:
                for t in succ[s]:
                    indeg[t] -= 1
                    if not indeg[t]:
                        ready(t)
    return np.array(inst, dtype=np.int64), np.array(start), np.array(end)
