"""Cited constants and published tables behind the ``estimate`` backend (all in the README).

CPU power is ``idle + (max − idle) × utilisation`` — the linear model of Etsy's Cloud Jewels
as used by Cloud Carbon Footprint (CCF, ``microsite/docs/HowItWorks/Methodology.md``:
"Average Watts = Min Watts + Avg vCPU Utilization * (Max Watts - Min Watts)"). The figures
come from tables of three published sources, generated into ``data/`` by
``scripts/build_cpu_table.py`` and parsed once, on first use:

- ``cpu_tdp.csv``: TDP per processor (codecarbon 3.3.2, ``data/hardware/cpu_power.csv``,
  MIT). Max = TDP × sockets; idle = :data:`IDLE_FRACTION_OF_TDP` of it (CodeCarbon's floor).
- ``specpower_servers.csv``: SPECpower_ssj2008 results per microarchitecture, as CCF's
  cloud-carbon-coefficients collects them (Apache-2.0; results © SPEC, www.spec.org). An
  architecture's idle and max watts per hardware thread are the mean over its servers of
  "avg. watts @ active idle" and "avg. watts @ 100%" ÷ "Total Threads" (CCF's
  ``coefficients.ipynb``); the lowest and highest server give the spread.
- ``cpu_architectures.csv`` (processor → architecture) and ``aws_instances.csv`` (EC2
  instance type → architectures), both from CCF (Apache-2.0).
"""

from __future__ import annotations

import csv
import functools
import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources

#: Idle CPU power as a fraction of TDP: codecarbon 3.3.2 ``codecarbon/external/hardware.py``,
#: ``CPU._calculate_power_from_cpu_load`` ("Minimum power consumption is 10% of TDP").
IDLE_FRACTION_OF_TDP: float = 0.10
TDP_SOURCE = "TDP from codecarbon 3.3.2 cpu_power.csv (MIT), idle 10 % of TDP (CodeCarbon)"

#: Architectures without SPECpower results that CCF gives another one's coefficients
#: (Methodology.md, Appendix II; coefficients.ipynb): AWS Graviton and Graviton2 → EPYC 2nd Gen.
ALIASES: dict[str, str] = {"AWS Graviton": "AMD EPYC 2nd Gen", "AWS Graviton2": "AMD EPYC 2nd Gen"}
#: A group holding one of these takes the median, not the mean, of its architectures' figures
#: (CCF packages/core/src/FootprintEstimate.ts, getWattsByAverageOrMedian: outliers).
MEDIAN_IF_IN_GROUP: tuple[str, ...] = ("Sandy Bridge", "Ivy Bridge")

#: DRAM power per GB in use: 3 W per 8 GB of DDR3/DDR4, CodeCarbon's RAM heuristic before
#: v3 (codecarbon 3.3.2 ``codecarbon/external/ram.py``, RAM docstring, citing Crucial's "How
#: much power does memory use?"); CodeCarbon 3 counts 5 W per DIMM slot instead.
RAM_WATTS_PER_GB: float = 3.0 / 8.0
RAM_SOURCE = "0.375 W/GB (3 W per 8 GB of DRAM, CodeCarbon's pre-v3 heuristic, from Crucial)"

#: Storage energy per byte moved: Samsung 970 EVO Plus NVMe SSD data sheet, average
#: active power 6.0 W at 3,500 MB/s sequential read → 6.0 / 3.5e9 J/byte.
STORAGE_J_PER_BYTE: float = 6.0 / 3.5e9
STORAGE_SOURCE = "1.71 nJ/byte (Samsung 970 EVO Plus data sheet: 6.0 W average at 3,500 MB/s)"


def _rows(name: str) -> list[dict[str, str]]:
    """The rows of ``data/<name>``, its ``#`` header lines skipped."""
    text = (resources.files("energykernel.counters") / "data" / name).read_text("utf-8")
    reader = csv.reader(line for line in text.splitlines() if not line.startswith("#"))
    columns = next(reader)
    return [dict(zip(columns, row, strict=True)) for row in reader]


