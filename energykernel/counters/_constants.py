"""Cited constants behind the ``estimate`` backend. Every number here is in the README.

CPU: a busy hardware thread draws TDP / threads of its processor. TDPs are the vendors'
published figures (Intel ARK "Processor Base Power"/TDP, AMD product pages "Default TDP").
The default for an unknown processor is the median TDP per thread of this table, so it is
derived from the cited rows, not chosen.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class CpuSpec:
    pattern: str  # regular expression matched against /proc/cpuinfo "model name"
    tdp_w: float
    threads: int
    source: str

    @property
    def watts_per_thread(self) -> float:
        return self.tdp_w / self.threads


CPU_TABLE: tuple[CpuSpec, ...] = (
    CpuSpec(r"Xeon.*Platinum 8480\+?", 350, 112, "Intel ARK: Xeon Platinum 8480+, TDP 350 W, 56C/112T"),
    CpuSpec(r"Xeon.*Platinum 8380\b", 270, 80, "Intel ARK: Xeon Platinum 8380, TDP 270 W, 40C/80T"),
    CpuSpec(r"Xeon.*Gold 6248\b", 150, 40, "Intel ARK: Xeon Gold 6248, TDP 150 W, 20C/40T"),
    CpuSpec(r"Core.*i7-12700\b", 65, 20, "Intel ARK: Core i7-12700, Processor Base Power 65 W, 12C/20T"),
    CpuSpec(r"Core.*i9-13900K\b", 125, 32, "Intel ARK: Core i9-13900K, Processor Base Power 125 W, 24C/32T"),
    CpuSpec(r"EPYC 7763\b", 280, 128, "AMD: EPYC 7763, default TDP 280 W, 64C/128T"),
    CpuSpec(r"EPYC 9654\b", 360, 192, "AMD: EPYC 9654, default TDP 360 W, 96C/192T"),
    CpuSpec(r"Ryzen 9 7950X\b", 170, 32, "AMD: Ryzen 9 7950X, default TDP 170 W, 16C/32T"),
    CpuSpec(r"Ryzen 7 5800X\b", 105, 16, "AMD: Ryzen 7 5800X, default TDP 105 W, 8C/16T"),
)

#: Median TDP per hardware thread of CPU_TABLE, used for processors not in the table.
DEFAULT_WATTS_PER_THREAD: float = statistics.median(s.watts_per_thread for s in CPU_TABLE)
DEFAULT_CPU_SOURCE = (
    f"median TDP per thread of energykernel's CPU table ({DEFAULT_WATTS_PER_THREAD:.3g} W), "
    "processor model not in the table"
)

#: Lowest and highest TDP per hardware thread in CPU_TABLE (W): the spread of the CPU
#: estimate's constant, computed from the cited rows.
WATTS_PER_THREAD_RANGE: tuple[float, float] = (
    min(s.watts_per_thread for s in CPU_TABLE), max(s.watts_per_thread for s in CPU_TABLE))

#: DRAM power per GB in use: 3 W per 8 GB, CodeCarbon's RAM model (methodology docs).
RAM_WATTS_PER_GB: float = 3.0 / 8.0
RAM_SOURCE = "0.375 W/GB (3 W per 8 GB of DRAM, CodeCarbon methodology)"

#: Storage energy per byte moved: Samsung 970 EVO Plus NVMe SSD data sheet, average
#: active power 6.0 W at 3,500 MB/s sequential read → 6.0 / 3.5e9 J/byte.
STORAGE_J_PER_BYTE: float = 6.0 / 3.5e9
STORAGE_SOURCE = "1.71 nJ/byte (Samsung 970 EVO Plus data sheet: 6.0 W average at 3,500 MB/s)"


def lookup_cpu(model_name: str) -> CpuSpec | None:
    """The table row for a processor model name, or None."""
    for spec in CPU_TABLE:
        if re.search(spec.pattern, model_name):
            return spec
    return None


def cpu_model_name() -> str:
    """The processor model from /proc/cpuinfo (``""`` if unknown)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or ""
