"""A hand-driven counter backend, for exact arithmetic through the real measure path."""

from __future__ import annotations

from typing import ClassVar

from energykernel import counters as backends
from energykernel.core import config
from energykernel.counters.base import Backend, BackendStatus, BoundTerms, Device


class ManualBackend(Backend):
    """Counters the test advances by hand: ``ManualBackend.add("cpu:package-0", 5.0)``."""

    name = "manual"
    method = "rapl"
    counters: ClassVar[dict[str, float]] = {}
    layout: ClassVar[dict[str, str | None]] = {
        "cpu:package-0": "cpu",
        "cpu:package-1": "cpu",
        "ram:dram-0": "ram",
        "cpu:psys": None,  # detail only: contains the packages
    }

    #: resolution (J) per device, for bounds (none listed: exact readings)
    resolution_j: ClassVar[dict[str, float]] = {}

    @classmethod
    def add(cls, device: str, joules: float) -> None:
        cls.counters[device] = cls.counters.get(device, 0.0) + joules

    def probe(self) -> BackendStatus:
        return BackendStatus(self.name, True, "test counters", ("cpu", "ram"), tuple(self.layout))

    def _open(self) -> None:
        self.devices = {name: Device(name, comp) for name, comp in self.layout.items()}
        self._base = {d: self.counters.get(d, 0.0) for d in self.layout}

    def _read(self) -> dict[str, float]:
        return {d: self.counters.get(d, 0.0) - self._base[d] for d in self.layout}

    def bound_terms(self) -> dict[str, BoundTerms]:
        return {d: BoundTerms(abs_j=r, source="test resolution")
                for d, r in self.resolution_j.items()}


def use_manual_backend(monkeypatch, *, estimate: bool) -> type[ManualBackend]:
    """Select the manual counters (and the estimate for what they do not cover, if asked)."""
    ManualBackend.counters = {}
    ManualBackend.resolution_j = {}
    monkeypatch.setitem(backends.KNOWN_BACKENDS, "manual", f"{__name__}:ManualBackend")
    monkeypatch.setenv("ENERGYKERNEL_BACKENDS", "manual,estimate" if estimate else "manual")
    config.reset_settings()
    return ManualBackend
