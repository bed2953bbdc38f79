"""``optimal``'s local search: better assignments near the best schedule found.

Every candidate is scored by replaying the queueing rule (:func:`.schedule.run_schedule`,
mode ``assigned``), so a schedule it keeps is one the rule produces. Three kinds of move,
from the best assignment so far:

* **one step**: a step moved to another instance that can hold it (every step, every
  instance, in a random order; the first improvement is kept and the pass goes on);
* **one instance emptied**: every step of a used instance moved to one other instance
  (those it does not fit, and with no instance named all of them, each to its cheapest
  other instance in use) — the move that saves an instance's idle power or trades it for
  another's, which no single step's move can when the instance holds several;
* **a kick** when neither improves: a few random steps moved at random, then the moves
  above again (iterated local search); the best is kept, never lost.

The score is the exact search's (:mod:`.exact`): task cost + idle rate of the instances
used × makespan, in the objective's units. With hourly profiles under the carbon
objective each candidate is instead placed and scored by :class:`._Search` itself.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from .exact import score
from .schedule import run_schedule

if TYPE_CHECKING:
    from .optimal import _Search
    from .schedule import Problem

KICK_STEPS = 3  # steps moved at random by a kick


class LocalSearch:
    """Improves ``search.best`` until :meth:`run`'s clock; counts its evaluations."""

    def __init__(self, prob: Problem, search: _Search, cost: np.ndarray, ok: np.ndarray,
                 idle_rate: np.ndarray, seed: int = 0) -> None:
        self.prob, self.search = prob, search
        self.cost = np.where(ok, cost, np.inf)  # (steps, instances) objective units
        self.ok = ok
        self.options = [np.flatnonzero(row) for row in ok]
        self.idle_rate = idle_rate
        self.rng = np.random.default_rng(seed)
        self.evaluations = 0

    def score(self, assign: np.ndarray) -> float:
        """The objective of the rule's schedule for ``assign`` (inf past a deadline)."""
        self.evaluations += 1
        if self.search.varying:
            return self.search.assigned("local search", assign)
        _inst, _start, end = run_schedule(self.prob, "assigned", assign.tolist())
        makespan = float(end.max()) if len(end) else 0.0
        if not self.search.fits(makespan):
            return np.inf
        return score(self.cost, self.idle_rate, assign, makespan)

    def run(self, t_end: float, kicks: int | None = None, target: float = -np.inf) -> None:
        """Search from the best schedule until ``t_end`` (``time.perf_counter``), after
        ``kicks`` kicks (None: no limit) or once the best reaches ``target`` (a lower
        bound: nothing better exists)."""
        if self.search.best is None:
            return
        best = np.asarray(self.search.best[1].assignment, dtype=np.int64).copy()
        best_v = self.score(best)
        current, current_v = best.copy(), best_v
        kicked = 0
        while time.perf_counter() < t_end:
            current, current_v = self._descend(current, current_v, t_end)
            if current_v < best_v * (1 - 1e-12):
                best, best_v = current.copy(), current_v
                self.search.assigned("local search", best)
            if (kicks is not None and kicked >= kicks) or best_v <= target * (1 + 1e-9):
                break
            kicked += 1
            current = self._kick(best)
            current_v = self.score(current)

    def _descend(self, a: np.ndarray, v: float, t_end: float) -> tuple[np.ndarray, float]:
        """Moves until none improves (or the clock)."""
        improved = True
        while improved and time.perf_counter() < t_end:
            improved = False
            for s in self.rng.permutation(len(a)):
                here = a[s]
                for i in self.options[s]:
                    if i == here:
                        continue
                    a[s] = i
                    w = self.score(a)
                    if w < v * (1 - 1e-12):
                        v, here, improved = w, i, True
                    else:
                        a[s] = here
                if time.perf_counter() >= t_end:
                    return a, v
            n = self.ok.shape[1]
            for j in self.rng.permutation(np.unique(a)):
                for to in [-1, *self.rng.permutation(n).tolist()]:
                    if to == j:
                        continue
                    moved = self._emptied(a, int(j), int(to))
                    if moved is not None:
                        w = self.score(moved)
                        if w < v * (1 - 1e-12):
                            a, v, improved = moved, w, True
                            break
        return a, v

    def _emptied(self, a: np.ndarray, j: int, to: int) -> np.ndarray | None:
        """``a`` with instance ``j``'s steps moved to instance ``to`` where they fit, the
        others (all, with ``to`` = -1) each to its cheapest other instance in use; None
        when some step has nowhere to go or ``to`` takes none of them."""
        steps = np.flatnonzero(a == j)
        if to >= 0 and not self.ok[steps, to].any():
            return None  # it takes none of them: the candidate of to = -1
        in_use = np.zeros(self.ok.shape[1], dtype=bool)
        in_use[a] = True
        in_use[j] = False
        out = a.copy()
        for s in steps:
            if to >= 0 and self.ok[s, to]:
                out[s] = to
                continue
            row = np.where(in_use, self.cost[s], np.inf)
            i = int(row.argmin())
            if not np.isfinite(row[i]):
                return None
            out[s] = i
        return out

    def _kick(self, a: np.ndarray) -> np.ndarray:
        out = a.copy()
        for s in self.rng.choice(len(a), size=min(KICK_STEPS, len(a)), replace=False):
            out[s] = self.rng.choice(self.options[s])
        return out
