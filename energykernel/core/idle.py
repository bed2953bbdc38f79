"""Idle power: what each component draws while nothing measured runs.

Two ways to know it: :func:`calibrate_idle` reads the counters across a quiet pause of
its own, and otherwise the sampler learns it from its *quiet periods* (samples taken while
no window was open, e.g. between notebook cells): the median power of the last
:data:`QUIET_SAMPLES` of them, once there are at least :data:`MIN_QUIET_SAMPLES`. A run
records the idle power known when it ends and its ``active_energy_j``: energy − idle power
× duration, never below 0 (the part of the energy the block itself caused).
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections import deque
from collections.abc import Mapping
from datetime import datetime, timezone

#: How many quiet sampler periods the learned idle power is the median of.
QUIET_SAMPLES = 30
#: Quiet periods needed before an idle power is learned.
MIN_QUIET_SAMPLES = 5


class IdlePower(dict[str, float]):
    """Component → idle power in W, with ``source``: how it was obtained."""

    def __init__(self, power_w: Mapping[str, float], source: str) -> None:
        super().__init__(power_w)
        self.source = source

    def __repr__(self) -> str:
        return f"IdlePower({dict(self)!r}, source={self.source!r})"


_lock = threading.Lock()
_quiet: deque[dict[str, float]] = deque(maxlen=QUIET_SAMPLES)
_calibrated: IdlePower | None = None
_learned: IdlePower | None = None
#: The idle power windows use (calibrated, else learned; empty while unknown). Replaced,
#: never mutated, so a window reads it without a lock.
current: Mapping[str, float] = {}


def observe_quiet(power_w: Mapping[str, float]) -> None:
    """Called by the sampler with the power of a period in which no window was open."""
    global _learned, current
    with _lock:
        _quiet.append(dict(power_w))
        if len(_quiet) < MIN_QUIET_SAMPLES:
            return
        comps = {c for sample in _quiet for c in sample}
        learned = {c: statistics.median(s[c] for s in _quiet if c in s) for c in comps}
        _learned = IdlePower(learned, f"learned: median power of the last {len(_quiet)} "
                                      "sampler periods with no window open")
        if _calibrated is None:
            current = _learned


def idle_power() -> IdlePower:
    """Component → idle power in W, and how it was obtained (``.source``); empty (with a
    ``source`` saying why) while nothing is known yet."""
    with _lock:
        if _calibrated is not None:
            return IdlePower(_calibrated, _calibrated.source)
        if _learned is not None:
            return IdlePower(_learned, _learned.source)
        return IdlePower({}, f"not known yet: call ek.calibrate_idle(seconds), or let the "
                             f"sampler see {MIN_QUIET_SAMPLES} quiet periods "
                             f"({len(_quiet)} so far)")


def calibrate_idle(seconds: float = 5.0) -> IdlePower:
    """Measure idle power now: read every counter across ``seconds`` of doing nothing.

    Other programs running meanwhile count as idle (the counters are machine-wide), so call
    it on a quiet machine. The result replaces any learned figure.
    """
    global _calibrated, current
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not (
            math.isfinite(seconds) and 0 < seconds <= 3600):
        raise ValueError(f"calibrate_idle(seconds={seconds!r}): must be a number in (0, 3600]")
    from .accounting import device_delta
    from .engine import acquire_engine, new_window_key

    key = new_window_key()
    engine = acquire_engine(key, "")
    try:
        before, t0 = engine.read(), time.monotonic()
        time.sleep(seconds)
        after, t1 = engine.read(), time.monotonic()
    finally:
        engine.window_closed(key)
    energy = engine.component_energy(device_delta(before, after, engine.window_keep),
                                     engine.components)
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    result = IdlePower({c: e / (t1 - t0) for c, e in energy.items()},
                       f"calibrated: counters read across {t1 - t0:.3g} s of idling at {stamp}")
    with _lock:
        _calibrated = result
        current = result
    return IdlePower(result, result.source)


def active_energy_j(energy_j: Mapping[str, float], idle_w: Mapping[str, float],
                    duration_s: float) -> dict[str, float]:
    """Energy less idle power × duration, never below 0; only for components whose idle
    power is known."""
    return {c: max(0.0, e - idle_w[c] * duration_s) for c, e in energy_j.items() if c in idle_w}


def forget() -> None:
    """Forget calibrated and learned idle power (``ek.reset``)."""
    global _calibrated, _learned, current
    with _lock:
        _quiet.clear()
        _calibrated = _learned = None
        current = {}
