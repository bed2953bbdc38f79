"""A fake ``amdsmi`` module (ROCm's AMD SMI Python bindings) with the real names and shapes.

``FakeAmdSmi(gpus)`` is a module object: install it with
``monkeypatch.setitem(sys.modules, "amdsmi", fake)``. As in ``amdsmi_interface.py``
(ROCm 6.x): functions are ``amdsmi_*``; every call but ``amdsmi_init`` fails with
``AMDSMI_STATUS_NOT_INIT`` before init; errors are ``AmdSmiLibraryException(err_code)``
(a subclass of ``AmdSmiException``, with ``err_code`` and a two-line ``str``);
``amdsmi_get_energy_count`` returns ``{"power", "energy_accumulator",
"counter_resolution", "timestamp"}`` (µJ per count; ``power`` is the pre-6.4 name of the
accumulator, gone in 7.x); ``amdsmi_get_power_info`` gives socket power in W with
``"N/A"`` for a field the GPU lacks (MI300: ``current_socket_power``; MI200 and before:
``average_socket_power``; 7.x adds ``socket_power``); ``amdsmi_get_power_cap_info`` gives µW. Energy advances from
each GPU's power in simulated time (:meth:`FakeAmdSmi.advance`), wrapping at 2**64.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from enum import IntEnum

AMDSMI_STATUS_SUCCESS = 0
AMDSMI_STATUS_INVAL = 1
AMDSMI_STATUS_NOT_SUPPORTED = 2
AMDSMI_STATUS_FAIL_LOAD_MODULE = 4
AMDSMI_STATUS_NO_PERM = 10
AMDSMI_STATUS_INIT_ERROR = 18
AMDSMI_STATUS_NOT_FOUND = 31
AMDSMI_STATUS_NOT_INIT = 32
AMDSMI_STATUS_DRIVER_NOT_LOADED = 34
AMDSMI_STATUS_UNKNOWN_ERROR = 0xFFFFFFFF

_INFO = {
    1: "AMDSMI_STATUS_INVAL - Invalid parameters",
    2: "AMDSMI_STATUS_NOT_SUPPORTED - Feature not supported",
    4: "AMDSMI_STATUS_FAIL_LOAD_MODULE - Fail to load lib",
    10: "AMDSMI_STATUS_NO_PERM - Permission Denied",
    18: "AMDSMI_STATUS_INIT_ERROR - Initialization error",
    31: "AMDSMI_STATUS_NOT_FOUND - Device Not found",
    32: "AMDSMI_STATUS_NOT_INIT - Device not initialized",
    34: "AMDSMI_STATUS_DRIVER_NOT_LOADED - Driver not loaded",
}
COUNTER_MODULUS = 2**64


class AmdSmiException(Exception):
    """Base smi exception class"""


class AmdSmiLibraryException(AmdSmiException):
    def __init__(self, err_code: int) -> None:
        err_code = abs(err_code)
        super().__init__(err_code)
        self.err_code = err_code
        self.err_info = _INFO.get(err_code, "AMDSMI_STATUS_UNKNOWN_ERROR - An unknown error occurred")

    def __str__(self) -> str:
        return f"Error code:\n\t{self.err_code} | {self.err_info}"

    def get_error_code(self) -> int:
        return self.err_code


class AmdSmiParameterException(AmdSmiException):
    pass


class AmdSmiInitFlags(IntEnum):
    INIT_ALL_PROCESSORS = 0xFFFFFFFF
    INIT_AMD_CPUS = 1
    INIT_AMD_GPUS = 2
    INIT_NON_AMD_CPUS = 4
    INIT_NON_AMD_GPUS = 8
    INIT_AMD_APUS = 3


@dataclass
class FakeAmdGpu:
    """One GPU. ``mi300=True``: current_socket_power; else average_socket_power."""

    market_name: str = "AMD Instinct MI250X"
    asic_serial: str = "0x0000000000000000"
    uuid: str = "00ff740c-0000-1000-8000-000000000000"
    bdf: str = "0000:c1:00.0"
    kfd_node: int = 1
    power_w: int = 200
    energy_supported: bool = True
    power_supported: bool = True
    mi300: bool = False
    resolution_uj: float = 15.3
    accumulator: int = 0  # raw counts, wraps at 2**64
    power_cap_uw: int | None = 560_000_000
    lost: bool = False
    key_power_only: bool = False  # pre-6.4 bindings: only the "power" key
    rocm7: bool = False  # 7.x bindings: no "power" key; power info has "socket_power"


@dataclass(frozen=True)
class processor_handle:  # as amdsmi_wrapper.amdsmi_processor_handle
    position: int


class FakeAmdSmi(types.ModuleType):
    """The fake module. ``init_error`` makes ``amdsmi_init`` raise that status code."""

    def __init__(self, gpus: list[FakeAmdGpu], init_error: int | None = None) -> None:
        super().__init__("amdsmi")
        self.gpus = gpus
        self.init_error = init_error
        self.initialised = 0
        self.calls: list[str] = []
        self.energy_uj: list[float] = [0.0] * len(gpus)  # the truth since built
        self.AmdSmiException = AmdSmiException
        self.AmdSmiLibraryException = AmdSmiLibraryException
        self.AmdSmiParameterException = AmdSmiParameterException
        self.AmdSmiInitFlags = AmdSmiInitFlags

    # -- test controls -------------------------------------------------------------
    def advance(self, dt_s: float) -> None:
        """Every GPU gains power × dt on its accumulator (whole counts; truth kept)."""
        for i, gpu in enumerate(self.gpus):
            self.energy_uj[i] += gpu.power_w * dt_s * 1e6
            counts = round(gpu.power_w * dt_s * 1e6 / gpu.resolution_uj)
            gpu.accumulator = (gpu.accumulator + counts) % COUNTER_MODULUS

    def _check(self, call: str) -> None:
        self.calls.append(call)
        if self.initialised <= 0:
            raise AmdSmiLibraryException(AMDSMI_STATUS_NOT_INIT)

    def _gpu(self, handle: processor_handle) -> FakeAmdGpu:
        if not isinstance(handle, processor_handle):
            raise AmdSmiParameterException(handle)
        if not 0 <= handle.position < len(self.gpus):
            raise AmdSmiLibraryException(AMDSMI_STATUS_INVAL)
        gpu = self.gpus[handle.position]
        if gpu.lost:
            raise AmdSmiLibraryException(AMDSMI_STATUS_DRIVER_NOT_LOADED)
        return gpu

    # -- amdsmi API ----------------------------------------------------------------
    def amdsmi_init(self, flag: AmdSmiInitFlags = AmdSmiInitFlags.INIT_AMD_GPUS) -> None:
        self.calls.append("amdsmi_init")
        if not isinstance(flag, AmdSmiInitFlags):
            raise AmdSmiParameterException(flag)
        if self.init_error is not None:
            raise AmdSmiLibraryException(self.init_error)
        self.initialised += 1

    def amdsmi_shut_down(self) -> None:
        self._check("amdsmi_shut_down")
        self.initialised -= 1

    def amdsmi_get_processor_handles(self) -> list[processor_handle]:
        self._check("amdsmi_get_processor_handles")
        return [processor_handle(i) for i in range(len(self.gpus))]

    def amdsmi_get_gpu_kfd_info(self, handle: processor_handle) -> dict:
        self._check("amdsmi_get_gpu_kfd_info")
        gpu = self._gpu(handle)
        return {"kfd_id": 1000 + gpu.kfd_node, "node_id": gpu.kfd_node, "current_partition_id": 0}

    def amdsmi_get_gpu_asic_info(self, handle: processor_handle) -> dict:
        self._check("amdsmi_get_gpu_asic_info")
        gpu = self._gpu(handle)
        return {"market_name": gpu.market_name, "vendor_id": "0x1002",
                "vendor_name": "Advanced Micro Devices Inc. [AMD/ATI]", "subvendor_id": "0x1002",
                "device_id": "0x740c", "rev_id": "0x01", "asic_serial": gpu.asic_serial,
                "oam_id": 0, "num_compute_units": 220, "target_graphics_version": "gfx90a"}

    def amdsmi_get_gpu_device_uuid(self, handle: processor_handle) -> str:
        self._check("amdsmi_get_gpu_device_uuid")
        return self._gpu(handle).uuid

    def amdsmi_get_gpu_device_bdf(self, handle: processor_handle) -> str:
        self._check("amdsmi_get_gpu_device_bdf")
        return self._gpu(handle).bdf

    def amdsmi_get_power_cap_info(self, handle: processor_handle) -> dict:
        self._check("amdsmi_get_power_cap_info")
        gpu = self._gpu(handle)
        if gpu.power_cap_uw is None:
            raise AmdSmiLibraryException(AMDSMI_STATUS_NOT_SUPPORTED)
        return {"power_cap": gpu.power_cap_uw, "default_power_cap": gpu.power_cap_uw,
                "dpm_cap": 1700, "min_power_cap": 0, "max_power_cap": gpu.power_cap_uw}

    def amdsmi_get_energy_count(self, handle: processor_handle) -> dict:
        self._check("amdsmi_get_energy_count")
        gpu = self._gpu(handle)
        if not gpu.energy_supported:
            raise AmdSmiLibraryException(AMDSMI_STATUS_NOT_SUPPORTED)
        out = {"power": gpu.accumulator, "energy_accumulator": gpu.accumulator,
               "counter_resolution": gpu.resolution_uj, "timestamp": 1_700_000_000_000_000_000}
        if gpu.key_power_only:
            del out["energy_accumulator"]
        if gpu.rocm7:
            del out["power"]
        return out

    def amdsmi_get_power_info(self, handle: processor_handle) -> dict:
        self._check("amdsmi_get_power_info")
        gpu = self._gpu(handle)
        if not gpu.power_supported:
            raise AmdSmiLibraryException(AMDSMI_STATUS_NOT_SUPPORTED)
        out = {"current_socket_power": gpu.power_w if gpu.mi300 else "N/A",
               "average_socket_power": "N/A" if gpu.mi300 else gpu.power_w,
               "gfx_voltage": 800, "soc_voltage": 900, "mem_voltage": 1200,
               "power_limit": (gpu.power_cap_uw or 0) // 1_000_000}
        if gpu.rocm7:
            out = {"socket_power": gpu.power_w, **out}
        return out
