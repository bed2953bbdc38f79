"""A fake ``pynvml`` module (nvidia-ml-py) with the real names, codes and error classes.

``FakePynvml(gpus)`` is a module object: install it with
``monkeypatch.setitem(sys.modules, "pynvml", fake)``. As in the real library, every call
but ``nvmlInit`` raises ``NVMLError_Uninitialized`` before init; init and shutdown are
reference-counted; ``NVMLError(code)`` returns the matching subclass
(``NVMLError(3)`` is an ``NVMLError_NotSupported``) with ``.value``; strings come back as
``str``. GPUs advance energy from their power in simulated time (:meth:`advance`).

MIG: a :class:`FakeGpu` with ``mig`` devices is in MIG mode; as in NVML, a MIG device is
found by its ``MIG-<uuid>`` (``nvmlDeviceGetHandleByUUID``) or by slot under its parent
(``nvmlDeviceGetMigDeviceHandleByIndex``), answers ``nvmlDeviceIsMigDeviceHandle`` with a
``c_uint``, and has no index, energy counter or power reading of its own (those are the
parent's: ``nvmlDeviceGetDeviceHandleFromMigDeviceHandle``).

Processes: ``nvmlDeviceGetComputeRunningProcesses`` returns friendly objects (``pid``,
``usedGpuMemory`` — ``None`` where not available —, ``gpuInstanceId``,
``computeInstanceId``), as ``nvmlStructToFriendlyObject`` builds them;
``nvmlDeviceGetProcessUtilization(handle, timeStamp)`` returns the
``c_nvmlProcessUtilizationSample_t`` structures (``pid``, ``timeStamp`` in µs, ``smUtil``,
``memUtil``, ``encUtil``, ``decUtil``) newer than ``timeStamp``, and raises
``NVMLError_NotFound`` when there is none (NVML's answer to an empty buffer).
``nvmlDeviceGetFieldValues(handle, [(fieldId, scopeId), ...])`` returns a ctypes array of
``c_nvmlFieldValue_t`` with a per-entry ``nvmlReturn``; the memory scope of
``NVML_FI_DEV_POWER_INSTANT`` (mW, ``uiVal``) answers where the GPU reports memory power.
"""

from __future__ import annotations

import ctypes
import string
import types
from ctypes import (
    Structure,
    Union,
    c_double,
    c_int,
    c_int64,
    c_longlong,
    c_uint,
    c_uint32,
    c_ulong,
    c_ulonglong,
    c_ushort,
)
from dataclasses import dataclass, field

NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_ALREADY_INITIALIZED = 5
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_INSUFFICIENT_SIZE = 7
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18
NVML_ERROR_UNKNOWN = 999
NVML_DEVICE_MIG_DISABLE = 0x0
NVML_DEVICE_MIG_ENABLE = 0x1
#: MIG devices a MIG-capable GPU can hold (A100/H100: 7 slices).
MAX_MIG_DEVICES = 7
NVML_VALUE_TYPE_DOUBLE = 0
NVML_VALUE_TYPE_UNSIGNED_INT = 1
NVML_FI_DEV_POWER_AVERAGE = 185
NVML_FI_DEV_POWER_INSTANT = 186
NVML_POWER_SCOPE_GPU = 0
NVML_POWER_SCOPE_MODULE = 1
NVML_POWER_SCOPE_MEMORY = 2


class c_nvmlValue_t(Union):
    _fields_ = [("dVal", c_double), ("uiVal", c_uint), ("ulVal", c_ulong),
                ("ullVal", c_ulonglong), ("sllVal", c_longlong), ("siVal", c_int),
                ("usVal", c_ushort)]


class c_nvmlFieldValue_t(Structure):
    _fields_ = [("fieldId", c_uint32), ("scopeId", c_uint32), ("timestamp", c_int64),
                ("latencyUsec", c_int64), ("valueType", c_uint), ("nvmlReturn", c_uint),
                ("value", c_nvmlValue_t)]


class c_nvmlProcessUtilizationSample_t(Structure):
    _fields_ = [("pid", c_uint), ("timeStamp", c_ulonglong), ("smUtil", c_uint),
                ("memUtil", c_uint), ("encUtil", c_uint), ("decUtil", c_uint)]


