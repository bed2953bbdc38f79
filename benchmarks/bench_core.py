"""Measurement core: overhead of an empty measured block, Dataset build time, memory per run.

Run: ``.venv/bin/python benchmarks/bench_core.py [--compare]``. ``--compare`` also times
CodeCarbon's task API and pyJoules in a throwaway virtual environment (needs PyPI).
Prints figures and ratios; nothing here asserts a wall-clock limit.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path

os.environ.setdefault("ENERGYKERNEL_LOG_DIR", tempfile.mkdtemp(prefix="ek-bench-"))


def per_call_s(fn, n: int, repeat: int = 5) -> float:
    """Best-of-``repeat`` mean time of one call of ``fn`` over ``n`` calls."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t) / n)
    return best


def read_proc_self_stat() -> None:
    with open("/proc/self/stat", "rb") as f:
        f.read()


def bench_empty_block(backends: str, powercap_root: str | None = None,
                      scope: str = "machine", n: int = 2000) -> float:
    import energykernel as ek
    from energykernel.core import config
    from energykernel.core.engine import shutdown_engine

    os.environ["ENERGYKERNEL_BACKENDS"] = backends
    if powercap_root:
        os.environ["ENERGYKERNEL_POWERCAP_ROOT"] = powercap_root
    config.reset_settings()
    shutdown_engine()

    def block():
        with ek.measure("empty", scope=scope):
            pass

    block()
    cost = per_call_s(block, n)
    ek.reset()
    return cost


def bench_process_scope() -> dict[str, float]:
    """Empty blocks, machine vs process scope: the estimate alone, and NVML (the fake
    ``pynvml`` of tests/fakes, two GPUs, each with two compute processes and a window's
    worth of utilisation samples) + the estimate. Process scope reads the process tree
    (/proc, else psutil) at both ends and, with NVML, asks each GPU for its processes and samples."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from fakes.pynvml import FakeGpu, FakePynvml

    from energykernel.core import _proc, gpushare
    from energykernel.core.engine import get_engine

    out = {}
    for scope in ("machine", "process"):
        out[f"estimate/{scope}"] = bench_empty_block("estimate", scope=scope, n=300)
    now_us = int(time.time() * 1e6)
    gpus = [FakeGpu(uuid=f"GPU-{i}", processes=[(os.getpid(), 1 << 30), (1, 1 << 30)],
                    util_samples=[(os.getpid(), now_us + 10**9, 40, 5), (1, now_us + 10**9, 20, 5)])
            for i in range(2)]
    saved = sys.modules.get("pynvml")
    sys.modules["pynvml"] = FakePynvml(gpus)
    try:
        for scope in ("machine", "process"):
            out[f"nvml/{scope}"] = bench_empty_block("nvml,estimate", scope=scope, n=300)
        engine = get_engine()
        delta = {"gpu:0": 1.0, "gpu:1": 1.0}

        def attribution():  # what scope="process" adds for the GPUs, alone
            start = gpushare.begin(engine)
            assert start is not None
            gpushare.attribute({"energy_j": {"gpu": 2.0}}, engine, start, delta)  # type: ignore[typeddict-item]

        out["gpu_attribution"] = per_call_s(attribution, 2000)
        out["tree_pids"] = per_call_s(_proc.tree_pids, 2000)
    finally:
        if saved is None:
            sys.modules.pop("pynvml", None)
        else:
            sys.modules["pynvml"] = saved
    return out


def two_socket_tree():
    """The fake powercap tree of a two-socket server (tests/fakes): package-0 with core,
    uncore and dram subzones, package-1 with dram, psys, and an MMIO copy of package-0."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    try:
        from fakes.powercap import FakePowercap  # type: ignore[import-not-found]
    except Exception:
        return None
    return FakePowercap(Path(tempfile.mkdtemp(prefix="ek-powercap-")))


