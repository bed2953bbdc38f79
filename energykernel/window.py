"""``measure()`` windows, the ``@track`` decorator, and the ``Measurement`` they produce."""

from __future__ import annotations

import functools
import inspect
import os
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any, TypeVar, overload

from . import _proc
from .backends.base import COMPONENTS
from .config import settings
from .engine import get_engine, new_window_key
from .recorder import Record, recorder

F = TypeVar("F", bound=Callable[..., Any])
SCOPES = ("machine", "process")
_last: Measurement | None = None


class Measurement:
    """The result of one measured window (one run).

    Attributes: ``task``, ``instance``, ``start``/``end`` (UTC datetimes), ``duration_s``,
    ``energy_j`` and ``method`` (dicts keyed by component), ``total_j``, ``status``
    (``"ok"``, ``"error"``, ``"interrupted"``), plus ``device_energy_j``, ``scope``, ``id``.
    """

    __slots__ = ("_record",)

    def __init__(self, record: Record) -> None:
        self._record = record

    task = property(lambda self: self._record["task"])
    instance = property(lambda self: self._record["instance"])
    duration_s = property(lambda self: self._record["duration_s"])
    energy_j = property(lambda self: dict(self._record["energy_j"]))
    method = property(lambda self: dict(self._record["method"]))
    device_energy_j = property(lambda self: dict(self._record["device_energy_j"]))
    status = property(lambda self: self._record["status"])
    scope = property(lambda self: self._record["scope"])
    id = property(lambda self: self._record["id"])
    error = property(lambda self: self._record.get("error"))

    @property
    def start(self) -> datetime:
        return datetime.fromtimestamp(self._record["start_s"], tz=timezone.utc)

    @property
    def end(self) -> datetime:
        return datetime.fromtimestamp(self._record["end_s"], tz=timezone.utc)

    @property
    def total_j(self) -> float:
        return float(sum(self._record["energy_j"].values()))

    @property
    def estimated(self) -> bool:
        """True if any component's figure is an estimate rather than a counter reading."""
        return "estimate" in self._record["method"].values()

    def to_dict(self) -> Record:
        return dict(self._record)

    def summary(self) -> str:
        """One line: total, duration, per-component split and method."""
        from .format import measurement_line

        return measurement_line(self)

    def __repr__(self) -> str:
        parts = ", ".join(f"{c}={e:.3g} J ({self.method[c]})" for c, e in self.energy_j.items())
        return (f"<Measurement task={self.task!r} instance={self.instance!r} "
                f"{self.total_j:.3g} J in {self.duration_s:.3g} s [{parts}] {self.status}>")


def exit_status(exc: BaseException | None) -> tuple[str, str | None]:
    """(status, error) of a run that ended with ``exc``: ``ok``, ``error`` for an
    Exception, ``interrupted`` for KeyboardInterrupt and other BaseExceptions."""
    if exc is None:
        return "ok", None
    if isinstance(exc, Exception):
        return "error", f"{type(exc).__name__}: {exc}"[:500]
    return "interrupted", type(exc).__name__


def _check_components(components: Iterable[str] | str | None) -> tuple[str, ...] | None:
    if components is None:
        return None
    if isinstance(components, str):
        components = [c.strip() for c in components.split(",") if c.strip()]
    out = tuple(components)
    for comp in out:
        if comp not in COMPONENTS:
            raise ValueError(f"components: unknown component {comp!r}; known: {', '.join(COMPONENTS)}")
    return out


