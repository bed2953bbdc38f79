"""optimal mode: hand-computed optimum, deadline, carbon objective, exactness vs brute force."""

from __future__ import annotations

import itertools

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
from energykernel.sim.optimal import solve
from energykernel.sim.schedule import compile_problem, run_schedule


def env_ab(idle_b: float = 0.0) -> ComputeEnvironment:
    return ComputeEnvironment([
        ComputeInstance("a", {"cpu": Resource(4, 5.0)}),
        ComputeInstance("b", {"cpu": Resource(4, 1.0)}, idle_power_w=idle_b),
    ])


def three() -> Workflow:
    return Workflow([Task(f"t{k}", 10, {"cpu": 4}) for k in range(3)])


def test_optimal_without_idle_puts_everything_on_the_cheapest():
    r = env_ab().run(three(), "optimal")
    assert [r.instances[i] for i in r.assignment] == ["b", "b", "b"]
    assert r.energy_j == pytest.approx(120)
    assert r.makespan_s == 30  # the trade-off is visible: slower than optimize (20 s)
    assert r.info["proven_optimal"] and r.info["objective"] == "energy"


def test_deadline_is_respected():
    r = env_ab().run(three(), "optimal", deadline_s=20)
    assert r.makespan_s <= 20
    assert r.energy_j == pytest.approx(280)  # two runs on b, one on a
    assert r.info["deadline_s"] == 20


def test_impossible_deadline_is_an_error():
    with pytest.raises(UnschedulableError, match="deadline_s=5"):
        env_ab().run(three(), "optimal", deadline_s=5)
    with pytest.raises(SimulationInputError, match="deadline_s"):
        env_ab().run(three(), "optimal", deadline_s=-1)


def test_idle_power_trades_against_consolidation():
    # b idles at 10 W: all on b costs 120 + 10 × 30 = 420 J; optimize's 280 + 10 × 20 = 480 J.
    env = env_ab(idle_b=10)
    opt = env.run(three(), "optimize")
    best = env.run(three(), "optimal")
    assert opt.energy_j == pytest.approx(480)
    assert best.energy_j == pytest.approx(420)


def test_carbon_objective_when_intensities_given():
    env = ComputeEnvironment([
        ComputeInstance("coal", {"cpu": Resource(4, 1.0)}, intensity_g_per_kwh=800),
        ComputeInstance("hydro", {"cpu": Resource(4, 2.0)}, intensity_g_per_kwh=20),
    ])
    wf = Workflow([Task("t", 3600, {"cpu": 1})])
    assert env.run(wf, "optimize").instances[env.run(wf, "optimize").assignment[0]] == "coal"
    carbon = env.run(wf, "optimal")
    assert carbon.info["objective"] == "carbon"
    assert carbon.instances[carbon.assignment[0]] == "hydro"
    energy = env.run(wf, "optimal", objective="energy")
    assert energy.instances[energy.assignment[0]] == "coal"
    with pytest.raises(SimulationInputError, match="objective"):
        env.run(wf, "optimal", objective="money")


def test_carbon_objective_needs_every_intensity():
    env = env_ab()
    with pytest.raises(SimulationInputError, match="without intensity_g_per_kwh: a, b"):
        env.run(three(), "optimal", objective="carbon")


def brute_force(prob, deadline_s=None):
    best = np.inf
    for assign in itertools.product(range(prob.n), repeat=len(prob.steps)):
        ok = all(all(prob.demand[k, c] <= prob.cap[c][i] for c in range(4))
                 for k, i in zip(prob.steps, assign, strict=True))
        if not ok:
            continue
        inst, start, end = run_schedule(prob, "assigned", list(assign))
        from energykernel.sim.result import SimulationResult

        r = SimulationResult.build(prob, "x", inst, start, end)
        if deadline_s is not None and r.makespan_s > deadline_s + 1e-9:
            continue
        best = min(best, r.energy_j)
    return best


def random_case(rng):
    instances = []
    for i in range(3):
        res = {"cpu": Resource(float(rng.integers(2, 6)), float(rng.uniform(1, 10)))}
        if rng.random() < 0.6:
            res["ram"] = Resource(float(rng.integers(4, 16)), float(rng.uniform(0.1, 1)))
        instances.append(ComputeInstance(f"i{i}", res, speed=float(rng.choice([0.5, 1, 2])),
                                         idle_power_w=float(rng.choice([0, 5, 50])),
                                         pue=float(rng.choice([1.0, 1.4]))))
    tasks = [Task(f"t{k}", float(rng.integers(1, 20)), {"cpu": float(rng.integers(1, 3))})
             for k in range(4)]
    return ComputeEnvironment(instances), Workflow(tasks)


