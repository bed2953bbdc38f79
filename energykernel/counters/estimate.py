"""Estimates for components no counter covers, always labelled ``estimate``.

- cpu: busy CPU seconds of the machine × watts per busy hardware thread (TDP / threads).
- ram: memory in use (GB) × 0.375 W/GB, integrated over time.
- storage: bytes read + written × J/byte.

Constants and their sources: :mod:`energykernel.counters._constants`.
"""

from __future__ import annotations

import os
import time

from ..core import _proc
from ..core.config import settings
from . import _constants as C
from .base import Backend, BackendStatus, BoundTerms, Device

_MEMORY_REFRESH_S = 0.5  # memory in use is re-read at most this often


class EstimateBackend(Backend):
    name = "estimate"
    method = "estimate"

    def __init__(self) -> None:
        super().__init__()
        self.enabled: set[str] = {"cpu", "ram", "storage"}

    def enable(self, components: set[str] | frozenset[str]) -> None:
        """Restrict the work done on each read to the components this backend covers."""
        self.enabled = set(components)

    def cpu_power_per_thread(self) -> tuple[float, str]:
        """Watts per busy hardware thread and where the figure comes from."""
        tdp = settings().cpu_tdp_w
        if tdp is not None:
            threads = os.cpu_count() or 1
            return tdp / threads, f"configured cpu_tdp_w={tdp:g} W over {threads} threads"
        model = C.cpu_model_name()
        spec = C.lookup_cpu(model)
        if spec is not None:
            return spec.watts_per_thread, spec.source
        return C.DEFAULT_WATTS_PER_THREAD, f"{C.DEFAULT_CPU_SOURCE} ({model or 'unknown'})"

    def probe(self) -> BackendStatus:
        devices = ["cpu:estimate", "ram:estimate"]
        if _proc.disk_io_bytes() is not None:
            devices.append("storage:estimate")
        comps = tuple(d.split(":")[0] for d in devices)
        watts, source = self.cpu_power_per_thread()
        reason = (
            f"always available; cpu {watts:.3g} W per busy thread ({source}); "
            f"ram {C.RAM_SOURCE}; storage "
            + (C.STORAGE_SOURCE if "storage" in comps else "unavailable (no disk I/O counters)")
        )
        return BackendStatus(self.name, True, reason, comps, tuple(devices))

    def _open(self) -> None:
        watts, source = self.cpu_power_per_thread()
        self._watts_per_thread = watts
        self.devices = {
            "cpu:estimate": Device("cpu:estimate", "cpu", {"watts_per_thread": watts, "source": source}),
            "ram:estimate": Device(
                "ram:estimate", "ram", {"watts_per_gb": C.RAM_WATTS_PER_GB, "source": C.RAM_SOURCE}
            ),
        }
        self._disks = _proc.block_devices()
        io = _proc.disk_io_bytes(self._disks)
        if io is not None:
            self.devices["storage:estimate"] = Device(
                "storage:estimate", "storage",
                {"j_per_byte": C.STORAGE_J_PER_BYTE, "source": C.STORAGE_SOURCE},
            )
        now = time.monotonic()
        self._cpu0 = _proc.machine_cpu_busy_s()
        self._io0 = io or 0
        self._ram_j = 0.0
        self._ram_t = now
        self._ram_checked = now
        self._ram_gb = _proc.memory_used_bytes() / 1e9
        self._last: dict[str, float] = dict.fromkeys(self.devices, 0.0)

    def bound_terms(self) -> dict[str, BoundTerms]:
        """CPU: one clock tick of busy time per logical CPU (the resolution of
        ``/proc/stat``), the spread of TDP per thread across the CPU table, and no more
        than every thread busy. RAM and storage: their constants come without a published
        spread, so only resolution (none to speak of) is bounded."""
        if "cpu:estimate" not in self.devices:
            return {}
        threads = os.cpu_count() or 1
        watts = self._watts_per_thread
        lowest, highest = C.WATTS_PER_THREAD_RANGE
        tick_s = 1.0 / _proc.CLK_TCK
        return {"cpu:estimate": BoundTerms(
            threads * tick_s * watts, low=min(1.0, lowest / watts),
            high=max(1.0, highest / watts), cap_w=threads * highest,
            source=(f"{threads} CPUs × one {tick_s * 1e3:g} ms tick × {watts:.3g} W; "
                    f"TDP per thread spans {lowest:.3g}–{highest:.3g} W in the table"))}

    def _read(self) -> dict[str, float]:
        out = self._last
        if "cpu" in self.enabled:
            out["cpu:estimate"] = (_proc.machine_cpu_busy_s() - self._cpu0) * self._watts_per_thread
        if "ram" in self.enabled:
            now = time.monotonic()
            self._ram_j += (now - self._ram_t) * self._ram_gb * C.RAM_WATTS_PER_GB
            self._ram_t = now
            if now - self._ram_checked >= _MEMORY_REFRESH_S:
                self._ram_gb = _proc.memory_used_bytes() / 1e9
                self._ram_checked = now
            out["ram:estimate"] = self._ram_j
        if "storage" in self.enabled and "storage:estimate" in self.devices:
            io = _proc.disk_io_bytes(self._disks)
            if io is not None:
                out["storage:estimate"] = max(0, io - self._io0) * C.STORAGE_J_PER_BYTE
        return dict(out)