def bench_pyrapl_on_tree(tree) -> float | None:
    """pyRAPL's ``Measurement.begin()``/``end()`` on the same tree (no persistence)."""
    try:
        from fakes.powercap import pyrapl_patches  # type: ignore[import-not-found]

        patches = pyrapl_patches(tree.sys)
    except Exception:
        return None
    missing = object()
    saved = [(obj, name, getattr(obj, name, missing)) for obj, name, _ in patches]
    for obj, name, value in patches:
        setattr(obj, name, value)
    try:
        import pyRAPL

        pyRAPL.setup()
        meter = pyRAPL.Measurement("empty")

        def block():
            meter.begin()
            meter.end()

        block()
        return per_call_s(block, 2000)
    except Exception as exc:
        print(f"(pyRAPL could not run on the fake tree: {type(exc).__name__}: {exc})")
        return None
    finally:
        for obj, name, value in saved:
            if value is missing:
                delattr(obj, name)
            else:
                setattr(obj, name, value)


def bench_sampler_cpu(period_s: float, wall_s: float = 5.0) -> float:
    """Share of one core the sampler thread uses while the process is otherwise idle."""
    import energykernel as ek
    from energykernel.core import config
    from energykernel.core.engine import get_engine, shutdown_engine

    os.environ["ENERGYKERNEL_BACKENDS"] = "estimate"
    config.reset_settings()
    shutdown_engine()
    ek.configure(sample_interval_s=period_s)
    get_engine().ensure_sampler()
    cpu0, t0 = time.process_time(), time.perf_counter()
    time.sleep(wall_s)
    share = (time.process_time() - cpu0) / (time.perf_counter() - t0)
    shutdown_engine()
    return share


def synthetic_records(n: int, tasks: int = 100, instances: int = 4) -> list[dict]:
    now = time.time()
    return [
        {
            "id": uuid.uuid4().hex, "task": f"task-{k % tasks}", "instance": f"host-{k % instances}",
            "start_s": now + k, "end_s": now + k + 0.5, "duration_s": 0.5,
            "energy_j": {"cpu": 1.0, "ram": 0.25, "storage": 0.01},
            "method": {"cpu": "rapl", "ram": "rapl", "storage": "estimate"},
            "device_energy_j": {"cpu:package-0": 1.0, "ram:dram-0": 0.25},
            "status": "ok", "scope": "machine",
        }
        for k in range(n)
    ]


def bench_dataset(n: int = 100_000) -> tuple[float, float]:
    from energykernel.data import schema

    records = synthetic_records(n)
    schema.cube(records[:10])  # import xarray outside the timing
    t = time.perf_counter()
    schema.cube(records)
    cube_s = time.perf_counter() - t
    t = time.perf_counter()
    schema.runs(records)
    runs_s = time.perf_counter() - t
    return cube_s, runs_s


def bench_memory_per_run(n: int = 10_000) -> float:
    import energykernel as ek
    from energykernel.core import config
    from energykernel.core.engine import shutdown_engine

    os.environ["ENERGYKERNEL_BACKENDS"] = "estimate"
    config.reset_settings()
    shutdown_engine()
    with ek.measure("warm"):
        pass
    ek.reset()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(n):
        with ek.measure("m"):
            pass
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    ek.reset()
    return (after - before) / n


COMPARE_SCRIPT = r'''
import time, tempfile, statistics, json, os
def per_call(fn, n, repeat=5):
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t) / n)
    return best
out = {}
try:
    import logging
    logging.disable(logging.CRITICAL)
    from codecarbon import OfflineEmissionsTracker
    tracker = OfflineEmissionsTracker(country_iso_code="FRA", output_dir=tempfile.mkdtemp(),
                                      save_to_file=False, log_level="error")
    tracker.start()
    def cc():
        tracker.start_task("empty")
        tracker.stop_task()
    cc()
    out["codecarbon"] = per_call(cc, 50, repeat=3)
    tracker.stop()
except Exception as exc:
    out["codecarbon_error"] = f"{type(exc).__name__}: {exc}"[:300]
try:
    from pyJoules.energy_meter import EnergyContext
    def pj():
        with EnergyContext(start_tag="empty"):
            pass
    pj()
    out["pyjoules"] = per_call(pj, 200)
except Exception as exc:
    out["pyjoules_error"] = f"{type(exc).__name__}: {exc}"[:300]
print(json.dumps(out))
'''


