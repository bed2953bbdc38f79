"""RAPL package and DRAM counters read through the pyRAPL package (extra ``rapl``).

pyRAPL (0.2.x) opens ``/sys/class/powercap/intel-rapl/intel-rapl:N/energy_uj`` (and the
``dram`` subzone) at hard-coded paths, finds sockets from ``/sys/devices/system/cpu``
and returns raw µJ. It does not correct counter wraparound, so its own measurements
go negative or lose 262 kJ when a counter wraps. This backend uses pyRAPL's ``Sensor``
to read the raw counters and adds what pyRAPL lacks: wraparound correction (the same
:class:`~energykernel.counters._unwrap.WrapCounter` as ``rapl``, with the range read
from the zone directory of the very file pyRAPL opened), a poll interval, and a reason
when it cannot run.

Differences from ``rapl``: only ``package-N`` (→ ``cpu:package-N``) and ``dram``
(→ ``ram:dram-N``) domains — no psys/core/uncore detail, no ``intel-rapl-mmio``, no
multi-die packages; it ignores ``ENERGYKERNEL_POWERCAP_ROOT`` (pyRAPL's paths are fixed);
and each read goes through Python text files (seek + readline) instead of ``pread``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import sys
import time
from types import ModuleType
from typing import Any

from ._unwrap import WrapCounter, rapl_bound_terms
from .base import Backend, BackendStatus, BackendUnavailable, BoundTerms, Device
from .rapl import permission_reason

#: Where pyRAPL looks for zones (hard-coded in ``pyRAPL/device_api.py``).
PYRAPL_ZONES_DIR = "/sys/class/powercap/intel-rapl"
NOT_INSTALLED = "pyRAPL is not installed: pip install 'energykernel[rapl]'"


def _import_pyrapl() -> ModuleType:
    """Import pyRAPL without its side effect on logging.

    ``pyRAPL.outputs`` calls ``logging.warning`` at import when pymongo is missing, which
    configures the *root* logger of the user's process; a temporary handler and filter
    keep that from happening.
    """
    root = logging.getLogger()
    guard = logging.NullHandler()
    added = not root.handlers
    if added:
        root.addHandler(guard)

    def drop(record: logging.LogRecord) -> bool:
        return "You need to install" not in record.getMessage()

    root.addFilter(drop)
    try:
        import pyRAPL

        return pyRAPL
    finally:
        root.removeFilter(drop)
        if added:
            root.removeHandler(guard)


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _zone_limits(zone_dir: str) -> tuple[int | None, float]:
    """``max_energy_range_uj`` and the largest ``constraint_*_max_power_uw`` (in W)."""
    powers = [
        _read_int(os.path.join(zone_dir, f"constraint_{i}_max_power_uw")) or 0 for i in (0, 1)
    ]
    return _read_int(os.path.join(zone_dir, "max_energy_range_uj")), max(powers) * 1e-6


class PyRaplBackend(Backend):
    """Package and DRAM energy from pyRAPL's ``Sensor``, wrap-corrected."""

    name = "pyrapl"
    method = "pyrapl"

    def __init__(self) -> None:
        super().__init__()
        self._clock = time.monotonic
        self._sensor: Any = None
        # (device name, index into Sensor.energy(), counter)
        self._slots: list[tuple[str, int, WrapCounter]] = []

    def _connect(self) -> tuple[Any, list[tuple[Device, int, str]]]:
        """A pyRAPL Sensor and, per counter: device, index in ``energy()``, zone dir."""
        if importlib.util.find_spec("pyRAPL") is None:
            raise BackendUnavailable(NOT_INSTALLED)
        if not os.path.isdir(PYRAPL_ZONES_DIR):
            raise BackendUnavailable(
                f"no RAPL powercap interface at {PYRAPL_ZONES_DIR} (pyRAPL's fixed path; "
                "not an Intel/AMD Linux host, or a VM/container without /sys/class/powercap)"
            )
        try:
            pyRAPL = _import_pyrapl()
        except Exception as exc:
            raise BackendUnavailable(
                f"pyRAPL is installed but cannot be imported on Python "
                f"{sys.version_info.major}.{sys.version_info.minor}: {exc!r}"
            ) from None
        try:
            sensor = pyRAPL.Sensor()
        except PermissionError as exc:
            raise BackendUnavailable(permission_reason(exc.filename or PYRAPL_ZONES_DIR)) from None
        except pyRAPL.PyRAPLException as exc:
            raise BackendUnavailable(
                f"pyRAPL cannot read RAPL here ({type(exc).__name__}): it needs one "
                f"'package-N' zone per CPU socket under {PYRAPL_ZONES_DIR} "
                "(multi-die packages and mmio-only zones are not supported by pyRAPL; "
                "the 'rapl' backend reads them)"
            ) from None
        except (OSError, ValueError) as exc:
            raise BackendUnavailable(f"pyRAPL failed to open its counters: {exc}") from None
        try:
            socket_ids = list(sensor._socket_ids)
            apis = dict(sensor._device_api)
            slots = []
            for kind, api in apis.items():
                files = api._sys_files
                for pos, socket_id in enumerate(api._socket_ids):
                    zone_dir = os.path.dirname(files[pos].name)
                    if int(kind) == int(pyRAPL.Device.PKG):
                        device = Device(f"cpu:package-{socket_id}", "cpu")
                    else:
                        device = Device(f"ram:dram-{socket_id}", "ram")
                    device.meta.update({"socket": socket_id, "path": zone_dir})
                    slots.append((device, socket_id * 2 + int(kind), zone_dir))
        except (AttributeError, IndexError, TypeError) as exc:
            _close_sensor(sensor)
            raise BackendUnavailable(
                f"unsupported pyRAPL version {getattr(pyRAPL, '__version__', '?')}: cannot "
                f"find the counter files it opened (needed for wraparound): {exc!r}"
            ) from None
        if not socket_ids or not slots:
            _close_sensor(sensor)
            raise BackendUnavailable("pyRAPL found no package or DRAM counter")
        slots.sort(key=lambda s: s[1])
        return sensor, slots

    def probe(self) -> BackendStatus:
        try:
            sensor, slots = self._connect()
            try:
                values = sensor.energy()
            finally:
                _close_sensor(sensor)
            if any(values[index] < 0 for _, index, _ in slots):
                raise BackendUnavailable("pyRAPL returned no value for a counter it opened")
        except BackendUnavailable as exc:
            return BackendStatus(self.name, False, str(exc))
        except Exception as exc:  # probe never raises
            return BackendStatus(self.name, False, f"pyRAPL failed: {exc!r}")
        devices = tuple(d.name for d, _, _ in slots)
        components = tuple(c for c in ("cpu", "ram") if any(d.component == c for d, _, _ in slots))
        reason = (
            f"pyRAPL reads {', '.join(devices)} from {PYRAPL_ZONES_DIR} "
            "(wraparound corrected by energykernel)"
        )
        return BackendStatus(self.name, True, reason, components, devices)

    def _open(self) -> None:
        sensor, slots = self._connect()
        try:
            now_s = self._clock()
            values = sensor.energy()
            counters = []
            for device, index, zone_dir in slots:
                range_uj, max_power_w = _zone_limits(zone_dir)
                device.meta.update({"max_energy_range_uj": range_uj, "zone_dir": zone_dir})
                first_uj = int(values[index])
                counters.append(
                    (device.name, index, WrapCounter(first_uj, range_uj, now_s, max_power_w))
                )
                self.devices[device.name] = device
        except BaseException:
            _close_sensor(sensor)
            self.devices.clear()
            raise
        self._sensor = sensor
        self._slots = counters

    def _read(self) -> dict[str, float]:
        now_s = self._clock()
        try:
            values = self._sensor.energy()
        except (OSError, ValueError):
            # Cumulative counters: a failed read loses nothing, the next one catches up.
            return {name: c.total_uj / 1e6 for name, _, c in self._slots}
        return {
            name: counter.update(int(values[index]), now_s) / 1e6
            for name, index, counter in self._slots
        }

    def bound_terms(self) -> dict[str, BoundTerms]:
        return rapl_bound_terms([(name, counter) for name, _, counter in self._slots])

    def poll_interval_s(self) -> float | None:
        intervals = [i for _, _, c in self._slots if (i := c.safe_interval_s()) is not None]
        return min(intervals) if intervals else None

    def close(self) -> None:
        with self._lock:
            if self._sensor is not None:
                _close_sensor(self._sensor)
            self._sensor = None
            self._slots = []
            self.devices.clear()
            super().close()


def _close_sensor(sensor: Any) -> None:
    """Close the files pyRAPL keeps open (it has no API for that)."""
    for api in getattr(sensor, "_device_api", {}).values():
        for f in getattr(api, "_sys_files", ()):
            with contextlib.suppress(Exception):
                f.close()
