"""A faithful fake of the Linux powercap RAPL tree, with a driver that advances counters.

Layout as on a real host (``sysfs`` below stands for ``/sys``)::

    sys/devices/virtual/powercap/intel-rapl/                 control type (enabled, uevent)
    sys/devices/virtual/powercap/intel-rapl/intel-rapl:0/    zone: name, energy_uj, ...
    sys/devices/virtual/powercap/intel-rapl/intel-rapl:0/intel-rapl:0:0/   subzone
    sys/class/powercap/intel-rapl       -> ../../devices/virtual/powercap/intel-rapl
    sys/class/powercap/intel-rapl:0     -> ../../devices/virtual/powercap/intel-rapl/intel-rapl:0
    sys/class/powercap/intel-rapl:0:0   -> .../intel-rapl:0/intel-rapl:0:0
    sys/devices/system/cpu/present, cpuN/topology/physical_package_id   (pyRAPL reads these)

``energy_uj`` counts 0..``max_energy_range_uj`` inclusive and wraps to 0, i.e. modulo
``range + 1``. Values are rewritten in place (``pwrite`` + ``ftruncate`` on a descriptor
kept open), so readers holding the file open — our ``pread`` and pyRAPL's ``seek`` +
``readline`` — see new values exactly as they do on sysfs. The fake keeps the true
cumulative energy of every zone in integer µJ so tests can compare exactly.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

#: A typical Intel ``max_energy_range_uj`` (2**32 energy units of 61.035 µJ).
INTEL_RANGE_UJ = 262_143_328_850


@dataclass
class FakeZone:
    """One zone: its sysfs directory, settings and true energy."""

    zone_id: str
    name: str
    path: Path
    range_uj: int
    power_w: float = 0.0
    max_power_uw: int | None = None
    mirror_of: str | None = None  # mmio copy of an MSR zone: same domain, same power
    raw_uj: int = 0
    total_uj: int = 0
    fd: int = field(default=-1, repr=False)


# zone_id, name, default power (W), constraint_0_max_power_uw (None: no file)
SERVER_LAYOUT: tuple[tuple[str, str, float, int | None], ...] = (
    ("intel-rapl:0", "package-0", 40.0, 150_000_000),
    ("intel-rapl:0:0", "core", 25.0, None),
    ("intel-rapl:0:1", "uncore", 5.0, None),
    ("intel-rapl:0:2", "dram", 6.0, 30_000_000),
    ("intel-rapl:1", "package-1", 30.0, 150_000_000),
    ("intel-rapl:1:0", "dram", 4.0, 30_000_000),
    ("intel-rapl:2", "psys", 90.0, 300_000_000),
    ("intel-rapl-mmio:0", "package-0", 40.0, 150_000_000),
)


class FakePowercap:
    """A powercap tree under ``base``; ``root`` is what ENERGYKERNEL_POWERCAP_ROOT takes."""

    def __init__(
        self,
        base: Path,
        layout: tuple[tuple[str, str, float, int | None], ...] = SERVER_LAYOUT,
        range_uj: int = INTEL_RANGE_UJ,
        start_uj: int = 0,
        cpus_per_package: int = 2,
    ) -> None:
        self.base = Path(base)
        self.sys = self.base / "sys"
        self.root = self.sys / "class" / "powercap"
        self.devices = self.sys / "devices" / "virtual" / "powercap"
        self.zones: dict[str, FakeZone] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.root.mkdir(parents=True)
        for control in sorted({z[0].partition(":")[0] for z in layout}):
            ctl = self.devices / control
            ctl.mkdir(parents=True)
            (ctl / "enabled").write_text("1\n")
            (ctl / "uevent").write_text("")
            os.symlink(os.path.relpath(ctl, self.root), self.root / control)
        for zone_id, name, power_w, max_power_uw in layout:
            self._add_zone(zone_id, name, power_w, max_power_uw, range_uj, start_uj)
        packages = sorted(
            int(z.name.split("-")[1]) for z in self.zones.values() if z.name.startswith("package-")
        )
        self._write_cpus(sorted(set(packages)) or [0], cpus_per_package)

    # -- building ------------------------------------------------------------------
    def _add_zone(
        self,
        zone_id: str,
        name: str,
        power_w: float,
        max_power_uw: int | None,
        range_uj: int,
        start_uj: int,
    ) -> None:
        control, _, nums = zone_id.partition(":")
        parts = nums.split(":")
        path = self.devices / control
        for depth in range(1, len(parts) + 1):
            path = path / f"{control}:{':'.join(parts[:depth])}"
        path.mkdir()
        files = {
            "name": f"{name}\n",
            "max_energy_range_uj": f"{range_uj}\n",
            "enabled": "1\n",
            "uevent": "",
            "constraint_0_name": "long_term\n",
            "constraint_0_power_limit_uw": f"{max_power_uw or 0}\n",
            "constraint_0_time_window_us": "999424\n",
        }
        if max_power_uw is not None:
            files["constraint_0_max_power_uw"] = f"{max_power_uw}\n"
        for fname, text in files.items():
            (path / fname).write_text(text)
            os.chmod(path / fname, 0o444)
        energy = path / "energy_uj"
        energy.write_text(f"{start_uj}\n")
        os.chmod(energy, 0o444)  # as after the udev group rule, or before Linux 5.10
        os.symlink(os.path.relpath(path, self.root), self.root / zone_id)
        mirror = None
        if control == "intel-rapl-mmio":
            mirror = next((z.zone_id for z in self.zones.values() if z.name == name), None)
        zone = FakeZone(zone_id, name, path, range_uj, power_w, max_power_uw, mirror, start_uj)
        zone.fd = os.open(energy, os.O_WRONLY)
        self.zones[zone_id] = zone

    def _write_cpus(self, packages: list[int], per_package: int) -> None:
        cpu_dir = self.sys / "devices" / "system" / "cpu"
        cpu_dir.mkdir(parents=True)
        n = len(packages) * per_package
        (cpu_dir / "present").write_text(f"0-{n - 1}\n" if n > 1 else "0\n")
        for cpu in range(n):
            topo = cpu_dir / f"cpu{cpu}" / "topology"
            topo.mkdir(parents=True)
            (topo / "physical_package_id").write_text(f"{packages[cpu // per_package]}\n")

    # -- driving -------------------------------------------------------------------
    def set_power(self, zone_id: str, power_w: float) -> None:
        with self._lock:
            self.zones[zone_id].power_w = power_w

    def add_energy(self, zone_id: str, energy_uj: int) -> None:
        """Advance one counter by exactly ``energy_uj`` (wrapping like the hardware)."""
        with self._lock:
            self._add(self.zones[zone_id], energy_uj)

    def set_raw(self, zone_id: str, raw_uj: int) -> None:
        """Put a counter at a raw value (e.g. just below the wrap) without adding energy."""
        with self._lock:
            zone = self.zones[zone_id]
            zone.raw_uj = raw_uj
            self._write(zone)

    def advance(self, dt_s: float) -> None:
        """Advance every counter by its power × ``dt_s`` (rounded to whole µJ)."""
        with self._lock:
            for zone in self.zones.values():
                src = self.zones[zone.mirror_of] if zone.mirror_of else zone
                self._add(zone, round(src.power_w * dt_s * 1e6))

    def _add(self, zone: FakeZone, energy_uj: int) -> None:
        zone.total_uj += energy_uj
        zone.raw_uj = (zone.raw_uj + energy_uj) % (zone.range_uj + 1)
        self._write(zone)

    @staticmethod
    def _write(zone: FakeZone) -> None:
        data = f"{zone.raw_uj}\n".encode()
        os.pwrite(zone.fd, data, 0)
        os.ftruncate(zone.fd, len(data))

    def total_uj(self, zone_id: str) -> int:
        """True energy the zone has counted since the fake was built (µJ)."""
        with self._lock:
            return self.zones[zone_id].total_uj

    def make_unreadable(self, zone_id: str) -> Path:
        """Give ``energy_uj`` the mode of Linux >= 5.10 (0400, root only); return its path."""
        path = self.zones[zone_id].path / "energy_uj"
        os.chmod(path, 0o400)
        return path

    def start(self, tick_s: float = 0.001) -> None:
        """Advance all counters in a thread at their power in real (monotonic) time."""
        self._stop.clear()

        def run() -> None:
            last = time.monotonic()
            while not self._stop.wait(tick_s):
                now = time.monotonic()
                self.advance(now - last)
                last = now

        self._thread = threading.Thread(target=run, name="fake-powercap", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None

    def close(self) -> None:
        self.stop()
        for zone in self.zones.values():
            if zone.fd >= 0:
                os.close(zone.fd)
                zone.fd = -1

    def __enter__(self) -> FakePowercap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def pyrapl_patches(sys_dir: Path) -> list[tuple[object, str, object]]:
    """``(target, attribute, value)`` triples that make pyRAPL read ``sys_dir`` for /sys.

    pyRAPL has hard-coded paths and no option to change them, so its module-level
    ``open`` and ``os.path.exists`` (the only two ways it touches the file system, in
    ``pyRAPL/device_api.py``) are redirected; everything else — its discovery, file
    handling and reads — runs unchanged. Also points energykernel's pre-check there.
    """
    import builtins
    from types import SimpleNamespace

    from energykernel.counters import pyrapl as ek_pyrapl

    device_api = ek_pyrapl._import_pyrapl().device_api  # without pyRAPL's logging setup
    real_open = builtins.open

    def redirect(path: object) -> str:
        text = os.fspath(path)  # type: ignore[arg-type]
        return str(sys_dir / text[len("/sys/") :]) if text.startswith("/sys/") else text

    def fake_open(path: object, *args: object, **kwargs: object):
        return real_open(redirect(path), *args, **kwargs)  # type: ignore[call-overload]

    fake_os = SimpleNamespace(path=SimpleNamespace(exists=lambda p: os.path.exists(redirect(p))))
    return [
        (device_api, "open", fake_open),
        (device_api, "os", fake_os),
        (ek_pyrapl, "PYRAPL_ZONES_DIR", redirect(ek_pyrapl.PYRAPL_ZONES_DIR)),
    ]
