"""The running measurement machinery: selected backends, the sampler thread, the timeline.

One :class:`Engine` per process, created on first use. It opens the selected backends,
decides which backend answers for each component (first counter that covers it, the
estimate for the rest), and runs one daemon thread that polls every backend often enough
that no counter wrap is missed and keeps a power timeline.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import threading
import time
import warnings
from collections import deque
from dataclasses import dataclass

from . import backends as _backends
from .backends.base import COMPONENTS, Backend, BackendStatus
from .config import settings

_window_keys = itertools.count(1)


def new_window_key() -> int:
    """A process-unique key for a window opened with ``Engine.window_opened``."""
    return next(_window_keys)


#: Samples kept in memory (about 28 hours at the default 1 s period).
TIMELINE_MAXLEN = 100_000


@dataclass(frozen=True)
class Sample:
    """Mean power over ``(time_s - interval_s, time_s]`` per component, in W."""

    time_s: float  # Unix time, end of the interval
    interval_s: float
    power_w: dict[str, float]
    task: str


class Engine:
    """Selected, opened backends plus the sampler. Thread-safe."""

    def __init__(self, backend_names: tuple[str, ...] | None = None) -> None:
        self.backends: list[Backend] = []
        self.statuses: list[BackendStatus] = []
        self.component_backend: dict[str, Backend] = {}
        self._select(backend_names)
        self.timeline: deque[Sample] = deque(maxlen=TIMELINE_MAXLEN)
        self._active: dict[int, str] = {}  # window id → task, in opening order
        self._active_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._period_s = settings().sample_interval_s

    # -- selection ---------------------------------------------------------------
    def _select(self, names: tuple[str, ...] | None) -> None:
        explicit = names is not None
        wanted = names if explicit else (*_backends.DEFAULT_COUNTERS, "estimate")
        for name in wanted:
            backend = _backends.create(name)
            status = backend.probe()
            self.statuses.append(status)
            if not status.available:
                if explicit:
                    warnings.warn(
                        f"energykernel: backend {name!r} was asked for but is unavailable: "
                        f"{status.reason}",
                        RuntimeWarning,
                        stacklevel=4,
                    )
                continue
            try:
                backend.open()
            except Exception as exc:
                self.statuses[-1] = BackendStatus(name, False, f"failed to open: {exc}")
                warnings.warn(f"energykernel: backend {name!r} failed to open: {exc}",
                              RuntimeWarning, stacklevel=4)
                continue
            claimed = [c for c in backend.components if c not in self.component_backend]
            if not claimed:
                backend.close()
                continue
            for comp in claimed:
                self.component_backend[comp] = backend
            self.backends.append(backend)
        for backend in self.backends:
            if hasattr(backend, "enable"):
                backend.enable({c for c, b in self.component_backend.items() if b is backend})

    @property
    def components(self) -> tuple[str, ...]:
        return tuple(c for c in COMPONENTS if c in self.component_backend)

    def devices_of(self, component: str) -> list[str]:
        backend = self.component_backend[component]
        return [d.name for d in backend.devices.values() if d.component == component]

    # -- reading -----------------------------------------------------------------
    def read(self) -> dict[str, float]:
        """Cumulative energy in J of every device of every selected backend."""
        out: dict[str, float] = {}
        for backend in self.backends:
            out.update(backend.read())
        return out

    def component_energy(self, delta: dict[str, float], components) -> dict[str, float]:
        """Sum device energy deltas into the requested components."""
        out = {}
        for comp in components:
            backend = self.component_backend.get(comp)
            if backend is None:
                continue
            out[comp] = sum(
                delta.get(d.name, 0.0) for d in backend.devices.values() if d.component == comp
            )
        return out

    def device_filter(self) -> set[str]:
        """Devices whose energy is worth keeping as per-run detail."""
        keep = set()
        for backend in self.backends:
            for dev in backend.devices.values():
                if dev.component is None or self.component_backend.get(dev.component) is backend:
                    keep.add(dev.name)
        return keep

    # -- active windows (for timeline labels) --------------------------------------
    def window_opened(self, key: int, task: str) -> None:
        with self._active_lock:
            self._active[key] = task
        self.ensure_sampler()

    def window_closed(self, key: int) -> None:
        with self._active_lock:
            self._active.pop(key, None)

    def current_task(self) -> str:
        with self._active_lock:
            return next(reversed(self._active.values()), "") if self._active else ""

    # -- sampler -------------------------------------------------------------------
    def period_s(self) -> float:
        """Sampler period: the configured interval, shorter if a backend needs it."""
        period = self._period_s
        for backend in self.backends:
            needed = backend.poll_interval_s()
            if needed is not None:
                period = min(period, needed)
        return max(period, 1e-3)

    def ensure_sampler(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._active_lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name="energykernel-sampler", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        last_t = time.time()
        last = self.read()
        while not self._stop.wait(self.period_s()):
            try:
                now_t = time.time()
                now = self.read()
            except Exception as exc:  # keep sampling; a transient read error is reported
                warnings.warn(f"energykernel sampler: read failed: {exc}", RuntimeWarning,
                              stacklevel=1)
                continue
            dt = now_t - last_t
            if dt > 0:
                delta = {k: now[k] - last.get(k, 0.0) for k in now}
                energy = self.component_energy(delta, self.components)
                power = {c: e / dt for c, e in energy.items()}
                self.timeline.append(Sample(now_t, dt, power, self.current_task()))
            last_t, last = now_t, now

    def stop(self) -> None:
        """Stop the sampler and close the backends."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        self._thread = None
        for backend in self.backends:
            with contextlib.suppress(Exception):
                backend.close()


_engine: Engine | None = None
_engine_lock = threading.Lock()


def get_engine() -> Engine:
    """The process's engine, created (backends probed and opened) on first use."""
    global _engine
    engine = _engine
    if engine is not None:
        return engine
    with _engine_lock:
        if _engine is None:
            _engine = Engine(settings().backends)
        return _engine


def shutdown_engine() -> None:
    """Stop the sampler and close backends; the next measurement starts a new engine."""
    global _engine
    with _engine_lock:
        engine, _engine = _engine, None
    if engine is not None:
        engine.stop()


def _after_fork_in_child() -> None:
    # Threads do not survive fork; the child starts its own engine on first use.
    global _engine, _engine_lock
    _engine = None
    _engine_lock = threading.Lock()


atexit.register(shutdown_engine)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
