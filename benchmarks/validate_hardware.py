"""Check the counter backends against the vendor tools under a known load.

Run on a machine with readable RAPL counters and/or an NVIDIA GPU:

    .venv/bin/python benchmarks/validate_hardware.py [--seconds 20]

CPU: a busy loop on every core, measured by each available RAPL backend, compared with
``turbostat`` (PkgWatt, RAMWatt) when it is installed. GPU: a matmul loop (torch, CUDA),
measured by the nvml backend, compared with ``nvidia-smi --query-gpu=power.draw`` sampled
every 100 ms. Prints a Markdown table for docs/validation.md.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import shutil
import subprocess
import tempfile
import time

import energykernel as ek
from energykernel.core import config
from energykernel.core.engine import shutdown_engine


def _spin(stop_at: float) -> None:
    x = 0
    while time.time() < stop_at:
        x += 1


def cpu_load(seconds: float) -> None:
    stop_at = time.time() + seconds
    procs = [mp.Process(target=_spin, args=(stop_at,)) for _ in range(mp.cpu_count())]
    for p in procs:
        p.start()
    for p in procs:
        p.join()


def gpu_load(seconds: float) -> None:
    import torch

    a = torch.randn(8192, 8192, device="cuda")
    stop_at = time.time() + seconds
    while time.time() < stop_at:
        a = (a @ a).clamp_(-1, 1)
    torch.cuda.synchronize()


def sample_command(cmd: list[str]) -> subprocess.Popen:
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def mean_of_column(text: str, column: str) -> float | None:
    values = []
    header: list[str] | None = None
    for line in text.splitlines():
        parts = line.split()
        if column in parts:
            header = parts
            continue
        if header and len(parts) == len(header):
            with contextlib.suppress(ValueError):
                values.append(float(parts[header.index(column)]))
    return sum(values) / len(values) if values else None


def measure_with(backend: str, load, seconds: float):
    ek.configure(backends=[backend], sample_interval_s=0.2)
    shutdown_engine()
    with ek.measure(f"validate-{backend}") as m:
        load(seconds)
    return m.result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    config.update(log_dir=tempfile.mkdtemp(prefix="ek-validate-"))
    rows = []
    statuses = {s.name: s for s in ek.backends()}
    for s in statuses.values():
        print(s)

    for backend in ("rapl", "pyrapl"):
        if not statuses[backend].available:
            continue
        turbostat = None
        if shutil.which("turbostat"):
            turbostat = sample_command(["turbostat", "--quiet", "--Summary", "--show",
                                        "PkgWatt,RAMWatt", "--interval", "1"])
        r = measure_with(backend, cpu_load, args.seconds)
        ref = ""
        if turbostat is not None:
            turbostat.terminate()
            out = turbostat.communicate()[0]
            pkg = mean_of_column(out, "PkgWatt")
            if pkg is not None:
                ref = f"turbostat PkgWatt {pkg:.1f} W"
        cpu_w = r.energy_j.get("cpu", float("nan")) / r.duration_s
        ram_w = r.energy_j.get("ram", float("nan")) / r.duration_s
        rows.append((backend, "busy loop, all cores", f"{r.duration_s:.1f}",
                     f"cpu {cpu_w:.1f} W, ram {ram_w:.1f} W", ref))

    if statuses["nvml"].available:
        smi = None
        if shutil.which("nvidia-smi"):
            smi = sample_command(["nvidia-smi", "--query-gpu=index,power.draw",
                                  "--format=csv,noheader,nounits", "-lms", "100"])
        r = measure_with("nvml", gpu_load, args.seconds)
        ref = ""
        if smi is not None:
            smi.terminate()
            out = smi.communicate()[0]
            draws = [float(line.split(",")[1]) for line in out.splitlines()
                     if line.count(",") == 1 and line.split(",")[0].strip() == "0"]
            if draws:
                ref = f"nvidia-smi power.draw mean {sum(draws) / len(draws):.1f} W (gpu 0)"
        gpu0 = r.device_energy_j.get("gpu:0", float("nan")) / r.duration_s
        rows.append(("nvml", "8192² matmul loop", f"{r.duration_s:.1f}",
                     f"gpu:0 {gpu0:.1f} W", ref))

    print("\n| backend | load | seconds | energykernel mean power | reference |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    if not rows:
        print("| — | no readable counters on this machine | | | |")


if __name__ == "__main__":
    main()
