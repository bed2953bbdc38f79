"""One set's depth-first search of :mod:`.exact`: the queueing rule replayed, branching
where a step first heads the ready steps, each node bounded (:func:`search_set`).
"""

from __future__ import annotations

import heapq
import math
import time
from bisect import bisect_left
from itertools import accumulate
from typing import TYPE_CHECKING

import numpy as np

from .choose import NC, fits, releaser
from .inorder import NodeMemo, pooled_span, queue_slack

if TYPE_CHECKING:
    from .exact import BranchAndBound

CHECK_EVERY = 128  # nodes between looks at the clock


class Timeout(Exception):
    """The search's time is up."""


def search_set(bb: BranchAndBound, allowed: np.ndarray, required: np.ndarray | None,
               prices: np.ndarray | None = None, root_only: bool = False) -> None:
    """Search the assignments that use, of the idle-drawing instances, exactly
    ``required`` (None: any) and no instance outside ``allowed``, bounded with the capacity
    ``prices`` of :mod:`.relax` where given (instances × components; needs ``required``);
    raises :class:`Timeout` at the clock. ``root_only``: only bound the set's root (in
    ``bb.root_bound``)."""
    S, n = bb.S, bb.n
    real_m = np.where(allowed[None, :], bb.cost, np.inf)
    rt_m = np.where(allowed[None, :], bb.runtime, np.inf)
    fixed_idle = None if required is None else float(bb.idle_rate[required].sum())
    # the bound's cost of a step on an instance (with prices: + the capacity it takes
    # there), and the idle rate the bound charges the makespan
    cost_m, bound_rate = real_m, fixed_idle
    price: list[list[float]] = []  # the prices, where the bound uses them
    if prices is not None and fixed_idle is not None:
        dem_s = bb.prob.demand[bb.kind]  # (S, NC)
        with np.errstate(invalid="ignore"):
            taken = np.where(np.isfinite(rt_m)[:, :, None],
                             dem_s[:, None, :] * rt_m[:, :, None] * prices[None, :, :], 0.0)
        cost_m = real_m + taken.sum(axis=2)
        bound_rate = fixed_idle - float((prices * np.array(bb.cap).T).sum())
        price = prices.tolist()
    minc = cost_m.min(axis=1).tolist()
    minrt = rt_m.min(axis=1).tolist()
    # per step its instances in the bound's cost order: (instance, bound's cost, runtime,
    # cost)
    by_cost = np.argsort(cost_m, axis=1, kind="stable")
    columns = [by_cost.tolist()] + [np.take_along_axis(m, by_cost, axis=1).tolist()
                                    for m in (cost_m, rt_m, real_m)]
    options = [[o for o in zip(*(col[s] for col in columns), strict=True) if o[1] < math.inf]
               for s in range(S)]
    rts = rt_m.tolist()
    capsum = bb.capacity(allowed).tolist()
    cap = bb.cap
    kind, demand = bb.kind, bb.demand
    dem_of = bb.dem_of
    comps = [c for c in range(NC) if capsum[c] > 0 and any(demand[k][c] for k in kind)]
    idle_rate = bb.idle_rate.tolist()
    need = [False] * n
    if required is not None:
        for i in required.tolist():
            need[i] = True
    deadline = bb.deadline
    preds, succ, order, pairs = bb.preds, bb.succ, bb.order, bb.pairs
    twin = bb.twin

    # Mutable state of the replayed schedule (restored by slice from snapshots).
    free = [list(col) for col in cap]
    running = [0] * n
    release = releaser(free, cap, running, demand, lambda i: None)
    heap: list[tuple[float, int, int, int]] = []
    ready = [s for s in range(S) if not preds[s]]
    indeg = [len(p) for p in preds]
    assign = [-1] * S
    end = [-1.0] * S  # -1: not placed
    used = [0] * n  # steps assigned per instance
    st = {"now": 0.0, "cost": 0.0, "maxend": 0.0, "left": S, "unassigned": S,
          "missing": int(sum(need))}

    def advance() -> int:
        """Replay the rule; the step that needs an instance, -1 when done, -2 if stuck."""
        now = st["now"]
        while st["left"]:
            while heap and heap[0][0] <= now:
                _, s, i, k = heapq.heappop(heap)
                release(i, k)
                for t in succ[s]:
                    indeg[t] -= 1
                    if not indeg[t]:
                        heapq.heappush(ready, t)
            if not ready:
                now = heap[0][0]
                continue
            s = ready[0]
            i = assign[s]
            if i < 0:
                st["now"] = now
                return s
            if not fits(free, i, pairs[s]):
                if not heap:
                    st["now"] = now
                    return -2
                now = heap[0][0]
                continue
            heapq.heappop(ready)
            for c, d in dem_of[s]:
                free[c][i] -= d
            running[i] += 1
            e = now + rts[s][i]
            end[s] = e
            if e > st["maxend"]:
                st["maxend"] = e
            heapq.heappush(heap, (e, s, i, kind[s]))
            st["left"] -= 1
        st["now"] = now
        return -1

    def idle_of(span: float) -> float:
        if fixed_idle is not None:
            return fixed_idle * span
        return sum(idle_rate[i] for i in range(n) if used[i]) * span

    def bound_idle(span: float) -> float:
        """The bound's charge for a makespan of ``span`` (with prices: at the rate they
        leave; the rest is in the steps' prices and :func:`node_bound`'s offset)."""
        return bound_rate * span if bound_rate is not None else idle_of(span)

    # Per step, over its options in cost order: the costs, and the running minima of
    # runtime and (when the idle rate is known) of the price cost − minc + rate × runtime.
    opt_cost = [[o[1] for o in opts] for opts in options]
    pre_rt = [list(accumulate((o[2] for o in opts), min)) for opts in options]
    pre_rt_max = [list(accumulate((o[2] for o in opts), max)) for opts in options]
    pre_price = None if bound_rate is None else [
        list(accumulate((o[1] - minc[s] + bound_rate * o[2] for o in options[s]), min))
        for s in range(S)]

    tail = [0.0] * S  # per step the longest chain of fastest runtimes after it
    for s in reversed(order):
        for t in succ[s]:
            if minrt[t] + tail[t] > tail[s]:
                tail[s] = minrt[t] + tail[t]

    def walk(now: float, rate: float, gap: float, head: int, todo: list[int],
             running_work: list[tuple[int, int, float]], floor: list[float]
             ) -> tuple | None:
        """One pass of :func:`node_bound` with the options dearer than each step's
        cheapest (``floor``, as the previous pass found it: written back) by less than
        ``gap``, and ending early enough for the chain after it to end by the deadline:
        (Σ cheapest cost,
        makespan bound, longest path of prices, the head's options and cheapest cost);
        None when some step has no option left. With a finite ``gap`` the work only one
        instance can take bounds the makespan too."""
        area = [0.0] * NC
        load = [0.0] * (NC * n) if gap < math.inf else None
        for c, i, w in running_work:
            area[c] += w
            if load is not None:
                load[c * n + i] += w
        fin = end[:]
        price = [rate * e for e in end]
        maxend = st["maxend"]
        span, top, cheapest = maxend, rate * maxend, 0.0
        head_opts, head_m = options[head], minc[head]
        at_now = rate * now
        for s in todo:
            est, pe = now, at_now
            for p in preds[s]:
                if fin[p] > est:
                    est = fin[p]
                if price[p] > pe:
                    pe = price[p]
            i = assign[s]
            if i >= 0:  # it heads the queue with an instance and waits for it
                r = rts[s][i]
                g = pe + rate * r
                for c, d in dem_of[s]:
                    area[c] += d * r
                    if load is not None:
                        load[c * n + i] += d * r
            else:
                k = bisect_left(opt_cost[s], floor[s] + gap)
                if k == 0:
                    return None
                opts = options[s]
                due = deadline - tail[s]  # its successors' chain must fit after it
                if est + pre_rt_max[s][k - 1] <= due:
                    m, r = minc[s], pre_rt[s][k - 1]
                    g = pe + (pre_price[s][k - 1] if pre_price is not None else min(
                        o[1] - m + rate * o[2] for o in opts[:k]))
                else:  # some options would end past the deadline
                    opts = [o for o in opts[:k] if est + o[2] <= due]
                    if not opts:
                        return None
                    k, m = len(opts), opts[0][1]
                    r = min(o[2] for o in opts)
                    g = pe + min(o[1] - m + rate * o[2] for o in opts)
                cheapest += m
                floor[s] = m
                if s == head:
                    head_opts, head_m = opts[:k], m
                for c, d in dem_of[s]:
                    area[c] += d * r
                if k == 1 and load is not None:  # only one instance can take it
                    i1 = opts[0][0]
                    for c, d in dem_of[s]:
                        load[c * n + i1] += d * r
            f = est + r
            fin[s], price[s] = f, g
            if f > span:
                span = f
            if g > top:
                top = g
        for c in comps:
            f = now + area[c] / capsum[c]
            if load is not None:
                for i in range(n):
                    w = load[c * n + i]
                    if w and now + w / cap[c][i] > f:
                        f = now + w / cap[c][i]
            if f > span:
                span = f
        return cheapest, span, top, head_opts, head_m

    # Steps without dependencies start in index order (:mod:`.inorder`): the pooled
    # queue bounds the makespan, and a node another dominates is not searched.
    in_order = bb.prob.dag is None
    memo = NodeMemo() if in_order else None
    slack = queue_slack(bb, capsum)
    # per step the least real cost of it and every later step (all unplaced when it heads)
    real_left = np.append(np.cumsum(real_m.min(axis=1)[::-1])[::-1], 0.0).tolist()

    def node_bound(limit: float, head: int) -> tuple[float, float, list, float]:
        """(bound, makespan bound, the head step's options left, the time-only bound
        without the head's cost) of this node.

        Idle is charged at rate R (idle(U)) for the makespan, which is at least every
        path's length: the bound is the cost so far + each unplaced step's cheapest
        cost + R × the longest path, where a step on the path may be priced at an
        option's extra cost + R × its runtime; the time-only bounds (ends so far; per
        component, and in the second pass per instance, the work over capacity) bound it
        too. The second pass drops every option whose extra cost alone lifts the
        time-only bound to ``limit`` and prices again with the options left. Steps without
        dependencies have the pooled queue's makespan (:mod:`.inorder`) as a bound too,
        tried first unpriced: each step's cheapest real cost + the set's idle rate × it
        (the prices may leave the makespan little of the idle rate to charge).
        """
        now, cost0 = st["now"], st["cost"]
        rate = bound_rate if bound_rate is not None else sum(
            idle_rate[i] for i in range(n) if used[i])
        todo = [s for s in order if end[s] < 0]
        running_work = [(c, i, d * (e - now)) for e, s_, i, _k in heap if e > now
                        for c, d in dem_of[s_]]
        if price and fixed_idle is not None:  # the capacity taken by what runs, and before now
            cost0 += sum(price[i][c] * w for c, i, w in running_work)
            cost0 += (fixed_idle - rate) * now
        lb, span, gap = -math.inf, 0.0, math.inf
        if in_order:
            span = pooled_span(bb, capsum, slack, [(e, k) for e, _s, _i, k in heap if e > now],
                               now, st["maxend"], head, minrt)
            if fixed_idle is not None:  # the plain bound: cheapest real costs + idle × span
                lb = st["cost"] + real_left[head] + fixed_idle * span
                if lb >= limit:
                    return lb, span, [], math.inf
        out: tuple = ([], math.inf)
        floor = minc[:]  # per step its cheapest option still open
        for _ in range(2):
            got = walk(now, rate, gap, head, todo, running_work, floor)
            if got is None:
                return math.inf, math.inf, [], math.inf
            cheapest, span_k, top, head_opts, head_m = got
            span = max(span, span_k)
            if span > deadline:
                return math.inf, span, [], math.inf
            lb = max(lb, cost0 + cheapest + max(top, rate * span))
            if lb >= limit:
                return lb, span, [], math.inf
            out = (head_opts, cost0 + cheapest - head_m)
            gap = limit - (cost0 + cheapest + rate * span)  # the time-only bound's room
        return lb, span, out[0], out[1]

    def leaf() -> None:
        if st["missing"]:
            return  # uses fewer of U: that set is searched on its own
        span = st["maxend"]
        if span > deadline:
            return
        obj = st["cost"] + idle_of(span)
        if obj < bb.incumbent * (1 - 1e-12):
            bb.search.assigned("exact search", np.array(assign, dtype=np.int64))
            bb.incumbent = min(bb.incumbent, obj)

    def dfs(depth: int) -> None:
        bb.nodes += 1
        if bb.nodes % CHECK_EVERY == 0 and time.perf_counter() > bb.t_end:
            raise Timeout
        s = advance()
        if s == -1:
            leaf()
            return
        if s == -2:
            return
        if memo is not None and depth and memo.beaten(
                s, tuple(i for i in range(n) if used[i]),
                [(i, k, e) for e, _s, i, k in heap if e > st["now"]],
                st["now"], st["cost"], st["maxend"]):
            return
        limit = bb.limit()
        lb, span, opts, base = node_bound(limit, s)
        if depth == 0:
            bb.root_bound = min(lb, bb.incumbent)
            if root_only:
                return
        if lb >= limit or span > deadline or st["missing"] > st["unassigned"]:
            return
        now = st["now"]
        after = tail[s]  # the head's successors run after it
        snap = ([col[:] for col in free], running[:], heap[:], ready[:], indeg[:], end[:],
                dict(st))
        rate_span = bound_idle(span)
        for i, c_i, r_i, real_i in opts:
            if base + c_i + rate_span >= limit:
                break  # options are in cost order
            if not used[i] and twin[i] >= 0 and not used[twin[i]]:
                continue  # identical instances are first used in index order
            span_i = max(span, now + r_i + after)
            extra = idle_rate[i] * span_i if fixed_idle is None and not used[i] else 0.0
            if span_i > deadline or base + c_i + bound_idle(span_i) + extra >= limit:
                continue
            assign[s] = i
            used[i] += 1
            st["cost"] += real_i
            st["unassigned"] -= 1
            if need[i] and used[i] == 1:
                st["missing"] -= 1
            dfs(depth + 1)
            limit = bb.limit()
            used[i] -= 1
            assign[s] = -1
            for col, saved in zip(free, snap[0], strict=True):
                col[:] = saved
            running[:] = snap[1]
            heap[:] = snap[2]
            ready[:] = snap[3]
            indeg[:] = snap[4]
            end[:] = snap[5]
            st.clear()
            st.update(snap[6])

    try:
        dfs(0)
    finally:
        if memo is not None:
            bb.dominated += memo.beaten_count