# -- processor names --------------------------------------------------------------------
_CLEAN = ((re.compile(r"\((?:R|TM)\)|®|™", re.I), " "),
          (re.compile(r"@\s*[\d.]+\s*[GM]Hz", re.I), " "),
          (re.compile(r"\b\d+-Core Processor\b|\bProcessor\b|\bCPU\b", re.I), " "),
          (re.compile(r"^\s*\d+(?:st|nd|rd|th) Gen\s+", re.I), ""))


def clean_model_name(raw: str) -> str:
    """A ``/proc/cpuinfo`` model name as the tables spell processors: no ®/(TM), "CPU",
    clock speed, "N-Core Processor" or "Nth Gen" prefix (``"AMD EPYC 7763"``)."""
    for pattern, repl in _CLEAN:
        raw = pattern.sub(repl, raw)
    return " ".join(raw.split())


def _tokens(text: str) -> frozenset[str]:
    return frozenset(re.findall(r"[a-z0-9]+", text.lower()))


@dataclass(frozen=True)
class CpuTdp:
    """A row of the TDP table."""

    name: str
    tdp_w: float


@functools.cache
def _tdp_table() -> dict[str, CpuTdp]:
    rows = (CpuTdp(r["name"], float(r["tdp_w"])) for r in _rows("cpu_tdp.csv"))
    return {r.name.lower(): r for r in rows}


@functools.cache
def _tdp_tokens() -> tuple[tuple[frozenset[str], CpuTdp], ...]:
    return tuple((_tokens(r.name), r) for r in _tdp_table().values())


def lookup_cpu(model_name: str) -> CpuTdp | None:
    """The TDP row of a processor: the cleaned name exactly, else the one row whose words
    all appear in the name or that has all of the name's words (CodeCarbon's rule:
    ``TDP._get_matching_cpu``, token-set match at 100, no guess between equal matches)."""
    name = clean_model_name(model_name)
    exact = _tdp_table().get(name.lower())
    words = _tokens(name)
    if exact is not None or not words:
        return exact
    found = [row for tokens, row in _tdp_tokens() if tokens <= words or words <= tokens]
    return found[0] if len(found) == 1 else None


@functools.cache
def _architecture_lists() -> tuple[tuple[str, tuple[str, ...]], ...]:
    lists: dict[str, list[str]] = {}
    for r in _rows("cpu_architectures.csv"):
        lists.setdefault(r["architecture"], []).append(r["cpu"].lower())
    return tuple((arch, tuple(cpus)) for arch, cpus in lists.items())


def architecture_of(model_name: str) -> str | None:
    """The microarchitecture of a processor from CCF's lists: an entry that ends the cleaned
    name after a word boundary (how ``coefficients.ipynb`` matches SPECpower CPU
    descriptions, ``\\b{entry}$`` ignoring case), or None."""
    name = clean_model_name(model_name).lower()
    for arch, cpus in _architecture_lists():
        for cpu in cpus:
            start = len(name) - len(cpu)
            if name.endswith(cpu) and _word(cpu[0]) != (start > 0 and _word(name[start - 1])):
                return arch
    return None


def _word(char: str) -> bool:
    return char.isalnum() or char == "_"


@functools.cache
def _aws_instances() -> dict[str, tuple[str, ...]]:
    return {r["instance_type"]: tuple(r["architectures"].split("|"))
            for r in _rows("aws_instances.csv")}


def aws_architectures(instance_type: str) -> tuple[str, ...]:
    """The architectures an EC2 instance type runs on (CCF's mapping), or ``()``."""
    return _aws_instances().get(instance_type.strip(), ())


# -- SPECpower --------------------------------------------------------------------------
@dataclass(frozen=True)
class Server:
    """One SPECpower_ssj2008 result: whole-server watts at active idle and at 100 % load."""

    architecture: str
    cpu: str
    sponsor: str
    system: str
    date: str
    threads: int
    idle_w: float | None
    max_w: float | None


