"""Hand-computed schedules for monitor, optimize and optimal (README, "What-if tools")."""

from __future__ import annotations

import numpy as np
import pytest

from energykernel.sim import (
    ComputeEnvironment,
    ComputeInstance,
    Resource,
    SimulationInputError,
    Task,
    UnschedulableError,
    Workflow,
)


def two_instances(idle_b: float = 0.0) -> ComputeEnvironment:
    return ComputeEnvironment([
        ComputeInstance("a", {"cpu": Resource(4, 5.0)}),
        ComputeInstance("b", {"cpu": Resource(4, 1.0)}, idle_power_w=idle_b),
    ])


def three_tasks() -> Workflow:
    return Workflow([Task(f"t{k}", 10, {"cpu": 4}) for k in range(3)])


def placed(r):
    return [(t, r.instances[i], s, e) for t, i, s, e in
            zip(r.task_names, r.assignment, r.start_s, r.end_s, strict=True)]


def test_monitor_takes_instances_in_given_order_and_queues():
    r = two_instances().run(three_tasks(), "monitor")
    # t0 fills a, t1 fills b, t2 waits until both free at 10 s and takes a (first in order).
    assert placed(r) == [("t0", "a", 0, 10), ("t1", "b", 0, 10), ("t2", "a", 10, 20)]
    assert r.energy_j == pytest.approx(10 * 4 * 5 + 10 * 4 * 1 + 10 * 4 * 5)  # 440 J
    assert r.makespan_s == 20


def test_optimize_takes_the_cheapest_instance_that_fits():
    r = two_instances().run(three_tasks(), "optimize")
    assert placed(r) == [("t0", "b", 0, 10), ("t1", "a", 0, 10), ("t2", "b", 10, 20)]
    assert r.energy_j == pytest.approx(40 + 200 + 40)
    assert r.makespan_s == 20


def test_speed_shortens_runtime_and_energy():
    env = ComputeEnvironment([
        ComputeInstance("a", {"cpu": Resource(8, 5.0)}, idle_power_w=10),
        ComputeInstance("b", {"cpu": Resource(8, 2.0)}, speed=2),
    ])
    wf = Workflow([Task(f"t{k}", 10, {"cpu": 4}) for k in range(5)])
    r = env.run(wf, "monitor")
    assert placed(r) == [("t0", "a", 0, 10), ("t1", "a", 0, 10), ("t2", "b", 0, 5),
                         ("t3", "b", 0, 5), ("t4", "b", 5, 10)]
    # tasks: 2 × (10 s × 4 × 5 W) + 3 × (5 s × 4 × 2 W); idle: a ran, 10 W × 10 s.
    assert r.task_energy_j == pytest.approx(400 + 120)
    assert r.idle_energy_j == {"a": pytest.approx(100.0), "b": 0.0}
    assert r.energy_j == pytest.approx(620)


def test_idle_power_and_pue():
    env = ComputeEnvironment([ComputeInstance("a", {"cpu": Resource(4, 5.0)},
                                              idle_power_w=10, pue=1.5)])
    wf = Workflow([Task("t0", 10, {"cpu": 2}), Task("t1", 10, {"cpu": 2}),
                   Task("t2", 5, {"cpu": 4})])
    r = env.run(wf, "monitor")
    assert placed(r) == [("t0", "a", 0, 10), ("t1", "a", 0, 10), ("t2", "a", 10, 15)]
    assert np.nansum(r.step_energy_j, axis=1).tolist() == pytest.approx([150, 150, 150])
    assert r.idle_energy_j["a"] == pytest.approx(10 * 15 * 1.5)
    assert r.energy_j == pytest.approx(450 + 225)


