"""NVIDIA Grace / Grace Hopper power meters through Linux hwmon (``/sys/class/hwmon``).

A Grace Hopper (GH200) or Grace superchip node exposes, per socket N, ACPI power meters
(driver ``acpi_power_meter``, hwmon ``name`` ``power_meter``) told apart only by their
``power1_oem_info`` string — never by hwmon number, which changes from boot to boot:

- ``Module Power Socket N``: the whole module (Grace CPU, Hopper GPU, their memories);
- ``Grace Power Socket N``: the Grace CPU: its CPU rail, SoC (SysIO) rail and LPDDR5X;
- ``CPU Power Socket N``: the CPU rail (the cores);
- ``SysIO Power Socket N``: the SoC rail (fabric and I/O).

Depending on the kernel the ``power1_*`` files are in the ACPI device
(``hwmonX/device/``) or in ``hwmonX/`` itself: both are searched. Each meter gives ``power1_average`` (µW,
the mean over its averaging interval, ``power1_average_interval`` ms, 50 ms on GH200);
a meter with only ``power1_input`` is read from that instead (``meta["reading"]`` says).

Devices (component in brackets), from the meters of socket N:

- ``cpu:socket-N``    [cpu]    = CPU + SysIO
- ``ram:socket-N``    [ram]    = Grace − CPU − SysIO
- ``gpu:socket-N``    [gpu]    = Module − Grace      (only where a Module meter exists)
- ``module:socket-N`` [detail] = Module
- ``grace:socket-N``  [detail] = Grace

so cpu + ram + gpu = Module, and Module and Grace are never added on top. Meters give
power, not energy: every read (window boundaries and the sampler, which is asked to read
every :data:`~energykernel.counters._integrate.POWER_POLL_S` = 0.2 s) integrates each
device's power since the previous read with the trapezoid rule on the monotonic clock.
A difference of meters (ram, gpu) is clamped at 0 per reading — the meters do not all
update at the same instant, so during a load step it can dip below 0 — and each clamp is
counted in ``meta["clamped_readings"]``. Clamping moves a reading towards the true
(non-negative) power, so it never widens the error.

With NVML on the same node the gpu figure comes from one backend only: ``hwmon`` comes
after ``nvml`` in the default order, so where NVML reads the Hopper GPU it answers for
``gpu`` (its per-GPU energy counter) and ``hwmon`` gives ``cpu`` and ``ram``; then
``gpu:socket-N`` is not counted. Without NVML (not installed, or asked for
``ENERGYKERNEL_BACKENDS=hwmon,…``) ``gpu`` is Module − Grace, which also holds the
module's HBM and the rest of the module outside the Grace meter.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any

from ._integrate import POWER_POLL_S, PowerIntegral
from .base import Backend, BackendStatus, BackendUnavailable, BoundTerms, Device

ROOT_ENV = "ENERGYKERNEL_HWMON_ROOT"
DEFAULT_ROOT = "/sys/class/hwmon"
#: The meters' update (averaging) period when ``power1_average_interval`` does not say (s).
UPDATE_S = 0.05
#: Power assumed for a meter that has given no reading (W): the most a GH200 module may
#: be configured to draw (NVIDIA GH200 data sheet: 450–1000 W), which bounds every part.
CEILING_W = 1000.0
KINDS = ("Module", "Grace", "CPU", "SysIO")
_OEM_RE = re.compile(r"^\s*(Module|Grace|CPU|SysIO)\s+Power\s+Socket\s+(\d+)\s*$", re.IGNORECASE)
_ATTRS = ("power1_average", "power1_input")


def permission_reason(path: str) -> str:
    """The status reason for a meter this process may not read, with the fix."""
    return (
        f"permission denied reading {path} (the Grace power meters are normally readable "
        "by everyone; this host restricts them). Fix: let a trusted group read them — "
        "`sudo groupadd -f hwmon && sudo usermod -aG hwmon $USER`, then "
        "`sudo chgrp hwmon /sys/class/hwmon/hwmon*/{,device/}power1_* && "
        "sudo chmod g+r /sys/class/hwmon/hwmon*/{,device/}power1_*` (a udev rule on "
        'SUBSYSTEM=="hwmon" keeps it across reboots) — or run as root.'
    )


@dataclass
class Meter:
    """One Grace power meter as found on disk."""

    kind: str  # "Module", "Grace", "CPU" or "SysIO"
    socket: int
    hwmon: str  # e.g. "hwmon7" (changes across boots: for messages only)
    path: str  # the file read, .../power1_average (or power1_input)
    update_s: float
    oem_info: str
    fd: int = -1
    last_w: float | None = None  # None: the last read failed
    max_w: float | None = None  # None: never read


@dataclass
class _Derived:
    """One device: the power of ``plus`` meters minus ``minus`` meters, integrated."""

    device: Device
    plus: tuple[Meter, ...]
    minus: tuple[Meter, ...] = ()
    integral: PowerIntegral | None = None
    clamped: int = 0

    @property
    def meters(self) -> tuple[Meter, ...]:
        return self.plus + self.minus


def _read_text(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except (OSError, ValueError):
        return None


def _hwmon_key(entry: str) -> tuple[int, str]:
    digits = "".join(c for c in entry if c.isdigit())
    return (int(digits) if digits else -1, entry)


@dataclass
class Survey:
    """What :func:`discover` found: the meters and what it passed over."""

    meters: list[Meter] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def discover(root: str) -> Survey:
    """Every Grace power meter under ``root``, by ``power1_oem_info``, socket and kind order.

    Raises :class:`BackendUnavailable` with a reason when there is none.
    """
    if not os.path.isdir(root):
        raise BackendUnavailable(
            f"no hwmon interface at {root} (not a Linux host, or /sys is not mounted in "
            "this container)"
        )
    survey = Survey()
    found: dict[tuple[int, str], Meter] = {}
    for entry in sorted(os.listdir(root), key=_hwmon_key):
        for directory in (os.path.join(root, entry), os.path.join(root, entry, "device")):
            oem = _read_text(os.path.join(directory, "power1_oem_info"))
            if oem is None:
                continue
            match = _OEM_RE.match(oem)
            if match is None:
                survey.notes.append(f"{entry} ({oem!r}) is not a Grace meter: ignored")
                break
            kind = next(k for k in KINDS if k.lower() == match.group(1).lower())
            socket = int(match.group(2))
            attr = next((a for a in _ATTRS if os.path.exists(os.path.join(directory, a))), None)
            if attr is None:
                survey.notes.append(f"{entry} ({oem}) has no power1_average or power1_input")
                break
            if (socket, kind) in found:
                survey.notes.append(f"{entry} ({oem}) repeats {found[socket, kind].hwmon}: ignored")
                break
            interval_ms = _read_text(os.path.join(directory, "power1_average_interval"))
            try:
                update_s = float(interval_ms) / 1000 if interval_ms else UPDATE_S
            except ValueError:
                update_s = UPDATE_S
            if attr == "power1_input":  # an instantaneous reading: assume the 50 ms cadence
                update_s = UPDATE_S
            found[socket, kind] = Meter(kind, socket, entry, os.path.join(directory, attr),
                                        update_s if update_s > 0 else UPDATE_S, oem)
            break
    if not found:
        raise BackendUnavailable(
            f"no Grace power meters under {root} (hwmon devices whose power1_oem_info is "
            "'Module/Grace/CPU/SysIO Power Socket N'): this is not an NVIDIA Grace or Grace "
            "Hopper node, or the ACPI power meter driver is not loaded "
            "(`sudo modprobe acpi_power_meter`)"
        )
    survey.meters = [found[k] for k in sorted(found, key=lambda k: (k[0], KINDS.index(k[1])))]
    return survey


def plan_devices(meters: list[Meter]) -> tuple[list[_Derived], list[str]]:
    """The devices the meters give (see the module docstring), and notes on what is missing."""
    by_socket: dict[int, dict[str, Meter]] = {}
    for meter in meters:
        by_socket.setdefault(meter.socket, {})[meter.kind] = meter
    devices: list[_Derived] = []
    notes: list[str] = []

    def add(name: str, component: str | None, plus: tuple[Meter, ...],
            minus: tuple[Meter, ...] = ()) -> None:
        formula = " − ".join([" + ".join(m.kind for m in plus), *(m.kind for m in minus)])
        meta: dict[str, Any] = {
            "socket": plus[0].socket,
            "formula": formula,
            "meters": {m.oem_info: m.path for m in plus + minus},
            "reading": ", ".join(sorted({os.path.basename(m.path) for m in plus + minus})),
            "update_interval_s": max(m.update_s for m in plus + minus),
        }
        if any(m.path.endswith("power1_input") for m in plus + minus):
            meta["reading"] += " (no power1_average: instantaneous power)"
        devices.append(_Derived(Device(name, component, meta), plus, minus))

    for socket in sorted(by_socket):
        m = by_socket[socket]
        cpu, sysio, grace, module = m.get("CPU"), m.get("SysIO"), m.get("Grace"), m.get("Module")
        cpu_meters = tuple(x for x in (cpu, sysio) if x is not None)
        if cpu is not None:
            add(f"cpu:socket-{socket}", "cpu", cpu_meters)
            if sysio is None:
                notes.append(f"socket {socket} has no SysIO meter: cpu is CPU alone")
        else:
            notes.append(f"socket {socket} has no CPU meter: no cpu or ram figure")
        if grace is not None and cpu is not None:
            add(f"ram:socket-{socket}", "ram", (grace,), cpu_meters)
        if module is not None and grace is not None:
            add(f"gpu:socket-{socket}", "gpu", (module,), (grace,))
        elif module is not None:
            notes.append(f"socket {socket} has no Grace meter: no gpu figure")
        if module is not None:
            add(f"module:socket-{socket}", None, (module,))
        if grace is not None:
            add(f"grace:socket-{socket}", None, (grace,))
    return devices, notes


def _open_meters(meters: list[Meter]) -> None:
    """Open every meter's file and take a first reading (raises BackendUnavailable)."""
    try:
        for meter in meters:
            try:
                meter.fd = os.open(meter.path, os.O_RDONLY)
            except PermissionError:
                raise BackendUnavailable(permission_reason(meter.path)) from None
            except OSError as exc:
                raise BackendUnavailable(f"cannot open {meter.path}: {exc}") from None
            if _read_meter(meter) is None:
                raise BackendUnavailable(f"cannot read {meter.path}: not a power in µW")
    except BaseException:
        _close_meters(meters)
        raise


