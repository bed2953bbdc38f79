"""optimize with algorithm="heft" / "heft-energy": hand-computed DAG schedules."""

from __future__ import annotations

import numpy as np
import pytest

from energykernel.sim import (
    ComputeEnvironment,
    ComputeInstance,
    Resource,
    SimulationInputError,
    Task,
    Workflow,
)
from energykernel.sim.heft import upward_rank
from energykernel.sim.schedule import compile_problem

# a: fast (speed 2) and dear (5 W/core); b: slow (speed 1) and cheap (1 W/core).
ENV = ComputeEnvironment([ComputeInstance("a", {"cpu": Resource(8, 5.0)}, speed=2.0),
                          ComputeInstance("b", {"cpu": Resource(8, 1.0)})])
# t1 → t2 (8 cores), t1 → t3 (4 cores)
DAG = Workflow([Task("t1", 10, {"cpu": 4}), Task("t2", 20, {"cpu": 8}, after=("t1",)),
                Task("t3", 5, {"cpu": 4}, after=("t1",))])


def test_upward_rank_is_mean_runtime_plus_the_heaviest_successor():
    # mean 1/speed = (1/2 + 1) / 2 = 0.75: runtimes 7.5, 15, 3.75; t1 = 7.5 + max(15, 3.75)
    assert upward_rank(compile_problem(ENV, DAG)).tolist() == [22.5, 15.0, 3.75]


def test_heft_takes_the_earliest_finish():
    r = ENV.run(DAG, "optimize", algorithm="heft")
    # t1 on a (fastest): 0–5 s, 5 s × 4 cores × 5 W = 100 J; t2 (rank 15) next on a:
    # 5–15 s, 10 s × 8 × 5 = 400 J; a is full, so t3 on b: 5–10 s, 5 × 4 × 1 = 20 J.
    assert [r.instances[i] for i in r.assignment] == ["a", "a", "b"]
    assert r.start_s.tolist() == [0, 5, 5] and r.end_s.tolist() == [5, 15, 10]
    assert r.energy_j == pytest.approx(520) and r.makespan_s == 15
    assert r.info["algorithm"] == "heft"


def test_heft_energy_takes_the_cheapest_and_greedy_is_unchanged():
    r = ENV.run(DAG, "optimize", algorithm="heft-energy")
    # t1 on b: 0–10 s, 40 J; t2 on b: 10–30 s, 20 × 8 × 1 = 160 J; b full: t3 on a:
    # 10–12.5 s, 2.5 × 4 × 5 = 50 J. 250 J, makespan 30 s.
    assert [r.instances[i] for i in r.assignment] == ["b", "b", "a"]
    assert r.energy_j == pytest.approx(250) and r.makespan_s == 30
    greedy = ENV.run(DAG, "optimize")
    assert "algorithm" not in greedy.info and greedy.energy_j == pytest.approx(250)


def test_heft_backfills_where_the_greedy_rule_blocks():
    one = ComputeEnvironment([ComputeInstance("x", {"cpu": Resource(4, 1.0)})])
    wf = Workflow([Task("A", 10, {"cpu": 2}), Task("B", 10, {"cpu": 4}), Task("C", 1, {"cpu": 2})])
    # workflow order: A 0–10, B waits for A (10–20), C waits behind B (20–21)
    greedy = one.run(wf, "optimize")
    assert greedy.start_s.tolist() == [0, 10, 20] and greedy.makespan_s == 21
    # HEFT: ranks A 10, B 10, C 1; B does not fit at 0, C does (0–1); B 10–20
    heft = one.run(wf, "optimize", algorithm="heft")
    assert heft.start_s.tolist() == [0, 10, 0] and heft.makespan_s == 20
    assert heft.energy_j == pytest.approx(greedy.energy_j)  # 20 + 40 + 2 J either way


def test_precedence_holds_on_a_random_dag():
    rng = np.random.default_rng(3)
    env = ComputeEnvironment([ComputeInstance(f"i{k}", {"cpu": Resource(8, 1 + k)},
                                              speed=1 + 0.5 * k) for k in range(4)])
    tasks = [Task(f"t{k}", float(rng.uniform(1, 20)), {"cpu": int(rng.integers(1, 9))},
                  tuple(f"t{p}" for p in set(rng.integers(0, k, 2).tolist())) if k else ())
             for k in range(200)]
    wf = Workflow(tasks)
    for algorithm in ("heft", "heft-energy"):
        r = env.run(wf, "optimize", algorithm=algorithm)
        for s, preds in enumerate(r.predecessors):
            assert all(r.end_s[p] <= r.start_s[s] + 1e-9 for p in preds)
        # capacity: at every start, the running demand on the instance is ≤ 8
        dem = np.array([t.demand["cpu"] for t in tasks])
        for s in range(len(tasks)):
            on = ((r.assignment == r.assignment[s]) & (r.start_s <= r.start_s[s] + 1e-12)
                  & (r.end_s > r.start_s[s] + 1e-12))
            assert dem[on].sum() <= 8 + 1e-9


def test_optimal_considers_heft_and_bad_algorithms_are_named():
    opt = ENV.run(DAG, "optimal")
    assert opt.energy_j <= ENV.run(DAG, "optimize", algorithm="heft-energy").energy_j + 1e-9
    with pytest.raises(SimulationInputError, match="algorithm: must be one of"):
        ENV.run(DAG, "optimize", algorithm="fast")
    with pytest.raises(SimulationInputError, match="option of the 'optimize' mode"):
        ENV.run(DAG, "monitor", algorithm="heft")
    with pytest.raises(SimulationInputError, match="idle_aware"):
        ENV.run(DAG, "optimize", algorithm="heft", idle_aware=True)