def test_idle_charged_only_on_used_instances_for_the_whole_makespan():
    env = ComputeEnvironment([
        ComputeInstance("a", {"cpu": Resource(4, 1.0)}, idle_power_w=7),
        ComputeInstance("b", {"cpu": Resource(4, 1.0)}, idle_power_w=100),
        ComputeInstance("c", {"ram": Resource(4, 1.0)}, idle_power_w=3),
    ])
    wf = Workflow([Task("long", 30, {"cpu": 4}), Task("short", 5, {"ram": 1})])
    r = env.run(wf, "monitor")
    assert r.makespan_s == 30
    assert r.idle_energy_j == {"a": 7 * 30, "b": 0.0, "c": 3 * 30}


def test_no_overtaking_starts_follow_workflow_order():
    env = ComputeEnvironment([ComputeInstance("a", {"cpu": Resource(4, 1.0)}),
                              ComputeInstance("b", {"ram": Resource(8, 1.0)})])
    wf = Workflow([Task("t0", 10, {"cpu": 4}), Task("t1", 10, {"cpu": 4}),
                   Task("t2", 1, {"ram": 1})])
    r = env.run(wf, "monitor")
    # t2 could run on b at 0 s but starts in workflow order: not before t1 (10 s).
    assert placed(r)[2] == ("t2", "b", 10, 11)
    assert np.all(np.diff(r.start_s) >= 0)


def test_multi_component_fit_and_energy_per_component():
    env = ComputeEnvironment([
        ComputeInstance("small", {"cpu": Resource(8, 4.0), "ram": Resource(16, 0.5)}),
        ComputeInstance("gpu", {"cpu": Resource(8, 4.0), "gpu": Resource(1, 300.0),
                                "ram": Resource(64, 0.5)}),
    ])
    wf = Workflow([Task("etl", 100, {"cpu": 4, "ram": 32}), Task("train", 50, {"gpu": 1, "cpu": 2})])
    r = env.run(wf, "monitor")
    assert [r.instances[i] for i in r.assignment] == ["gpu", "gpu"]
    ds = r.dataset
    assert float(ds.energy.sel(task="etl", instance="gpu", component="cpu")) == 100 * 4 * 4
    assert float(ds.energy.sel(task="etl", instance="gpu", component="ram")) == 100 * 32 * 0.5
    assert float(ds.energy.sel(task="etl", instance="gpu", component="gpu")) == 0.0
    assert float(ds.energy.sel(task="train", instance="gpu", component="gpu")) == 50 * 300
    assert np.isnan(float(ds.energy.sel(task="etl", instance="small", component="cpu")))


def test_ties_in_optimize_go_to_given_order():
    env = ComputeEnvironment([ComputeInstance(n, {"cpu": Resource(4, 1.0)}) for n in "xyz"])
    r = env.run(Workflow([Task("t", 1, {"cpu": 1})]), "optimize")
    assert r.instances[r.assignment[0]] == "x"


def test_task_without_demand_and_zero_duration():
    env = two_instances()
    r = env.run(Workflow([Task("noop", 0), Task("t", 10, {"cpu": 4})]), "monitor")
    assert placed(r) == [("noop", "a", 0, 0), ("t", "a", 0, 10)]


def test_float_capacity_drift_does_not_block():
    env = ComputeEnvironment([ComputeInstance("a", {"cpu": Resource(0.3, 1.0)})])
    wf = Workflow([Task(f"t{k}", 1, {"cpu": 0.1}) for k in range(3)]
                  + [Task("big", 1, {"cpu": 0.3})])
    r = env.run(wf, "monitor")
    assert r.start_s.tolist() == [0, 0, 0, 1]


@pytest.mark.parametrize("mode", ["monitor", "optimize", "optimal"])
def test_task_that_fits_nowhere_names_task_and_component(mode):
    env = two_instances()
    with pytest.raises(UnschedulableError, match=r"'train'.*gpu"):
        env.run(Workflow([Task("train", 1, {"gpu": 1})]), mode)
    with pytest.raises(UnschedulableError, match=r"'big'.*cpu \(needs 64, largest capacity 4\)"):
        env.run(Workflow([Task("big", 1, {"cpu": 64})]), mode)