class nvmlFriendlyObject:
    def __init__(self, dictionary: dict) -> None:
        for x in dictionary:
            setattr(self, x, dictionary[x])

_STRINGS = {
    1: "Uninitialized",
    2: "Invalid Argument",
    3: "Not Supported",
    4: "Insufficient Permissions",
    5: "Already Initialized",
    6: "Not Found",
    9: "Driver Not Loaded",
    12: "NVML Shared Library Not Found",
    15: "GPU is lost",
    18: "RM has detected an NVML/RM version mismatch.",
    999: "Unknown Error",
}


class NVMLError(Exception):
    """As in pynvml: ``NVMLError(value)`` builds the subclass registered for ``value``."""

    _valClassMapping: dict[int, type] = {}  # noqa: RUF012 - same name as pynvml

    def __new__(cls, value: int):
        if cls is NVMLError:
            cls = NVMLError._valClassMapping.get(value, cls)
        obj = Exception.__new__(cls)
        obj.value = value
        return obj

    def __init__(self, value: int) -> None:
        super().__init__(value)

    def __str__(self) -> str:
        return _STRINGS.get(self.value, f"NVML Error with code {self.value}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NVMLError) and self.value == other.value

    __hash__ = Exception.__hash__


def _make_error_classes() -> dict[str, type]:
    """``NVML_ERROR_NOT_SUPPORTED`` → class ``NVMLError_NotSupported`` (pynvml's rule)."""
    classes = {}
    for const, val in sorted(globals().items()):
        if not const.startswith("NVML_ERROR_"):
            continue
        cls_name = "NVMLError_" + string.capwords(const.replace("NVML_ERROR_", ""), "_").replace(
            "_", ""
        )

        def new(cls, *args, _val=val):
            return NVMLError.__new__(cls, _val)

        cls = type(cls_name, (NVMLError,), {"__new__": new})
        NVMLError._valClassMapping[val] = cls
        classes[cls_name] = cls
    return classes


_ERROR_CLASSES = _make_error_classes()
globals().update(_ERROR_CLASSES)


@dataclass
class FakeMig:
    """One MIG device: its ``MIG-<uuid>``, GPU and compute instance ids, and slot."""

    uuid: str
    gpu_instance_id: int
    compute_instance_id: int = 0
    slot: int = 0  # index for nvmlDeviceGetMigDeviceHandleByIndex
    name: str = "NVIDIA A100-SXM4-40GB MIG 1g.5gb"


@dataclass
class FakeGpu:
    """One GPU: Volta+ ones have the energy counter; older ones only power."""

    name: str = "NVIDIA A100-SXM4-40GB"
    uuid: str = "GPU-00000000-0000-0000-0000-000000000000"
    power_mw: int = 100_000
    energy_counter: bool = True
    power_supported: bool = True
    energy_mj: int = 0  # counter value, mJ since "driver load"
    lost: bool = False
    power_limit_mw: int | None = 400_000  # enforced power limit; None: not supported
    mig_capable: bool = True  # Ampere+ data-centre GPUs
    mig: list[FakeMig] = field(default_factory=list)  # non-empty: MIG mode enabled
    #: compute processes now on the GPU: (pid, used memory in bytes or None)
    processes: list[tuple[int, int | None]] = field(default_factory=list)
    #: per-process utilisation samples: (pid, timeStamp µs, smUtil %, memUtil %)
    util_samples: list[tuple[int, int, int, int]] = field(default_factory=list)
    process_util_supported: bool = True
    memory_power_mw: int | None = None  # memory-scope power (Hopper); None: not reported


@dataclass(frozen=True)
class _Handle:
    index: int


@dataclass(frozen=True)
class _MigHandle:
    index: int  # the parent GPU's
    slot: int


class FakePynvml(types.ModuleType):
    """The fake module. ``init_error`` makes ``nvmlInit`` raise that NVML code."""

    def __init__(self, gpus: list[FakeGpu], init_error: int | None = None) -> None:
        super().__init__("pynvml")
        self.gpus = gpus
        self.init_error = init_error
        self.refcount = 0
        self.calls: list[str] = []
        for name, value in globals().items():
            if name.startswith(("NVML_", "NVMLError", "c_nvml", "nvmlFriendly")):
                setattr(self, name, value)

    # -- test controls -------------------------------------------------------------
    def advance(self, dt_s: float) -> None:
        """Every GPU with a counter gains power × dt (exact integer mJ)."""
        for gpu in self.gpus:
            gpu.energy_mj += round(gpu.power_mw * dt_s)

    def _check(self, call: str) -> None:
        self.calls.append(call)
        if self.refcount <= 0:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)

    def _gpu(self, handle: _Handle) -> FakeGpu:
        if not isinstance(handle, _Handle) or not 0 <= handle.index < len(self.gpus):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        gpu = self.gpus[handle.index]
        if gpu.lost:
            raise NVMLError(NVML_ERROR_GPU_IS_LOST)
        return gpu

    # -- pynvml API ----------------------------------------------------------------
    def nvmlInit(self) -> None:
        self.calls.append("nvmlInit")
        if self.init_error is not None:
            raise NVMLError(self.init_error)
        self.refcount += 1

    def nvmlShutdown(self) -> None:
        self._check("nvmlShutdown")
        self.refcount -= 1

    def nvmlSystemGetDriverVersion(self) -> str:
        self._check("nvmlSystemGetDriverVersion")
        return "550.54.15"

    def nvmlDeviceGetCount(self) -> int:
        self._check("nvmlDeviceGetCount")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> _Handle:
        self._check("nvmlDeviceGetHandleByIndex")
        if not 0 <= index < len(self.gpus):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return _Handle(index)

    def nvmlDeviceGetHandleByUUID(self, uuid: str | bytes) -> _Handle | _MigHandle:
        self._check("nvmlDeviceGetHandleByUUID")
        uuid = uuid.decode() if isinstance(uuid, bytes) else uuid
        for i, gpu in enumerate(self.gpus):
            if gpu.uuid == uuid:
                return _Handle(i)
            for mig in gpu.mig:
                if mig.uuid == uuid:
                    return _MigHandle(i, mig.slot)
        raise NVMLError(NVML_ERROR_NOT_FOUND)

    def _mig(self, handle: _MigHandle) -> FakeMig:
        if not isinstance(handle, _MigHandle):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        gpu = self._gpu(_Handle(handle.index))
        for mig in gpu.mig:
            if mig.slot == handle.slot:
                return mig
        raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)

    def nvmlDeviceIsMigDeviceHandle(self, handle: _Handle | _MigHandle) -> ctypes.c_uint:
        self._check("nvmlDeviceIsMigDeviceHandle")
        if isinstance(handle, _MigHandle):
            self._mig(handle)
            return ctypes.c_uint(1)
        self._gpu(handle)
        return ctypes.c_uint(0)  # pynvml returns the c_uint itself, not its value

    def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self, handle: _MigHandle) -> _Handle:
        self._check("nvmlDeviceGetDeviceHandleFromMigDeviceHandle")
        self._mig(handle)
        return _Handle(handle.index)

    def nvmlDeviceGetMigMode(self, handle: _Handle) -> list[int]:
        self._check("nvmlDeviceGetMigMode")
        gpu = self._gpu(handle)
        if not gpu.mig_capable:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        mode = NVML_DEVICE_MIG_ENABLE if gpu.mig else NVML_DEVICE_MIG_DISABLE
        return [mode, mode]

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: _Handle) -> int:
        self._check("nvmlDeviceGetMaxMigDeviceCount")
        gpu = self._gpu(handle)
        if not gpu.mig_capable:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return MAX_MIG_DEVICES

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: _Handle, index: int) -> _MigHandle:
        self._check("nvmlDeviceGetMigDeviceHandleByIndex")
        gpu = self._gpu(handle)
        if not gpu.mig_capable:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        if not 0 <= index < MAX_MIG_DEVICES:
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        if not any(mig.slot == index for mig in gpu.mig):
            raise NVMLError(NVML_ERROR_NOT_FOUND)
        return _MigHandle(handle.index, index)

    def nvmlDeviceGetGpuInstanceId(self, handle: _MigHandle) -> int:
        self._check("nvmlDeviceGetGpuInstanceId")
        return self._mig(handle).gpu_instance_id

    def nvmlDeviceGetComputeInstanceId(self, handle: _MigHandle) -> int:
        self._check("nvmlDeviceGetComputeInstanceId")
        return self._mig(handle).compute_instance_id

    def nvmlDeviceGetIndex(self, handle: _Handle) -> int:
        self._check("nvmlDeviceGetIndex")
        self._gpu(handle)
        return handle.index

    def nvmlDeviceGetName(self, handle: _Handle | _MigHandle) -> str:
        self._check("nvmlDeviceGetName")
        if isinstance(handle, _MigHandle):
            return self._mig(handle).name
        return self._gpu(handle).name

    def nvmlDeviceGetUUID(self, handle: _Handle | _MigHandle) -> str:
        self._check("nvmlDeviceGetUUID")
        if isinstance(handle, _MigHandle):
            return self._mig(handle).uuid
        return self._gpu(handle).uuid

    def nvmlDeviceGetPowerUsage(self, handle: _Handle) -> int:
        self._check("nvmlDeviceGetPowerUsage")
        gpu = self._gpu(handle)
        if not gpu.power_supported:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return gpu.power_mw

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: _Handle) -> int:
        self._check("nvmlDeviceGetEnforcedPowerLimit")
        gpu = self._gpu(handle)
        if gpu.power_limit_mw is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return gpu.power_limit_mw

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: _Handle) -> int:
        self._check("nvmlDeviceGetTotalEnergyConsumption")
        gpu = self._gpu(handle)
        if not gpu.energy_counter:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return gpu.energy_mj

    def nvmlDeviceGetComputeRunningProcesses(self, handle: _Handle) -> list[nvmlFriendlyObject]:
        self._check("nvmlDeviceGetComputeRunningProcesses")
        gpu = self._gpu(handle)
        return [nvmlFriendlyObject({"pid": pid, "usedGpuMemory": mem, "gpuInstanceId": 0xFFFFFFFF,
                                    "computeInstanceId": 0xFFFFFFFF})
                for pid, mem in gpu.processes]

    def nvmlDeviceGetProcessUtilization(self, handle: _Handle,
                                        timeStamp: int) -> list[c_nvmlProcessUtilizationSample_t]:
        self._check("nvmlDeviceGetProcessUtilization")
        gpu = self._gpu(handle)
        if not gpu.process_util_supported:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        rows = [c_nvmlProcessUtilizationSample_t(pid, ts, sm, mem, 0, 0)
                for pid, ts, sm, mem in gpu.util_samples if ts > timeStamp]
        if not rows:
            raise NVMLError(NVML_ERROR_NOT_FOUND)
        return rows

    def nvmlDeviceGetFieldValues(self, handle: _Handle, fieldIds: list) -> ctypes.Array:
        self._check("nvmlDeviceGetFieldValues")
        gpu = self._gpu(handle)
        values = (c_nvmlFieldValue_t * len(fieldIds))()
        for i, ids in enumerate(fieldIds):
            field_id, scope = ids if isinstance(ids, tuple) else (ids, 0)
            values[i].fieldId, values[i].scopeId = field_id, scope
            if field_id == NVML_FI_DEV_POWER_INSTANT and scope == NVML_POWER_SCOPE_GPU:
                reading: int | None = gpu.power_mw if gpu.power_supported else None
            elif field_id == NVML_FI_DEV_POWER_INSTANT and scope == NVML_POWER_SCOPE_MEMORY:
                reading = gpu.memory_power_mw
            else:
                reading = None
            if reading is None:
                values[i].nvmlReturn = NVML_ERROR_NOT_SUPPORTED
            else:
                values[i].nvmlReturn = NVML_SUCCESS
                values[i].valueType = NVML_VALUE_TYPE_UNSIGNED_INT
                values[i].value.uiVal = reading
        return values
