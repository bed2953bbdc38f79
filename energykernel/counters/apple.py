"""Apple Silicon energy through macOS IOReport (the ``zeus-apple-silicon`` package; extra ``apple``).

IOReport's "Energy Model" group gives cumulative energy (mJ) per SoC block. These are the
*platform's model-based figures* — macOS derives them from utilisation, frequency and
voltage, not from power sensors (``powermetrics(1)``: "estimated and may be inaccurate")
— so the status and the report say so; they are still the platform's own figures, not
energykernel's estimate. ``AppleEnergyMonitor.get_cumulative_energy()`` is read at every
boundary (an older package without it: one ``begin_window``/``end_window`` window,
restarted at each read); ``AppleEnergyMetrics`` fields map to devices:

- ``cpu:soc`` ← ``cpu_total_mj`` (component ``cpu``); each cluster
  (``efficiency_cluster_mj``, ``performance_cluster_mj``) is detail only
  (``cpu:efficiency-cluster-N``, ``cpu:performance-cluster-N``), inside the total;
- ``gpu:0`` ← ``gpu_mj`` and ``gpu:ane`` ← ``ane_mj`` (component ``gpu``: the Neural
  Engine is an accelerator beside the GPU, and powermetrics' combined power is CPU + GPU
  + ANE); ``gpu:0:sram`` ← ``gpu_sram_mj`` is detail only (it may overlap ``gpu_mj``);
- ``ram:dram`` ← ``dram_mj`` (component ``ram``).

A field the chip does not report is ``None`` and gives no device. Unavailable off macOS,
on Intel Macs, without the package, or when IOReport cannot be subscribed to.
"""

from __future__ import annotations

import contextlib
import importlib
import platform
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from .base import Backend, BackendStatus, BackendUnavailable, BoundTerms, Device

NOT_INSTALLED = ("zeus-apple-silicon is not installed: pip install 'energykernel[apple]' "
                 "(macOS on Apple Silicon only)")
#: What every status and report says about these figures.
MODEL_BASED = ("model-based figures from macOS IOReport's Energy Model (derived from "
               "utilisation, frequency and voltage, not power sensors)")
#: IOReport's energy channels count whole mJ.
RESOLUTION_J = 1e-3
_KEY = "energykernel"


def _host() -> tuple[str, str]:
    """(``sys.platform``, machine): ``("darwin", "arm64")`` on Apple Silicon."""
    return sys.platform, platform.machine()


def _chip() -> str:
    """The chip's name (``Apple M2 Pro``), or ``"Apple Silicon"``."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True,
                             text=True, timeout=2, check=True).stdout.strip()
        if out:
            return out
    return "Apple Silicon"


def _field(name: str, index: int | None = None) -> Callable[[Any], float | None]:
    """A reader of one ``AppleEnergyMetrics`` field (an element of a list field), mJ."""
    def read(metrics: Any) -> float | None:
        value = getattr(metrics, name, None)
        if index is not None:
            value = value[index] if isinstance(value, (list, tuple)) and index < len(value) else None
        return None if value is None else float(value)
    return read


def plan(metrics: Any) -> list[tuple[Device, Callable[[Any], float | None]]]:
    """The devices a sample's fields give, each with its reader (module docstring)."""
    rows: list[tuple[str, str | None, Callable[[Any], float | None], str]] = [
        ("cpu:soc", "cpu", _field("cpu_total_mj"), "cpu_total_mj"),
        ("gpu:0", "gpu", _field("gpu_mj"), "gpu_mj"),
        ("gpu:ane", "gpu", _field("ane_mj"), "ane_mj"),
        ("gpu:0:sram", None, _field("gpu_sram_mj"), "gpu_sram_mj"),
        ("ram:dram", "ram", _field("dram_mj"), "dram_mj"),
    ]
    for kind in ("efficiency", "performance"):
        clusters = getattr(metrics, f"{kind}_cluster_mj", None) or []
        rows += [(f"cpu:{kind}-cluster-{i}", None, _field(f"{kind}_cluster_mj", i),
                  f"{kind}_cluster_mj[{i}]") for i in range(len(clusters))]
    return [(Device(name, comp, {"field": field, "source": "model"}), read)
            for name, comp, read, field in rows if read(metrics) is not None]


