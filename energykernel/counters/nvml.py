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

MIG: an entry naming a MIG device (``MIG-<uuid>``, or the older ``MIG-GPU-<uuid>/<gi>/<ci>``)
is mapped to its parent GPU (``nvmlDeviceGetHandleByUUID``, ``nvmlDeviceIsMigDeviceHandle``,
``nvmlDeviceGetDeviceHandleFromMigDeviceHandle``). NVML gives energy and power per
*physical* GPU only, so the device is the whole GPU — the work of every MIG instance on
it, this process's or not — and several MIG devices of one GPU count it once;
``meta["mig_devices"]`` lists them and the status says so.

Memory power: where NVML reports it (``nvmlDeviceGetFieldValues`` with
``NVML_FI_DEV_POWER_INSTANT`` at scope ``NVML_POWER_SCOPE_MEMORY``, mW — e.g. on Hopper
with a recent driver) the GPU also gets the detail device ``gpu:N:memory``, that power
integrated over the sampler's reads (every 0.2 s while such a meter exists). It is inside
the GPU's figure, so it is never added.

Processes: :meth:`NvmlBackend.process_usage` gives, per GPU, each process's SM
utilisation over a window (``nvmlDeviceGetProcessUtilization``) and the compute processes
on it (``nvmlDeviceGetComputeRunningProcesses``), from which ``scope="process"``
attributes GPU energy (:func:`energykernel.core.accounting.gpu_process_share`).
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from ._gpulib import GpuLibraryBackend, LibGpu
from ._integrate import POWER_POLL_S, PowerIntegral
from .base import BackendUnavailable, Device

__all__ = ["POWER_POLL_S", "NvmlBackend", "ProcessUsage", "nvml_reason"]

NOT_INSTALLED = "nvidia-ml-py is not installed: pip install 'energykernel[gpu]'"
#: The scope of a GPU that MIG devices were mapped to (status and ``meta["scope"]``).
MIG_SCOPE = ("energy is per physical GPU: the whole GPU, every MIG instance on it "
             "(this process's or not), counted once")
_MIG_OLD_RE = re.compile(r"^MIG-(GPU-[0-9A-Fa-f-]+)/(\d+)/(\d+)$")
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


#: Field ids of ``nvmlDeviceGetFieldValues`` values, by ``valueType`` (nvml.h).
_VALUE_FIELDS = ("dVal", "uiVal", "ulVal", "ullVal", "sllVal", "siVal", "usVal")


@dataclass
class _Gpu(LibGpu):
    last_mj: float = 0.0  # last raw energy counter (mJ)
    total_mj: float = 0.0  # energy counter since open (mJ)
    memory: bool = False  # the memory-power meter of a GPU (detail), not the GPU itself


@dataclass
class ProcessUsage:
    """What NVML says about the processes on one GPU over a window: SM utilisation summed
    per pid over its samples (``None``: NVML has none), and the compute processes on it
    now (pid → GPU memory used in bytes, ``None`` where NVML cannot say)."""

    sm_util: dict[int, float] | None
    compute: dict[int, int | None]


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _flag(value: Any) -> bool:
    """A pynvml boolean: ``nvmlDeviceIsMigDeviceHandle`` returns a ``c_uint``, not an int."""
    return bool(getattr(value, "value", value))


def _memory_power_w(nv: ModuleType, handle: Any) -> float | None:
    """The GPU's memory power (W) from the memory scope of ``NVML_FI_DEV_POWER_INSTANT``, or
    None where NVML does not report it."""
    try:
        ids = [(nv.NVML_FI_DEV_POWER_INSTANT, nv.NVML_POWER_SCOPE_MEMORY)]
        value = nv.nvmlDeviceGetFieldValues(handle, ids)[0]
    except (AttributeError, nv.NVMLError):
        return None
    if value.nvmlReturn != 0 or not 0 <= value.valueType < len(_VALUE_FIELDS):
        return None
    return float(getattr(value.value, _VALUE_FIELDS[value.valueType])) / 1000


def nvml_reason(nv: ModuleType, exc: BaseException) -> str:
    """A readable reason for an NVML failure."""
    value = getattr(exc, "value", None)
    if value in _REASONS:
        return f"NVML: {_REASONS[value]}"
    return f"NVML error: {exc} (code {value})" if value is not None else f"NVML failed: {exc!r}"


