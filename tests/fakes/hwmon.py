"""A faithful fake of the hwmon tree of an NVIDIA GH200 node, with a driver for power and time.

Layout as on a real host (``sys`` below stands for ``/sys``): each Grace meter is an ACPI
power meter (``ACPI000D``) bound to the ``acpi_power_meter`` driver::

    sys/devices/LNXSYSTM:00/LNXSYBUS:00/ACPI000D:0K/                  the ACPI device
    sys/devices/LNXSYSTM:00/LNXSYBUS:00/ACPI000D:0K/hwmon/hwmonN/     name = power_meter
    sys/devices/.../ACPI000D:0K/hwmon/hwmonN/device -> ../../../ACPI000D:0K
    sys/class/hwmon/hwmonN -> ../../devices/LNXSYSTM:00/LNXSYBUS:00/ACPI000D:0K/hwmon/hwmonN

with the ``power1_*`` files (``power1_average`` µW, ``power1_average_interval`` ms,
``power1_oem_info``, ``power1_model_number``, ``power1_serial_number``,
``power1_is_battery``, ``power1_accuracy``, …) in ``hwmonN/`` (newer kernels) or in the
ACPI device, seen as ``hwmonN/device/`` (older kernels). hwmon numbers are shuffled, and
other hwmon devices are present that are not Grace meters: ``coretemp`` and ``nvme``
(temperatures, no power files) and an ACPI power meter of the chassis
(``power1_oem_info`` "Chassis Power", not a Grace meter).

Time is simulated (:meth:`FakeGraceHwmon.advance`, :meth:`FakeGraceHwmon.monotonic` for
the backend's clock) in whole µs, so boundaries are exact. Each meter shows, as real ones
do, the mean of its true power over its last completed update period (50 ms, optionally
phase-shifted per meter). The true power of each socket is set per component
(:meth:`set_power`): CPU = cpu, SysIO = sysio, Grace = cpu + sysio + ram, Module = Grace +
gpu; :meth:`true_j` gives the exact energy since the fake was built.
"""

from __future__ import annotations

import os
import random
import threading
from dataclasses import dataclass, field
from pathlib import Path

ACPI_BUS = Path("devices") / "LNXSYSTM:00" / "LNXSYBUS:00"
KINDS = ("Module", "Grace", "CPU", "SysIO")
UPDATE_US = 50_000  # the meters' averaging interval: 50 ms


@dataclass
class FakeMeter:
    """One meter: where it lives, what it shows, and its true energy."""

    kind: str
    socket: int
    hwmon: str
    directory: Path  # where the power1_* files are
    attr: str = "power1_average"
    phase_us: int = 0  # update instants: phase + k × UPDATE_US
    fd: int = field(default=-1, repr=False)
    shown_uw: int = 0
    period_uj: float = 0.0  # true energy in the current update period
    period_start_us: int = 0
    total_j: float = 0.0  # true energy since the fake was built

    @property
    def oem_info(self) -> str:
        return f"{self.kind} Power Socket {self.socket}"

    @property
    def path(self) -> Path:
        return self.directory / self.attr


