"""The client side: one window measuring every worker's machine of a Dask cluster.

``ClusterWindow(client, task)`` has the shape of :class:`energykernel.measure`: ``start``,
``stop(status, error)``, a context manager, ``result``. Starting broadcasts
``energykernel_start`` to every worker (through the scheduler) and keeps each worker's
snapshot; stopping broadcasts ``energykernel_stop`` and turns the differences into one
run record per *instance* (the worker's ``ENERGYKERNEL_INSTANCE`` or host name), appended
to this process's recorder, so ``ek.dataset().energy.sel(instance=...)`` compares machines.

Per instance, the counters are machine-wide, so only one worker's difference counts (the
others on that machine are listed in the record's ``workers``). The record says how much
of the window it covers (``coverage``): ``full``; ``joined`` (a worker that joined
mid-window, from its join); ``lost`` (a worker gone before the end, up to its last
published reading; status ``interrupted``); or ``lost+joined`` (disjoint pieces added).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..core.accounting import (
    add_bounds,
    cap_to_model,
    component_energy,
    device_delta,
    energy_bounds,
    process_share,
    scale_bounds_to_share,
    scale_to_share,
    terms_from_json,
)
from ..core.record import Measurement, RunRecord, exit_status
from ..core.recorder import recorder
from ..core.units import si
from ..core.window import check_components, check_window_args, current_parent_id
from .plugin import PLUGIN_NAME, TOPIC, EnergyPlugin, Snapshot

if TYPE_CHECKING:
    from distributed import Client

# Open windows by key, and the clients whose event subscription we hold.
_open: dict[str, ClusterWindow] = {}
_subscribed: dict[int, Client] = {}
_registered: set[tuple[int, str]] = set()
_lock = threading.Lock()


def _client_key(client: Client) -> tuple[int, str]:
    return id(client), str(client.scheduler.address)


def _broadcast(client: Client, msg: dict[str, Any],
               workers: Iterable[str] | None = None) -> dict[str, Any]:
    """Send ``msg`` to workers through the scheduler; workers that fail are left out."""
    if getattr(client, "asynchronous", False):
        raise RuntimeError("energykernel.dask needs a synchronous Client (asynchronous=False)")
    out = client.sync(client.scheduler.broadcast, msg=msg,
                      workers=None if workers is None else list(workers), on_error="ignore")
    return {addr: resp for addr, resp in out.items() if isinstance(resp, dict)}


def ensure_registered(client: Client, push_interval_s: float | None = None) -> None:
    """Install :class:`EnergyPlugin` on the workers unless this client already did."""
    if _client_key(client) in _registered:
        return
    plugin = EnergyPlugin(push_interval_s)
    plugin.idempotent = True  # never replace a plugin another client's windows rely on
    client.register_plugin(plugin, name=PLUGIN_NAME)
    _registered.add(_client_key(client))


def _on_event(event: tuple[float, Snapshot]) -> None:
    """Scheduler event handler (client's loop): keep each worker's latest snapshot."""
    _, msg = event
    if not isinstance(msg, dict):
        return
    for key in msg.get("keys", ()):
        window = _open.get(key)
        if window is not None:
            window._last[msg["worker"]] = msg


def _subscribe(client: Client) -> None:
    with _lock:
        if id(client) not in _subscribed:
            client.subscribe_topic(TOPIC, _on_event)
            _subscribed[id(client)] = client


def _release(client: Client) -> None:
    with _lock:
        if any(w.client is client for w in _open.values()):
            return
        if _subscribed.pop(id(client), None) is not None:
            with contextlib.suppress(Exception):  # the client may be closing
                client.unsubscribe_topic(TOPIC)


class ClusterResult(list):
    """The :class:`~energykernel.Measurement` of each instance of a cluster window."""

    @property
    def total_j(self) -> float:
        return float(sum(m.total_j for m in self))

    @property
    def energy_j(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for m in self:
            for comp, joules in m.energy_j.items():
                out[comp] = out.get(comp, 0.0) + joules
        return out

    def by_instance(self) -> dict[str, Measurement]:
        return {m.instance: m for m in self}

    def summary(self) -> str:
        """One line per instance, after a total line."""
        lines = [f"{len(self)} instance(s): {si(self.total_j, 'J')}"]
        lines += [f"  {m.instance}: {m.summary()}" for m in self]
        return "\n".join(lines)


class ClusterWindow:
    """Measure a block on every machine of a Dask cluster: ``with ClusterWindow(client,
    "train") as w: ...``; ``w.result`` lists one Measurement per instance.

    Args:
        client: a connected, synchronous ``distributed.Client``.
        task: run label. components, scope: as in :class:`energykernel.measure`
            (``scope="process"`` counts the share of busy CPU time of the Dask worker
            processes on each machine).
        instance: must stay None: each machine is labelled by its worker
            (``ENERGYKERNEL_INSTANCE`` or the host name).
    """

    #: How long ``stop`` waits for the final reading of a worker lost mid-window (a
    #: killed worker has none; one closed gracefully sends it as it closes).
    final_wait_s: float = 1.0

    def __init__(self, client: Client, task: str = "block", instance: str | None = None,
                 components: Iterable[str] | str | None = None, scope: str = "machine") -> None:
        check_window_args(task, scope, where="measure(cluster=...)")
        if instance is not None:
            raise ValueError(
                f"measure(instance={instance!r}, cluster=...): a cluster window labels each "
                "machine by its worker's host name, or ENERGYKERNEL_INSTANCE set in the "
                "worker's environment; leave instance=None")
        if not hasattr(client, "scheduler") or not hasattr(client, "register_plugin"):
            raise TypeError(f"measure(cluster={client!r}): expected a distributed.Client")
        self.client = client
        self.task = task
        self.instance = None
        self.scope = scope
        self._components = check_components(components)
        self._parent = ""
        self.result: ClusterResult | None = None
        self.key = ""
        self._start: dict[str, Snapshot] = {}
        self._last: dict[str, Snapshot] = {}
        self._running = False

    def __enter__(self) -> ClusterWindow:
        return self.start()

    def __exit__(self, exc_type, exc, tb) -> None:
        self.stop(*exit_status(exc))

    def start(self) -> ClusterWindow:
        """Open the window on every worker now in the cluster."""
        if self._running:
            raise RuntimeError(f"measure({self.task!r}, cluster=...) is already running")
        ensure_registered(self.client)
        self.key = uuid.uuid4().hex
        self._parent = current_parent_id()
        with _lock:
            _open[self.key] = self
        _subscribe(self.client)
        msg = {"op": "energykernel_start", "key": self.key, "task": self.task}
        try:
            started = _broadcast(self.client, msg)
            if not started and self.client.scheduler_info().get("workers"):
                # The plugin was removed behind our back: install it again and retry once.
                _registered.discard(_client_key(self.client))
                ensure_registered(self.client)
                started = _broadcast(self.client, msg)
        except BaseException:
            with _lock:
                _open.pop(self.key, None)
            _release(self.client)
            raise
        self._start = started
        self._running = True
        return self

    def energy_so_far(self) -> dict[str, float]:
        """Joules per worker since its start, from the latest published readings."""
        out = {}
        for addr, last in list(self._last.items()):
            first = self._start.get(addr)
            if first is not None:
                seg = _segment(addr, first, last, "lost", first["describe"], self._components)
                out[addr] = float(sum(seg["energy_j"].values()))
        return out

    def stop(self, status: str = "ok", error: str | None = None) -> ClusterResult:
        """Close the window; record and return one Measurement per instance."""
        if not self._running:
            raise RuntimeError(f"measure({self.task!r}, cluster=...) was not started")
        self._running = False
        try:
            stopped = _broadcast(self.client, {"op": "energykernel_stop", "key": self.key})
        except Exception as exc:  # scheduler gone: every worker counts as lost
            stopped = {}
            if error is None:
                error = f"could not reach the cluster to close the window: {exc}"[:500]
        finally:
            with _lock:
                _open.pop(self.key, None)
            _release(self.client)
        # Lost: gone, or answering from a new process at the same address (a restart).
        lost = [a for a in self._start if a not in stopped or "joined" in stopped[a]]
        deadline = time.monotonic() + self.final_wait_s
        while lost:  # a worker closing mid-window sends a final reading: wait briefly
            self._collect_last(lost)
            if all(self._last.get(a, {}).get("final") for a in lost) or (
                    time.monotonic() >= deadline):
                break
            time.sleep(0.05)
        segments: dict[str, list[dict[str, Any]]] = {}
        workers: dict[str, set[str]] = {}
        for addr, end in stopped.items():
            joined = end.get("joined")
            if addr in self._start and "joined" not in end:
                seg = _segment(addr, self._start[addr], end, "full",
                               self._start[addr]["describe"], self._components)
            elif joined is not None:
                seg = _segment(addr, joined, end, "joined", end["describe"], self._components)
            else:
                continue
            segments.setdefault(end["instance"], []).append(seg)
            workers.setdefault(end["instance"], set()).add(addr)
        for addr in lost:
            first = self._start[addr]
            last = self._last.get(addr)
            if last is not None and (last.get("engine"), last.get("pid")) != (
                    first.get("engine"), first.get("pid")):
                last = None  # the worker's engine restarted: its counters started over
            seg = _segment(addr, first, last, "lost", first["describe"], self._components)
            segments.setdefault(first["instance"], []).append(seg)
            workers.setdefault(first["instance"], set()).add(addr)
        records = [self._record(inst, segs, sorted(workers[inst]), status, error)
                   for inst, segs in segments.items()]
        out = ClusterResult()
        for record in records:
            recorder().append(record)
            out.append(Measurement(record))
        self.result = out
        return out

    def _collect_last(self, lost: list[str]) -> None:
        """Complete the lost workers' last readings from the scheduler's event log (a
        worker closed mid-window publishes a final one that may still be on its way)."""
        try:
            events = self.client.get_events(TOPIC)
        except Exception:
            return
        for _, msg in events:
            if not isinstance(msg, dict) or msg.get("worker") not in lost:
                continue
            if self.key not in msg.get("keys", ()):
                continue
            have = self._last.get(msg["worker"])
            if have is None or msg["mono_s"] > have["mono_s"]:
                self._last[msg["worker"]] = msg

    def _record(self, instance: str, segs: list[dict[str, Any]], workers: list[str],
                status: str, error: str | None) -> RunRecord:
        chosen = _cover(segs)
        energy: dict[str, float] = {}
        method: dict[str, str] = {}
        device: dict[str, float] = {}
        bounds: dict[str, list[float]] = {}
        for seg in chosen:
            add_bounds(bounds, seg["bounds_j"])
            for comp, joules in seg["energy_j"].items():
                energy[comp] = energy.get(comp, 0.0) + joules
            method.update(seg["method"])
            for dev, joules in seg["device_energy_j"].items():
                device[dev] = device.get(dev, 0.0) + joules
        kinds = sorted({s["coverage"] for s in chosen}, key=["full", "lost", "joined"].index)
        coverage = "+".join(kinds) if kinds else "lost"
        lost = [s for s in segs if s["coverage"] == "lost"]
        notes = []
        for seg in lost:
            when = (datetime.fromtimestamp(seg["end_s"], tz=timezone.utc).isoformat(
                timespec="seconds") if seg["read"] else "its start (no reading since)")
            notes.append(f"worker {seg['worker']} lost mid-window; kept up to {when}")
        for seg in chosen:
            if seg["coverage"] == "joined":
                notes.append(f"worker {seg['worker']} joined mid-window; measured from its join")
        partial = coverage != "full"
        if partial and "lost" in coverage and status == "ok":
            status = "interrupted"
        record: RunRecord = {
            "id": uuid.uuid4().hex,
            "task": self.task,
            "instance": instance,
            "start_s": min((s["start_s"] for s in chosen), default=segs[0]["start_s"]),
            "end_s": max((s["end_s"] for s in chosen), default=segs[0]["start_s"]),
            "duration_s": sum(s["duration_s"] for s in chosen),
            "energy_j": energy,
            "method": method,
            "device_energy_j": device,
            "status": status,
            "scope": self.scope,
            "pid": chosen[0]["pid"] if chosen else segs[0]["pid"],
            "parent_id": self._parent,
            "energy_bounds_j": bounds,
        }
        extra: dict[str, Any] = {"workers": workers, "coverage": coverage, "partial": partial,
                                 "cluster_window": self.key, "client_pid": os.getpid()}
        if self.scope == "process":
            share = process_share(sum(s["proc_s"] for s in segs if s["read"]),
                                  sum(s["busy_s"] for s in chosen))
            record["cpu_share"] = share
            scale_to_share(energy, share)
            scale_bounds_to_share(bounds, share)
        if notes:
            extra["note"] = "; ".join(notes)
        record["extra"] = extra
        if error is not None:
            record["error"] = error
        return record


def _segment(addr: str, first: Snapshot, last: Snapshot | None, coverage: str,
             describe: dict[str, Any], components: tuple[str, ...] | None) -> dict[str, Any]:
    """Energy of one worker between two snapshots (``last`` None: nothing after start)."""
    seg: dict[str, Any] = {
        "worker": addr, "coverage": coverage, "pid": first["pid"], "read": last is not None,
        "start_s": first["t_s"], "end_s": first["t_s"], "duration_s": 0.0,
        "energy_j": {}, "method": {}, "device_energy_j": {}, "proc_s": 0.0, "busy_s": 0.0,
        "bounds_j": {},
    }
    if last is None:
        return seg
    delta = device_delta(first["read"], last["read"], set(describe["keep"]))
    comps = components if components is not None else tuple(describe["components"])
    energy = component_energy(delta, describe["devices"],
                              [c for c in comps if c in describe["method"]])
    duration_s = max(0.0, last["mono_s"] - first["mono_s"])
    terms = terms_from_json(describe.get("bounds", {}))
    cap_to_model(energy, terms, duration_s)  # as a local window does
    seg.update(
        end_s=last["t_s"],
        duration_s=duration_s,
        energy_j=energy,
        bounds_j=energy_bounds(energy, terms, duration_s),
        method={c: describe["method"][c] for c in energy},
        device_energy_j=delta,
        proc_s=max(0.0, last["proc_s"] - first["proc_s"]),
        busy_s=max(0.0, last["busy_s"] - first["busy_s"]),
    )
    return seg


def _cover(segs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Non-overlapping segments covering most of the window, longest first (one machine's
    counters are shared, so overlapping pieces would count the same energy twice)."""
    order = {"full": 0, "joined": 1, "lost": 2}
    chosen: list[dict[str, Any]] = []
    for seg in sorted(segs, key=lambda s: (order[s["coverage"]], -s["duration_s"], s["worker"])):
        if not seg["read"]:
            continue
        if all(seg["end_s"] <= c["start_s"] or seg["start_s"] >= c["end_s"] for c in chosen):
            chosen.append(seg)
    return sorted(chosen, key=lambda s: s["start_s"])


def cluster_window(client: Client, task: str = "block", instance: str | None = None,
                   components: Iterable[str] | str | None = None,
                   scope: str = "machine") -> ClusterWindow:
    """``ClusterWindow(client, task, ...)``: what ``ek.measure(task, cluster=client)`` returns."""
    return ClusterWindow(client, task, instance=instance, components=components, scope=scope)


measure_cluster = cluster_window


def wait_for_reading(window: ClusterWindow, worker: str, timeout_s: float = 10.0,
                     min_j: float = 0.0) -> float:
    """Block until ``worker`` has published a reading of at least ``min_j`` (to 1e-9
    relative, the float rounding of counter differences) in ``window``; return it."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = window.energy_so_far().get(worker)
        if got is not None and got >= min_j * (1 - 1e-9):
            return got
        if time.monotonic() > deadline:
            raise TimeoutError(f"no reading >= {min_j} J from {worker} within {timeout_s} s")
        time.sleep(0.02)