class NvmlBackend(GpuLibraryBackend):
    """Cumulative energy of each visible NVIDIA GPU."""

    name = "nvml"
    method = "nvml"
    library = "NVML"
    visibility_vars = ("CUDA_VISIBLE_DEVICES",)
    energy_update_s = ENERGY_UPDATE_S
    unknown_power_w = UNKNOWN_GPU_POWER_W

    def __init__(self) -> None:
        super().__init__()
        #: NVML index of a GPU → the MIG devices of ``CUDA_VISIBLE_DEVICES`` mapped to it.
        self._mig: dict[int, list[str]] = {}

    # -- the library -----------------------------------------------------------------
    def _import(self) -> ModuleType:
        try:
            import pynvml
        except ImportError:
            raise BackendUnavailable(NOT_INSTALLED) from None
        return pynvml

    def _start(self, lib: ModuleType) -> None:
        lib.nvmlInit()

    def _stop(self, lib: ModuleType) -> None:
        lib.nvmlShutdown()

    def _reason(self, lib: ModuleType, exc: BaseException) -> str:
        return nvml_reason(lib, exc)

    def _energy_unit(self, gpu: Any) -> tuple[float, str]:
        return ENERGY_UNIT_J, "1 mJ"

    def _describe(self, device: Device) -> str:
        if device.component is None:
            return f"{device.name} (memory power, detail)"
        text = super()._describe(device)
        if "mig_devices" in device.meta:
            text = f"{text[:-1]}; MIG {', '.join(device.meta['mig_devices'])}: {MIG_SCOPE})"
        return text

    # -- discovery -----------------------------------------------------------------

    def _visible_handles(self, nv: ModuleType) -> list[Any]:
        """NVML handles of the GPUs this process may use, per ``CUDA_VISIBLE_DEVICES``.

        As in CUDA, an entry that names no GPU ends the list (later ones are ignored). A
        MIG device counts as its parent GPU (recorded in ``self._mig``).
        """
        self._mig = {}
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
            elif entry.startswith("MIG-"):
                handle = self._mig_parent(nv, entry)
            if handle is None:
                if entry:
                    self.notes.append(
                        f"CUDA_VISIBLE_DEVICES entry {entry!r} names no GPU here; "
                        "it and later entries are ignored (as CUDA does)"
                    )
                break
            index = nv.nvmlDeviceGetIndex(handle)
            if entry.startswith("MIG-"):
                self._mig.setdefault(index, []).append(entry)
            if index not in seen:
                seen.add(index)
                handles.append(handle)
        return handles

    def _mig_parent(self, nv: ModuleType, entry: str) -> Any:
        """The parent GPU's handle of the MIG device ``entry`` names, or None."""
        try:
            old = _MIG_OLD_RE.match(entry)
            if old is None:  # MIG-<uuid> (CUDA 11.1+ / R470+)
                mig = nv.nvmlDeviceGetHandleByUUID(entry)
                if not _flag(nv.nvmlDeviceIsMigDeviceHandle(mig)):
                    return None
                return nv.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(mig)
            # MIG-GPU-<uuid>/<gpu instance>/<compute instance> (CUDA 11.0 / R450)
            parent = nv.nvmlDeviceGetHandleByUUID(old.group(1))
            wanted = (int(old.group(2)), int(old.group(3)))
            for i in range(nv.nvmlDeviceGetMaxMigDeviceCount(parent)):
                try:
                    mig = nv.nvmlDeviceGetMigDeviceHandleByIndex(parent, i)
                except nv.NVMLError:  # an empty slot
                    continue
                ids = (nv.nvmlDeviceGetGpuInstanceId(mig), nv.nvmlDeviceGetComputeInstanceId(mig))
                if ids == wanted:
                    return parent
        except AttributeError:
            self.notes.append("this nvidia-ml-py has no MIG functions: "
                              "pip install -U 'energykernel[gpu]'")
        except nv.NVMLError:
            pass
        return None

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
            meta: dict[str, Any] = {
                "index": index,
                "uuid": _text(nv.nvmlDeviceGetUUID(handle)),
                "model": _text(nv.nvmlDeviceGetName(handle)),
            }
            if index in self._mig:
                meta["mig_devices"] = list(self._mig[index])
                meta["scope"] = MIG_SCOPE
            power: PowerIntegral | None = None
            first = 0.0
            try:
                first = float(nv.nvmlDeviceGetTotalEnergyConsumption(handle))
            except nv.NVMLError as exc:
                if getattr(exc, "value", None) != _NOT_SUPPORTED:
                    meta["energy_counter_error"] = str(exc)
                try:
                    power = PowerIntegral(float(nv.nvmlDeviceGetPowerUsage(handle)) / 1000, now_s)
                except nv.NVMLError as exc2:
                    self.notes.append(
                        f"{name} ({meta['model']}): no energy or power reading: {exc2}"
                    )
                    continue
            # Not every GPU or pynvml gives a limit: bounds then assume the largest GPU.
            with contextlib.suppress(nv.NVMLError, AttributeError, TypeError, ValueError):
                meta["power_limit_w"] = float(nv.nvmlDeviceGetEnforcedPowerLimit(handle)) / 1000
            meta["source"] = "energy_counter" if power is None else "power_integration"
            found.append((Device(name, "gpu", meta), _Gpu(name, handle, power, last_mj=first)))
            memory_w = _memory_power_w(nv, handle)
            if memory_w is not None:
                mem = f"{name}:memory"
                found.append((Device(mem, None, {"index": index, "model": meta["model"],
                                                 "source": "power_integration",
                                                 "field": "NVML_FI_DEV_POWER_INSTANT (memory)"}),
                              _Gpu(mem, handle, PowerIntegral(memory_w, now_s), memory=True)))
        return found

    # -- Backend -------------------------------------------------------------------
    def _read(self) -> dict[str, float]:
        nv = self._lib
        if nv is None:  # closed (or never opened): no GPU handles to read
            return {}
        now_s = self._clock()
        out: dict[str, float] = {}
        for gpu in self._gpus:
            try:
                if gpu.memory:
                    memory_w = _memory_power_w(nv, gpu.handle)
                    if memory_w is not None and gpu.power is not None:
                        gpu.total_mj = gpu.power.update(memory_w, now_s) * 1000
                elif gpu.power is None:
                    raw_mj = float(nv.nvmlDeviceGetTotalEnergyConsumption(gpu.handle))
                    # The counter only restarts when the driver reloads: count from 0 then.
                    gpu.total_mj += raw_mj - gpu.last_mj if raw_mj >= gpu.last_mj else raw_mj
                    gpu.last_mj = raw_mj
                else:
                    power_w = float(nv.nvmlDeviceGetPowerUsage(gpu.handle)) / 1000
                    gpu.total_mj = gpu.power.update(power_w, now_s) * 1000
            except nv.NVMLError as exc:
                self.devices[gpu.name].meta["last_error"] = str(exc)
            out[gpu.name] = gpu.total_mj / 1000
        return out

    def _read_counted(self) -> dict[str, float]:
        if not any(gpu.memory for gpu in self._gpus):
            return self._read()
        return {n: v for n, v in self._read().items() if self.devices[n].component}

    def process_usage(self, since_us: int) -> dict[str, ProcessUsage]:
        """Per counted GPU: the SM utilisation of each process in NVML's samples newer than
        ``since_us`` (a Unix time in µs, NVML's ``lastSeenTimeStamp``) and the compute
        processes on it now. A GPU NVML cannot answer for is left out."""
        out: dict[str, ProcessUsage] = {}
        with self._lock:
            nv = self._lib
            if nv is None:
                return out
            for gpu in self._gpus:
                if gpu.memory:
                    continue
                try:
                    compute = {int(p.pid): p.usedGpuMemory
                               for p in nv.nvmlDeviceGetComputeRunningProcesses(gpu.handle)}
                except nv.NVMLError as exc:
                    self.devices[gpu.name].meta["process_error"] = str(exc)
                    continue
                sm: dict[int, float] = {}
                try:
                    for sample in nv.nvmlDeviceGetProcessUtilization(gpu.handle, since_us):
                        sm[int(sample.pid)] = sm.get(int(sample.pid), 0.0) + sample.smUtil
                except nv.NVMLError as exc:  # NotFound: no sample in the window
                    if getattr(exc, "value", None) != 6:
                        self.devices[gpu.name].meta["process_error"] = str(exc)
                    out[gpu.name] = ProcessUsage(None, compute)
                    continue
                out[gpu.name] = ProcessUsage(sm, compute)
        return out
