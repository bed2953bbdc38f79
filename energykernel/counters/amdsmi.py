"""AMD GPU energy through ROCm's AMD SMI (the ``amdsmi`` Python package; extra ``amd``).

Per visible GPU, device ``gpu:N`` with N its ROCm index (the order ROCr numbers GPUs in:
by KFD node where AMD SMI gives it, else AMD SMI's order). Energy comes from
``amdsmi_get_energy_count`` — ``energy_accumulator`` (``power`` before ROCm 6.4) counts of
``counter_resolution`` µJ since the driver loaded — where supported
(``meta["source"] == "energy_counter"``): a 64-bit counter, unwrapped with
:class:`~energykernel.counters._unwrap.WrapCounter` (a backwards step from below half its
range is a reset — the accumulator restarts from 0 after a GPU reset — and counts from 0).
Otherwise the power of ``amdsmi_get_power_info`` (``current_socket_power``, W, on MI300
and newer; ``socket_power`` in ROCm 7; ``average_socket_power`` before) is integrated with the trapezoid rule between
reads (``"power_integration"``) and the sampler is asked to read every 0.2 s.

Visible GPUs: ``ROCR_VISIBLE_DEVICES`` (indices or ``GPU-<unique id>`` UUIDs, matched
against the ASIC serial ROCr builds them from) first, then ``HIP_VISIBLE_DEVICES``
(indices or UUIDs, among those ROCr left visible); an entry that names no GPU is skipped
and said. The ``amdsmi`` package on PyPI holds the Python bindings only: it needs the
library ``libamd_smi.so`` of ROCm 6 or newer (package ``amd-smi-lib``) on the host.
Every AMD SMI error becomes a status reason, never a crash.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from ._gpulib import GpuLibraryBackend, LibGpu
from ._integrate import PowerIntegral
from ._unwrap import WrapCounter
from .base import BackendUnavailable, Device

NOT_INSTALLED = ("amdsmi is not installed: pip install 'energykernel[amd]' (the Python "
                 "bindings; they need ROCm 6+'s libamd_smi.so, package amd-smi-lib)")
#: The energy accumulator: 64 bits of ``counter_resolution`` µJ.
COUNTER_RANGE = 2**64 - 1
#: A backwards step from below this is a reset of the accumulator, not a wrap.
_RESET_BELOW = 2**63
#: AMD documents no refresh period for the accumulator; bounds assume NVML's ~100 ms (an
#: upper estimate: the SMU's metrics table is refreshed far more often on Instinct GPUs).
ENERGY_UPDATE_S = 0.1
#: Power assumed for a GPU whose power cap AMD SMI does not give (W): above any AMD GPU's
#: (Instinct MI355X: 1400 W).
UNKNOWN_GPU_POWER_W = 1500.0
#: Socket power fields (W), first present wins: MI300 and newer, ROCm 7's unified field,
#: MI200 and before.
_POWER_KEYS = ("current_socket_power", "socket_power", "average_socket_power")

# AMD SMI status codes (values fixed by amdsmi.h) that get a specific explanation.
_REASONS = {
    10: "no permission to use the GPU (add the user to the 'render' and 'video' groups: "
        "`sudo usermod -aG render,video $USER`)",
    34: "the amdgpu kernel driver is not loaded (no AMD GPU, or `sudo modprobe amdgpu`)",
    18: "AMD SMI could not initialise (no AMD GPU visible, or /dev/kfd and /dev/dri are "
        "not passed to this container: `docker run --device /dev/kfd --device /dev/dri`)",
    31: "no AMD GPU was found",
    4: "AMD SMI could not load a module it needs (check the ROCm installation)",
}
_NOT_SUPPORTED = 2


@dataclass
class _Gpu(LibGpu):
    counter: WrapCounter | None = None  # the energy accumulator (counts)
    resolution_uj: float = 0.0
    power_key: str = ""
    resets: int = 0


def amdsmi_reason(smi: ModuleType | None, exc: BaseException) -> str:
    """A readable reason for an AMD SMI failure."""
    code = getattr(exc, "err_code", None)
    if code in _REASONS:
        return f"AMD SMI: {_REASONS[code]}"
    text = str(exc).replace("\n\t", " ").replace("\n", " ").strip()
    return f"AMD SMI error: {text}" if code is not None else f"AMD SMI failed: {exc!r}"


def _number(value: Any) -> float | None:
    """A reading as a float, or None for AMD SMI's "N/A" (a field the GPU lacks)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _visible(spec: str, gpus: list[tuple[Any, str]], variable: str,
             notes: list[str]) -> list[tuple[Any, str]]:
    """The entries of ``gpus`` ((handle, serial) in index order) that ``spec`` names."""
    out: list[tuple[Any, str]] = []
    for raw in spec.split(","):
        entry = raw.strip()
        match = None
        if entry.isdigit() and int(entry) < len(gpus):
            match = gpus[int(entry)]
        elif entry.upper().startswith("GPU-"):
            wanted = entry[4:].lower().removeprefix("0x")
            found = [g for g in gpus if g[1] and g[1].lower().removeprefix("0x") == wanted]
            match = found[0] if found else None
        if match is None:
            if entry:
                notes.append(f"{variable} entry {entry!r} names no GPU here: skipped")
            continue
        if match not in out:
            out.append(match)
    return out


