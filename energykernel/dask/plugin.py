"""The worker side: a ``distributed.WorkerPlugin`` that keeps energykernel measuring.

On each worker the plugin opens the process's :class:`~energykernel.core.engine.Engine`
(backends + its own sampler thread, so the worker's power timeline fills like a
notebook's), adds a periodic callback on the worker's event loop, and serves four
comm handlers the client reaches through the scheduler's ``broadcast``:

- ``energykernel_start``/``energykernel_stop``: open/close a cluster window on this
  worker, answering with a *snapshot* (cumulative counters, clocks, CPU seconds);
- ``energykernel_read``: a snapshot, any time;
- ``energykernel_timeline``: the worker's sampled power.

While a window is open the periodic callback publishes a snapshot to the scheduler's
event topic :data:`TOPIC` every ``push_interval_s``; a client window subscribed to it
keeps the latest one per worker, so a worker that dies mid-window still leaves its last
reading behind. A WorkerPlugin (not a NannyPlugin) because the counters must be read in
the process that runs the work and whose lifetime the window tracks; no subprocess.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from typing import TYPE_CHECKING, Any

from distributed.diagnostics.plugin import WorkerPlugin

from ..core import _proc
from ..core.accounting import terms_to_json
from ..core.config import settings
from ..core.engine import get_engine, shutdown_engine

if TYPE_CHECKING:
    from distributed import Worker

logger = logging.getLogger(__name__)

PLUGIN_NAME = "energykernel"
#: Scheduler event topic carrying the workers' snapshots while windows are open.
TOPIC = "energykernel"
HANDLERS = ("energykernel_start", "energykernel_stop", "energykernel_read",
            "energykernel_timeline")
_CALLBACK = "energykernel"
FINAL_TIMEOUT_S = 2.0

Snapshot = dict[str, Any]
"""worker, instance, host, pid, t_s (wall clock), mono_s (monotonic), read (J per
device, cumulative since the worker's engine opened), proc_s (this process's CPU s),
busy_s (machine busy CPU s), engine (id of the engine the reading came from)."""


def describe_engine() -> dict[str, Any]:
    """How to turn this worker's device readings into components (sent with a start)."""
    engine = get_engine()
    return {
        "devices": dict(engine.device_component),
        "keep": sorted(engine.detail_devices),
        "components": list(engine.components),
        "method": dict(engine.component_method),
        "owner": {c: b.name for c, b in engine.component_backend.items()},
        "bounds": terms_to_json(engine.bounds),
    }