def check_exact(env, wf):
    """optimal equals brute force (with and without optimize's makespan as a deadline),
    is proved optimal by the exact search, and is never worse than optimize; returns it."""
    prob = compile_problem(env, wf)
    opt = env.run(wf, "optimize")
    best = env.run(wf, "optimal")
    assert best.energy_j <= opt.energy_j + 1e-9
    assert best.energy_j == pytest.approx(brute_force(prob))
    assert best.info["solver"] == "exact" and best.info["proven_optimal"]
    deadline = opt.makespan_s
    constrained = env.run(wf, "optimal", deadline_s=deadline)
    assert constrained.makespan_s <= deadline + 1e-9
    assert constrained.energy_j <= opt.energy_j + 1e-9
    assert constrained.energy_j == pytest.approx(brute_force(prob, deadline))
    return best


@pytest.mark.parametrize("seed", range(12))
def test_optimal_is_exact_on_small_cases_and_never_worse_than_optimize(seed):
    check_exact(*random_case(np.random.default_rng(seed)))


@pytest.mark.parametrize("seed", range(4))
def test_heuristic_beyond_the_size_limit_never_worse_than_optimize(seed):
    rng = np.random.default_rng(100 + seed)
    env, _ = random_case(rng)
    wf = Workflow([Task(f"t{k}", float(rng.integers(1, 50)), {"cpu": float(rng.integers(1, 3))})
                   for k in range(60)])
    prob = compile_problem(env, wf)
    r = solve(prob, exact=lambda p: False)
    assert r.info["solver"] == "heuristic"
    assert r.energy_j <= env.run(wf, "optimize").energy_j + 1e-9
    d = env.run(wf, "monitor").makespan_s
    r = solve(prob, deadline_s=d, exact=lambda p: False)
    assert r.makespan_s <= d + 1e-9


def test_optimal_reports_energy_and_makespan_in_dataset():
    r = env_ab().run(three(), "optimal", deadline_s=20)
    ds = r.dataset
    assert float(ds.total_energy) == pytest.approx(280)
    assert float(ds.makespan) == 20
    assert ds.attrs["mode"] == "optimal"
    assert ds.attrs["sim_proven_optimal"] == 1


def random_dag(rng, n):
    return Workflow([Task(f"t{k}", float(rng.integers(1, 20)), {"cpu": float(rng.integers(1, 3))},
                          after=tuple(f"t{p}" for p in range(k) if rng.random() < 0.4))
                     for k in range(n)])


@pytest.mark.parametrize("seed", range(10))
def test_optimal_with_dependencies_is_exact_and_never_worse_than_optimize(seed):
    rng = np.random.default_rng(200 + seed)
    env, _ = random_case(rng)
    wf = random_dag(rng, 5)
    best = check_exact(env, wf)
    for s, ps in enumerate(wf.dag.preds):
        assert all(best.start_s[s] >= best.end_s[p] for p in ps)


def test_exact_bound_follows_the_longest_chain():
    # A chain of 4 × 10 s: a makespan bound of one task (10 s) would leave 40 + 5 × 10 J
    # open below the best (240 J); along the chain it is 40 s, so the best heuristic
    # schedule is proved optimal before any node is searched (b is dominated by a).
    env = ComputeEnvironment([ComputeInstance("a", {"cpu": Resource(4, 1.0)}, idle_power_w=5),
                              ComputeInstance("b", {"cpu": Resource(4, 2.0)}, idle_power_w=5)])
    wf = Workflow([Task("t0", 10, {"cpu": 1})]
                  + [Task(f"t{k}", 10, {"cpu": 1}, after=[f"t{k - 1}"]) for k in range(1, 4)])
    r = env.run(wf, "optimal")
    assert r.makespan_s == 40 and r.energy_j == pytest.approx(4 * 10 + 5 * 40)
    assert r.info["proven_optimal"] and r.info["nodes"] == 0


@pytest.mark.parametrize("seed", range(3))
def test_heuristic_with_dependencies_never_worse_than_optimize(seed):
    rng = np.random.default_rng(300 + seed)
    env, _ = random_case(rng)
    wf = random_dag(rng, 60)
    r = solve(compile_problem(env, wf), exact=lambda p: False)
    assert r.info["solver"] == "heuristic"
    assert r.energy_j <= env.run(wf, "optimize").energy_j + 1e-9
    for s, ps in enumerate(wf.dag.preds):
        assert all(r.start_s[s] >= r.end_s[p] for p in ps)
