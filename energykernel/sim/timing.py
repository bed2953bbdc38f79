"""When a workflow runs: the hour on the intensity clock, its window, and shifting.

The run's t = 0 falls at ``start_hour`` on the instances' hourly ``intensity_profile``
clock (hour 0 of a shipped profile is midnight). The workflow's window
(``Workflow(start_after_s=, deadline_s=)``, s from t = 0) places its schedule: it starts at
``start_after_s`` (``offset_s``), and ``info["deadline_met"]`` says whether it ends by
``deadline_s``. With ``shift`` (and always in ``optimal``) the whole schedule is delayed,
within ``[start_after_s, deadline_s − makespan]`` — without a deadline, up to
:data:`SHIFT_HORIZON_S` (a day) — to the start whose ``∫ power × intensity(t) dt`` is least
("Let's Wait Awhile", Wiesner et al., 2021); with ``shift="tasks"`` single steps may then
wait too, within their slack (:mod:`.shift`). Carbon as a function of the delay is piecewise
linear, so its minimum lies where a step's start or end (or the idle span's) crosses a
profile step: those delays are tried exactly when there are few, else a grid of a quarter
of the profile's step (at most 2,000 delays: coarser for a fine profile over a long window).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.units import J_PER_KWH, S_PER_HOUR, short_repr
from .model import MAX_VALUE, SimulationInputError, _number

if TYPE_CHECKING:
    from .model import Workflow
    from .result import SimulationResult
    from .schedule import Problem

SHIFT_HORIZON_S = 86_400.0
_WORK = 20_000_000  # candidate delays × step boundaries evaluated at most
_GRID = 2_000  # delays of the grid tried beyond _WORK (a fine profile: coarser than its step)


@dataclass(frozen=True)
class Timing:
    """``start_hour`` (h on the profile clock), the window (s from t = 0), ``shift``
    (False; True: the whole schedule; ``"tasks"``: that, then single steps, :mod:`.shift`)."""

    start_hour: float = 0.0
    start_after_s: float = 0.0
    deadline_s: float | None = None
    shift: bool | str = False

    @classmethod
    def of(cls, workflow: Workflow, start_hour: Any = 0.0, shift: Any = False) -> Timing:
        hour = _number(start_hour, "start_hour", minimum=-MAX_VALUE / S_PER_HOUR,
                       maximum=MAX_VALUE / S_PER_HOUR)
        if not (isinstance(shift, bool) or shift == "tasks"):
            raise SimulationInputError(
                f"shift: must be True, False or 'tasks', got {short_repr(shift)}")
        return cls(hour, workflow.start_after_s, workflow.deadline_s, shift)

    @property
    def clock_s(self) -> float:
        return self.start_hour * S_PER_HOUR

    def latest_offset(self, makespan_s: float) -> float:
        """The latest start the window allows (never before ``start_after_s``)."""
        if self.deadline_s is not None:
            return max(self.start_after_s, self.deadline_s - makespan_s)
        return self.start_after_s + SHIFT_HORIZON_S

    def fits(self, makespan_s: float) -> bool:
        """Whether a schedule of ``makespan_s`` ends by the deadline from its window's start."""
        return (self.deadline_s is None
                or self.start_after_s + makespan_s <= self.deadline_s * (1 + 1e-9))

    def place(self, result: SimulationResult, shift: bool | str | None = None,
              prob: Problem | None = None) -> None:
        """Set ``result``'s clock and offset (the greenest start with ``shift``; with
        ``"tasks"`` and ``prob``, then each step's greenest start in its slack)."""
        shift = self.shift if shift is None else shift
        result.clock_s = self.clock_s
        offset = self.start_after_s
        if shift and result.profiles is not None:
            offset = best_offset(result, offset, self.latest_offset(result.makespan_s))
        result.offset_s = offset
        info = result.info
        if self.start_hour:
            info["start_hour"] = self.start_hour
        if offset or shift:
            info["offset_s"] = offset
        if shift:
            info["shift_s"] = offset - self.start_after_s
        if shift == "tasks" and prob is not None:
            from .shift import shift_steps

            info.update(shift_steps(result, prob))
        if self.deadline_s is not None:
            info["deadline_met"] = bool(offset + result.makespan_s
                                        <= self.deadline_s * (1 + 1e-9))


def hhmm(hours: float) -> str:
    """Hours on a clock as ``HH:MM`` of the day: ``hhmm(12.9) == "12:54"``."""
    minutes = round(float(hours) * 60) % (24 * 60)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def varying_emissions(result: SimulationResult, offsets: np.ndarray) -> np.ndarray:
    """gCO2e on the instances with a profile, for each candidate ``offsets`` (s)."""
    offsets = np.asarray(offsets, dtype=float)
    total = np.zeros(len(offsets))
    profiles = result.profiles or []
    runtime = result.end_s - result.start_s
    task_j = np.nansum(result.step_energy_j, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        power_w = np.where(runtime > 0, task_j / runtime, 0.0)
    span = result.makespan_s
    idle = np.asarray([result.idle_energy_j[n] for n in result.instances])
    idle_w = idle / span if span > 0 else np.zeros_like(idle)
    t0 = result.clock_s
    for prof in {id(p): p for p in profiles if p is not None}.values():
        mine = np.array([p is prof for p in profiles])
        on = mine[result.assignment] & (power_w > 0)
        a, b, p = result.start_s[on] + t0, result.end_s[on] + t0, power_w[on]
        idle_p = float(idle_w[mine & result.used].sum())
        chunk = max(1, 2_000_000 // max(1, len(a)))
        for lo in range(0, len(offsets), chunk):
            o = offsets[lo:lo + chunk, None]
            g = ((prof.integral(b[None, :] + o) - prof.integral(a[None, :] + o)) * p).sum(axis=1)
            o1 = o[:, 0]
            g += idle_p * (prof.integral(t0 + o1 + span) - prof.integral(t0 + o1))
            total[lo:lo + chunk] += g
    return total / J_PER_KWH


def best_offset(result: SimulationResult, lo: float, hi: float) -> float:
    """The delay in ``[lo, hi]`` with the least carbon (the earliest of equals)."""
    if not hi > lo:
        return lo
    profiles = [p for p in result.profiles or [] if p is not None]
    res = min(p.resolution_s for p in profiles)
    bounds = np.unique(np.concatenate([result.start_s, result.end_s, [0.0, result.makespan_s]]))
    slots = math.floor((hi - lo) / res) + 2
    base = result.clock_s
    if len(bounds) * slots * len(result.start_s) <= _WORK:  # exact: every crossing
        m = np.floor((base + lo + bounds) / res)
        cands = ((m[:, None] + np.arange(slots)[None, :]) * res - base - bounds[:, None]).ravel()
    else:  # a grid of a quarter step (at most _GRID points), plus aligning start and end
        step = max(res / 4, (hi - lo) / _GRID)
        cands = lo + np.arange(math.floor((hi - lo) / step) + 1) * step
        for b in (0.0, result.makespan_s):
            m = np.floor((base + lo + b) / res)
            steps = np.arange(0, slots, -(-slots // _GRID))  # every k-th profile step
            cands = np.concatenate([cands, (m + steps) * res - base - b])
    cands = np.unique(np.clip(np.concatenate([[lo, hi], cands]), lo, hi))
    carbon = varying_emissions(result, cands)
    best = carbon.min()
    return float(cands[np.flatnonzero(carbon <= best + 1e-9 * max(1.0, abs(best)))[0]])
