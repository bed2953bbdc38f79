"""NVIDIA GPU energy through NVML (``pynvml``, the module of ``nvidia-ml-py``; extra ``gpu``).

Per visible GPU (``CUDA_VISIBLE_DEVICES`` honoured), device ``gpu:N`` with N the NVML
index. Energy comes from ``nvmlDeviceGetTotalEnergyConsumption`` (mJ since the driver
loaded; Volta and newer) where supported — ``meta["source"] == "energy_counter"`` — and
otherwise from integrating ``nvmlDeviceGetPowerUsage`` (mW) with the trapezoid rule
between reads (``"power_integration"``); then ``poll_interval_s()`` asks the sampler to
read every :data:`POWER_POLL_S` so the integral follows the load. Every NVML error
becomes a status reason, never a crash.

``CUDA_VISIBLE_DEVICES`` indices are taken as NVML (PCI bus) indices, which is what CUDA
uses with ``CUDA_DEVICE_ORDER=PCI_BUS_ID``; CUDA's default order (fastest first) only
differs on hosts that mix GPU models — use UUIDs there.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from .base import Backend, BackendStatus, BackendUnavailable, BoundTerms, Device

NOT_INSTALLED = "nvidia-ml-py is not installed: pip install 'energykernel[gpu]'"
#: Read interval asked for while any GPU is measured by power integration (s).
POWER_POLL_S = 0.2
#: NVML's total-energy counter: mJ, refreshed about every 100 ms (Yang, Adamek and
#: Armour 2023, "Accurate and Convenient Energy Measurements for GPUs", arXiv 2312.02741).
ENERGY_UNIT_J = 1e-3
ENERGY_UPDATE_S = 0.1
#: Power assumed for a GPU whose power limit NVML does not give (W): above any GPU's.
UNKNOWN_GPU_POWER_W = 1500.0

# NVML return codes (values fixed by nvml.h) that get a specific explanation.
_REASONS = {
    9: "the NVIDIA kernel driver is not loaded (no NVIDIA GPU, or the nvidia module failed)",
    12: "the NVML library libnvidia-ml.so.1 was not found (no NVIDIA driver on this host, "
    "or a container started without the GPU runtime, e.g. `docker run --gpus all`)",
    4: "no permission to use the GPU (check access to /dev/nvidia*)",
    18: "the NVML library and the kernel driver versions differ (driver updated without "
    "a reboot): reboot or reload the nvidia kernel modules",
    15: "the GPU has fallen off the bus (GPU is lost); check `nvidia-smi` and the kernel log",
}
_NOT_SUPPORTED = 3


@dataclass
class _Gpu:
    name: str
    handle: Any
    counter: bool  # True: energy counter, False: power integration
    last_mj: float  # last raw energy (mJ) or last power (mW)
    last_t: float
    total_mj: float = 0.0


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def nvml_reason(nv: ModuleType, exc: Exception) -> str:
    """A readable reason for an NVML failure."""
    value = getattr(exc, "value", None)
    if value in _REASONS:
        return f"NVML: {_REASONS[value]}"
    return f"NVML error: {exc} (code {value})" if value is not None else f"NVML failed: {exc!r}"


class NvmlBackend(Backend):
    """Cumulative energy of each visible NVIDIA GPU."""

    name = "nvml"
    method = "nvml"

    def __init__(self) -> None:
        super().__init__()
        self._clock = time.monotonic
        self._nv: ModuleType | None = None
        self._gpus: list[_Gpu] = []
        self.notes: list[str] = []

    # -- discovery -----------------------------------------------------------------
    @staticmethod
    def _import() -> ModuleType:
        try:
            import pynvml
        except ImportError:
            raise BackendUnavailable(NOT_INSTALLED) from None
        return pynvml

    def _visible_handles(self, nv: ModuleType) -> list[Any]:
        """NVML handles of the GPUs this process may use, per ``CUDA_VISIBLE_DEVICES``.

        As in CUDA, an entry that names no GPU ends the list (later ones are ignored).
        """
        count = nv.nvmlDeviceGetCount()
        spec = os.environ.get("CUDA_VISIBLE_DEVICES")
        if spec is None:
            return [nv.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        handles: list[Any] = []
        seen: set[int] = set()
        for raw in spec.split(","):
            entry = raw.strip()
            handle = None
            if entry.isdigit() and int(entry) < count:
                handle = nv.nvmlDeviceGetHandleByIndex(int(entry))
            elif entry.startswith("GPU-"):
                handle = self._by_uuid(nv, entry, count)
            if handle is None:
                if entry:
                    self.notes.append(
                        f"CUDA_VISIBLE_DEVICES entry {entry!r} names no GPU here; "
                        "it and later entries are ignored (as CUDA does)"
                    )
                break
            index = nv.nvmlDeviceGetIndex(handle)
            if index not in seen:
                seen.add(index)
                handles.append(handle)
        return handles

    @staticmethod
    def _by_uuid(nv: ModuleType, uuid: str, count: int) -> Any:
        try:
            return nv.nvmlDeviceGetHandleByUUID(uuid)
        except nv.NVMLError:
            pass
        # CUDA also accepts a unique prefix of the UUID.
        matches = []
        for i in range(count):
            handle = nv.nvmlDeviceGetHandleByIndex(i)
            if _text(nv.nvmlDeviceGetUUID(handle)).startswith(uuid):
                matches.append(handle)
        return matches[0] if len(matches) == 1 else None

    def _discover(self, nv: ModuleType) -> list[tuple[Device, _Gpu]]:
        """Devices and their first readings; nvmlInit must have been called."""
        self.notes = []
        found = []
        now_s = self._clock()
        for handle in self._visible_handles(nv):
            index = nv.nvmlDeviceGetIndex(handle)
            name = f"gpu:{index}"
            meta = {
                "index": index,
                "uuid": _text(nv.nvmlDeviceGetUUID(handle)),
                "model": _text(nv.nvmlDeviceGetName(handle)),
            }
            try:
                first = float(nv.nvmlDeviceGetTotalEnergyConsumption(handle))
                counter = True
            except nv.NVMLError as exc:
                if getattr(exc, "value", None) != _NOT_SUPPORTED:
                    meta["energy_counter_error"] = str(exc)
                try:
                    first = float(nv.nvmlDeviceGetPowerUsage(handle))
                    counter = False
                except nv.NVMLError as exc2:
                    self.notes.append(
                        f"{name} ({meta['model']}): no energy or power reading: {exc2}"
                    )
                    continue
            # Not every GPU or pynvml gives a limit: bounds then assume the largest GPU.
            with contextlib.suppress(nv.NVMLError, AttributeError, TypeError, ValueError):
                meta["power_limit_w"] = float(nv.nvmlDeviceGetEnforcedPowerLimit(handle)) / 1000
            meta["source"] = "energy_counter" if counter else "power_integration"
            found.append((Device(name, "gpu", meta), _Gpu(name, handle, counter, first, now_s)))
        return found

    # -- Backend -------------------------------------------------------------------
    def probe(self) -> BackendStatus:
        try:
            nv = self._import()
        except BackendUnavailable as exc:
            return BackendStatus(self.name, False, str(exc))
        try:
            nv.nvmlInit()
        except Exception as exc:
            return BackendStatus(self.name, False, nvml_reason(nv, exc))
        try:
            found = self._discover(nv)
        except Exception as exc:
            return BackendStatus(self.name, False, nvml_reason(nv, exc))
        finally:
            with contextlib.suppress(Exception):
                nv.nvmlShutdown()
        notes = f" ({'; '.join(self.notes)})" if self.notes else ""
        if not found:
            if os.environ.get("CUDA_VISIBLE_DEVICES") is not None:
                why = f"no GPU visible with CUDA_VISIBLE_DEVICES={os.environ['CUDA_VISIBLE_DEVICES']!r}"
            else:
                why = "NVML found no usable GPU"
            return BackendStatus(self.name, False, why + notes)
        parts = [
            f"{d.name} {d.meta['model']} ({d.meta['source'].replace('_', ' ')})" for d, _ in found
        ]
        return BackendStatus(
            self.name, True, "; ".join(parts) + notes, ("gpu",), tuple(d.name for d, _ in found)
        )

    def _open(self) -> None:
        nv = self._import()
        try:
            nv.nvmlInit()
        except Exception as exc:
            raise BackendUnavailable(nvml_reason(nv, exc)) from None
        try:
            found = self._discover(nv)
            if not found:
                raise BackendUnavailable("NVML found no usable GPU")
        except Exception as exc:
            with contextlib.suppress(Exception):
                nv.nvmlShutdown()
            if isinstance(exc, BackendUnavailable):
                raise
            raise BackendUnavailable(nvml_reason(nv, exc)) from None
        self._nv = nv
        self._gpus = [gpu for _, gpu in found]
        self.devices = {d.name: d for d, _ in found}

    def _read(self) -> dict[str, float]:
        nv = self._nv
        if nv is None:  # closed (or never opened): no GPU handles to read
            return {}
        now_s = self._clock()
        out: dict[str, float] = {}
        for gpu in self._gpus:
            try:
                if gpu.counter:
                    raw_mj = float(nv.nvmlDeviceGetTotalEnergyConsumption(gpu.handle))
                    # The counter only restarts when the driver reloads: count from 0 then.
                    gpu.total_mj += raw_mj - gpu.last_mj if raw_mj >= gpu.last_mj else raw_mj
                    gpu.last_mj = raw_mj
                else:
                    power_mw = float(nv.nvmlDeviceGetPowerUsage(gpu.handle))
                    gpu.total_mj += (gpu.last_mj + power_mw) / 2 * (now_s - gpu.last_t)
                    gpu.last_mj = power_mw
                    gpu.last_t = now_s
            except nv.NVMLError as exc:
                self.devices[gpu.name].meta["last_error"] = str(exc)
            out[gpu.name] = gpu.total_mj / 1000
        return out

    def bound_terms(self) -> dict[str, BoundTerms]:
        """Energy counter: 1 mJ plus one ~100 ms refresh at the power limit. Power
        integration: one poll interval at the power limit at each end (NVML samples power
        for only part of each period on recent GPUs, so short bursts can be missed)."""
        out = {}
        for gpu in self._gpus:
            power_w = self.devices[gpu.name].meta.get("power_limit_w") or UNKNOWN_GPU_POWER_W
            if gpu.counter:
                out[gpu.name] = BoundTerms(ENERGY_UNIT_J + power_w * ENERGY_UPDATE_S,
                                           source=f"1 mJ + {power_w:.4g} W × 100 ms refresh")
            else:
                out[gpu.name] = BoundTerms(2 * power_w * POWER_POLL_S,
                                           source=f"{power_w:.4g} W × 2 × {POWER_POLL_S} s polls")
        return out

    def poll_interval_s(self) -> float | None:
        return POWER_POLL_S if any(not g.counter for g in self._gpus) else None

    def close(self) -> None:
        with self._lock:
            if self._nv is not None:
                with contextlib.suppress(Exception):
                    self._nv.nvmlShutdown()
            self._nv = None
            self._gpus = []
            self.devices = {}
            super().close()
