"""Cheap readers of the kernel's own accounting (Linux ``/proc`` and ``/sys``).

These sit on the hot path of every measured block, so files are opened once and re-read
with ``os.pread`` (procfs and sysfs regenerate their content on a read at offset 0).
psutil answers where those files do not exist.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import NamedTuple

#: Clock ticks per second of /proc/stat (the resolution of busy CPU time).
CLK_TCK: int = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_fds: dict[str, int | None] = {}
_fds_lock = threading.Lock()


def _fd(path: str) -> int | None:
    """A read-only descriptor kept open for the process's life, or None if unreadable."""
    fd = _fds.get(path, -1)
    if fd != -1:
        return fd
    with _fds_lock:
        if path not in _fds:
            try:
                _fds[path] = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            except OSError:
                _fds[path] = None
        return _fds[path]


def machine_cpu_busy_s() -> float:
    """Busy CPU seconds of the whole machine, summed over logical CPUs, since boot.

    Busy = user + nice + system + irq + softirq + steal (idle and iowait excluded;
    guest time is already inside user). Resolution: one clock tick (usually 10 ms).
    """
    fd = _fd("/proc/stat")
    if fd is None:
        import psutil

        t = psutil.cpu_times()
        return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))
    first = os.pread(fd, 256, 0).split(b"\n", 1)[0]
    ticks = [int(x) for x in first.split()[1:9]]  # user nice system idle iowait irq softirq steal
    busy = ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6] + ticks[7]
    return busy / CLK_TCK


def process_cpu_s() -> float:
    """CPU seconds of this process (all threads), nanosecond resolution."""
    return time.process_time()