def test_no_single_instance_has_both():
    env = ComputeEnvironment([ComputeInstance("c", {"cpu": Resource(4, 1)}),
                              ComputeInstance("r", {"ram": Resource(4, 1)})])
    with pytest.raises(UnschedulableError, match=r"'both'.*no single instance"):
        env.run(Workflow([Task("both", 1, {"cpu": 1, "ram": 1})]), "monitor")


def test_bad_mode_and_deadline_outside_optimal():
    with pytest.raises(SimulationInputError, match="mode"):
        two_instances().run(three_tasks(), "fastest")
    with pytest.raises(SimulationInputError, match="deadline_s"):
        two_instances().run(three_tasks(), "monitor", deadline_s=5)
    with pytest.raises(SimulationInputError, match="time_limit_s: only the 'optimal'"):
        two_instances().run(three_tasks(), "optimize", time_limit_s=5)
    for bad in (0, -1, float("nan"), "10"):
        with pytest.raises(SimulationInputError, match="time_limit_s"):
            two_instances().run(three_tasks(), "optimal", time_limit_s=bad)


def test_emissions_from_instance_intensity():
    env = ComputeEnvironment([ComputeInstance("a", {"cpu": Resource(1, 1000.0)},
                                              intensity_g_per_kwh=100.0)])
    r = env.run(Workflow([Task("hour", 3600, {"cpu": 1})]), "monitor")
    assert r.energy_j == pytest.approx(3.6e6)
    assert r.emissions_g == pytest.approx(100.0)
    assert float(r.dataset.emissions.sum()) == pytest.approx(100.0)


def test_emissions_unknown_without_intensity():
    r = two_instances().run(three_tasks(), "monitor")
    assert np.isnan(r.emissions_g)


def test_same_task_object_repeated_in_workflow():
    t = Task("step", 10, {"cpu": 4})
    r = two_instances().run(Workflow([t, t, t]), "monitor")
    ds = r.dataset
    assert int(ds.runs.sel(task="step").sum()) == 3
    assert ds.step_task.values.tolist() == ["step"] * 3


def test_summary_compare_and_schedule_tables():
    env = two_instances()
    mon, opt = env.run(three_tasks(), "monitor"), env.run(three_tasks(), "optimize")
    table = mon.summary()
    assert table.loc["TOTAL", "total_j"] == pytest.approx(440)
    assert table.loc["a", "tasks"] == 2
    cmp = mon.compare(opt)
    assert cmp.loc["energy_j", "monitor"] == pytest.approx(440)
    assert cmp.loc["energy_j", "optimize"] == pytest.approx(280)
    assert cmp.loc["energy_j", "difference"] == pytest.approx(-160)
    assert list(opt.schedule().instance) == ["b", "a", "b"]
    assert "440 J" in repr(mon)


@pytest.mark.parametrize("mode", ["monitor", "optimize"])
def test_vectorised_scan_gives_the_same_schedule_as_the_trees(monkeypatch, mode):
    from energykernel.sim import choose

    rng = np.random.default_rng(7)
    env = ComputeEnvironment([
        ComputeInstance(f"i{i}", {"cpu": Resource(float(rng.integers(4, 16)), float(rng.uniform(1, 5))),
                                  "ram": Resource(float(rng.integers(8, 64)), float(rng.uniform(0.1, 1)))},
                        speed=float(rng.choice([0.5, 1.0, 2.0])))
        for i in range(12)])
    wf = Workflow([Task(f"t{k}", float(rng.uniform(1, 30)),
                        {"cpu": float(rng.integers(1, 4)), "ram": float(rng.uniform(1, 8))})
                   for k in range(300)])
    trees = env.run(wf, mode)
    monkeypatch.setattr(choose, "MAX_ORDERS", 0)
    scan = env.run(wf, mode)
    assert scan.assignment.tolist() == trees.assignment.tolist()
    assert scan.start_s.tolist() == trees.start_s.tolist()
    assert np.all(np.diff(trees.start_s) >= 0)


