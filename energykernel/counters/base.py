"""The small interface every counter backend implements.

A backend reports *cumulative* energy per device in joules since it was opened, already
corrected for counter wraparound. Everything else (windows, the sampler, the timeline)
is built on differences of these readings, so a new backend only has to answer four
questions: can you run here (``probe``), get ready (``open``), how much energy so far
(``read``), and how often must you be polled so no wrap is missed (``poll_interval_s``).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

from ..core.units import COMPONENTS, METHODS

__all__ = ["COMPONENTS", "METHODS", "Backend", "BackendStatus", "BackendUnavailable",
           "BoundTerms", "Device"]


@dataclass(frozen=True)
class BackendStatus:
    """What a backend can do on this machine, and if not, why not."""

    name: str
    available: bool
    reason: str
    components: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()

    def __str__(self) -> str:
        state = "available" if self.available else "unavailable"
        comps = f" [{', '.join(self.components)}]" if self.components else ""
        return f"{self.name}: {state}{comps} — {self.reason}"


@dataclass(frozen=True)
class BoundTerms:
    """How far a device's true energy over a window can be from the difference of two
    of its readings, ``delta`` (J): within ``[delta × low − abs_j, delta × high + abs_j]``,
    never below 0, and at most ``cap_w × duration`` where the model has a cap.

    ``abs_j``: the counter's resolution — its energy unit plus the energy it can take in
    between updates (a reading can be one update period old at each end); ``low``,
    ``high``: the spread of a model's constant (estimates; 1 for counters); ``cap_w``: the
    most power the model can give (``None``: no cap); ``source``: where the terms come from.
    """

    abs_j: float = 0.0
    low: float = 1.0
    high: float = 1.0
    cap_w: float | None = None
    source: str = ""


@dataclass
class Device:
    """One energy source a backend reads.

    ``component`` is the Dataset component the device counts toward, or ``None`` for
    detail-only devices (RAPL ``psys``, ``core``, ``uncore``) that would double-count.
    """

    name: str
    component: str | None
    meta: dict = field(default_factory=dict)


class Backend(ABC):
    """Base class of counter backends. Subclasses set ``name`` and ``method``."""

    name: ClassVar[str]
    method: ClassVar[str]

    def __init__(self) -> None:
        self.devices: dict[str, Device] = {}
        self._lock = threading.Lock()
        self._opened = False

    # -- to implement ------------------------------------------------------------
    @abstractmethod
    def probe(self) -> BackendStatus:
        """Say whether this backend can run here and why (not). Never raises."""

    @abstractmethod
    def _open(self) -> None:
        """Discover devices (fill ``self.devices``) and take the first raw readings."""

    @abstractmethod
    def _read(self) -> dict[str, float]:
        """Cumulative energy in J per device since open, wrap-corrected. Lock is held."""

    def poll_interval_s(self) -> float | None:
        """Longest safe time between two reads (wraparound), or None if unbounded."""
        return None

    def bound_terms(self) -> dict[str, BoundTerms]:
        """Each device's :class:`BoundTerms` (from its resolution, update period and the
        highest power it is known to draw). A device not listed has exact readings."""
        return {}

    def close(self) -> None:
        """Release handles. Reopening starts the cumulative counts from zero."""
        self._opened = False

    # -- provided ----------------------------------------------------------------
    def open(self) -> None:
        with self._lock:
            if not self._opened:
                self._open()
                self._opened = True

    def _read_counted(self) -> dict[str, float]:
        """Like :meth:`_read`, for the devices that count toward a component only.

        Backends with detail-only devices (RAPL psys, core, uncore) override it so that
        window boundaries do not pay for them. Lock is held."""
        return self._read()

    def read(self, detail: bool = True) -> dict[str, float]:
        """Thread-safe cumulative energy in J per device (``detail=False``: only the
        devices that count toward a component)."""
        with self._lock:
            return self._read() if detail else self._read_counted()

    @property
    def components(self) -> tuple[str, ...]:
        found = {d.component for d in self.devices.values() if d.component}
        return tuple(c for c in COMPONENTS if c in found)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} devices={list(self.devices)}>"


class BackendUnavailable(RuntimeError):
    """Raised when a backend that was asked for by name cannot run here."""
