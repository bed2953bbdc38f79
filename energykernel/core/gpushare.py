"""GPU energy of this process tree under ``scope="process"``, where the GPU backend reports
per-process use (NVML: :meth:`~energykernel.counters.nvml.NvmlBackend.process_usage`).

A window notes its start time and the tree's pids (:func:`begin`); at its end
(:func:`attribute`) each GPU's energy is scaled by the tree's share of it
(:func:`~energykernel.core.accounting.gpu_process_share`), the run records ``gpu_share``
(energy-weighted over the GPUs) and ``gpu_share_basis``, and the ``gpu`` bounds follow
the share — or widen to [0, machine-wide] where the share is not known. A GPU backend
without per-process use (``amdsmi``, ``levelzero``, ``hwmon``, ``apple``) leaves the
``gpu`` figure machine-wide, as without ``scope="process"``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from . import _proc
from .accounting import GPU_SHARE_BASES, gpu_process_share

if TYPE_CHECKING:
    from .engine import Engine
    from .record import RunRecord

#: ``gpu_share_basis`` of a GPU whose backend could not answer: figure left machine-wide.
UNAVAILABLE = "unavailable"
#: Bases whose share is not known from NVML: the bounds widen to [0, machine-wide].
UNCERTAIN = (GPU_SHARE_BASES[2], GPU_SHARE_BASES[3], UNAVAILABLE)


class GpuStart(NamedTuple):
    since_us: int  # Unix time in µs (NVML's lastSeenTimeStamp)
    pids: frozenset[int]
    backend: Any


def begin(engine: Engine) -> GpuStart | None:
    """What :func:`attribute` needs, or None when the ``gpu`` backend has no per-process use."""
    backend = engine.component_backend.get("gpu")
    if backend is None or not hasattr(backend, "process_usage"):
        return None
    return GpuStart(int(time.time() * 1e6), _proc.tree_pids(), backend)


def attribute(record: RunRecord, engine: Engine, start: GpuStart, delta: Mapping[str, float],
              active: dict[str, float] | None = None) -> None:
    """Scale the run's ``gpu`` energy, bounds and active energy to the tree's share."""
    energy = record["energy_j"]
    if "gpu" not in energy:
        return
    devices = [d for d, comp in engine.device_component.items() if comp == "gpu" and d in delta]
    if not devices:
        return
    usage = start.backend.process_usage(start.since_us)
    ours = start.pids | _proc.tree_pids()
    total_j = shared_j = 0.0
    shares, bases = [], set()
    for device in devices:
        use = usage.get(device)
        share, basis = (1.0, UNAVAILABLE) if use is None else gpu_process_share(
            use.sm_util, use.compute, ours)
        shares.append(share)
        bases.add(basis)
        total_j += delta[device]
        shared_j += delta[device] * share
    share = shared_j / total_j if total_j > 0 else sum(shares) / len(shares)
    record["gpu_share"] = share
    record["gpu_share_basis"] = ",".join(sorted(bases))
    energy["gpu"] *= share
    if active is not None and "gpu" in active:
        active["gpu"] *= share
    bounds = record.get("energy_bounds_j", {})
    if "gpu" in bounds:
        lo, hi = bounds["gpu"]
        bounds["gpu"] = [0.0, hi] if bases & set(UNCERTAIN) else [lo * share, hi * share]