def _close_meters(meters: list[Meter]) -> None:
    for meter in meters:
        if meter.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(meter.fd)
            meter.fd = -1


def _read_meter(meter: Meter) -> float | None:
    """The meter's power in W, or None if it cannot be read now."""
    try:
        power_w = int(os.pread(meter.fd, 32, 0)) * 1e-6
    except (OSError, ValueError):
        meter.last_w = None
        return None
    meter.last_w = power_w
    if meter.max_w is None or power_w > meter.max_w:
        meter.max_w = power_w
    return power_w


class HwmonBackend(Backend):
    """Cumulative energy of the Grace / Grace Hopper power meters, integrated from power."""

    name = "hwmon"
    method = "hwmon"

    def __init__(self, root: str | None = None) -> None:
        super().__init__()
        self.root = root or os.environ.get(ROOT_ENV, DEFAULT_ROOT)
        self._clock = time.monotonic
        self._meters: list[Meter] = []
        self._derived: list[_Derived] = []
        self.notes: list[str] = []

    def probe(self) -> BackendStatus:
        try:
            survey = discover(self.root)
            derived, notes = plan_devices(survey.meters)
            _open_meters(survey.meters)
            _close_meters(survey.meters)
        except BackendUnavailable as exc:
            return BackendStatus(self.name, False, str(exc))
        except Exception as exc:  # probe never raises
            return BackendStatus(self.name, False, f"cannot read {self.root}: {exc!r}")
        if not any(d.device.component for d in derived):
            return BackendStatus(self.name, False, "; ".join(notes) or "no usable meters")
        counted = [f"{d.device.name} = {d.device.meta['formula']}" for d in derived
                   if d.device.component]
        detail = [d.device.name for d in derived if not d.device.component]
        reading = sorted({d.device.meta["reading"] for d in derived})
        reason = (f"{len(survey.meters)} Grace power meters at {self.root} "
                  f"({', '.join(reading)}, integrated every {POWER_POLL_S} s); counted: "
                  f"{', '.join(counted)}")
        if detail:
            reason += f"; detail only: {', '.join(detail)}"
        if any(d.device.component == "gpu" for d in derived):
            reason += "; where nvml is selected too (it comes first) it gives gpu instead"
        if notes or survey.notes:
            reason += f" ({'; '.join(notes + survey.notes)})"
        components = tuple(c for c in ("cpu", "gpu", "ram")
                           if any(d.device.component == c for d in derived))
        return BackendStatus(self.name, True, reason, components,
                             tuple(d.device.name for d in derived))

    def _open(self) -> None:
        survey = discover(self.root)
        derived, notes = plan_devices(survey.meters)
        if not any(d.device.component for d in derived):
            raise BackendUnavailable("; ".join(notes) or "no usable meters")
        _open_meters(survey.meters)
        self._meters = survey.meters
        self.notes = notes + survey.notes
        now_s = self._clock()
        for item in derived:
            item.integral = PowerIntegral(self._power(item), now_s)
        self._derived = derived
        self.devices = {d.device.name: d.device for d in derived}

    def _power(self, item: _Derived) -> float:
        """The device's power from its meters' last readings, clamped at 0 (W)."""
        power_w = (sum(m.last_w or 0.0 for m in item.plus)
                   - sum(m.last_w or 0.0 for m in item.minus))
        if power_w < 0:
            item.clamped += 1
            item.device.meta["clamped_readings"] = item.clamped
            return 0.0
        return power_w

    def _read(self) -> dict[str, float]:
        now_s = self._clock()
        failed = {id(m) for m in self._meters if _read_meter(m) is None}
        out: dict[str, float] = {}
        for item in self._derived:
            integral = item.integral
            if integral is None:  # closed
                continue
            if failed and any(id(m) in failed for m in item.meters):
                # Lose nothing: the next good reading integrates across the gap.
                item.device.meta["last_error"] = "could not read " + ", ".join(
                    m.path for m in item.meters if id(m) in failed)
            else:
                integral.update(self._power(item), now_s)
            out[item.device.name] = integral.total_j
        return out

    def bound_terms(self) -> dict[str, BoundTerms]:
        """How far a window's energy can be from the truth, per device.

        Derivation, per meter (T: its update period, 50 ms; Δ ≤ 0.2 s: the time between
        two reads; P: the highest power it has read since open, :data:`CEILING_W` if none):

        - *Staleness.* A reading is the mean over the meter's last completed period, so
          a change of power shows up late: a step of ΔP reaches the readings over the next
          one to two periods, which loses exactly ΔP × T of energy (the partial period and
          the full one add to T whatever the phase). Inside a window the lag of a rise and
          of the fall after it cancel; at each end of the window up to T × P can be moved
          across the boundary: 2 T × P in all.
        - *Integration.* The trapezoid between two reads turns a step at an unknown instant
          into a ramp across the interval, misplacing at most ΔP × Δ / 2; a load that steps
          up after the window opens and down before it closes: P × Δ.

        So ``(2 T + Δ) × P`` per meter, and a device that is a sum or difference of meters
        takes the sum of their terms (the error of a difference is at most the sum of the
        errors, whatever the meters' update phases; clamping at 0 only shrinks it). A load
        that changes many times per poll interval errs less on average but is not strictly
        bounded: no sampled power can be.
        """
        out = {}
        for item in self._derived:
            powers = [(m.kind, CEILING_W if m.max_w is None else m.max_w, m.update_s)
                      for m in item.meters]
            abs_j = sum((2 * update_s + POWER_POLL_S) * p for _, p, update_s in powers)
            parts = " + ".join(f"{kind} {p:.4g} W" for kind, p, _ in powers)
            update_ms = max(u for _, _, u in powers) * 1e3
            out[item.device.name] = BoundTerms(
                abs_j, source=f"(2 × {update_ms:g} ms update + {POWER_POLL_S} s poll) × ({parts})")
        return out

    def poll_interval_s(self) -> float | None:
        return POWER_POLL_S if self._derived else None

    def close(self) -> None:
        with self._lock:
            _close_meters(self._meters)
            self._meters = []
            self._derived = []
            self.devices = {}
            super().close()
