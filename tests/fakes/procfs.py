"""A fake root for the estimate backend: ``proc/cpuinfo``, ``proc/stat`` and
``sys/class/dmi/id/*`` under a directory, with a clock and busy time a test drives.

``proc/stat`` is rewritten in place (same inode), so a reader holding it open with
``pread`` — as :func:`energykernel.core._proc.stat_busy_s` does — sees each new value, as on
procfs. Busy time is counted in whole clock ticks, like the kernel does.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from energykernel.core._proc import CLK_TCK


class FakeClock:
    """A monotonic clock that moves only when told."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class FakeHost:
    """``cpus`` logical CPUs of processor ``model`` over ``sockets`` packages (``model=""``:
    no "model name" line, as on arm64), a ``hypervisor`` flag or not, and DMI ``dmi``."""

    def __init__(self, base: Path, model: str, cpus: int = 4, sockets: int = 1,
                 hypervisor: bool = False, dmi: Mapping[str, str] | None = None) -> None:
        self.root = Path(base)
        self.cpus = cpus
        self.clock = FakeClock()
        self.busy_ticks = 0
        self.idle_ticks = 0
        (self.root / "proc").mkdir(parents=True, exist_ok=True)
        self.write_cpuinfo(model, cpus, sockets, hypervisor)
        if dmi is not None:
            dmi_dir = self.root / "sys" / "class" / "dmi" / "id"
            dmi_dir.mkdir(parents=True, exist_ok=True)
            for name, value in dmi.items():
                (dmi_dir / name).write_text(f"{value}\n")
        self._write_stat()

    def write_cpuinfo(self, model: str, cpus: int, sockets: int = 1,
                      hypervisor: bool = False) -> None:
        """Describe ``cpus`` logical CPUs (x86 layout) and reset the busy time."""
        self.cpus = cpus
        flags = "fpu vme de pse tsc msr" + (" hypervisor" if hypervisor else "")
        per_socket = max(1, cpus // sockets)
        blocks = []
        for n in range(cpus):
            lines = [f"processor\t: {n}"]
            if model:
                lines.append(f"model name\t: {model}")
            lines += [f"physical id\t: {min(n // per_socket, sockets - 1)}", f"flags\t\t: {flags}"]
            blocks.append("\n".join(lines))
        (self.root / "proc" / "cpuinfo").write_text("\n\n".join(blocks) + "\n")
        self.busy_ticks = self.idle_ticks = 0
        self._write_stat()

    def advance(self, seconds: float, busy_cpus: float = 0.0) -> None:
        """Let ``seconds`` pass with ``busy_cpus`` logical CPUs busy and the rest idle."""
        self.clock.t += seconds
        self.busy_ticks += round(seconds * busy_cpus * CLK_TCK)
        self.idle_ticks += round(seconds * (self.cpus - busy_cpus) * CLK_TCK)
        self._write_stat()

    def _write_stat(self) -> None:
        # user nice system idle iowait irq softirq steal guest guest_nice
        line = f"cpu  {self.busy_ticks} 0 0 {self.idle_ticks} 0 0 0 0 0 0\n"
        per_cpu = "".join(f"cpu{n} 0 0 0 0 0 0 0 0 0 0\n" for n in range(self.cpus))
        (self.root / "proc" / "stat").write_text(line + per_cpu + "intr 0\nctxt 0\n")
