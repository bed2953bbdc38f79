"""A fake ``zeus_apple_silicon`` module (zeus-apple-silicon 1.1) with the real names and shapes.

``FakeZeusAppleSilicon(chip)`` is a module object: install it with
``monkeypatch.setitem(sys.modules, "zeus_apple_silicon", fake)``. As in the nanobind
bindings: ``AppleEnergyMonitor()`` subscribes to IOReport (``RuntimeError("Failed to
create IOReport subscription.")`` when it cannot), ``get_cumulative_energy()`` returns an
``AppleEnergyMetrics`` of cumulative mJ since an unspecified fixed point,
``begin_window(key, restart=False)`` / ``end_window(key)`` measure one labelled window
(the same errors as the C++: a key already in use, a key never begun), and every field
is an ``int``, a ``list[int]`` (cores, clusters) or ``None`` where the chip does not
report it. Energy advances from each channel's power in simulated time
(:meth:`FakeZeusAppleSilicon.advance`), in whole mJ.
"""

from __future__ import annotations

import types
from dataclasses import dataclass, field
from typing import Any

#: The fields of ``AppleEnergyMetrics`` (README "Struct/Class: AppleEnergyMetrics").
FIELDS = ("cpu_total_mj", "efficiency_cores_mj", "performance_cores_mj", "efficiency_cluster_mj",
          "performance_cluster_mj", "efficiency_core_manager_mj", "performance_core_manager_mj",
          "dram_mj", "gpu_mj", "gpu_sram_mj", "ane_mj")


class AppleEnergyMetrics:
    """All fields ``None`` until set, as ``nb::init<>()`` leaves the optionals empty."""

    def __init__(self) -> None:
        for name in FIELDS:
            setattr(self, name, None)

    def __repr__(self) -> str:
        return "\n".join(f"{n}: {getattr(self, n)}" for n in FIELDS)


@dataclass
class FakeChip:
    """Channel → power (W); a scalar field or a list (one W per core / cluster).
    A field absent here is ``None`` (not reported on the chip)."""

    power_w: dict[str, float | list[float]] = field(default_factory=dict)
    cumulative_api: bool = True  # False: a package before get_cumulative_energy
    subscribe_error: bool = False


def m1_max() -> FakeChip:
    return FakeChip({"cpu_total_mj": 12.0, "efficiency_cores_mj": [0.2, 0.2],
                     "performance_cores_mj": [1.0] * 8, "efficiency_cluster_mj": [0.6],
                     "performance_cluster_mj": [5.0, 5.0], "efficiency_core_manager_mj": 0.1,
                     "performance_core_manager_mj": 0.3, "dram_mj": 1.5, "gpu_mj": 20.0,
                     "gpu_sram_mj": 0.5, "ane_mj": 2.0})


def m5_max() -> FakeChip:
    """No GPU SRAM channel on M5 (README's naming table)."""
    chip = m1_max()
    del chip.power_w["gpu_sram_mj"]
    return chip


class FakeZeusAppleSilicon(types.ModuleType):
    def __init__(self, chip: FakeChip) -> None:
        super().__init__("zeus_apple_silicon")
        self.chip = chip
        self.energy_mj: dict[str, Any] = {
            k: ([0.0] * len(v) if isinstance(v, list) else 0.0) for k, v in chip.power_w.items()}
        self.error: Exception | None = None  # raised by the next sample, then cleared
        self.AppleEnergyMetrics = AppleEnergyMetrics
        self.AppleEnergyMonitor = self._monitor_class()

    def advance(self, dt_s: float) -> None:
        for name, power in self.chip.power_w.items():
            if isinstance(power, list):
                self.energy_mj[name] = [e + p * dt_s * 1e3 for e, p in
                                        zip(self.energy_mj[name], power, strict=True)]
            else:
                self.energy_mj[name] += power * dt_s * 1e3

    def _sample(self) -> dict[str, Any]:
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        return {k: ([int(x) for x in v] if isinstance(v, list) else int(v))
                for k, v in self.energy_mj.items()}

    @staticmethod
    def _metrics(values: dict[str, Any]) -> AppleEnergyMetrics:
        out = AppleEnergyMetrics()
        for name, value in values.items():
            setattr(out, name, value)
        return out

    def _monitor_class(self) -> type:
        fake = self

        class AppleEnergyMonitor:
            def __init__(self) -> None:
                if fake.chip.subscribe_error:
                    raise RuntimeError("Failed to create IOReport subscription.")
                self._begin: dict[str, dict[str, Any]] = {}

            def begin_window(self, key: str, restart: bool = False) -> None:
                if key in self._begin and not restart:
                    raise RuntimeError("Measurement with specified key already exists.")
                self._begin[key] = fake._sample()

            def end_window(self, key: str) -> AppleEnergyMetrics:
                if key not in self._begin:
                    raise RuntimeError("No measurement with provided key had been started.")
                first = self._begin.pop(key)
                now = fake._sample()
                return fake._metrics({k: ([b - a for a, b in zip(first[k], v, strict=True)]
                                           if isinstance(v, list) else v - first[k])
                                      for k, v in now.items()})

            def get_cumulative_energy(self) -> AppleEnergyMetrics:
                return fake._metrics(fake._sample())

        if not self.chip.cumulative_api:
            del AppleEnergyMonitor.get_cumulative_energy
        return AppleEnergyMonitor