class measure:
    """Measure the energy of a block: ``with ek.measure("train") as m: ...``; ``m.result``.

    Args:
        task: label of the run (the Dataset's ``task`` coordinate).
        instance: machine label; default ``ENERGYKERNEL_INSTANCE`` or the host name.
        components: subset of ``cpu, gpu, ram, storage``; default every component that some
            selected backend measures or estimates.
        scope: ``"machine"`` (whole-machine counters) or ``"process"`` (CPU and RAM energy
            scaled by this process's share of the machine's busy CPU time in the window).
    """

    __slots__ = ("_components", "_cpu0", "_engine", "_key", "_perf0", "_proc0", "_read0",
                 "_t0", "instance", "result", "scope", "task")

    def __new__(cls, *args: Any, cluster: Any = None, **kwargs: Any):
        if cluster is not None:  # one window over every worker of a Dask cluster
            from .dask import cluster_window

            return cluster_window(cluster, *args, **kwargs)
        return super().__new__(cls)

    def __init__(self, task: str = "block", instance: str | None = None,
                 components: Iterable[str] | str | None = None, scope: str = "machine",
                 cluster: Any = None) -> None:
        if not isinstance(task, str) or not task:
            raise ValueError(f"measure(task={task!r}): task must be a non-empty string")
        if scope not in SCOPES:
            raise ValueError(f"measure(scope={scope!r}): scope must be one of {SCOPES}")
        if instance is not None and (not isinstance(instance, str) or not instance):
            raise ValueError(f"measure(instance={instance!r}): must be a non-empty string")
        self.task = task
        self.instance = instance or settings().instance
        self._components = _check_components(components)
        self.scope = scope
        self.result: Measurement | None = None
        self._read0: dict[str, float] | None = None

    def __enter__(self) -> measure:
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.stop(*exit_status(exc))

    # Explicit begin/end, for callers whose window does not nest lexically
    # (cell hooks, per-layer hooks, prompt campaigns).
    def start(self) -> measure:
        if self._read0 is not None:
            raise RuntimeError(f"measure({self.task!r}) is already running")
        engine = self._engine = get_engine()
        self._key = new_window_key()
        engine.window_opened(self._key, self.task)
        if self.scope == "process":
            self._proc0 = _proc.process_cpu_s()
            self._cpu0 = _proc.machine_cpu_busy_s()
        self._t0 = time.time()
        self._perf0 = time.perf_counter()
        self._read0 = engine.read()
        return self

    def relabel(self, task: str) -> None:
        """Rename the run while it is open (the timeline's label follows)."""
        if not isinstance(task, str) or not task:
            raise ValueError(f"relabel(task={task!r}): task must be a non-empty string")
        self.task = task
        if self._read0 is not None:
            self._engine.window_opened(self._key, task)

    def stop(self, status: str = "ok", error: str | None = None) -> Measurement:
        if self._read0 is None:
            raise RuntimeError(f"measure({self.task!r}) was not started")
        engine = self._engine
        read1 = engine.read()
        duration = time.perf_counter() - self._perf0
        t1 = self._t0 + duration
        read0, self._read0 = self._read0, None
        engine.window_closed(self._key)
        keep = engine.device_filter()
        delta = {k: max(0.0, v - read0.get(k, 0.0)) for k, v in read1.items() if k in keep}
        components = self._components if self._components is not None else engine.components
        energy = engine.component_energy(delta, components)
        method = {c: engine.component_backend[c].method for c in energy}
        record: Record = {
            "id": uuid.uuid4().hex,
            "task": self.task,
            "instance": self.instance,
            "start_s": self._t0,
            "end_s": t1,
            "duration_s": duration,
            "energy_j": energy,
            "method": method,
            "device_energy_j": delta,
            "status": status,
            "scope": self.scope,
            "pid": os.getpid(),
        }
        if self.scope == "process":
            share = _process_share(self._proc0, self._cpu0)
            record["cpu_share"] = share
            for comp in ("cpu", "ram"):
                if comp in energy:
                    energy[comp] *= share
        if error is not None:
            record["error"] = error
        recorder().append(record)
        global _last
        self.result = _last = Measurement(record)
        return self.result


def _process_share(proc0: float, machine0: float) -> float:
    """This process's share of the machine's busy CPU time since the given readings."""
    proc = _proc.process_cpu_s() - proc0
    machine = _proc.machine_cpu_busy_s() - machine0
    if machine <= 0:
        return 1.0 if proc > 0 else 0.0
    return min(1.0, max(0.0, proc / machine))


def last() -> Measurement | None:
    """The most recently finished measurement in this process (any thread)."""
    return _last


@overload
def track(func: F, /) -> F: ...
@overload
def track(task: str | None = None, /, **options: Any) -> Callable[[F], F]: ...


def track(arg=None, /, **options):
    """Measure every call of a function: ``@ek.track`` or ``@ek.track("name", scope=...)``.

    The task name defaults to the function's qualified name. Works on plain functions,
    coroutine functions (the await is measured) and generator functions (the window spans
    the generator's life, from first ``next`` to exhaustion or close).
    """
    if callable(arg):
        return _wrap(arg, arg.__qualname__, options)
    if arg is not None and not isinstance(arg, str):
        raise TypeError(f"track: expected a function or a task name, got {type(arg).__name__}")

    def decorator(func):
        return _wrap(func, arg or func.__qualname__, options)

    return decorator


def _wrap(func, task: str, options: dict):
    if inspect.iscoroutinefunction(func):
        @functools.wraps(func)
        async def async_wrapper(*args, **kwargs):
            with measure(task, **options):
                return await func(*args, **kwargs)
        return async_wrapper

    if inspect.isgeneratorfunction(func):
        @functools.wraps(func)
        def gen_wrapper(*args, **kwargs):
            with measure(task, **options):
                return (yield from func(*args, **kwargs))
        return gen_wrapper

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with measure(task, **options):
            return func(*args, **kwargs)
    return wrapper


