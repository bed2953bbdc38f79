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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .. import counters as _backends
from ..counters.base import Backend, BackendStatus
from . import idle
from .accounting import combine_terms, component_energy, device_delta
from .config import settings
from .units import COMPONENTS

_window_keys = itertools.count(1)
_told: set[str] = set()  # counters whose unreadable-but-present warning was given


def new_window_key() -> int:
    """A process-unique key for a window opened with ``Engine.window_opened``."""
    return next(_window_keys)


class EngineStopped(RuntimeError):
    """A window was opened on an engine that has been shut down."""


#: Samples kept in memory (about 28 hours at the default 1 s period).
TIMELINE_MAXLEN = 100_000


@dataclass(frozen=True)
class Sample:
    """Mean power over ``(time_s - interval_s, time_s]`` per component, in W."""

    time_s: float  # Unix time, end of the interval
    interval_s: float  # from the monotonic clock
    power_w: dict[str, float]
    task: str


#: The power timeline of this process: kept across engine restarts (``ek.configure``).
TIMELINE: deque[Sample] = deque(maxlen=TIMELINE_MAXLEN)


class Engine:
    """Selected, opened backends plus the sampler. Thread-safe.

    An engine that :func:`shutdown_engine` retires while windows are open on it keeps
    running until the last of them closes, so each window ends on the counters it began on.
    """

    def __init__(self, backend_names: tuple[str, ...] | None = None) -> None:
        self.backends: list[Backend] = []
        self.statuses: list[BackendStatus] = []
        self.component_backend: dict[str, Backend] = {}
        self._select(backend_names)
        self.timeline = TIMELINE
        #: device → the component it counts toward (None: detail only, or a component
        #: another backend answers for).
        self.device_component: dict[str, str | None] = {}
        #: devices worth keeping as per-run detail (detail-only ones included).
        self.detail_devices: frozenset[str] = frozenset()
        #: component → method of the backend that answers for it.
        self.component_method: dict[str, str] = {}
        self._account_maps()
        self._active: dict[object, str] = {}  # window key → task, in opening order
        self._active_lock = threading.Lock()
        self._retired = False
        self._stopped = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._period_s = settings().sample_interval_s
        self._read_detail = settings().read_detail

    # -- selection ---------------------------------------------------------------
    def _select(self, names: tuple[str, ...] | None) -> None:
        explicit = names is not None
        wanted = names if names is not None else (*_backends.DEFAULT_COUNTERS, "estimate")
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
                elif status.reason.startswith("permission denied") and name not in _told:
                    # The counters exist but this user may not read them: say so once, with
                    # the fix, rather than only labelling the figures "estimate".
                    _told.add(name)
                    warnings.warn(
                        f"energykernel: {name} counters are present but not readable, so "
                        f"the figures are estimates: {status.reason}",
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

    def _account_maps(self) -> None:
        for backend in self.backends:
            for dev in backend.devices.values():
                owned = self.component_backend.get(dev.component or "") is backend
                self.device_component[dev.name] = dev.component if owned else None
        self.detail_devices = frozenset(
            dev.name for backend in self.backends for dev in backend.devices.values()
            if dev.component is None or self.component_backend.get(dev.component) is backend)
        self.component_method = {c: b.method for c, b in self.component_backend.items()}
        self.components = tuple(c for c in COMPONENTS if c in self.component_backend)
        #: the devices a window keeps, or None when it keeps every device it reads
        every = {dev.name for backend in self.backends for dev in backend.devices.values()}
        self.window_keep: frozenset[str] | None = (
            None if every <= self.detail_devices else self.detail_devices)
        self._plans: dict[tuple[str, ...], tuple[list[str], dict[str, str]]] = {}
        self.refresh_bounds()

    def refresh_bounds(self) -> None:
        """Recompute each component's bound terms (a backend's known power may rise)."""
        bounds = {}
        for comp, backend in self.component_backend.items():
            try:
                terms = backend.bound_terms()
            except Exception:  # a backend that cannot say: its figures get no interval
                continue
            combined = combine_terms(t for name, t in terms.items()
                                     if self.device_component.get(name) == comp)
            if combined is not None:
                bounds[comp] = combined
        self.bounds = bounds  # one assignment: windows see the old or the new dict

    def devices_of(self, component: str) -> list[str]:
        backend = self.component_backend[component]
        return [d.name for d in backend.devices.values() if d.component == component]

    # -- reading -----------------------------------------------------------------
    def read(self, detail: bool | None = None) -> dict[str, float]:
        """Cumulative energy in J per device of every selected backend: every device, or
        (``detail=False``; default: unless ``read_detail`` is set) only those that count
        toward a component. Windows read with the default, the sampler reads everything."""
        detail = self._read_detail if detail is None else detail
        if len(self.backends) == 1:
            return self.backends[0].read(detail)
        out: dict[str, float] = {}
        for backend in self.backends:
            out.update(backend.read(detail))
        return out

    def component_energy(self, delta: Mapping[str, float],
                         components: Iterable[str]) -> dict[str, float]:
        """Sum device energy deltas (J) into those of ``components`` this engine measures."""
        return component_energy(delta, self.device_component,
                                [c for c in components if c in self.component_method])

    def account(self, delta: Mapping[str, float],
                components: tuple[str, ...]) -> tuple[dict[str, float], dict[str, str]]:
        """(energy J, method) per component of ``components`` this engine measures."""
        plan = self._plans.get(components)
        if plan is None:
            measured = [c for c in components if c in self.component_method]
            plan = self._plans[components] = (
                measured, {c: self.component_method[c] for c in measured})
        return component_energy(delta, self.device_component, plan[0]), dict(plan[1])

    # -- open windows (they hold the engine, and label the timeline) ------------------
    def window_opened(self, key: object, task: str) -> None:
        """Register an open window: its task labels the timeline; it holds the engine."""
        with self._active_lock:
            if self._stopped:
                raise EngineStopped("energykernel: this measuring engine was shut down")
            self._active[key] = task
        self.ensure_sampler()

    def relabel(self, key: object, task: str) -> None:
        with self._active_lock:
            if key in self._active:
                self._active[key] = task

    def window_closed(self, key: object) -> None:
        """Unregister a window; a retired engine stops when its last window closes."""
        with self._active_lock:
            self._active.pop(key, None)
            last = self._retired and not self._active
        if last:
            self.stop()

    def retire(self) -> None:
        """Stop now if no window is open on this engine, else when the last one closes."""
        with self._active_lock:
            self._retired = True
            idle = not self._active
        if idle:
            self.stop()

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
            if self._stopped or (self._thread is not None and self._thread.is_alive()):
                return
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name="energykernel-sampler", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        # Intervals come from the monotonic clock (a wall-clock step neither loses nor
        # inflates energy); the wall clock only labels each sample's end.
        last_t, last = 0.0, None
        while True:
            try:
                now_t = time.monotonic()
                now = self.read(detail=True)
            except Exception as exc:  # keep sampling; a transient read error is reported
                warnings.warn(f"energykernel sampler: read failed: {exc}", RuntimeWarning,
                              stacklevel=1)
            else:
                dt = now_t - last_t
                if last is not None and dt > 0 and not self._retired:
                    # (a retired engine still polls for wraparound; the one in charge
                    # keeps the timeline)
                    energy = self.component_energy(device_delta(last, now), self.components)
                    power = {c: e / dt for c, e in energy.items()}
                    task = self.current_task()
                    self.timeline.append(Sample(time.time(), dt, power, task))
                    if not task:  # no window open: a quiet period, to learn idle power
                        idle.observe_quiet(power)
                last_t, last = now_t, now
                self.refresh_bounds()
            if self._stop.wait(self.period_s()):
                return

    def stop(self) -> None:
        """Stop the sampler and close the backends."""
        with self._active_lock:
            if self._stopped:
                return
            self._stopped = True
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


def acquire_engine(key: object, task: str) -> Engine:
    """The process's engine with window ``key`` registered on it (so it stays open)."""
    global _engine
    engine = _engine
    if engine is not None:  # the hot path: no global lock
        try:
            engine.window_opened(key, task)
            return engine
        except EngineStopped:  # shut down since it was read: make or take the next one
            pass
    with _engine_lock:
        if _engine is None:
            _engine = Engine(settings().backends)
        _engine.window_opened(key, task)
        return _engine


def shutdown_engine() -> None:
    """Detach the engine: the next measurement starts a new one; this one stops now, or
    when the last window open on it closes."""
    global _engine
    with _engine_lock:
        engine, _engine = _engine, None
    if engine is not None:
        engine.retire()


def _after_fork_in_child() -> None:
    # Threads do not survive fork; the child starts its own engine on first use.
    global _engine, _engine_lock
    _engine = None
    _engine_lock = threading.Lock()


atexit.register(shutdown_engine)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