def bench_competitors() -> dict:
    """Time CodeCarbon's task API and pyJoules' context in a throwaway venv."""
    import json

    env_dir = Path(tempfile.mkdtemp(prefix="ek-compare-"))
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True)
    py = env_dir / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "--quiet", "codecarbon", "pyJoules"],
                   check=True, stderr=subprocess.DEVNULL)
    res = subprocess.run([str(py), "-c", COMPARE_SCRIPT], capture_output=True, text=True,
                         timeout=900)
    lines = [x for x in res.stdout.splitlines() if x.startswith("{")]
    if not lines:
        return {"error": res.stderr[-500:]}
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--compare", action="store_true", help="also time CodeCarbon and pyJoules")
    args = parser.parse_args()

    stat_s = per_call_s(read_proc_self_stat, 20_000)
    print(f"one read of /proc/self/stat        : {stat_s * 1e6:8.2f} µs")
    est_s = bench_empty_block("estimate")
    print(f"empty block, estimate backend      : {est_s * 1e6:8.2f} µs "
          f"= {est_s / stat_s:5.1f} × /proc/self/stat (budget 25×, target ≤ 100 µs)")
    tree = two_socket_tree()
    if tree is not None:
        root = str(tree.root)
        print("two-socket fake powercap tree (2 packages, core/uncore/dram subzones, psys, mmio):")
        for label, backends, detail in (
                ("rapl (counters only)          ", "rapl", "0"),
                ("rapl + estimate (default)     ", "rapl,estimate", "0"),
                ("rapl, read_detail=True        ", "rapl", "1")):
            os.environ["ENERGYKERNEL_READ_DETAIL"] = detail
            rapl_s = bench_empty_block(backends, root)
            print(f"  empty block, {label}: {rapl_s * 1e6:7.2f} µs "
                  f"= {rapl_s / stat_s:4.2f} × /proc/self/stat (budget 2.5 × for the first two)")
        os.environ["ENERGYKERNEL_READ_DETAIL"] = "0"
        pyrapl_s = bench_pyrapl_on_tree(tree)
        if pyrapl_s is not None:
            print(f"  pyRAPL begin/end, no log        : {pyrapl_s * 1e6:7.2f} µs "
                  f"= {pyrapl_s / stat_s:4.2f} × /proc/self/stat")
        tree.close()
    scoped = bench_process_scope()
    print("scope=\"process\" (the process tree from /proc at both ends; NVML processes):")
    for label in ("estimate", "nvml"):
        machine_s, process_s = scoped[f"{label}/machine"], scoped[f"{label}/process"]
        print(f"  empty block, {label:<8} machine / process: {machine_s * 1e6:7.1f} / "
              f"{process_s * 1e6:7.1f} µs (+{(process_s - machine_s) * 1e6:.1f} µs)")
    print(f"  GPU attribution alone (2 GPUs: pids at both ends, processes, samples): "
          f"{scoped['gpu_attribution'] * 1e6:.1f} µs, of which one /proc children walk "
          f"{scoped['tree_pids'] * 1e6:.1f} µs")
    cube_s, runs_s = bench_dataset()
    print(f"100,000 runs → ek.dataset() cube   : {cube_s:8.3f} s (budget < 1 s)")
    print(f"100,000 runs → ek.runs()           : {runs_s:8.3f} s")
    for period in (1.0, 0.1):
        share = bench_sampler_cpu(period)
        print(f"sampler CPU at {period:>4} s period      : {share * 100:8.3f} % of one core "
              "(budget < 1 %)")
    mem = bench_memory_per_run()
    print(f"memory per recorded run            : {mem:8.0f} bytes")
    if args.compare:
        other = bench_competitors()
        for name in ("codecarbon", "pyjoules"):
            if name in other:
                print(f"{name:<10} empty task            : {other[name] * 1e6:10.1f} µs "
                      f"= {other[name] / est_s:7.1f} × energykernel")
            else:
                print(f"{name:<10} unavailable here      : {other.get(name + '_error', other)}")
    print(f"(Python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
