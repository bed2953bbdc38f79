"""Delaying single steps to greener hours (``shift="tasks"``).

After the whole schedule is placed at its greenest start (:mod:`.timing`), each step —
latest start first — may start later, at the time in its slack where ∫ power ×
intensity(t) dt over its run is least: not before its own start; ending by the time each
of its successors starts and by the makespan (the span idle power is charged for, so idle
energy, the makespan and the energy stay as they are); and only where its instance can hold
it beside the steps placed there. Emissions fall or stay. Only steps on an instance with
an hourly profile move; the schedule then no longer follows the queueing rule, which is
why this is an option. Carbon as a function of the start is piecewise linear, so its
least value over the feasible starts lies where the run's start or end crosses a profile
step or where the run touches a neighbour on its instance: those starts are tried (of the
profile's steps at most 2,000 per task, evenly spaced, for a fine profile over a long slack).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.units import J_PER_KWH

if TYPE_CHECKING:
    from .result import SimulationResult
    from .schedule import Problem

MAX_STEPS = 20_000  # beyond it, steps are not shifted one by one (``info`` says so)
_GRID = 2_000  # profile steps tried per step at most (beyond: evenly spaced ones)
_TOL = 1e-9


def shift_steps(result: SimulationResult, prob: Problem) -> dict[str, Any]:
    """Delay ``result``'s steps in place (module docstring); a summary for ``info``."""
    out: dict[str, Any] = {"steps_shifted": 0, "step_shift_s": 0.0, "step_shift_saved_g": 0.0}
    profiles = result.profiles
    S = len(result.start_s)
    if profiles is None or not S:
        return out
    if S > MAX_STEPS:
        out["steps_shift_skipped"] = f"more than {MAX_STEPS:,} steps"
        return out
    start, end = result.start_s, result.end_s
    inst = result.assignment
    runtime = end - start
    with np.errstate(invalid="ignore", divide="ignore"):
        power_w = np.where(runtime > 0, np.nansum(result.step_energy_j, axis=1) / runtime, 0.0)
    span = result.makespan_s
    succ: list[list[int]] = [[] for _ in range(S)]
    for s, ps in enumerate(result.predecessors or []):
        for p in ps:
            succ[p].append(s)
    demand = prob.step_demand()
    cap = np.array(prob.cap).T  # (n, NC)
    t0 = result.clock_s + result.offset_s
    on_inst = [np.flatnonzero(inst == i) for i in range(prob.n)]
    for s in np.argsort(-start, kind="stable").tolist():
        prof = profiles[inst[s]]
        if prof is None or not power_w[s] > 0:
            continue
        r = float(runtime[s])
        latest_end = min([span, *(float(start[t]) for t in succ[s])])
        lo, hi = float(start[s]), latest_end - r
        if not hi > lo + _TOL * max(1.0, abs(lo)):
            continue
        others = on_inst[inst[s]]
        others = others[(others != s) & (end[others] > lo) & (start[others] < hi + r)]
        res = prof.resolution_s
        first, last = np.floor((t0 + lo) / res), np.ceil((t0 + hi + r) / res)
        grid = np.arange(first, last + 1) * res - t0
        if len(grid) > _GRID:  # a fine profile over a long slack: every k-th step
            grid = grid[::-(-len(grid) // _GRID)]
        cands = np.concatenate([[lo, hi], grid, grid - r, end[others], start[others] - r])
        cands = np.unique(cands[(cands >= lo) & (cands <= hi)])
        if len(others):
            cands = cands[_fits(cands, r, start[others], end[others], demand[others],
                                cap[inst[s]] - demand[s])]
        carbon = (prof.integral(t0 + cands + r) - prof.integral(t0 + cands)) * power_w[s]
        here = float((prof.integral(t0 + lo + r) - prof.integral(t0 + lo)) * power_w[s])
        j = int(np.argmin(carbon))  # the earliest of equals
        if not carbon[j] < here - 1e-12 * max(1.0, abs(here)):
            continue
        delay = float(cands[j]) - lo
        start[s], end[s] = lo + delay, lo + delay + r
        out["steps_shifted"] += 1
        out["step_shift_s"] += delay
        out["step_shift_saved_g"] += (here - float(carbon[j])) / J_PER_KWH
    return out


def _fits(cands: np.ndarray, runtime_s: float, a: np.ndarray, b: np.ndarray,
          dem: np.ndarray, room: np.ndarray) -> np.ndarray:
    """Per candidate start, whether the steps ``[a, b)`` with demands ``dem`` leave
    ``room`` (per component) at every instant of ``[start, start + runtime_s)``."""
    room = room + _TOL * np.maximum(1.0, np.abs(room))

    def use(x: np.ndarray) -> np.ndarray:  # (len(x), NC) demand in use at instants x
        on = (a[None, :] <= x[:, None]) & (x[:, None] < b[None, :])
        return on.astype(float) @ dem

    ok: np.ndarray = np.asarray((use(cands) <= room).all(axis=1))
    peak = use(a)  # the use only rises where another step starts
    over = ~(peak <= room).all(axis=1)
    if over.any():
        inside = (a[over][None, :] > cands[:, None]) & (a[over][None, :] < cands[:, None] + runtime_s)
        ok &= ~inside.any(axis=1)
    return ok