class AppleBackend(Backend):
    """Cumulative energy of the Apple Silicon SoC's blocks, as macOS models them."""

    name = "apple"
    method = "apple"

    def __init__(self) -> None:
        super().__init__()
        self._monitor: Any = None
        self._readers: dict[str, Callable[[Any], float | None]] = {}
        self._last: dict[str, float] = {}
        self._total: dict[str, float] = {}
        self._cumulative = True

    # -- the library -----------------------------------------------------------------
    def _start(self) -> tuple[Any, Any]:
        """(monitor, a first sample); raises :class:`BackendUnavailable` with a reason."""
        system, machine = _host()
        if system != "darwin":
            raise BackendUnavailable(
                f"Apple Silicon energy (IOReport) exists only on macOS; this is {system}")
        if machine != "arm64":
            raise BackendUnavailable(
                f"this Mac's CPU is {machine}, not Apple Silicon: IOReport has no Energy "
                "Model here (and macOS exposes no RAPL)")
        try:
            module = importlib.import_module("zeus_apple_silicon")
        except ImportError:
            raise BackendUnavailable(NOT_INSTALLED) from None
        try:
            monitor = module.AppleEnergyMonitor()
            self._cumulative = hasattr(monitor, "get_cumulative_energy")
            if self._cumulative:
                sample = monitor.get_cumulative_energy()
            else:  # an older package: one window, restarted at each read
                monitor.begin_window(_KEY)
                sample = monitor.end_window(_KEY)
                monitor.begin_window(_KEY)
        except Exception as exc:
            raise BackendUnavailable(
                f"zeus-apple-silicon could not subscribe to IOReport's Energy Model: {exc}"
            ) from None
        return monitor, sample

    def probe(self) -> BackendStatus:
        try:
            monitor, sample = self._start()
        except BackendUnavailable as exc:
            return BackendStatus(self.name, False, str(exc))
        found = plan(sample)
        if not self._cumulative:
            with contextlib.suppress(Exception):
                monitor.end_window(_KEY)
        if not found:
            return BackendStatus(self.name, False,
                                 "IOReport gave no energy channel this package knows on this "
                                 "chip: pip install -U zeus-apple-silicon")
        comps = sorted({d.component for d, _ in found if d.component},
                       key=("cpu", "gpu", "ram").index)
        return BackendStatus(self.name, True, f"{_chip()}: {', '.join(comps)} "
                             f"({', '.join(d.meta['field'] for d, _ in found if d.component)}) "
                             f"— {MODEL_BASED}", tuple(comps), tuple(d.name for d, _ in found))

    def _open(self) -> None:
        monitor, sample = self._start()
        found = plan(sample)
        if not found:
            raise BackendUnavailable("IOReport gave no energy channel on this chip")
        self._monitor = monitor
        self.devices = {d.name: d for d, _ in found}
        self._readers = {d.name: read for d, read in found}
        self._last = {name: (read(sample) or 0.0) for name, read in self._readers.items()}
        self._total = dict.fromkeys(self._readers, 0.0)

    # -- Backend ---------------------------------------------------------------------
    def _sample(self) -> Any:
        if self._cumulative:
            return self._monitor.get_cumulative_energy()
        try:
            return self._monitor.end_window(_KEY)
        finally:
            self._monitor.begin_window(_KEY)

    def _read(self) -> dict[str, float]:
        if self._monitor is None:
            return {}
        try:
            sample = self._sample()
        except Exception as exc:  # keep the totals: the next good sample covers the gap
            for device in self.devices.values():
                device.meta["last_error"] = f"{type(exc).__name__}: {exc}"
            return {name: total * 1e-3 for name, total in self._total.items()}
        for name, read in self._readers.items():
            value = read(sample)
            if value is None:
                continue
            if not self._cumulative:  # a window's delta
                self._total[name] += max(0.0, value)
                continue
            last = self._last[name]
            self._total[name] += value - last if value >= last else value  # restarted: from 0
            self._last[name] = value
        return {name: total * 1e-3 for name, total in self._total.items()}

    def _read_counted(self) -> dict[str, float]:
        return {n: v for n, v in self._read().items() if self.devices[n].component}

    def bound_terms(self) -> dict[str, BoundTerms]:
        """One mJ (a channel's unit) per device; Apple publishes no accuracy for the model."""
        return {name: BoundTerms(RESOLUTION_J, source=f"IOReport 1 mJ unit; {MODEL_BASED}, "
                                 "no published accuracy") for name in self.devices}

    def close(self) -> None:
        with self._lock:
            if self._monitor is not None and not self._cumulative:
                with contextlib.suppress(Exception):
                    self._monitor.end_window(_KEY)
            self._monitor = None
            self.devices = {}
            self._readers = {}
            super().close()
