"""RAPL energy counters through the Linux powercap interface (``/sys/class/powercap``).

Intel CPUs, and AMD Zen CPUs on Linux >= 5.8 (same ``intel-rapl`` driver and names),
expose each RAPL domain as a powercap *zone* ``intel-rapl:N`` with subzones
``intel-rapl:N:M``; recent Intel client parts add ``intel-rapl-mmio:N``. A zone is
identified by its ``name`` file, not its number.

Device naming, ``<cpu|ram>:<zone name>[-<package>]`` (component in brackets):

- ``package-0``            → ``cpu:package-0``  [cpu]   (``package-0-die-1`` likewise)
- ``dram`` under package 0 → ``ram:dram-0``     [ram]
- ``core`` under package 0 → ``cpu:core-0``     [detail] inside package-0
- ``uncore`` under pkg 0   → ``cpu:uncore-0``   [detail] inside package-0 (client iGPU)
- ``psys`` (top level)     → ``cpu:psys``       [detail] whole SoC, contains the packages
- ``intel-rapl-mmio:0`` named ``package-0`` while ``intel-rapl`` has one too
                           → ``cpu:package-0-mmio`` [detail] same domain read via MMIO
- a name already taken gets ``-<zone id>`` appended.

So ``cpu`` is the sum of the ``package-*`` zones and ``ram`` the sum of the ``dram``
zones; nested domains (psys ⊇ package ⊇ core/uncore) are per-device detail only and
never double-counted.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from dataclasses import dataclass, field

from ._unwrap import WrapCounter, rapl_bound_terms
from .base import Backend, BackendStatus, BackendUnavailable, BoundTerms, Device

ROOT_ENV = "ENERGYKERNEL_POWERCAP_ROOT"
DEFAULT_ROOT = "/sys/class/powercap"
_ZONE_RE = re.compile(r"^(intel-rapl(?:-mmio)?):(\d+(?::\d+)*)$")
_PACKAGE_RE = re.compile(r"^package-(\d+(?:-die-\d+)?)$")
_CONTROL_TYPES = ("intel-rapl", "intel-rapl-mmio")

UDEV_RULE = (
    'SUBSYSTEM=="powercap", ACTION=="add", '
    'RUN+="/bin/chgrp -R powercap /sys%p", RUN+="/bin/chmod -R g+r /sys%p"'
)


def permission_reason(path: str) -> str:
    """The status reason for an ``energy_uj`` this process may not read, with the fix."""
    return (
        f"permission denied reading {path} (RAPL energy counters are readable by root "
        "only since Linux 5.10). Fix: let a trusted group read them — "
        "`sudo groupadd -f powercap && sudo usermod -aG powercap $USER`, then for this boot "
        "`sudo chgrp -R powercap /sys/devices/virtual/powercap/intel-rapl* && "
        "sudo chmod -R g+r /sys/devices/virtual/powercap/intel-rapl*`, and to keep it across "
        f"reboots a udev rule in /etc/udev/rules.d/99-powercap.rules: {UDEV_RULE} — "
        "or run as root (or with CAP_DAC_READ_SEARCH). Security: do not make the counters "
        "world-readable (chmod o+r): unprivileged RAPL access is a power side channel "
        "that leaks secrets such as keys (PLATYPUS attack, CVE-2020-8694); grant a group, "
        "not everyone."
    )


@dataclass
class Zone:
    """One powercap zone as found on disk."""

    zone_id: str  # e.g. "intel-rapl:0:1"
    path: str
    name: str  # content of the ``name`` file, e.g. "package-0", "dram"
    control: str  # "intel-rapl" (MSR) or "intel-rapl-mmio"
    parent: str | None  # zone_id of the parent zone, None at top level
    range_uj: int | None
    max_power_w: float
    meta: dict = field(default_factory=dict)


def _read_text(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except (OSError, ValueError):
        return None


def _read_int(path: str) -> int | None:
    text = _read_text(path)
    try:
        return int(text) if text else None
    except ValueError:
        return None


def _zone_key(zone_id: str) -> tuple:
    control, _, nums = zone_id.partition(":")
    return (control != "intel-rapl", *(int(n) for n in nums.split(":")))


def discover(root: str) -> list[Zone]:
    """Every RAPL zone under ``root`` (flat sysfs links or nested dirs), in id order.

    Raises :class:`BackendUnavailable` with a reason when there is none.
    """
    if not os.path.isdir(root):
        raise BackendUnavailable(
            f"no RAPL powercap interface at {root} (not an Intel/AMD Linux host, or "
            "running in a VM/container without /sys/class/powercap)"
        )
    found: dict[str, str] = {}
    pending = [root, *(os.path.join(root, c) for c in _CONTROL_TYPES)]
    while pending:
        directory = pending.pop()
        try:
            entries = os.listdir(directory)
        except OSError:
            continue
        for entry in entries:
            if _ZONE_RE.match(entry) and entry not in found:
                found[entry] = os.path.join(directory, entry)
                pending.append(found[entry])
    zones = []
    for zone_id in sorted(found, key=_zone_key):
        path = found[zone_id]
        control, _, nums = zone_id.partition(":")
        parent = f"{control}:{nums.rsplit(':', 1)[0]}" if ":" in nums else None
        powers = [
            _read_int(os.path.join(path, f"constraint_{i}_max_power_uw")) or 0 for i in range(3)
        ]
        zones.append(
            Zone(
                zone_id=zone_id,
                path=path,
                name=_read_text(os.path.join(path, "name")) or zone_id,
                control=control,
                parent=parent,
                range_uj=_read_int(os.path.join(path, "max_energy_range_uj")),
                max_power_w=max(powers) * 1e-6,
                meta={"enabled": _read_text(os.path.join(path, "enabled"))},
            )
        )
    if not zones:
        raise BackendUnavailable(
            f"no intel-rapl zones under {root} (the intel_rapl_msr kernel module may not "
            "be loaded: `sudo modprobe intel_rapl_msr`; or this CPU has no RAPL)"
        )
    return zones


def name_devices(zones: list[Zone]) -> list[tuple[Zone, Device]]:
    """Give each zone its device name and component (see the module docstring)."""
    by_id = {z.zone_id: z for z in zones}
    msr_top = {z.name for z in zones if z.control == "intel-rapl" and z.parent is None}

    def top_of(zone: Zone) -> Zone:
        while zone.parent in by_id:
            zone = by_id[zone.parent]
        return zone

    out: list[tuple[Zone, Device]] = []
    taken: set[str] = set()
    for zone in zones:
        top = top_of(zone)
        # intel-rapl-mmio usually re-exposes the package-0 domain that intel-rapl (MSR)
        # already gives: prefer the MSR zone and keep the mmio copy as detail only.
        duplicate = top.control == "intel-rapl-mmio" and top.name in msr_top
        pkg = _PACKAGE_RE.match(top.name)
        suffix = pkg.group(1) if pkg else top.zone_id.partition(":")[2]
        if zone is top:
            label = zone.name
            component = "cpu" if pkg else "ram" if zone.name == "dram" else None
        else:
            label = f"{zone.name}-{suffix}"
            component = "ram" if zone.name == "dram" and pkg else None
        if duplicate:
            label, component = f"{label}-mmio", None
        name = f"{'ram' if zone.name == 'dram' else 'cpu'}:{label}"
        if name in taken:
            name = f"{name}-{zone.zone_id}"
        taken.add(name)
        meta = {
            "zone": zone.zone_id,
            "path": zone.path,
            "zone_name": zone.name,
            "interface": "mmio" if zone.control == "intel-rapl-mmio" else "msr",
            "max_energy_range_uj": zone.range_uj,
            "max_power_w": zone.max_power_w or None,
            **zone.meta,
        }
        if duplicate:
            meta["duplicate_of"] = name.removesuffix(f"-{zone.zone_id}").removesuffix("-mmio")
        out.append((zone, Device(name, component, meta)))
    return out


def _check_readable(zones: list[Zone]) -> None:
    for zone in zones:
        path = os.path.join(zone.path, "energy_uj")
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                int(os.pread(fd, 32, 0))
            finally:
                os.close(fd)
        except PermissionError:
            raise BackendUnavailable(permission_reason(path)) from None
        except (OSError, ValueError) as exc:
            raise BackendUnavailable(f"cannot read {path}: {exc}") from None


class RaplBackend(Backend):
    """Cumulative energy of every RAPL zone, read with ``pread`` on open descriptors."""

    name = "rapl"
    method = "rapl"

    def __init__(self, root: str | None = None) -> None:
        super().__init__()
        self.root = root or os.environ.get(ROOT_ENV, DEFAULT_ROOT)
        self._clock = time.monotonic
        self._fds: list[tuple[str, int, WrapCounter]] = []
        self._counted: list[tuple[str, int, WrapCounter]] = []  # no detail-only zones

    def probe(self) -> BackendStatus:
        try:
            zones = discover(self.root)
            _check_readable(zones)
            named = name_devices(zones)
        except BackendUnavailable as exc:
            return BackendStatus(self.name, False, str(exc))
        except Exception as exc:  # probe never raises
            return BackendStatus(self.name, False, f"cannot read {self.root}: {exc!r}")
        counted = [d.name for _, d in named if d.component]
        detail = [d.name for _, d in named if not d.component]
        components = tuple(c for c in ("cpu", "ram") if any(d.component == c for _, d in named))
        reason = f"{len(named)} powercap zones at {self.root}; counted: {', '.join(counted)}"
        if detail:
            reason += f"; detail only: {', '.join(detail)}"
        return BackendStatus(self.name, True, reason, components, tuple(d.name for _, d in named))

    def _open(self) -> None:
        zones = discover(self.root)
        _check_readable(zones)
        now_s = self._clock()
        fds: list[tuple[str, int, WrapCounter]] = []
        try:
            for zone, device in name_devices(zones):
                path = os.path.join(zone.path, "energy_uj")
                try:
                    fd = os.open(path, os.O_RDONLY)
                except PermissionError:
                    raise BackendUnavailable(permission_reason(path)) from None
                try:
                    first_uj = int(os.pread(fd, 32, 0))
                except BaseException:
                    os.close(fd)
                    raise
                counter = WrapCounter(first_uj, zone.range_uj, now_s, zone.max_power_w)
                fds.append((device.name, fd, counter))
                self.devices[device.name] = device
        except BaseException:
            for _, fd, _ in fds:
                os.close(fd)
            self.devices.clear()
            raise
        self._fds = fds
        self._counted = [f for f in fds if self.devices[f[0]].component is not None]

    def _read(self) -> dict[str, float]:
        return self._read_zones(self._fds)

    def _read_counted(self) -> dict[str, float]:
        return self._read_zones(self._counted)

    def _read_zones(self, zones: list[tuple[str, int, WrapCounter]]) -> dict[str, float]:
        now_s = self._clock()
        out = {}
        pread = os.pread
        for name, fd, counter in zones:
            try:
                raw_uj = int(pread(fd, 32, 0))
            except (OSError, ValueError):
                # A failed read loses nothing: the counter is cumulative, the next read
                # catches up (unless the outage outlasts a wrap).
                out[name] = counter.total_uj / 1e6
                continue
            out[name] = counter.update(raw_uj, now_s) / 1e6
        return out

    def bound_terms(self) -> dict[str, BoundTerms]:
        return rapl_bound_terms([(name, counter) for name, _, counter in self._fds])

    def poll_interval_s(self) -> float | None:
        intervals = [i for _, _, c in self._fds if (i := c.safe_interval_s()) is not None]
        return min(intervals) if intervals else None

    def close(self) -> None:
        with self._lock:
            for _, fd, _ in self._fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._fds = []
            self._counted = []
            self.devices.clear()
            super().close()

    def wraps(self) -> dict[str, int]:
        """Wraps seen per device since open (diagnostics)."""
        return {name: c.wraps for name, _, c in self._fds}
