"""What the GPU backends over a vendor library (``nvml``, ``amdsmi``) share.

The library is imported lazily, initialised for each probe and open and shut down after;
every failure becomes a status reason. Each GPU is read either from an energy counter or
by integrating sampled power (:class:`~energykernel.counters._integrate.PowerIntegral`),
and its bound follows from that: one counter unit plus one refresh at the power limit,
or the power limit over two polls.
"""

from __future__ import annotations

import contextlib
import os
import time
from abc import abstractmethod
from dataclasses import dataclass
from types import ModuleType
from typing import Any, ClassVar

from ._integrate import POWER_POLL_S, PowerIntegral
from .base import Backend, BackendStatus, BackendUnavailable, BoundTerms, Device


@dataclass
class LibGpu:
    """One GPU being read: its device name, library handle and, for power integration,
    the integral (``None``: an energy counter)."""

    name: str
    handle: Any
    power: PowerIntegral | None = None


class GpuLibraryBackend(Backend):
    """The life cycle of a GPU backend over a vendor library. Subclasses say how to
    import, start, stop and explain the library, discover its GPUs and read them."""

    #: What the messages call the library ("NVML").
    library: ClassVar[str]
    #: Environment variables that choose the visible GPUs (named when none is visible).
    visibility_vars: ClassVar[tuple[str, ...]] = ()
    #: Refresh period assumed for the energy counter (s), for bounds.
    energy_update_s: ClassVar[float] = 0.1
    #: Power assumed for a GPU whose power limit the library does not give (W).
    unknown_power_w: ClassVar[float] = 1500.0

    def __init__(self) -> None:
        super().__init__()
        self._clock = time.monotonic
        self._lib: ModuleType | None = None
        self._gpus: list[Any] = []
        self.notes: list[str] = []

    # -- to implement ----------------------------------------------------------------
    @abstractmethod
    def _import(self) -> ModuleType:
        """The library module (raises :class:`BackendUnavailable` with a reason)."""

    @abstractmethod
    def _start(self, lib: ModuleType) -> None:
        """Initialise the library (may raise its own errors)."""

    @abstractmethod
    def _stop(self, lib: ModuleType) -> None:
        """Shut the library down."""

    @abstractmethod
    def _reason(self, lib: ModuleType, exc: BaseException) -> str:
        """A readable reason for a failure of the library."""

    @abstractmethod
    def _discover(self, lib: ModuleType) -> list[tuple[Device, Any]]:
        """Devices and their first readings (``LibGpu`` subclasses); sets ``self.notes``."""

    @abstractmethod
    def _energy_unit(self, gpu: Any) -> tuple[float, str]:
        """An energy counter's unit in J, and how to write it."""

    def _describe(self, device: Device) -> str:
        """The status text for one device."""
        return f"{device.name} {device.meta['model']} ({device.meta['source'].replace('_', ' ')})"

    # -- Backend ---------------------------------------------------------------------
    def _init(self) -> ModuleType:
        lib = self._import()
        try:
            self._start(lib)
        except Exception as exc:
            raise BackendUnavailable(self._reason(lib, exc)) from None
        return lib

    def _shutdown(self, lib: ModuleType) -> None:
        with contextlib.suppress(Exception):
            self._stop(lib)

    def probe(self) -> BackendStatus:
        try:
            lib = self._init()
        except BackendUnavailable as exc:
            return BackendStatus(self.name, False, str(exc))
        try:
            found = self._discover(lib)
        except Exception as exc:
            return BackendStatus(self.name, False, self._reason(lib, exc))
        finally:
            self._shutdown(lib)
        notes = f" ({'; '.join(self.notes)})" if self.notes else ""
        if not found:
            chosen = [f"{v}={os.environ[v]!r}" for v in self.visibility_vars
                      if os.environ.get(v) is not None]
            why = (f"no GPU visible with {', '.join(chosen)}" if chosen
                   else f"{self.library} found no usable GPU")
            return BackendStatus(self.name, False, why + notes)
        return BackendStatus(self.name, True, "; ".join(self._describe(d) for d, _ in found)
                             + notes, ("gpu",), tuple(d.name for d, _ in found))

    def _open(self) -> None:
        lib = self._init()
        try:
            found = self._discover(lib)
            if not found:
                raise BackendUnavailable(f"{self.library} found no usable GPU")
        except Exception as exc:
            self._shutdown(lib)
            if isinstance(exc, BackendUnavailable):
                raise
            raise BackendUnavailable(self._reason(lib, exc)) from None
        self._lib = lib
        self._gpus = [gpu for _, gpu in found]
        self.devices = {d.name: d for d, _ in found}

    def bound_terms(self) -> dict[str, BoundTerms]:
        """Energy counter: one unit plus one refresh at the power limit. Power integration:
        one poll interval at the power limit at each end (the library samples power for
        only part of each period on recent GPUs, so short bursts can be missed)."""
        out = {}
        for gpu in self._gpus:
            power_w = self.devices[gpu.name].meta.get("power_limit_w") or self.unknown_power_w
            if gpu.power is None:
                unit_j, unit = self._energy_unit(gpu)
                out[gpu.name] = BoundTerms(
                    unit_j + power_w * self.energy_update_s,
                    source=f"{unit} + {power_w:.4g} W × {self.energy_update_s * 1e3:g} ms refresh")
            else:
                out[gpu.name] = BoundTerms(2 * power_w * POWER_POLL_S,
                                           source=f"{power_w:.4g} W × 2 × {POWER_POLL_S} s polls")
        return out

    def poll_interval_s(self) -> float | None:
        return POWER_POLL_S if any(g.power is not None for g in self._gpus) else None

    def close(self) -> None:
        with self._lock:
            if self._lib is not None:
                self._shutdown(self._lib)
            self._lib = None
            self._gpus = []
            self.devices = {}
            super().close()