class FakeGraceHwmon:
    """The hwmon tree under ``base``; ``root`` is what ENERGYKERNEL_HWMON_ROOT takes.

    ``device_layout``: sockets whose meter files live in ``hwmonN/device/`` (older
    kernels); ``module``: whether a Module meter exists (False: a Grace CPU node);
    ``input_only``: sockets whose meters have ``power1_input`` instead of
    ``power1_average``; ``phases_us``: (socket, kind) → update phase in µs.
    """

    def __init__(
        self,
        base: Path,
        sockets: int = 2,
        *,
        device_layout: tuple[int, ...] = (1,),
        module: bool = True,
        input_only: tuple[int, ...] = (),
        phases_us: dict[tuple[int, str], int] | None = None,
        seed: int = 7,
    ) -> None:
        self.base = Path(base)
        self.sys = self.base / "sys"
        self.root = self.sys / "class" / "hwmon"
        self.root.mkdir(parents=True)
        self.t_us = 1_000_000_000  # the fake monotonic clock, µs
        self._lock = threading.Lock()
        self.power_w: dict[tuple[int, str], float] = {}
        kinds = KINDS if module else KINDS[1:]
        specs = [(s, k) for s in range(sockets) for k in kinds]
        others = ["coretemp", "nvme", "chassis"]
        numbers = list(range(len(specs) + len(others)))
        random.Random(seed).shuffle(numbers)
        self.meters: dict[tuple[int, str], FakeMeter] = {}
        for acpi_index, ((socket, kind), number) in enumerate(zip(specs, numbers, strict=False)):
            phase = (phases_us or {}).get((socket, kind), 0)
            attr = "power1_input" if socket in input_only else "power1_average"
            self._add_meter(acpi_index, f"hwmon{number}", socket, kind, attr,
                            socket in device_layout, phase)
        for name, number in zip(others, numbers[len(specs):], strict=False):
            self._add_other(name, f"hwmon{number}", len(specs))
        for socket in range(sockets):
            self.set_power(socket, cpu=60.0, sysio=10.0, ram=20.0, gpu=90.0 if module else 0.0)
        self.settle()

    # -- building ------------------------------------------------------------------
    def _link(self, target: Path, hwmon: str) -> None:
        os.symlink(os.path.relpath(target, self.root), self.root / hwmon)

    def _acpi_meter(self, acpi_index: int, hwmon: str) -> tuple[Path, Path]:
        """An ACPI power meter device and its hwmon directory (linked from the class)."""
        acpi = self.sys / ACPI_BUS / f"ACPI000D:{acpi_index:02x}"
        hw = acpi / "hwmon" / hwmon
        hw.mkdir(parents=True)
        os.symlink(f"../../../{acpi.name}", hw / "device")
        (hw / "name").write_text("power_meter\n")
        (acpi / "hid").write_text("ACPI000D\n")
        (acpi / "path").write_text(f"\\_SB_.PM{acpi_index:02X}\n")
        self._link(hw, hwmon)
        return acpi, hw

    def _add_meter(self, acpi_index: int, hwmon: str, socket: int, kind: str, attr: str,
                   in_device: bool, phase_us: int) -> None:
        acpi, hw = self._acpi_meter(acpi_index, hwmon)
        directory = acpi if in_device else hw
        meter = FakeMeter(kind, socket, hwmon, directory, attr, phase_us)
        files = {
            "power1_oem_info": f"{meter.oem_info}\n",
            "power1_model_number": "GH200\n",
            "power1_serial_number": "\n",
            "power1_is_battery": "0\n",
            "power1_accuracy": "95.0%\n",
        }
        if attr == "power1_average":
            files |= {"power1_average_interval": f"{UPDATE_US // 1000}\n",
                      "power1_average_interval_min": f"{UPDATE_US // 1000}\n",
                      "power1_average_interval_max": f"{UPDATE_US // 1000}\n"}
        for fname, text in files.items():
            (directory / fname).write_text(text)
        meter.path.write_text("0\n")
        os.chmod(meter.path, 0o444)
        meter.fd = os.open(meter.path, os.O_WRONLY)
        meter.period_start_us = self._period_start(meter)
        self.meters[socket, kind] = meter

    def _add_other(self, name: str, hwmon: str, acpi_index: int) -> None:
        if name == "chassis":  # an ACPI power meter that is not a Grace one
            acpi, _ = self._acpi_meter(acpi_index, hwmon)
            (acpi / "power1_oem_info").write_text("Chassis Power\n")
            (acpi / "power1_average").write_text("350000000\n")
            return
        temperature = {  # hwmon devices with temperatures only
            "coretemp": (Path("platform") / "coretemp.0" / "hwmon", "45000", "Package id 0"),
            "nvme": (Path("pci0000:00") / "0000:00:01.0" / "nvme" / "nvme0", "38850", "Composite"),
        }
        parent, millidegrees, label = temperature[name]
        hw = self.sys / "devices" / parent / hwmon
        hw.mkdir(parents=True)
        for fname, text in (("name", name), ("temp1_input", millidegrees), ("temp1_label", label)):
            (hw / fname).write_text(f"{text}\n")
        self._link(hw, hwmon)

    # -- driving -------------------------------------------------------------------
    def monotonic(self) -> float:
        """The simulated monotonic clock (s): give it to the backend as its clock."""
        return self.t_us / 1e6

    def set_power(self, socket: int, *, cpu: float | None = None, sysio: float | None = None,
                  ram: float | None = None, gpu: float | None = None) -> None:
        """Set the true power (W) of a socket's parts from now on."""
        with self._lock:
            for part, value in (("cpu", cpu), ("sysio", sysio), ("ram", ram), ("gpu", gpu)):
                if value is not None:
                    self.power_w[socket, part] = value

    def meter_power_w(self, socket: int, kind: str) -> float:
        p = {part: self.power_w.get((socket, part), 0.0) for part in ("cpu", "sysio", "ram", "gpu")}
        grace = p["cpu"] + p["sysio"] + p["ram"]
        return {"CPU": p["cpu"], "SysIO": p["sysio"], "Grace": grace,
                "Module": grace + p["gpu"]}[kind]

    def settle(self) -> None:
        """Show every meter's current true power at once (as after a long steady period)."""
        with self._lock:
            for meter in self.meters.values():
                self._show(meter, round(self.meter_power_w(meter.socket, meter.kind) * 1e6))

    def advance(self, dt_s: float) -> None:
        """Move time on by ``dt_s`` (whole µs), updating each meter at its period ends."""
        with self._lock:
            end_us = self.t_us + round(dt_s * 1e6)
            while self.t_us < end_us:
                step_to = min([end_us, *(m.period_start_us + UPDATE_US
                                         for m in self.meters.values())])
                for meter in self.meters.values():
                    energy_uj = self.meter_power_w(meter.socket, meter.kind) * (step_to - self.t_us)
                    meter.period_uj += energy_uj
                    meter.total_j += energy_uj * 1e-6
                self.t_us = step_to
                for meter in self.meters.values():
                    if meter.period_start_us + UPDATE_US == step_to:
                        # power1_average: the mean over the period just completed
                        self._show(meter, round(meter.period_uj / UPDATE_US * 1e6))
                        meter.period_uj = 0.0
                        meter.period_start_us = step_to

    def _period_start(self, meter: FakeMeter) -> int:
        return self.t_us - (self.t_us - meter.phase_us) % UPDATE_US

    @staticmethod
    def _show(meter: FakeMeter, power_uw: int) -> None:
        meter.shown_uw = power_uw
        data = f"{power_uw}\n".encode()
        os.pwrite(meter.fd, data, 0)
        os.ftruncate(meter.fd, len(data))

    def true_j(self, component: str, socket: int | None = None) -> float:
        """True energy of a component (cpu, ram, gpu, module, grace) since the fake began."""
        sockets = [socket] if socket is not None else sorted({s for s, _ in self.meters})
        total = 0.0
        with self._lock:
            for s in sockets:
                j = {k: self.meters[s, k].total_j if (s, k) in self.meters else 0.0 for k in KINDS}
                total += {"cpu": j["CPU"] + j["SysIO"], "ram": j["Grace"] - j["CPU"] - j["SysIO"],
                          "gpu": j["Module"] - j["Grace"], "module": j["Module"],
                          "grace": j["Grace"]}[component]
        return total

    def make_unreadable(self, socket: int, kind: str) -> Path:
        """Give a meter's power file mode 0400 (root only); return its path."""
        path = self.meters[socket, kind].path
        os.chmod(path, 0o400)
        return path

    def close(self) -> None:
        for meter in self.meters.values():
            if meter.fd >= 0:
                os.close(meter.fd)
                meter.fd = -1

    def __enter__(self) -> FakeGraceHwmon:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