def _proc_children(pid: int) -> list[int] | None:
    """Direct children of ``pid`` from ``/proc/PID/task/*/children`` (None: not there)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    out: list[int] = []
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                out += [int(x) for x in f.read().split()]
        except FileNotFoundError:
            if tid == tasks[0]:
                return None  # a kernel without the children file
        except (OSError, ValueError):  # a thread or process gone meanwhile
            continue
    return out


def descendant_pids() -> list[int] | None:
    """Live descendants of this process from ``/proc/PID/task/*/children`` (tens of µs
    for a small tree), or None where that file does not exist."""
    me = os.getpid()
    seen, todo, out = {me}, [me], []
    while todo:
        children = _proc_children(todo.pop())
        if children is None:
            return None
        fresh = [c for c in children if c not in seen]
        seen.update(fresh)
        out += fresh
        todo += fresh
    return out


def tree_pids() -> frozenset[int]:
    """This process and its live descendants (psutil's walk where /proc cannot tell)."""
    pids = descendant_pids()
    if pids is not None:
        return frozenset([os.getpid(), *pids])
    import psutil

    out = {os.getpid()}
    with contextlib.suppress(psutil.Error):
        out.update(child.pid for child in psutil.Process().children(recursive=True))
    return frozenset(out)


def _stat_cpu_s(pid: int) -> float | None:
    """utime + stime + cutime + cstime of ``pid`` from ``/proc/PID/stat`` (s), None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read()
    except OSError:
        return None
    fields = text[text.rfind(b")") + 2:].split()  # after "pid (comm) ": state is fields[0]
    try:
        return (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / CLK_TCK
    except (IndexError, ValueError):
        return None


def process_tree_cpu_s() -> float:
    """CPU seconds (s) of this process and all its descendants: its own time, its children
    that exited and were waited for (``os.times``), and every live descendant, each with
    the children it waited for (``/proc``, else psutil). A child that exits between two
    calls moves from the live sum to the waited-for one, so differences count it once."""
    t = os.times()
    total = time.process_time() + t.children_user + t.children_system
    pids = descendant_pids()
    if pids is not None:
        for pid in pids:
            total += _stat_cpu_s(pid) or 0.0  # a child gone meanwhile: counted when waited for
        return total
    import psutil

    try:
        children = psutil.Process().children(recursive=True)
    except psutil.Error:
        return total
    for child in children:
        try:
            c = child.cpu_times()
        except psutil.Error:  # gone between listing and reading
            continue
        total += c.user + c.system + c.children_user + c.children_system
    return total


def memory_used_bytes() -> int:
    """Memory in use by the machine (total − available), in bytes."""
    import psutil

    vm = psutil.virtual_memory()
    return int(vm.total - vm.available)


_VIRTUAL_PREFIXES = ("loop", "ram", "dm-", "md", "zram", "sr", "nbd")


def block_devices() -> list[str]:
    """Whole physical block devices (``/sys/block`` minus loop, ram, zram, dm, md)."""
    try:
        names = os.listdir("/sys/block")
    except OSError:
        return []
    return sorted(n for n in names if not n.startswith(_VIRTUAL_PREFIXES))


def disk_io_bytes(devices: list[str] | None = None) -> int | None:
    """Bytes read + written by whole block devices since boot, or None if not readable.

    Reads ``/sys/block/<dev>/stat`` (sector counts are always 512-byte units); partitions
    and virtual devices are not counted, so no byte is counted twice.
    """
    devices = block_devices() if devices is None else devices
    total = 0
    found = False
    for dev in devices:
        fd = _fd(f"/sys/block/{dev}/stat")
        if fd is None:
            continue
        fields = os.pread(fd, 256, 0).split()
        total += (int(fields[2]) + int(fields[6])) * 512
        found = True
    if found:
        return total
    try:
        import psutil

        counters = psutil.disk_io_counters()
    except Exception:
        return None
    return None if counters is None else int(counters.read_bytes + counters.write_bytes)


def stat_busy_s(path: str) -> float:
    """Busy CPU seconds from a ``/proc/stat``-format file at ``path`` (another root, a test's
    fake): the same fields as :func:`machine_cpu_busy_s`, every field of the first line but
    idle and iowait. Raises OSError if it cannot be read."""
    fd = _fd(path)
    if fd is None:
        raise OSError(f"cannot read {path}")
    ticks = [int(x) for x in os.pread(fd, 256, 0).split(b"\n", 1)[0].split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / CLK_TCK


class CpuInfo(NamedTuple):
    """What ``/proc/cpuinfo`` says about the processors this kernel sees."""

    model: str  # "model name" of the first processor ("" where there is none, e.g. arm64)
    logical: int  # processor entries (logical CPUs; vCPUs in a virtual machine)
    sockets: int  # distinct "physical id" values (1 where the field is missing)
    hypervisor: bool  # the "hypervisor" flag: CPUID says a hypervisor runs this kernel


def read_cpuinfo(path: str = "/proc/cpuinfo") -> CpuInfo:
    """Parse ``/proc/cpuinfo`` (or a file in its format); empty figures if unreadable."""
    model, logical, sockets, hypervisor = "", 0, set(), False
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key == "processor":
                    logical += 1
                elif key == "model name" and not model:
                    model = value
                elif key == "physical id":
                    sockets.add(value)
                elif key == "flags" and not hypervisor:
                    hypervisor = "hypervisor" in value.split()
    except OSError:
        pass
    return CpuInfo(model, logical, max(1, len(sockets)), hypervisor)


#: The world-readable DMI fields (``/sys/class/dmi/id``) that identify a platform.
DMI_FIELDS = ("sys_vendor", "product_name", "product_version", "board_vendor", "bios_vendor",
              "chassis_asset_tag")


def read_dmi(directory: str = "/sys/class/dmi/id") -> dict[str, str]:
    """The :data:`DMI_FIELDS` under ``directory``, stripped (``""`` where missing)."""
    out = {}
    for name in DMI_FIELDS:
        try:
            with open(os.path.join(directory, name), encoding="utf-8", errors="replace") as f:
                out[name] = f.read(256).strip()
        except OSError:
            out[name] = ""
    return out


def _after_fork_in_child() -> None:
    global _fds_lock
    _fds_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
