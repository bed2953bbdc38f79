"""Simulation speed: ``python benchmarks/bench_sim.py [--quick | --widget | --compare | --proof |
--proof-sizes]``.

Prints wall times for the event-driven scheduler (targets):

* 100,000 tasks × 1,000 instances in monitor and optimize (target < 5 s each), with a
  realistic mix of 8 task kinds (demands scaled ×1/×2/×4, random durations) on a fleet of
  CPU, GPU and high-memory instances with ±10 % cost spread;
* the same with a random demand direction per task (optimize falls back to a vectorised
  scan beyond 64 directions);
* the widget-sized case, 200 tasks × 10 instances, in all three modes (target < 200 ms),
  and the simulator widget's update (numbers; numbers + charts rendered to PNG);
* optimal (heuristic) on 10,000 tasks × 100 instances; building the Dataset of 100k steps;
* with dependencies: a layered DAG of 100,000 tasks (layers of 1,000, each task after 1–3
  random tasks of the layer before) on 1,000 instances in monitor and optimize (target
  < 5 s each), the workflow's validation (names resolved, cycle check), and optimal
  (heuristic) on a 10,000-task DAG × 100 instances;
* ``--proof-sizes``: optimal's proof on 10 to 50 tasks × 10 instances (where it holds);
* ``--compare``: the scheduling rules side by side — monitor, optimize (greedy), optimize
  with ``algorithm="heft"`` and ``"heft-energy"``, and optimal (up to 10,000 tasks) — on
  generated DAGs (layered, fork-join, random) of 100 to 100,000 tasks, one instance per
  100 tasks (at least 10): energy (kWh), makespan (h) and run time (s), and optimal's gap
  to its lower bound; then optimal's proof on 50 tasks × 10 instances (target < 10 s).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from energykernel.sim import ComputeEnvironment, ComputeInstance, Resource, Task, Workflow

KINDS = [
    {"cpu": 2, "ram": 4}, {"cpu": 8, "ram": 32}, {"cpu": 16, "ram": 256},
    {"cpu": 4, "gpu": 1, "ram": 32}, {"cpu": 8, "gpu": 2, "ram": 64},
    {"cpu": 1, "storage": 200}, {"cpu": 4, "ram": 8, "storage": 500}, {"cpu": 12, "ram": 64},
]
TYPES = [  # (resources: capacity, W per unit), speed, idle W
    ({"cpu": (64, 4.4), "ram": (512, 0.375), "storage": (3000, 0.003)}, 1.0, 120.0),
    ({"cpu": (64, 3.5), "gpu": (4, 400.0), "ram": (1024, 0.375)}, 1.0, 400.0),
    ({"cpu": (16, 4.4), "gpu": (2, 70.0), "ram": (128, 0.375)}, 0.8, 90.0),
    ({"cpu": (80, 6.75), "ram": (4096, 0.375), "storage": (6000, 0.003)}, 1.1, 200.0),
]


def fleet(n: int, rng: np.random.Generator, jitter: bool = True) -> ComputeEnvironment:
    """``n`` instances of the 4 :data:`TYPES` in turn, each type's powers × U(0.9, 1.1)
    (``jitter=False``: × 1, so instances of a type are identical)."""
    out = []
    for i in range(n):
        res, speed, idle = TYPES[i % len(TYPES)]
        f = rng.uniform(0.9, 1.1)
        f = f if jitter else 1.0
        out.append(ComputeInstance(
            f"i{i}", {c: Resource(cap, cost * f) for c, (cap, cost) in res.items()},
            speed=speed, idle_power_w=idle, pue=1.2))
    return ComputeEnvironment(out)


def workload(n: int, rng: np.random.Generator, random_dirs: bool = False) -> Workflow:
    kinds = rng.integers(0, len(KINDS), n)
    scale = rng.choice([1, 2, 4], n)
    dur = rng.exponential(60.0, n) + 1.0
    tasks = []
    for k in range(n):
        base = KINDS[kinds[k]]
        if random_dirs:
            dem = {c: v * rng.uniform(0.5, 1.5) for c, v in base.items()}
        else:
            dem = {c: v * scale[k] if c != "gpu" else v for c, v in base.items()}
        tasks.append(Task(f"t{k % 500}", float(dur[k]), dem))
    return Workflow(tasks)


def dag_workload(n: int, rng: np.random.Generator, width: int = 1000,
                 max_preds: int = 3) -> list[Task]:
    """Tasks of :func:`workload`'s kinds in layers of ``width``; each task after 1 to
    ``max_preds`` random tasks of the layer before (names unique: ``t0``, ``t1``, …)."""
    kinds = rng.integers(0, len(KINDS), n)
    scale = rng.choice([1, 2, 4], n)
    dur = rng.exponential(60.0, n) + 1.0
    count = rng.integers(1, max_preds + 1, n)
    picks = rng.integers(0, width, (n, max_preds))
    tasks = []
    for k in range(n):
        lo = (k // width - 1) * width
        after = tuple(f"t{lo + p}" for p in picks[k, :count[k]]) if lo >= 0 else ()
        dem = {c: v * scale[k] if c != "gpu" else v for c, v in KINDS[kinds[k]].items()}
        tasks.append(Task(f"t{k}", float(dur[k]), dem, after))
    return tasks


def _kind_demand(rng: np.random.Generator, n: int) -> tuple[list[dict], np.ndarray]:
    kinds = rng.integers(0, len(KINDS), n)
    scale = rng.choice([1, 2, 4], n)
    dem = [{c: v * scale[k] if c != "gpu" else v for c, v in KINDS[kinds[k]].items()}
           for k in range(n)]
    return dem, rng.exponential(60.0, n) + 1.0


def fork_join_workload(n: int, rng: np.random.Generator, width: int = 50) -> list[Task]:
    """Fork-join stages: a fork task, ``width`` parallel tasks after it, a join after them
    all, the next fork after the join (``width + 2`` tasks a stage)."""
    dem, dur = _kind_demand(rng, n)
    tasks: list[Task] = []
    prev: tuple[str, ...] = ()
    k = 0
    while k < n:
        fork = f"t{k}"
        tasks.append(Task(fork, float(dur[k]), dem[k], prev))
        k += 1
        branch = []
        for _ in range(min(width, n - k - 1)):
            tasks.append(Task(f"t{k}", float(dur[k]), dem[k], (fork,)))
            branch.append(f"t{k}")
            k += 1
        if k < n:
            tasks.append(Task(f"t{k}", float(dur[k]), dem[k], tuple(branch) or (fork,)))
            prev = (f"t{k}",)
            k += 1
    return tasks


def random_dag_workload(n: int, rng: np.random.Generator, mean_preds: float = 2.0,
                        window: int = 200) -> list[Task]:
    """Each task after a Poisson(``mean_preds``) number of random earlier tasks among the
    ``window`` before it (a random DAG in topological order)."""
    dem, dur = _kind_demand(rng, n)
    count = rng.poisson(mean_preds, n)
    tasks = []
    for k in range(n):
        m = min(int(count[k]), k)
        lo = max(0, k - window)
        picks = set(rng.integers(lo, k, m).tolist()) if m else set()
        tasks.append(Task(f"t{k}", float(dur[k]), dem[k], tuple(f"t{p}" for p in sorted(picks))))
    return tasks


RULES = [("monitor", "monitor", "greedy"), ("optimize", "optimize", "greedy"),
         ("heft", "optimize", "heft"), ("heft-energy", "optimize", "heft-energy"),
         ("optimal", "optimal", "greedy")]


def bench_compare(sizes: list[int]) -> None:
    """The ``--compare`` table (module docstring)."""
    print(f"\n{'family':<10s} {'tasks':>7s} {'inst':>5s} {'rule':<12s} {'energy kWh':>11s} "
          f"{'makespan h':>10s} {'run s':>7s}  note")
    families = {"layered": lambda n, r: dag_workload(n, r, width=max(10, n // 100)),
                "fork-join": fork_join_workload, "random": random_dag_workload}
    for family, make in families.items():
        for n in sizes:
            rng = np.random.default_rng(n)
            env = fleet(max(10, n // 100), rng)
            wf = Workflow(make(n, rng))
            for label, mode, algorithm in RULES:
                if mode == "optimal" and n > 10_000:
                    continue
                t0 = time.perf_counter()
                r = env.run(wf, mode, algorithm=algorithm)
                dt = time.perf_counter() - t0
                note = ""
                if mode == "optimal":
                    note = ("proven" if r.info["proven_optimal"] else
                            f"gap to bound ≤ {100 * r.info['gap']:.0f} %, best: "
                            f"{r.info['best_candidate']}")
                print(f"{family:<10s} {n:>7,d} {len(env):>5d} {label:<12s} "
                      f"{r.energy_j / 3.6e6:>11,.2f} {r.makespan_s / 3600:>10,.2f} {dt:>7.2f}  {note}")


def bench_proof(seeds: int = 5) -> None:
    """optimal on 50 tasks × 10 instances (random DAGs): proven within 10 s? On the benchmark
    fleet (every instance's powers jittered: all distinct) and on one whose instances of a
    type are identical (twins: the search breaks their symmetry); then 50 independent
    tasks (:func:`workload`) on the distinct fleet with idle power, no deadline."""
    cases = [(jitter, idle, True) for jitter in (True, False) for idle in (False, True)]
    for jitter, idle, dag in [*cases, (True, True, False)]:
        for seed in range(seeds):
            rng = np.random.default_rng(100 + seed)
            env = fleet(10, rng, jitter)
            if not idle:
                env = ComputeEnvironment([i.with_changes(idle_power_w=0.0) for i in env])
            wf = Workflow(random_dag_workload(50, rng) if dag else workload(50, rng).tasks)
            deadline = env.run(wf, "optimize").makespan_s * 1.2 if dag else None
            t0, c0 = time.perf_counter(), time.process_time()
            r = env.run(wf, "optimal", deadline_s=deadline)
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
            print(f"optimal 50 {'DAG' if dag else 'independent'} tasks x 10 "
                  f"{'distinct' if jitter else 'twinned'} instances, "
                  f"idle {'yes' if idle else 'no '}, seed {seed}: {dt:6.2f} s "
                  f"({dc:5.2f} s cpu), proven {'yes' if r.info['proven_optimal'] else 'no '}, "
                  f"{r.info['nodes']:>7,} nodes, gap ≤ {100 * r.info['gap']:4.1f} %, "
                  f"{100 * (1 - r.energy_j / env.run(wf, 'optimize').energy_j):4.1f} % "
                  f"below optimize")


def bench_proof_sizes(seeds: int = 3) -> None:
    """Where the proof holds: optimal on 10 to 50 tasks (random DAGs, as :func:`bench_proof`)
    × 10 distinct instances, with and without idle power — proven within 10 s, per size."""
    for idle in (False, True):
        for n_tasks in (10, 20, 30, 40, 50):
            proven, times, gaps = 0, [], []
            for seed in range(seeds):
                rng = np.random.default_rng(100 + seed)
                env = fleet(10, rng)
                if not idle:
                    env = ComputeEnvironment([i.with_changes(idle_power_w=0.0) for i in env])
                wf = Workflow(random_dag_workload(n_tasks, rng))
                deadline = env.run(wf, "optimize").makespan_s * 1.2
                t0 = time.perf_counter()
                r = env.run(wf, "optimal", deadline_s=deadline)
                times.append(time.perf_counter() - t0)
                proven += bool(r.info["proven_optimal"])
                gaps.append(r.info["gap"])
            print(f"optimal {n_tasks:2d} tasks x 10 instances, idle {'yes' if idle else 'no '}: "
                  f"proven {proven}/{seeds}, {min(times):5.2f}–{max(times):5.2f} s, "
                  f"gap ≤ {100 * max(gaps):4.1f} %")


def timed(label: str, fn, target_s: float | None = None):
    """Run ``fn`` once; print wall and CPU seconds (CPU is steadier on a shared machine)."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    dt, dc = time.perf_counter() - t0, time.process_time() - c0
    tgt = "" if target_s is None else f"   (target < {target_s:g} s: {'ok' if dt < target_s else 'MISSED'})"
    print(f"{label:<58s} {dt:8.3f} s wall {dc:7.3f} s cpu{tgt}")
    return out


def bench_widget_sized(rng: np.random.Generator) -> None:
    """The 200 tasks × 10 instances case behind the widget, and a widget update.

    Run first, in a fresh process state: a user's notebook does not hold the 100,000-task
    results of the large cases, whose garbage would otherwise be collected mid-update.
    """
    small_env, small_wf = fleet(10, rng), workload(200, rng)
    for mode in ("monitor", "optimize", "optimal"):
        reps = 20 if mode != "optimal" else 3
        t0 = time.perf_counter()
        small_env.run(small_wf, mode)  # the first call imports what the mode needs (scipy)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(reps):
            small_env.run(small_wf, mode)
        dt = (time.perf_counter() - t0) / reps
        print(f"{'widget case ' + mode + ': 200 tasks x 10 instances':<58s} {dt * 1e3:8.2f} ms"
              f"   (target < 200 ms: {'ok' if dt < 0.2 else 'MISSED'}; first call "
              f"{first * 1e3:.0f} ms)")
    try:
        from energykernel.jupyter.widgets.simulation import simulator
    except ImportError:
        print("widget update: ipywidgets not installed, skipped")
    else:
        for chart in (False, True):
            sim = simulator(small_env, small_wf, chart=chart)
            t0, c0 = time.perf_counter(), time.process_time()
            for k in range(5):
                sim.controls["i0"]["speed"].value = 1.0 + 0.1 * (k + 1)  # one edit …
                sim.update()  # … applied now (the widget debounces edits by 150 ms)
            dt, dc = (time.perf_counter() - t0) / 5, (time.process_time() - c0) / 5
            what = ("all 3 modes, totals + breakdown" if not chart
                    else "all 3 modes + charts, PNG")
            print(f"{'widget update (' + what + ')':<58s} {dt * 1e3:8.2f} ms"
                  f"   (target < 200 ms: {'ok' if dt < 0.2 else 'MISSED'}; {dc * 1e3:.0f} ms cpu)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="10x smaller large cases")
    ap.add_argument("--compare", action="store_true",
                    help="only the rules side by side on generated DAGs, and optimal's proof")
    ap.add_argument("--widget", action="store_true",
                    help="only the widget-sized case and the simulator widget's update")
    ap.add_argument("--proof", action="store_true",
                    help="only optimal's proof on 50 tasks x 10 instances")
    ap.add_argument("--proof-sizes", action="store_true",
                    help="only optimal's proof on 10 to 50 tasks x 10 instances")
    args = ap.parse_args()
    if args.proof:
        bench_proof()
        return
    if args.proof_sizes:
        bench_proof_sizes()
        return
    if args.compare:
        bench_compare([100, 1_000, 10_000] if args.quick else [100, 1_000, 10_000, 100_000])
        bench_proof()
        return
    rng = np.random.default_rng(0)
    bench_widget_sized(rng)
    if args.widget:
        return
    nt, ni = (10_000, 100) if args.quick else (100_000, 1_000)
    env = fleet(ni, rng)
    wf = timed(f"build {nt:,} Task objects", lambda: workload(nt, rng))
    for mode in ("monitor", "optimize"):
        r = timed(f"{mode:8s} {nt:,} tasks x {ni:,} instances", lambda m=mode: env.run(wf, m), 5.0)
        print(f"{'':10s}energy {r.energy_j / 3.6e6:,.1f} kWh, makespan {r.makespan_s:,.0f} s, "
              f"{int(r.used.sum())} instances used")
    timed(f"dataset of {nt:,} steps (result.dataset)", lambda: r.dataset)
    wf_rand = workload(nt, rng, random_dirs=True)
    timed(f"optimize, random demand direction per task ({nt:,} x {ni:,})",
          lambda: env.run(wf_rand, "optimize"))
    mid_env, mid_wf = fleet(100, rng), workload(10_000, rng)
    r = timed("optimal (heuristic) 10,000 tasks x 100 instances", lambda: mid_env.run(mid_wf, "optimal"))
    print(f"{'':10s}{r.info['evaluations']} schedules evaluated, best: {r.info['best_candidate']}")
    bench_dag(rng, nt, ni, env)


def bench_dag(rng: np.random.Generator, nt: int, ni: int, env: ComputeEnvironment) -> None:
    """The layered DAG cases (module docstring)."""
    tasks = timed(f"build {nt:,} Task objects with 1-3 predecessors each",
                  lambda: dag_workload(nt, rng, width=nt // 100))
    wf = timed(f"Workflow of {nt:,} tasks: names resolved, cycle check", lambda: Workflow(tasks))
    print(f"{'':10s}{wf.dag.edges:,} dependencies")
    for mode, algorithm in (("monitor", "greedy"), ("optimize", "greedy"),
                            ("optimize", "heft"), ("optimize", "heft-energy")):
        label = mode if algorithm == "greedy" else algorithm
        r = timed(f"{label:8s} DAG {nt:,} tasks x {ni:,} instances",
                  lambda m=mode, a=algorithm: env.run(wf, m, algorithm=a), 5.0)
        print(f"{'':10s}energy {r.energy_j / 3.6e6:,.1f} kWh, makespan {r.makespan_s:,.0f} s, "
              f"{int(r.used.sum())} instances used")
    mid_env = fleet(100, rng)
    mid_wf = Workflow(dag_workload(10_000, rng, width=100))
    r = timed("optimal (heuristic) DAG 10,000 tasks x 100 instances",
              lambda: mid_env.run(mid_wf, "optimal"))
    print(f"{'':10s}{r.info['evaluations']} schedules evaluated, best: {r.info['best_candidate']}")


if __name__ == "__main__":
    main()