def naive_schedule(env, wf, mode):
    """Reference: rescan everything at every candidate time (slow, obviously right).

    The first ready step (all predecessors ended) in workflow order starts at the earliest
    time an instance can hold it; ``optimize`` takes the instance whose choice adds the
    least energy: task energy + idle of every used instance over the makespan it adds +
    a new instance's idle over the whole makespan it joins (``Dynamic``'s docstring).
    """
    insts = env.instances
    tasks = wf.tasks
    preds = wf.dag.preds if wf.dag is not None else [()] * len(tasks)
    idle = [i.idle_power_w * i.pue for i in insts]
    placed_ = {}  # step → (instance, start, end)
    now = 0.0
    while len(placed_) < len(tasks):
        ready = [s for s in range(len(tasks)) if s not in placed_
                 and all(p in placed_ and placed_[p][2] <= now for p in preds[s])]
        t = tasks[ready[0]] if ready else None

        def free(i, c, now=now):
            cap = insts[i].resources[c].capacity if c in insts[i].resources else 0.0
            return cap - sum(tasks[q].demand.get(c, 0.0) for q, (j, s, e) in placed_.items()
                             if j == i and s <= now < e)

        fits = [] if t is None else [i for i in range(len(insts))
                                     if all(free(i, c) >= d - 1e-9 for c, d in t.demand.items())]
        if not fits:
            now = min(e for _, _, e in placed_.values() if e > now)
            continue
        if mode == "monitor":
            i = fits[0]
        else:
            used = {j for j, _, _ in placed_.values()}
            makespan = max((e for _, _, e in placed_.values()), default=0.0)
            rate = sum(idle[j] for j in used)

            def cost(i, t=t, now=now, used=used, makespan=makespan, rate=rate):
                inst = insts[i]
                end = now + t.duration_s / inst.speed
                energy = t.duration_s / inst.speed * inst.pue * sum(
                    d * inst.resources[c].cost for c, d in t.demand.items())
                new = idle[i] * max(makespan, end) if i not in used else 0.0
                return energy + rate * max(0.0, end - makespan) + new
            i = min(fits, key=lambda i: (cost(i), i))
        placed_[ready[0]] = (i, now, now + t.duration_s / insts[i].speed)
    return [placed_[s] for s in range(len(tasks))]


def random_env(rng, n=5, idle=False):
    return ComputeEnvironment([
        ComputeInstance(f"i{i}", {"cpu": Resource(float(rng.integers(2, 8)), float(rng.uniform(1, 5))),
                                  "gpu": Resource(float(rng.integers(0, 3)), 100.0)},
                        speed=float(rng.choice([0.5, 1.0, 2.0])), pue=float(rng.choice([1, 1.5])),
                        idle_power_w=float(rng.choice([0.0, rng.uniform(1, 60)])) if idle else 0.0)
        for i in range(n)])


