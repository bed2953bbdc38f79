"""Estimates for components no counter covers, always labelled ``estimate``.

- cpu: power = idle + (max − idle) × utilisation, utilisation = busy CPU s ÷ (logical CPUs
  × wall s) — the linear model of Cloud Carbon Footprint (CCF). The reading is cumulative
  like a counter's: idle power × monotonic time since open + (max − idle) ÷ CPUs × busy CPU
  seconds (``/proc/stat``), so an idle machine still costs its idle power. Idle and max:

  1. ``ek.configure(cpu_tdp_w=W)``: max = W, idle = 10 % of W (CodeCarbon's floor).
  2. A virtual machine — cloud VMs recognised offline from DMI (EC2 ``sys_vendor`` "Amazon
     EC2" with the instance type in ``product_name``, "Google Compute Engine", Azure's
     chassis asset tag, …), others from the CPUID hypervisor flag or a virtual DMI vendor —
     is charged its vCPUs' share of a host: vCPUs × the per-thread SPECpower coefficients
     of its microarchitecture (from the processor name, else the EC2 instance type, else
     the median of all architectures), as CCF does.
  3. Bare metal with the processor in CodeCarbon's TDP table: max = TDP × sockets, idle =
     10 % of it (CodeCarbon).
  4. Bare metal otherwise: logical CPUs × the SPECpower coefficients, as in 2.

  Bounds: one ``/proc/stat`` tick of every logical CPU at (max − idle) ÷ CPUs, and the
  coefficients' cited spread — the lowest and highest SPECpower server of the architecture
  (of every architecture coefficient when it is unknown), over idle and max alike.
- ram: memory in use (GB) × 0.375 W/GB, integrated over time.
- storage: bytes read + written × J/byte.

Constants, tables and their sources: :mod:`energykernel.counters._constants`.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..core import _proc
from ..core.config import settings
from . import _constants as C
from .base import Backend, BackendStatus, BoundTerms, Device

_MEMORY_REFRESH_S = 0.5  # memory in use is re-read at most this often

#: DMI values systemd counts as virtual machines (src/basic/virt.c, ``dmi_vendor_table``,
#: matched at the start of product_name, sys_vendor, board_vendor, bios_vendor, product_version).
VM_DMI_VENDORS: tuple[str, ...] = (
    "KVM", "OpenStack", "KubeVirt", "Amazon EC2", "QEMU", "VMware", "VMW", "innotek GmbH",
    "VirtualBox", "Xen", "Bochs", "Parallels", "BHYVE", "Hyper-V", "Apple Virtualization")
_VM_DMI_FIELDS = ("product_name", "sys_vendor", "board_vendor", "bios_vendor", "product_version")
#: Azure's DMI chassis asset tag (cloud-init ``tools/ds-identify``, ``is_azure_chassis``).
AZURE_ASSET_TAG = "7783-7084-3265-9085-8269-3286-77"
#: Cloud providers by DMI (field, value prefix) — cloud-init ``tools/ds-identify``
#: (dscheck_GCE, dscheck_AliYun, dscheck_Oracle, is_azure_chassis) and systemd (EC2).
CLOUD_DMI: tuple[tuple[str, str, str], ...] = (
    ("Amazon EC2", "sys_vendor", "Amazon EC2"),
    ("Google Compute Engine", "product_name", "Google Compute Engine"),
    ("Microsoft Azure", "chassis_asset_tag", AZURE_ASSET_TAG),
    ("Alibaba Cloud", "product_name", "Alibaba Cloud ECS"),
    ("Oracle Cloud", "chassis_asset_tag", "OracleCloud.com"),
)
#: Providers whose DMI identity is that of their virtual machines (Oracle also sells bare
#: metal with the same tag, and EC2 metal instances are told by their type, below).
_VM_ONLY_PROVIDERS = ("Google Compute Engine", "Microsoft Azure", "Alibaba Cloud")


@dataclass(frozen=True)
class Platform:
    """What this kernel runs on, as far as offline files tell."""

    virtual: bool
    provider: str = ""  # a CLOUD_DMI name, or "" if no cloud was recognised
    instance_type: str = ""  # where the hypervisor exposes it (EC2: DMI product_name)
    evidence: str = ""


def detect_platform(dmi: Mapping[str, str], cpu: _proc.CpuInfo) -> Platform:
    """Bare metal, a virtual machine or a cloud VM, from DMI fields and ``/proc/cpuinfo``."""
    provider, field = next(((name, f) for name, f, prefix in CLOUD_DMI
                            if dmi.get(f, "").startswith(prefix)), ("", ""))
    product = dmi.get("product_name", "")
    itype = product if provider == "Amazon EC2" else ""
    seen = [f"DMI {field} {dmi[field]!r}"] if provider else []
    if itype:
        seen.append(f"instance type {itype} (DMI product_name)")
    if itype.endswith(".metal"):  # systemd: EC2 metal instances end their type in .metal
        return Platform(False, provider, itype, "bare metal: " + ", ".join(seen))
    vendor = next((f"DMI {f} {dmi[f]!r}" for f in _VM_DMI_FIELDS
                   if dmi.get(f, "").startswith(VM_DMI_VENDORS)), "")
    if cpu.hypervisor:
        seen.append("cpuinfo hypervisor flag")
    if vendor and vendor not in seen:
        seen.append(vendor)
    virtual = cpu.hypervisor or bool(vendor) or provider in _VM_ONLY_PROVIDERS
    kind = ("cloud VM" if provider else "virtual machine") if virtual else "bare metal"
    label = f"{kind} ({provider})" if provider else kind
    return Platform(virtual, provider, itype,
                    f"{label}: {', '.join(seen) or 'no hypervisor flag, no virtual DMI vendor'}")


@dataclass(frozen=True)
class CpuModel:
    """The CPU estimate of one machine: ``idle_w + (max_w − idle_w) × utilisation``."""

    idle_w: float  # at 0 % utilisation, W
    max_w: float  # every logical CPU busy, W
    cpus: int  # logical CPUs (vCPUs) the utilisation is over
    low: float  # spread of the constants: true power ≥ model × low …
    high: float  # … and ≤ model × high
    cap_w: float  # the most power the spread allows
    source: str
    platform: Platform

    @property
    def j_per_busy_s(self) -> float:
        """Energy (J) per busy CPU second above idle: (max − idle) ÷ CPUs."""
        return (self.max_w - self.idle_w) / self.cpus

    def power_w(self, utilisation: float) -> float:
        return self.idle_w + (self.max_w - self.idle_w) * utilisation


def cpu_model(cpu: _proc.CpuInfo, platform: Platform, tdp_w: float | None = None) -> CpuModel:
    """Choose idle and max power (module docstring, cases 1–4) and their spread."""
    cpus = cpu.logical or os.cpu_count() or 1
    arch = C.architecture_of(cpu.model) if cpu.model else None
    archs = (arch,) if arch else C.aws_architectures(platform.instance_type)
    coef = (C.group_power(archs) if archs else None) or C.unknown_architecture_power()
    low, high = coef.ratios()
    row = None if platform.virtual or tdp_w is not None else C.lookup_cpu(cpu.model)
    if tdp_w is not None:
        max_w = tdp_w
        what = (f"configured cpu_tdp_w={tdp_w:g} W as max, idle "
                f"{C.IDLE_FRACTION_OF_TDP:.0%} of it (CodeCarbon)")
    elif row is not None:
        max_w = row.tdp_w * cpu.sockets
        what = f"{row.name} × {cpu.sockets} socket(s), {C.TDP_SOURCE}"
    else:
        max_w = cpus * coef.max_w
        unit = "vCPU" if platform.virtual else "thread"
        what = (f"{cpus} {unit}s × {coef.idle_w:.3g}–{coef.max_w:.3g} W per {unit} "
                f"({coef.label}: {coef.source})")
    by_tdp = tdp_w is not None or row is not None
    idle_w = max_w * C.IDLE_FRACTION_OF_TDP if by_tdp else cpus * coef.idle_w
    cap_w = max(idle_w * coef.idle_range_w[1] / coef.idle_w,
                max_w * coef.max_range_w[1] / coef.max_w)
    source = (f"{platform.evidence}; {what} = idle {idle_w:.3g} W, max {max_w:.3g} W; spread "
              f"×{low:.2g}–×{high:.2g} ({coef.spread})")
    return CpuModel(idle_w, max_w, cpus, low, high, cap_w, source, platform)


class EstimateBackend(Backend):
    """``root`` is where ``proc/cpuinfo``, ``proc/stat`` and ``sys/class/dmi/id`` are read
    (``/``: this machine); ``clock`` the monotonic clock idle power accrues on."""

    name = "estimate"
    method = "estimate"

    def __init__(self, root: str = "/", clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.enabled: set[str] = {"cpu", "ram", "storage"}
        self.root = root
        self._clock = clock
        self._busy_s: Callable[[], float] = (
            _proc.machine_cpu_busy_s if root == "/" else
            functools.partial(_proc.stat_busy_s, os.path.join(root, "proc", "stat")))

    def enable(self, components: set[str] | frozenset[str]) -> None:
        """Restrict the work done on each read to the components this backend covers."""
        self.enabled = set(components)

    def cpu_model(self) -> CpuModel:
        """This machine's CPU model (read now: cpuinfo, DMI, ``cpu_tdp_w``)."""
        cpu = _proc.read_cpuinfo(os.path.join(self.root, "proc", "cpuinfo"))
        if not cpu.model and self.root == "/":
            import platform

            cpu = cpu._replace(model=platform.processor())
        dmi = _proc.read_dmi(os.path.join(self.root, "sys", "class", "dmi", "id"))
        return cpu_model(cpu, detect_platform(dmi, cpu), settings().cpu_tdp_w)

    def probe(self) -> BackendStatus:
        devices = ["cpu:estimate", "ram:estimate"]
        if _proc.disk_io_bytes() is not None:
            devices.append("storage:estimate")
        comps = tuple(d.split(":")[0] for d in devices)
        reason = (
            f"always available; cpu {self.cpu_model().source}; ram {C.RAM_SOURCE}; storage "
            + (C.STORAGE_SOURCE if "storage" in comps else "unavailable (no disk I/O counters)")
        )
        return BackendStatus(self.name, True, reason, comps, tuple(devices))

    def _open(self) -> None:
        model = self._model = self.cpu_model()
        self._idle_w, self._j_per_busy_s = model.idle_w, model.j_per_busy_s
        self.devices = {
            "cpu:estimate": Device("cpu:estimate", "cpu", {
                "idle_w": model.idle_w, "max_w": model.max_w, "cpus": model.cpus,
                "source": model.source}),
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
        now = self._clock()
        self._t0 = now
        self._cpu0 = self._busy_s()
        self._io0 = io or 0
        self._ram_j = 0.0
        self._ram_t = now
        self._ram_checked = now
        self._ram_gb = _proc.memory_used_bytes() / 1e9
        self._last: dict[str, float] = dict.fromkeys(self.devices, 0.0)

    def bound_terms(self) -> dict[str, BoundTerms]:
        """CPU: one clock tick of busy time per logical CPU (the resolution of
        ``/proc/stat``) at (max − idle) ÷ CPUs — idle power accrues on a fine clock — and
        the spread of the constants (see the module docstring), never above its cap. RAM
        and storage: their constants come without a published spread, so only resolution
        (none to speak of) is bounded."""
        if "cpu:estimate" not in self.devices:
            return {}
        m = self._model
        tick_s = 1.0 / _proc.CLK_TCK
        return {"cpu:estimate": BoundTerms(
            m.cpus * tick_s * m.j_per_busy_s, low=m.low, high=m.high, cap_w=m.cap_w,
            source=(f"{m.cpus} CPUs × one {tick_s * 1e3:g} ms tick × {m.j_per_busy_s:.3g} W; "
                    f"constants ×{m.low:.2g}–×{m.high:.2g}, at most {m.cap_w:.3g} W"))}

    def _read(self) -> dict[str, float]:
        out = self._last
        now = self._clock()
        if "cpu" in self.enabled:
            out["cpu:estimate"] = ((now - self._t0) * self._idle_w
                                   + (self._busy_s() - self._cpu0) * self._j_per_busy_s)
        if "ram" in self.enabled:
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
