"""Counter backends: one module each, behind :class:`~energykernel.counters.base.Backend`.

``rapl`` (Linux powercap), ``pyrapl`` (the pyRAPL package), ``nvml`` (NVIDIA GPUs through
nvidia-ml-py), ``amdsmi`` (AMD GPUs through ROCm's amdsmi), ``levelzero`` (Intel GPUs
through Level Zero Sysman) and ``hwmon`` (the power meters of NVIDIA Grace / Grace Hopper
nodes) read hardware counters; ``apple`` reads the model-based energy figures macOS gives
for Apple Silicon; ``estimate`` covers what no counter does, and says so.
"""

from __future__ import annotations

import importlib

from .base import COMPONENTS, METHODS, Backend, BackendStatus, BackendUnavailable, Device

#: name → "module:Class", in default priority order.
KNOWN_BACKENDS: dict[str, str] = {
    "rapl": "energykernel.counters.rapl:RaplBackend",
    "pyrapl": "energykernel.counters.pyrapl:PyRaplBackend",
    "nvml": "energykernel.counters.nvml:NvmlBackend",
    "amdsmi": "energykernel.counters.amdsmi:AmdSmiBackend",
    "levelzero": "energykernel.counters.levelzero:LevelZeroBackend",
    "apple": "energykernel.counters.apple:AppleBackend",
    "hwmon": "energykernel.counters.hwmon:HwmonBackend",
    "estimate": "energykernel.counters.estimate:EstimateBackend",
}

#: Counter backends tried when none are configured (pyrapl reads the same domains as
#: rapl, so it is used only when asked for by name). Each component goes to the first
#: that covers it: ``hwmon`` comes after ``nvml`` so that on a Grace Hopper node NVML
#: gives ``gpu`` (per GPU) and the Grace meters give ``cpu`` and ``ram`` — one backend
#: per figure. ``apple`` answers only on macOS (Apple Silicon), where no other counter does.
DEFAULT_COUNTERS: tuple[str, ...] = ("rapl", "nvml", "amdsmi", "levelzero", "hwmon", "apple")


def create(name: str) -> Backend:
    """A new, unopened backend instance by name."""
    try:
        target = KNOWN_BACKENDS[name]
    except KeyError:
        raise ValueError(
            f"unknown backend {name!r}; known: {', '.join(KNOWN_BACKENDS)}"
        ) from None
    module_name, class_name = target.split(":")
    return getattr(importlib.import_module(module_name), class_name)()


def statuses() -> list[BackendStatus]:
    """Probe every known backend: what can be read here, and why not."""
    result = []
    for name in KNOWN_BACKENDS:
        try:
            result.append(create(name).probe())
        except Exception as exc:  # a probe must never take the caller down
            result.append(BackendStatus(name, False, f"probe failed: {type(exc).__name__}: {exc}"))
    return result


__all__ = [
    "COMPONENTS",
    "DEFAULT_COUNTERS",
    "KNOWN_BACKENDS",
    "METHODS",
    "Backend",
    "BackendStatus",
    "BackendUnavailable",
    "Device",
    "create",
    "statuses",
]