def random_workflow(rng, n=40, dag=False):
    tasks = []
    for k in range(n):
        after = ()
        if dag and k:
            after = tuple(f"t{p}" for p in sorted(set(rng.integers(max(0, k - 8), k, 2).tolist()))
                          if rng.random() < 0.7)
        tasks.append(Task(f"t{k}", float(rng.integers(1, 20)),
                          {"cpu": float(rng.integers(1, 3)), "gpu": float(rng.integers(0, 2))},
                          after=after))
    if dag:  # some steps listed before a predecessor
        rng.shuffle(tasks[n // 2:])
    return Workflow(tasks)


def assert_same(r, want):
    got = list(zip(r.assignment.tolist(), r.start_s.tolist(), r.end_s.tolist(), strict=True))
    assert [g[0] for g in got] == [w[0] for w in want]
    assert [x for g in got for x in g[1:]] == pytest.approx([x for w in want for x in w[1:]])


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("mode", ["monitor", "optimize"])
def test_event_driven_scheduler_matches_naive_reference(seed, mode):
    rng = np.random.default_rng(seed)
    env, wf = random_env(rng), random_workflow(rng)
    assert_same(env.run(wf, mode), naive_schedule(env, wf, mode))


@pytest.mark.parametrize("scan", [False, True])
@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("mode", ["monitor", "optimize"])
def test_dependencies_and_idle_power_match_naive_reference(seed, mode, scan, monkeypatch):
    from energykernel.sim import choose

    if scan:  # the vectorised scan instead of the trees
        monkeypatch.setattr(choose, "MAX_ORDERS", 0)
    rng = np.random.default_rng(50 + seed)
    env, wf = random_env(rng, n=6, idle=True), random_workflow(rng, n=50, dag=True)
    r = env.run(wf, mode, idle_aware=True)  # the reference ranks optimize with idle
    assert_same(r, naive_schedule(env, wf, mode))
    for s, ps in enumerate(wf.dag.preds):
        assert all(r.start_s[s] >= r.end_s[p] for p in ps)


def energy_alone(env, wf):
    """``optimize`` ranking by task energy alone (the rule before idle was counted)."""
    from energykernel.sim.result import SimulationResult
    from energykernel.sim.schedule import compile_problem, run_schedule

    prob = compile_problem(env, wf)
    return SimulationResult.build(prob, "optimize", *run_schedule(prob, "optimize",
                                                                  idle_aware=False))


def test_optimize_counts_the_idle_power_a_new_instance_adds():
    # The first instance is big; the second is cheaper per core but idles at 150 W.
    env = ComputeEnvironment([ComputeInstance("big", {"cpu": Resource(16, 5.0)}, idle_power_w=100),
                              ComputeInstance("small", {"cpu": Resource(4, 4.0)},
                                              idle_power_w=150)])
    wf = Workflow([Task(f"t{k}", 10, {"cpu": 4}) for k in range(4)])
    mon = env.run(wf, "monitor")
    assert mon.energy_j == pytest.approx(4 * 10 * 4 * 5 + 100 * 10)  # all on big: 1,800 J
    # By task energy alone, t0 goes to small (160 J < 200 J) and opens a second idle
    # instance: 160 + 3 × 200 + (100 + 150) × 10 = 3,260 J, worse than monitor.
    before = energy_alone(env, wf)
    assert [before.instances[i] for i in before.assignment] == ["small", "big", "big", "big"]
    assert before.energy_j == pytest.approx(3260)
    # Counting idle: t0 on small adds 160 + 150 × 10 = 1,660 J, on big 200 + 100 × 10 =
    # 1,200 J; then big is in use (200 J a task) while small would still add 1,660 J.
    assert env.run(wf, "optimize").energy_j == pytest.approx(3260)  # DESIGN §5's rule
    opt = env.run(wf, "optimize", idle_aware=True)
    assert placed(opt) == [(f"t{k}", "big", 0, 10) for k in range(4)]
    assert opt.energy_j == pytest.approx(mon.energy_j)


def test_optimize_counts_the_makespan_a_slow_instance_adds():
    env = ComputeEnvironment([
        ComputeInstance("a", {"cpu": Resource(4, 1.0), "ram": Resource(1, 1.0)}, idle_power_w=10),
        ComputeInstance("b", {"cpu": Resource(4, 2.5)}, speed=2)])
    wf = Workflow([Task("only-a", 10, {"ram": 1}), Task("work", 20, {"cpu": 4})])
    # work on a: 80 J but it ends at 20 s, 10 s past the makespan, while a idles (10 W):
    # 180 J; on b (speed 2): 10 s × 4 × 2.5 = 100 J, ending at 10 s.
    opt = env.run(wf, "optimize", idle_aware=True)
    assert placed(opt) == [("only-a", "a", 0, 10), ("work", "b", 0, 10)]
    assert opt.energy_j == pytest.approx(10 + 100 + 10 * 10)
    before = energy_alone(env, wf)
    assert before.energy_j == pytest.approx(10 + 80 + 10 * 20)
    assert env.run(wf, "monitor").energy_j == pytest.approx(290)
