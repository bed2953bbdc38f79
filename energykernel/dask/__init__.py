"""Per-worker energy on a Dask cluster (optional extra ``energykernel[dask]``).

>>> from distributed import Client
>>> import energykernel.dask as ekd
>>> client = Client(cluster)
>>> with ekd.measure_cluster(client, "train") as w:   # or ek.measure("train", cluster=client)
...     client.compute(work).result()
>>> ek.dataset().energy.sel(instance=...)            # one instance per machine
>>> ekd.timeline(client).ek.plot(kind="timeline")

Each worker runs :class:`EnergyPlugin` (installed on first use, or by :func:`register`),
which keeps energykernel's counters and sampler running inside the worker process.
Importing this module imports ``distributed``; ``import energykernel`` never does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .plugin import PLUGIN_NAME, TOPIC, EnergyPlugin
from .window import (
    ClusterResult,
    ClusterWindow,
    _broadcast,
    _registered,
    cluster_window,
    ensure_registered,
    measure_cluster,
)

if TYPE_CHECKING:
    import xarray as xr
    from distributed import Client

__all__ = [
    "PLUGIN_NAME",
    "TOPIC",
    "ClusterResult",
    "ClusterWindow",
    "EnergyPlugin",
    "cluster_window",
    "measure_cluster",
    "read_workers",
    "register",
    "timeline",
    "unregister",
]


def register(client: Client, push_interval_s: float | None = None) -> None:
    """Install (or replace) :class:`EnergyPlugin` on every current and future worker.

    Windows install it on first use; call this to choose ``push_interval_s`` (how often
    an open window's reading is published, i.e. the most a lost worker can lose).
    """
    from .window import _client_key

    client.register_plugin(EnergyPlugin(push_interval_s), name=PLUGIN_NAME)
    _registered.add(_client_key(client))


def unregister(client: Client) -> bool:
    """Remove the plugin: each worker's callback and sampler stop, its engine closes.

    Returns False if it was not registered.
    """
    from .window import _client_key

    _registered.discard(_client_key(client))
    try:
        client.unregister_worker_plugin(PLUGIN_NAME)
    except ValueError:  # "The worker plugin energykernel does not exist"
        return False
    return True


def read_workers(client: Client) -> dict[str, dict[str, Any]]:
    """Each worker's snapshot: instance, host, pid, cumulative counters (J per device),
    its engine's components and methods, open windows."""
    ensure_registered(client)
    return _broadcast(client, {"op": "energykernel_read"})


def timeline(client: Client, since_s: float | None = None) -> xr.Dataset:
    """Every machine's sampled power in one Dataset: ``power (time, component)`` in W,
    with ``instance`` and ``task`` coordinates along ``time`` (instances one after the
    other, each in time order). One worker per instance (they share the counters);
    ``attrs["workers"]`` says which. ``since_s``: only samples after this Unix time."""
    import xarray as xr

    from ..core.engine import Sample
    from ..data.schema import timeline as _timeline

    ensure_registered(client)
    replies = _broadcast(client, {"op": "energykernel_timeline", "since_s": since_s})
    best: dict[str, dict[str, Any]] = {}
    for addr in sorted(replies):
        reply = replies[addr]
        inst = reply["instance"]
        if inst not in best or len(reply["samples"]) > len(best[inst]["samples"]):
            best[inst] = reply
    parts = []
    for inst in sorted(best):
        samples = [Sample(float(t), float(dt), dict(p), str(task))
                   for t, dt, p, task in best[inst]["samples"]]
        parts.append(_timeline(samples, inst))
    if not parts:
        ds = _timeline([], "")
    elif len(parts) == 1:
        ds = parts[0]
    else:
        ds = xr.concat(parts, dim="time", data_vars="all", coords="different",
                       compat="equals", join="outer")
    ds.attrs["title"] = "energykernel power timeline (Dask cluster)"
    ds.attrs["workers"] = "; ".join(f"{inst}: {best[inst]['worker']}" for inst in sorted(best))
    return ds
