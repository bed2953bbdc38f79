"""Measured windows: :class:`Window` (what ``ek.measure`` opens), ``@track``, ``last()``.

A window reads every selected counter at its start and end and records one run. It keeps
the engine it started on, so a reconfiguration while it is open takes effect for new
windows only. Windows nest: each knows the innermost window open around it in the same
thread (or async task), else the open *ambient* window (a notebook cell's), and records
that window's id as ``parent_id``.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import os
import random
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, overload

from . import _proc, gpushare
from . import idle as _idle
from .accounting import (
    cap_to_model,
    device_delta,
    energy_bounds,
    process_share,
    scale_bounds_to_share,
    scale_to_share,
)
from .config import settings
from .engine import Engine, acquire_engine, new_window_key
from .idle import active_energy_j
from .record import Measurement, RunRecord, check_label, exit_status
from .recorder import recorder
from .units import COMPONENTS

F = TypeVar("F", bound=Callable[..., Any])
SCOPES = ("machine", "process")
_last: Measurement | None = None

# Ids of the windows open in this thread / async task, innermost last.
_open_ids: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar(
    "energykernel_open_windows", default=())
# Open ambient windows (a cell's), innermost last: the parent of windows opened by
# threads that have no window of their own open.
_ambient: list[str] = []


# A generator of its own (seeded from the OS): code that reseeds ``random`` — random.seed(0)
# in a notebook — must not make run ids repeat across runs; reseeded in a forked child, so
# ids stay unique across processes.
_rng = random.Random()
_random_bits = _rng.getrandbits
_pid = [os.getpid()]  # this process's id, refreshed after a fork


def _after_fork() -> None:
    _pid[0] = os.getpid()
    _rng.seed()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def current_parent_id() -> str:
    """The id a window opened here and now would record as its ``parent_id``."""
    ids = _open_ids.get()
    if ids:
        return ids[-1]
    return _ambient[-1] if _ambient else ""


def check_components(components: Iterable[str] | str | None) -> tuple[str, ...] | None:
    """``components`` as a tuple (a comma string is split); an unknown name is an error."""
    if components is None:
        return None
    if isinstance(components, str):
        components = [c.strip() for c in components.split(",") if c.strip()]
    try:
        out = tuple(components)
    except TypeError:
        raise TypeError(f"components={components!r}: give component names, e.g. "
                        f"'cpu,ram' or ['cpu', 'ram']") from None
    for comp in out:
        if comp not in COMPONENTS:
            raise ValueError(f"components: unknown component {comp!r}; "
                             f"known: {', '.join(COMPONENTS)}")
    return out


def check_window_args(task: str, scope: str, where: str = "measure",
                      instance: str | None = None) -> None:
    """Validate the labels and scope every kind of window takes (names the parameter)."""
    check_label(task, f"{where}(task)")
    if instance is not None:
        check_label(instance, f"{where}(instance)")
    if scope not in SCOPES:
        raise ValueError(f"{where}(scope={scope!r}): scope must be one of {SCOPES}")


class Window:
    """Measure the energy of a block: ``with ek.measure("train") as m: ...``; ``m.result``.

    Args:
        task: label of the run (the Dataset's ``task`` coordinate).
        instance: machine label; default ``ENERGYKERNEL_INSTANCE`` or the host name.
        components: subset of ``cpu, gpu, ram, storage``; default every component that some
            selected backend measures or estimates.
        scope: ``"machine"`` (whole-machine counters) or ``"process"`` (CPU and RAM energy
            scaled by the share of the machine's busy CPU time in the window used by this
            process and its children that exited in it; NVML GPU energy by the tree's
            share of SM utilisation, see :mod:`energykernel.core.gpushare`).
        ambient: windows opened by *other* threads while this one is open are nested in it
            (what a notebook cell's window wants; default False).
    """

    __slots__ = (
        "_busy0",
        "_components",
        "_engine",
        "_gpu0",
        "_id",
        "_key",
        "_parent",
        "_perf0",
        "_proc0",
        "_read0",
        "_t0",
        "ambient",
        "instance",
        "result",
        "scope",
        "task",
    )

    def __init__(self, task: str = "block", instance: str | None = None,
                 components: Iterable[str] | str | None = None, scope: str = "machine",
                 *, ambient: bool = False) -> None:
        check_window_args(task, scope, instance=instance)
        self.task = task
        self.instance = instance or settings().instance
        self._components = check_components(components)
        self.scope = scope
        self.ambient = ambient
        self.result: Measurement | None = None
        self._read0: dict[str, float] | None = None
        self._engine: Engine | None = None
        self._gpu0: gpushare.GpuStart | None = None

    def __enter__(self) -> Window:
        return self.start()

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.stop(*exit_status(exc))

    @property
    def running(self) -> bool:
        return self._read0 is not None

    @property
    def id(self) -> str:
        """The run id this window records (known from :meth:`start`)."""
        return self._id

    # Explicit begin/end, for callers whose window does not nest lexically
    # (cell hooks, per-layer hooks, prompt campaigns).
    def start(self) -> Window:
        """Open the window: take the first reading of every counter."""
        if self._read0 is not None:
            raise RuntimeError(f"measure({self.task!r}) is already running")
        key = new_window_key()
        engine = acquire_engine(key, self.task)  # held until stop: configure() cannot close it
        try:
            if self.scope == "process":
                self._proc0 = _proc.process_tree_cpu_s()
                self._busy0 = _proc.machine_cpu_busy_s()
                self._gpu0 = gpushare.begin(engine)
            self._t0 = time.time()
            self._perf0 = time.perf_counter()
            read0 = engine.read()
        except BaseException:
            engine.window_closed(key)
            raise
        self._engine, self._key, self._read0 = engine, key, read0
        self._id = f"{_random_bits(128):032x}"  # 128 random bits, like uuid4().hex
        self._parent = current_parent_id()
        _open_ids.set((*_open_ids.get(), self._id))
        if self.ambient:
            _ambient.append(self._id)
        return self

    def relabel(self, task: str) -> None:
        """Rename the run while it is open (the timeline's label follows)."""
        self.task = check_label(task, "relabel(task)")
        if self._read0 is not None and self._engine is not None:
            self._engine.relabel(self._key, task)

    def stop(self, status: str = "ok", error: str | None = None) -> Measurement:
        """Close the window: take the last reading and record the run (flushed to the log)."""
        read0, engine = self._read0, self._engine
        if read0 is None or engine is None:
            raise RuntimeError(f"measure({self.task!r}) was not started")
        try:
            read1 = engine.read()
        finally:
            duration = time.perf_counter() - self._perf0
            self._read0 = None
            self._forget()
            engine.window_closed(self._key)
        delta = device_delta(read0, read1, engine.window_keep)
        components = self._components if self._components is not None else engine.components
        energy, method = engine.account(delta, components)
        cap_to_model(energy, engine.bounds, duration)
        record: RunRecord = {
            "id": self._id,
            "task": self.task,
            "instance": self.instance,
            "start_s": self._t0,
            "end_s": self._t0 + duration,
            "duration_s": duration,
            "energy_j": energy,
            "method": method,
            "device_energy_j": delta,
            "status": status,
            "scope": self.scope,
            "pid": _pid[0],
            "parent_id": self._parent,
        }
        bounds = record["energy_bounds_j"] = energy_bounds(energy, engine.bounds, duration)
        idle_w = _idle.current
        if idle_w:
            record["idle_power_w"] = {c: idle_w[c] for c in energy if c in idle_w}
            active = record["active_energy_j"] = active_energy_j(energy, idle_w, duration)
        if self.scope == "process":
            share = process_share(_proc.process_tree_cpu_s() - self._proc0,
                                  _proc.machine_cpu_busy_s() - self._busy0)
            record["cpu_share"] = share
            scale_to_share(energy, share)
            if idle_w:
                scale_to_share(active, share)  # this process's share of the active energy
            scale_bounds_to_share(bounds, share)
            if self._gpu0 is not None:
                gpushare.attribute(record, engine, self._gpu0, delta,
                                   active if idle_w else None)
                self._gpu0 = None
        if error is not None:
            record["error"] = error
        recorder().append(record)
        global _last
        self.result = _last = Measurement(record)
        return self.result

    def _forget(self) -> None:
        ids = _open_ids.get()
        if ids and ids[-1] == self._id:
            _open_ids.set(ids[:-1])
        elif self._id in ids:
            _open_ids.set(tuple(i for i in ids if i != self._id))
        if self.ambient and self._id in _ambient:
            _ambient.remove(self._id)


def last() -> Measurement | None:
    """The most recently finished measurement in this process (any thread)."""
    return _last


@overload
def track(func: F, /) -> F: ...
@overload
def track(task: str | None = None, /, **options: Any) -> Callable[[F], F]: ...


def track(arg: Any = None, /, **options: Any) -> Any:
    """Measure every call of a function: ``@ek.track`` or ``@ek.track("name", scope=...)``.

    The task name defaults to the function's qualified name. Works on plain functions,
    coroutine functions (the await is measured) and generator functions (the window spans
    the generator's life, from first ``next`` to exhaustion or close).
    """
    if callable(arg):
        return _wrap(arg, arg.__qualname__, options)
    if arg is not None and not isinstance(arg, str):
        raise TypeError(f"track: expected a function or a task name, got {type(arg).__name__}")

    def decorator(func: F) -> F:
        return _wrap(func, arg or func.__qualname__, options)

    return decorator


def _wrap(func: Any, task: str, options: dict[str, Any]) -> Any:
    Window(task, **options)  # bad options fail at decoration, not at the first call
    if inspect.iscoroutinefunction(func):
        @functools.wraps(func)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            with Window(task, **options):
                return await func(*args, **kwargs)
        return async_wrapper

    if inspect.isgeneratorfunction(func):
        @functools.wraps(func)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
            with Window(task, **options):
                return (yield from func(*args, **kwargs))
        return gen_wrapper

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with Window(task, **options):
            return func(*args, **kwargs)
    return wrapper
