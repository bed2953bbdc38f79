"""A fake ``pynvml`` module (nvidia-ml-py) with the real names, codes and error classes.

``FakePynvml(gpus)`` is a module object: install it with
``monkeypatch.setitem(sys.modules, "pynvml", fake)``. As in the real library, every call
but ``nvmlInit`` raises ``NVMLError_Uninitialized`` before init; init and shutdown are
reference-counted; ``NVMLError(code)`` returns the matching subclass
(``NVMLError(3)`` is an ``NVMLError_NotSupported``) with ``.value``; strings come back as
``str``. GPUs advance energy from their power in simulated time (:meth:`advance`).
"""

from __future__ import annotations

import string
import types
from dataclasses import dataclass

NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_ALREADY_INITIALIZED = 5
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18
NVML_ERROR_UNKNOWN = 999

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


@dataclass(frozen=True)
class _Handle:
    index: int


class FakePynvml(types.ModuleType):
    """The fake module. ``init_error`` makes ``nvmlInit`` raise that NVML code."""

    def __init__(self, gpus: list[FakeGpu], init_error: int | None = None) -> None:
        super().__init__("pynvml")
        self.gpus = gpus
        self.init_error = init_error
        self.refcount = 0
        self.calls: list[str] = []
        for name, value in globals().items():
            if name.startswith("NVML_") or name.startswith("NVMLError"):
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

    def nvmlDeviceGetHandleByUUID(self, uuid: str | bytes) -> _Handle:
        self._check("nvmlDeviceGetHandleByUUID")
        uuid = uuid.decode() if isinstance(uuid, bytes) else uuid
        for i, gpu in enumerate(self.gpus):
            if gpu.uuid == uuid:
                return _Handle(i)
        raise NVMLError(NVML_ERROR_NOT_FOUND)

    def nvmlDeviceGetIndex(self, handle: _Handle) -> int:
        self._check("nvmlDeviceGetIndex")
        self._gpu(handle)
        return handle.index

    def nvmlDeviceGetName(self, handle: _Handle) -> str:
        self._check("nvmlDeviceGetName")
        return self._gpu(handle).name

    def nvmlDeviceGetUUID(self, handle: _Handle) -> str:
        self._check("nvmlDeviceGetUUID")
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
