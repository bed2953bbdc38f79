"""Capacity prices for ``optimal``'s exact search: the LP relaxation of one set of instances.

Within a set *U* of instances the objective is task cost + R × makespan (R: the idle rate
of *U*). The relaxation lets a step be split across instances (x[s, i] ≥ 0, Σ_i x = 1),
asks every instance to do its share of the work within the makespan (per component:
Σ_s x[s, i] · demand[s, c] · runtime[s, i] ≤ capacity[i, c] · M) and the makespan to
follow every chain of steps (start potentials t: t[s] ≥ t[p] + Σ_i x[p, i] · runtime[p, i],
M ≥ t[s] + Σ_i x[s, i] · runtime[s, i]), M ≤ the deadline, and M ≥ any lower bound on
the makespan given (for steps without dependencies the pooled queue of :mod:`.inorder`,
whose waits the split steps would not see).

Its duals on the capacity rows are *prices* λ[i, c] ≥ 0 (objective units per
capacity-second). For any prices with Σ λ · capacity ≤ R, every schedule's objective is at
least (Lagrangian relaxation of the capacity rows)

    cost so far + Σ_(steps left) min_i (cost[s, i] + Σ_c λ[i, c] · demand[s, c] · runtime[s, i])
    + Σ λ · (work still running after now + capacity · now) + (R − Σ λ · capacity) · M,

with M bounded below as before (chains, ends so far): a step's price on an instance now
carries the capacity it takes there, so a bound that puts every step on its cheapest
instance also sees that one instance cannot take them all in the makespan. The prices
are computed once per set (at its root, where the bound equals the LP's value) and used
at every node of its search; they only change the bound's strength, never its validity.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .exact import BranchAndBound


def capacity_prices(bb: BranchAndBound, allowed: np.ndarray, rate: float,
                    least_makespan_s: float = 0.0) -> np.ndarray | None:
    """λ (instances × components, objective units per capacity-second) from the LP
    relaxation of the set ``allowed`` at idle rate ``rate`` (module docstring; its makespan
    at least ``least_makespan_s``), scaled so that Σ λ · capacity ≤ ``rate``; None when the
    LP gives none (no idle rate, no solution)."""
    if rate <= 0:
        return None
    from scipy.optimize import linprog
    from scipy.sparse import coo_matrix

    S, n = bb.S, bb.n
    ok = np.isfinite(bb.cost) & allowed[None, :]
    s_of, i_of = np.nonzero(ok)  # one x per (step, instance) pair, step-major
    nx = len(s_of)
    t0, m = nx, nx + S  # columns: x…, t[0..S), M
    rt = bb.runtime[s_of, i_of]
    dem = bb.prob.demand[bb.kind]  # (S, NC)
    cap = np.array(bb.prob.cap)  # (NC, n)
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    n_rows = 0

    def add(r: np.ndarray, c: np.ndarray, v: np.ndarray) -> None:
        rows.append(r)
        cols.append(c)
        vals.append(v)

    # M ≥ t[s] + Σ_i x[s, i] runtime[s, i]
    add(n_rows + s_of, np.arange(nx), rt)
    add(n_rows + np.arange(S), t0 + np.arange(S), np.ones(S))
    add(n_rows + np.arange(S), np.full(S, m), -np.ones(S))
    n_rows += S
    # t[s] ≥ t[p] + Σ_i x[p, i] runtime[p, i], one row per edge
    edges = [(p, s) for s in range(S) for p in bb.preds[s]]
    if edges:
        first = np.searchsorted(s_of, np.arange(S + 1))  # x columns of step p: [first[p], first[p+1])
        for e, (p, s) in enumerate(edges):
            js = np.arange(first[p], first[p + 1])
            add(np.full(len(js), n_rows + e), js, rt[js])
            add(np.array([n_rows + e, n_rows + e]), np.array([t0 + p, t0 + s]),
                np.array([1.0, -1.0]))
        n_rows += len(edges)
    # Σ_s x[s, i] w[s, i, c] ≤ capacity[i, c] M, one row per (instance, component) used
    cap_rows: list[tuple[int, int]] = []
    for i in np.flatnonzero(allowed).tolist():
        for c in range(cap.shape[0]):
            js = np.flatnonzero((i_of == i) & (dem[s_of, c] > 0))
            if cap[c, i] <= 0 or not len(js):
                continue
            r = n_rows + len(cap_rows)
            add(np.full(len(js), r), js, dem[s_of[js], c] * rt[js])
            add(np.array([r]), np.array([m]), np.array([-cap[c, i]]))
            cap_rows.append((i, c))
    if not cap_rows:
        return None
    n_rows += len(cap_rows)
    a_ub = coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                      shape=(n_rows, m + 1)).tocsr()
    a_eq = coo_matrix((np.ones(nx), (s_of, np.arange(nx))), shape=(S, m + 1)).tocsr()
    objective = np.concatenate([bb.cost[s_of, i_of], np.zeros(S), [rate]])
    deadline = None if bb.deadline == math.inf else bb.deadline
    res = linprog(objective, A_ub=a_ub, b_ub=np.zeros(n_rows), A_eq=a_eq, b_eq=np.ones(S),
                  bounds=[(0, 1)] * nx + [(0, None)] * S + [(least_makespan_s, deadline)],
                  method="highs")
    if res.status != 0:
        return None
    duals = -np.asarray(res.ineqlin.marginals)[n_rows - len(cap_rows):]
    lam = np.zeros((n, cap.shape[0]))
    for (i, c), y in zip(cap_rows, duals, strict=True):
        lam[i, c] = max(0.0, float(y))
    spent = float((lam * cap.T).sum())
    if not np.isfinite(spent) or spent <= 0:
        return None
    return within_rate(lam, allowed, cap, rate)  # the deadline's dual may take part of it


def within_rate(prices: np.ndarray, allowed: np.ndarray, cap: np.ndarray, rate: float
                ) -> np.ndarray:
    """``prices`` on the ``allowed`` instances only (0 elsewhere), scaled down where
    Σ prices · capacity (``cap``: components × instances) passes ``rate``: then they bound
    every schedule of that set."""
    out = np.where(allowed[:, None], prices, 0.0)
    spent = float((out * cap.T).sum())
    return out * (rate / spent) if spent > rate else out
