"""Dask integration: per-window overhead with 1, 2 and 4 local workers; sampler CPU per worker.

Run: ``.venv/bin/python benchmarks/bench_dask.py [--windows 40] [--idle-s 6] [--backends estimate]``.

- *window overhead*: wall time of ``ClusterWindow.start()`` and ``.stop()`` around an
  empty block (each is one scheduler broadcast round trip; stop also builds and logs one
  record per instance), next to a bare scheduler round trip for scale.
- *sampler CPU per worker*: CPU time of one counter read and of one published reading
  (the periodic callback while a window is open) on a worker, the sampler thread's CPU
  over an idle period (from ``/proc/self/task/<tid>/stat``), and the whole worker
  process's CPU over the same idle period with and without the plugin.

Prints figures; asserts nothing about wall-clock time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("ENERGYKERNEL_LOG_DIR", tempfile.mkdtemp(prefix="ek-bench-dask-"))


def _ms(values: list[float]) -> str:
    values = sorted(values)
    p90 = values[min(len(values) - 1, int(0.9 * len(values)))]
    return f"median {statistics.median(values) * 1e3:6.2f} ms  p90 {p90 * 1e3:6.2f} ms"


def bench_windows(n_workers: int, windows: int, env: dict[str, str]) -> None:
    from distributed import Client, LocalCluster

    import energykernel.dask as ekd

    with LocalCluster(n_workers=n_workers, processes=True, threads_per_worker=1,
                      dashboard_address=":0", env=env) as cluster, Client(cluster) as client:
        ekd.register(client)
        for _ in range(3):  # warm up connections
            ekd.ClusterWindow(client, "warm-up").start().stop()
        starts, stops, rtts = [], [], []
        for _ in range(windows):
            t = time.perf_counter()
            client.sync(client.scheduler.identity)
            rtts.append(time.perf_counter() - t)
            w = ekd.ClusterWindow(client, "empty")
            t0 = time.perf_counter()
            w.start()
            t1 = time.perf_counter()
            w.stop()
            t2 = time.perf_counter()
            starts.append(t1 - t0)
            stops.append(t2 - t1)
        total = [a + b for a, b in zip(starts, stops, strict=True)]
        print(f"{n_workers} worker(s): start {_ms(starts)} | stop {_ms(stops)} | "
              f"window {_ms(total)} | scheduler RTT {_ms(rtts)}")


def _worker_costs(dask_worker, reads: int) -> dict[str, float]:
    import time as _time

    from energykernel.core.engine import get_engine

    plugin = dask_worker.plugins["energykernel"]
    engine = get_engine()
    t = _time.thread_time()
    for _ in range(reads):
        engine.read()
    read_s = (_time.thread_time() - t) / reads
    t = _time.thread_time()
    for _ in range(reads):
        plugin.snapshot()
    snapshot_s = (_time.thread_time() - t) / reads
    return {"read_s": read_s, "snapshot_s": snapshot_s, "period_s": engine.period_s()}


async def _idle_cpu(idle_s: float) -> dict[str, float]:
    """CPU of this worker process, and of the sampler thread, over ``idle_s`` of an idle
    (but running: heartbeats, callbacks) event loop."""
    import asyncio
    import os as _os
    import time as _time

    from energykernel.core import engine as _engine

    eng = _engine._engine
    thread = eng._thread if eng is not None else None
    clk = _os.sysconf("SC_CLK_TCK")

    def thread_cpu_s() -> float:
        if thread is None or not thread.is_alive():
            return 0.0
        with open(f"/proc/self/task/{thread.native_id}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / clk

    th0, p0 = thread_cpu_s(), _time.process_time()
    await asyncio.sleep(idle_s)
    th1, p1 = thread_cpu_s(), _time.process_time()
    return {"process": (p1 - p0) / idle_s, "sampler": (th1 - th0) / idle_s}


def bench_sampler(idle_s: float, env: dict[str, str]) -> None:
    from distributed import Client, LocalCluster

    import energykernel.dask as ekd

    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                      dashboard_address=":0", env=env) as cluster, Client(cluster) as client:
        without = client.run(_idle_cpu, idle_s=idle_s)
        ekd.register(client)
        costs = client.run(_worker_costs, reads=2000)
        idle = client.run(_idle_cpu, idle_s=idle_s)
        with ekd.ClusterWindow(client, "idle-window"):
            in_window = client.run(_idle_cpu, idle_s=idle_s)
        for addr, c in costs.items():
            rate = 1.0 / c["period_s"]
            print(f"worker {addr}: one counter read {c['read_s'] * 1e6:.1f} µs CPU; one "
                  f"published reading {c['snapshot_s'] * 1e6:.1f} µs CPU + log_event; "
                  f"at {rate:g} Hz reads need ≈{c['read_s'] * rate * 100:.4f} % of a core")
            print(f"  idle worker process CPU: {without[addr]['process'] * 100:.3f} % without "
                  f"the plugin, {idle[addr]['process'] * 100:.3f} % with it, "
                  f"{in_window[addr]['process'] * 100:.3f} % inside an open window; sampler "
                  f"thread {idle[addr]['sampler'] * 100:.3f} % (10 ms tick resolution)")
        ekd.unregister(client)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=40)
    parser.add_argument("--idle-s", type=float, default=6.0)
    parser.add_argument("--backends", default=os.environ.get("ENERGYKERNEL_BACKENDS", ""),
                        help="ENERGYKERNEL_BACKENDS for the workers (default: what they find)")
    parser.add_argument("--workers", default="1,2,4")
    args = parser.parse_args()
    env = {"ENERGYKERNEL_BACKENDS": args.backends} if args.backends else {}
    import logging

    logging.getLogger("distributed").setLevel(logging.ERROR)
    print(f"cpu count {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}, "
          f"backends {args.backends or '(auto)'}")
    print("== per-window overhead (empty block) ==")
    for n in (int(x) for x in args.workers.split(",")):
        bench_windows(n, args.windows, env)
    print("== sampler CPU per worker ==")
    bench_sampler(args.idle_s, env)


if __name__ == "__main__":
    main()