@functools.cache
def specpower_servers() -> tuple[Server, ...]:
    """Every SPECpower result of the table, in its order."""
    def watts(text: str) -> float | None:
        return float(text) if text else None

    return tuple(Server(r["architecture"], r["cpu"], r["sponsor"], r["system"], r["date"],
                        int(r["threads"]), watts(r["idle_w"]), watts(r["max_w"]))
                 for r in _rows("specpower_servers.csv"))


@dataclass(frozen=True)
class ThreadPower:
    """Watts per hardware thread (vCPU) at 0 % and 100 % utilisation, and their spread."""

    label: str
    idle_w: float
    max_w: float
    idle_range_w: tuple[float, float]
    max_range_w: tuple[float, float]
    source: str  # how the figures were obtained
    spread: str  # what the ranges span

    def ratios(self) -> tuple[float, float]:
        """(lowest, highest) ratio of the spread to the figures, over idle and max."""
        return (min(self.idle_range_w[0] / self.idle_w, self.max_range_w[0] / self.max_w),
                max(self.idle_range_w[1] / self.idle_w, self.max_range_w[1] / self.max_w))


def _per_thread(servers: Iterable[Server]) -> tuple[list[float], list[float]]:
    servers = list(servers)
    return ([s.idle_w / s.threads for s in servers if s.idle_w is not None],
            [s.max_w / s.threads for s in servers if s.max_w is not None])


@functools.cache
def architecture_power(arch: str) -> ThreadPower | None:
    """An architecture's coefficients: the mean per-thread idle and max watts of its
    SPECpower servers (CCF's method), spread from the lowest to the highest server."""
    base = ALIASES.get(arch, arch)
    idle, full = _per_thread(s for s in specpower_servers() if s.architecture == base)
    if not idle or not full:
        return None
    note = f"{base}'s coefficients, as CCF does: " if base != arch else ""
    return ThreadPower(arch, statistics.fmean(idle), statistics.fmean(full),
                       (min(idle), max(idle)), (min(full), max(full)),
                       f"{note}mean of {len(idle)} SPECpower servers",
                       f"{arch}: lowest to highest of its {len(idle)} SPECpower servers")


def architectures() -> tuple[str, ...]:
    """The architectures with SPECpower results, in table order."""
    return tuple(dict.fromkeys(s.architecture for s in specpower_servers()))


def group_power(archs: Iterable[str]) -> ThreadPower | None:
    """Coefficients of a group of architectures (a cloud instance type that runs on any of
    them): the mean of theirs, or the median if the group holds Sandy or Ivy Bridge (CCF),
    spread over all their servers. None if none of them has coefficients."""
    archs = tuple(dict.fromkeys(archs))
    known = [p for p in map(architecture_power, archs) if p is not None]
    if not known:
        return None
    if len(known) == 1:
        return known[0]
    combine = (statistics.median if any(a in MEDIAN_IF_IN_GROUP for a in archs)
               else statistics.fmean)
    bases = {ALIASES.get(p.label, p.label) for p in known}
    idle, full = _per_thread(s for s in specpower_servers() if s.architecture in bases)
    label = " / ".join(p.label for p in known)
    how = "median" if combine is statistics.median else "mean"
    return ThreadPower(label, combine(p.idle_w for p in known), combine(p.max_w for p in known),
                       (min(idle), max(idle)), (min(full), max(full)),
                       f"{how} of {len(known)} architectures' SPECpower coefficients (CCF)",
                       f"{label}: lowest to highest of their {len(idle)} SPECpower servers")


@functools.cache
def unknown_architecture_power() -> ThreadPower:
    """Coefficients when the architecture is unknown: the median over every architecture
    (CCF's rule for a group holding Sandy/Ivy Bridge, which "all" does), spread from the
    lowest to the highest architecture coefficient (which one applies is what is unknown)."""
    every = [p for p in map(architecture_power, architectures()) if p is not None]
    idle, full = [p.idle_w for p in every], [p.max_w for p in every]
    return ThreadPower("architecture unknown", statistics.median(idle), statistics.median(full),
                       (min(idle), max(idle)), (min(full), max(full)),
                       f"median of {len(every)} architectures' SPECpower coefficients (CCF)",
                       "lowest to highest architecture coefficient")
