"""Cheap readers of the kernel's own accounting (Linux ``/proc``, psutil elsewhere).

These sit on the hot path of every measured block, so they read the files directly.
"""

from __future__ import annotations

import functools
import os
import time

_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def machine_cpu_busy_s() -> float:
    """Busy CPU seconds of the whole machine, summed over logical CPUs, since boot.

    Busy = user + nice + system + irq + softirq + steal (idle and iowait excluded;
    guest time is already inside user). Resolution: one clock tick (usually 10 ms).
    """
    try:
        with open("/proc/stat", "rb") as f:
            first = f.readline()
    except OSError:
        import psutil

        t = psutil.cpu_times()
        return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))
    parts = first.split()
    ticks = [int(x) for x in parts[1:9]]  # user nice system idle iowait irq softirq steal
    busy = ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6] + ticks[7]
    return busy / _CLK_TCK


def process_cpu_s() -> float:
    """CPU seconds of this process (all threads), nanosecond resolution."""
    return time.process_time()


def memory_used_bytes() -> int:
    """Memory in use by the machine (total − available), in bytes."""
    import psutil

    vm = psutil.virtual_memory()
    return int(vm.total - vm.available)


def disk_io_bytes() -> int | None:
    """Bytes read + written by every block device since boot, or None if not readable.

    Partitions and virtual devices (loop, ram, dm-, md) are skipped so no byte is counted
    twice. Sector counts in /proc/diskstats are always in 512-byte units.
    """
    try:
        with open("/proc/diskstats", "rb") as f:
            lines = f.readlines()
    except OSError:
        try:
            import psutil

            c = psutil.disk_io_counters()
        except Exception:
            return None
        return None if c is None else int(c.read_bytes + c.write_bytes)
    total = 0
    for line in lines:
        parts = line.split()
        if len(parts) < 10:
            continue
        name = parts[2].decode()
        if _is_partition_or_virtual(name):
            continue
        total += (int(parts[5]) + int(parts[9])) * 512
    return total


@functools.lru_cache(maxsize=256)
def _is_partition_or_virtual(name: str) -> bool:
    """Whether a /proc/diskstats entry would double-count (partition) or is not a disk."""
    if name.startswith(("loop", "ram", "dm-", "md", "zram", "sr")):
        return True
    return os.path.exists(f"/sys/class/block/{name}/partition")