class AmdSmiBackend(GpuLibraryBackend):
    """Cumulative energy of each visible AMD GPU."""

    name = "amdsmi"
    method = "amdsmi"
    library = "AMD SMI"
    visibility_vars = ("ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES")
    energy_update_s = ENERGY_UPDATE_S
    unknown_power_w = UNKNOWN_GPU_POWER_W

    # -- the library -----------------------------------------------------------------
    def _import(self) -> ModuleType:
        printed = io.StringIO()
        try:  # the bindings print (not raise) when libamd_smi.so is missing, then fail
            with contextlib.redirect_stdout(printed):
                amdsmi = importlib.import_module("amdsmi")
        except ImportError:
            raise BackendUnavailable(NOT_INSTALLED) from None
        except Exception as exc:
            said = " ".join(printed.getvalue().split())
            raise BackendUnavailable(
                "the amdsmi package is installed but its library could not be loaded "
                f"({said or repr(exc)}): install ROCm 6+ or the amd-smi-lib package"
            ) from None
        return amdsmi

    def _start(self, lib: ModuleType) -> None:
        lib.amdsmi_init()

    def _stop(self, lib: ModuleType) -> None:
        lib.amdsmi_shut_down()

    def _reason(self, lib: ModuleType, exc: BaseException) -> str:
        return amdsmi_reason(lib, exc)

    def _energy_unit(self, gpu: Any) -> tuple[float, str]:
        return gpu.resolution_uj * 1e-6, f"{gpu.resolution_uj:.3g} µJ"

    # -- discovery -----------------------------------------------------------------
    def _ordered(self, smi: ModuleType) -> list[tuple[Any, str]]:
        """(handle, ASIC serial) of every GPU, in ROCm index order."""
        rows = []
        for position, handle in enumerate(smi.amdsmi_get_processor_handles()):
            node: float = position
            with contextlib.suppress(smi.AmdSmiException, AttributeError, KeyError, TypeError):
                node = int(smi.amdsmi_get_gpu_kfd_info(handle)["node_id"])
            serial = ""
            with contextlib.suppress(smi.AmdSmiException, AttributeError, KeyError, TypeError):
                serial = str(smi.amdsmi_get_gpu_asic_info(handle)["asic_serial"])
            rows.append((node, position, handle, serial))
        rows.sort(key=lambda r: (r[0], r[1]))
        return [(handle, serial) for _, _, handle, serial in rows]

    def _discover(self, smi: ModuleType) -> list[tuple[Device, _Gpu]]:
        """Devices and their first readings; amdsmi_init must have been called."""
        self.notes = []
        gpus = self._ordered(smi)
        index = {id(h): i for i, (h, _) in enumerate(gpus)}
        visible = gpus
        for variable in ("ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES"):
            spec = os.environ.get(variable)
            if spec is not None:
                visible = _visible(spec, visible, variable, self.notes)
        found = []
        now_s = self._clock()
        for handle, serial in visible:
            name = f"gpu:{index[id(handle)]}"
            meta: dict[str, Any] = {"index": index[id(handle)], "asic_serial": serial}
            for key, call, field in (("model", "amdsmi_get_gpu_asic_info", "market_name"),
                                     ("uuid", "amdsmi_get_gpu_device_uuid", None),
                                     ("bdf", "amdsmi_get_gpu_device_bdf", None)):
                with contextlib.suppress(smi.AmdSmiException, AttributeError, KeyError):
                    value = getattr(smi, call)(handle)
                    meta[key] = value[field] if field else value
            meta.setdefault("model", "AMD GPU")
            with contextlib.suppress(smi.AmdSmiException, AttributeError, KeyError, TypeError):
                cap_uw = _number(smi.amdsmi_get_power_cap_info(handle)["power_cap"])
                if cap_uw:
                    meta["power_limit_w"] = cap_uw / 1e6
            gpu = self._first_reading(smi, name, handle, meta, now_s)
            if gpu is None:
                continue
            meta["source"] = "energy_counter" if gpu.counter is not None else "power_integration"
            found.append((Device(name, "gpu", meta), gpu))
        return found

    def _first_reading(self, smi: ModuleType, name: str, handle: Any, meta: dict,
                       now_s: float) -> _Gpu | None:
        """The energy accumulator if it works, else a power reading, else None (noted)."""
        try:
            energy = smi.amdsmi_get_energy_count(handle)
            raw = energy.get("energy_accumulator", energy.get("power"))
            resolution_uj = _number(energy.get("counter_resolution"))
            if _number(raw) is not None and resolution_uj:
                meta["counter_resolution_uj"] = resolution_uj
                return _Gpu(name, handle, counter=WrapCounter(int(raw), COUNTER_RANGE, now_s),
                            resolution_uj=resolution_uj)
            meta["energy_counter_error"] = f"unusable energy count {energy!r}"
        except smi.AmdSmiException as exc:
            if getattr(exc, "err_code", None) != _NOT_SUPPORTED:
                meta["energy_counter_error"] = amdsmi_reason(smi, exc)
        try:
            info = smi.amdsmi_get_power_info(handle)
        except smi.AmdSmiException as exc:
            self.notes.append(f"{name} ({meta['model']}): no energy or power reading: "
                              f"{amdsmi_reason(smi, exc)}")
            return None
        key = next((k for k in _POWER_KEYS if _number(info.get(k)) is not None), None)
        if key is None:
            self.notes.append(f"{name} ({meta['model']}): no energy or power reading "
                              "(socket power N/A)")
            return None
        meta["power_field"] = key
        return _Gpu(name, handle, PowerIntegral(float(info[key]), now_s), power_key=key)

    # -- Backend -------------------------------------------------------------------
    def _read(self) -> dict[str, float]:
        smi = self._lib
        if smi is None:  # closed (or never opened)
            return {}
        now_s = self._clock()
        out: dict[str, float] = {}
        for gpu in self._gpus:
            try:
                if gpu.counter is not None:
                    energy = smi.amdsmi_get_energy_count(gpu.handle)
                    raw = int(energy.get("energy_accumulator", energy.get("power")))
                    if raw < gpu.counter.last_uj < _RESET_BELOW:  # a reset, not a wrap
                        gpu.resets += 1
                        self.devices[gpu.name].meta["counter_resets"] = gpu.resets
                        gpu.counter.last_uj = 0
                    gpu.counter.update(raw, now_s)
                elif gpu.power is not None:
                    power_w = _number(smi.amdsmi_get_power_info(gpu.handle).get(gpu.power_key))
                    if power_w is not None:
                        gpu.power.update(power_w, now_s)
            except (smi.AmdSmiException, TypeError, ValueError) as exc:
                self.devices[gpu.name].meta["last_error"] = amdsmi_reason(smi, exc)
            out[gpu.name] = self._joules(gpu)
        return out

    @staticmethod
    def _joules(gpu: _Gpu) -> float:
        if gpu.counter is not None:  # counts × µJ per count
            return gpu.counter.total_uj * gpu.resolution_uj * 1e-6
        return gpu.power.total_j if gpu.power is not None else 0.0