class EnergyPlugin(WorkerPlugin):
    """Keeps energykernel's engine and sampler running on every worker.

    Args:
        push_interval_s: how often an open window's snapshot is published to the
            scheduler (the last one is what survives a lost worker). Default: the
            worker's ``ENERGYKERNEL_SAMPLE_INTERVAL_S`` (1 s).
    """

    name = PLUGIN_NAME
    idempotent = False

    def __init__(self, push_interval_s: float | None = None) -> None:
        if push_interval_s is not None and not push_interval_s > 0:
            raise ValueError(f"EnergyPlugin(push_interval_s={push_interval_s!r}): must be > 0")
        self.push_interval_s = push_interval_s
        self._worker: Worker | None = None
        self._windows: dict[str, str] = {}
        self._joined: Snapshot | None = None
        self._pushes = 0

    def __getstate__(self) -> dict[str, Any]:
        # Only the options travel; the worker-side state is built in setup().
        return {"push_interval_s": self.push_interval_s}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)

    # -- lifecycle ---------------------------------------------------------------
    def setup(self, worker: Worker) -> None:
        from tornado.ioloop import PeriodicCallback

        self._worker = worker
        engine = get_engine()
        engine.ensure_sampler()
        self._joined = self.snapshot()  # a worker joining mid-window is measured from here
        for op in HANDLERS:
            worker.handlers[op] = getattr(self, op.removeprefix("energykernel_"))
        interval_s = self.push_interval_s or settings().sample_interval_s
        callback = PeriodicCallback(self._tick, interval_s * 1000.0)
        old = worker.periodic_callbacks.pop(_CALLBACK, None)
        if old is not None:
            old.stop()
        worker.periodic_callbacks[_CALLBACK] = callback
        callback.start()
        logger.debug("energykernel: measuring %s as %s with %s", worker.address,
                     settings().instance, engine.components)

    async def teardown(self, worker: Worker) -> None:
        """Stop the callback and the sampler; open windows get a final published reading
        (sent by RPC, not on the worker's stream, which a closing worker may lose)."""
        callback = worker.periodic_callbacks.pop(_CALLBACK, None)
        if callback is not None:
            callback.stop()
        if self._windows:
            msg = self._message(final=True)
            try:
                await asyncio.wait_for(worker.scheduler.log_event(topic=TOPIC, msg=msg),
                                       FINAL_TIMEOUT_S)
            except Exception as exc:
                logger.warning("energykernel: could not publish the final reading: %s", exc)
        engine = get_engine()
        for key in list(self._windows):
            engine.window_closed(key)
        self._windows.clear()
        for op in HANDLERS:
            if getattr(worker.handlers.get(op), "__self__", None) is self:
                del worker.handlers[op]
        shutdown_engine()
        self._worker = None

    # -- readings ----------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        """Cumulative counters of this worker's host, with the clocks to difference them."""
        engine = get_engine()
        read = engine.read()
        return {
            "worker": self._worker.address if self._worker is not None else "",
            "instance": settings().instance,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "t_s": time.time(),
            "mono_s": time.monotonic(),
            "read": read,
            "proc_s": _proc.process_tree_cpu_s(),
            "busy_s": _proc.machine_cpu_busy_s(),
            "engine": id(engine),
        }

    def _tick(self) -> None:
        try:
            get_engine().ensure_sampler()  # restarts the sampler if something stopped it
            if self._windows:
                self._push()
        except Exception as exc:  # never break the worker's event loop
            logger.warning("energykernel: periodic reading failed: %s", exc)

    def _message(self, final: bool = False) -> Snapshot:
        msg = self.snapshot()
        msg["keys"] = list(self._windows)
        msg["final"] = final
        return msg

    def _push(self) -> None:
        if self._worker is None:
            return
        self._worker.log_event(TOPIC, self._message())  # on the worker's batched stream
        self._pushes += 1

    # -- comm handlers (called as handler(**msg) on the worker's event loop) ------------
    def start(self, key: str, task: str = "block") -> Snapshot:
        """Open window ``key`` here: label the sampler's timeline; answer a snapshot."""
        engine = get_engine()
        engine.window_opened(key, task)
        self._windows[key] = task
        snap = self.snapshot()
        snap["describe"] = describe_engine()
        return snap

    def stop(self, key: str) -> Snapshot:
        """Close window ``key``; a worker that never saw it joined mid-window and answers
        with its join snapshot as ``joined`` (it is measured from there)."""
        snap = self.snapshot()
        if self._windows.pop(key, None) is not None:
            get_engine().window_closed(key)
        else:
            snap["joined"] = self._joined
            snap["describe"] = describe_engine()
        return snap

    def read(self) -> Snapshot:
        """A snapshot, with the engine's description (what ``read_workers`` returns)."""
        snap = self.snapshot()
        snap["describe"] = describe_engine()
        snap["open_windows"] = dict(self._windows)
        snap["pushes"] = self._pushes
        return snap

    def timeline(self, since_s: float | None = None) -> dict[str, Any]:
        """This worker's sampled power: ``[time_s, interval_s, power_w, task]`` rows."""
        samples = list(get_engine().timeline)
        if since_s is not None:
            samples = [s for s in samples if s.time_s >= since_s]
        return {
            "worker": self._worker.address if self._worker is not None else "",
            "instance": settings().instance,
            "samples": [[s.time_s, s.interval_s, dict(s.power_w), s.task] for s in samples],
        }
