"""The exact search of optimal mode against brute force over every assignment.

Cases are small (3 instances, 6 steps: 729 assignments) but have what the search prunes on:
dependencies, capacity that makes a ready step block the ones behind it, idle power on some
instances and not others, identical twins and instances that dominate others, deadlines,
and the carbon objective.
"""

from __future__ import annotations

import numpy as np
import pytest
from fakes.schedules import brute_force, random_case

from energykernel.sim import ComputeEnvironment, ComputeInstance, Resource, Task, Workflow, exact
from energykernel.sim.optimal import solve
from energykernel.sim.schedule import compile_problem


@pytest.mark.parametrize("seed", range(24))
def test_exact_search_finds_and_proves_the_brute_force_optimum(seed):
    env, wf = random_case(np.random.default_rng(seed))
    prob = compile_problem(env, wf)
    r = env.run(wf, "optimal", objective="energy")
    assert r.info["solver"] == "exact" and r.info["proven_optimal"]
    assert r.energy_j == pytest.approx(brute_force(prob), rel=1e-9)
    assert r.info["lower_bound"] == pytest.approx(r.energy_j, rel=1e-9)
    # a deadline between the fastest and the slowest schedules the heuristics know
    fast = min(env.run(wf, m).makespan_s for m in ("monitor", "optimize"))
    deadline = fast * 1.1
    r = env.run(wf, "optimal", objective="energy", deadline_s=deadline)
    assert r.info["proven_optimal"] and r.makespan_s <= deadline * (1 + 1e-9)
    assert r.energy_j == pytest.approx(brute_force(prob, deadline), rel=1e-9)


@pytest.mark.parametrize("seed", range(8))
def test_exact_search_on_the_carbon_objective(seed):
    env, wf = random_case(np.random.default_rng(100 + seed))
    r = env.run(wf, "optimal", objective="carbon")
    assert r.info["proven_optimal"]
    assert r.emissions_g == pytest.approx(brute_force(compile_problem(env, wf), carbon=True),
                                          rel=1e-9)


@pytest.mark.parametrize("seed", range(6))
def test_one_search_over_all_instances_when_there_are_too_many_sets(seed, monkeypatch):
    # Beyond MAX_SETS sets of idle-drawing instances the search runs once over all of them
    # with the idle of the instances used so far: weaker, still exact.
    monkeypatch.setattr(exact, "MAX_SETS", 1)
    env, wf = random_case(np.random.default_rng(200 + seed))
    prob = compile_problem(env, wf)
    r = solve(prob, objective="energy")
    assert r.info["proven_optimal"]
    assert r.energy_j == pytest.approx(brute_force(prob), rel=1e-9)


def test_the_exact_search_beats_every_heuristic_where_blocking_decides():
    # Two 2-core instances; b is cheaper but idles. Ready steps start in workflow order and
    # a waiting one blocks those behind it, so which steps share b decides the makespan.
    env = ComputeEnvironment([
        ComputeInstance("a", {"cpu": Resource(2, 5.0)}, idle_power_w=10.0),
        ComputeInstance("b", {"cpu": Resource(2, 1.0)}, idle_power_w=10.0),
    ])
    wf = Workflow([Task("t0", 10, {"cpu": 2}), Task("t1", 10, {"cpu": 1}),
                   Task("t2", 30, {"cpu": 1}, after=("t0",)), Task("t3", 5, {"cpu": 2}),
                   Task("t4", 20, {"cpu": 1}, after=("t1",)), Task("t5", 10, {"cpu": 1})])
    prob = compile_problem(env, wf)
    r = env.run(wf, "optimal")
    assert r.info["proven_optimal"]
    assert r.energy_j == pytest.approx(brute_force(prob), rel=1e-9)
    assert r.energy_j <= min(env.run(wf, m).energy_j for m in ("monitor", "optimize"))


def test_dominated_and_twin_instances_are_not_searched_twice():
    twins = [ComputeInstance(f"m{j}", {"cpu": Resource(4, 2.0)}, idle_power_w=50.0)
             for j in range(4)]
    dearer = ComputeInstance("dear", {"cpu": Resource(4, 3.0)}, idle_power_w=50.0)
    env = ComputeEnvironment([*twins, dearer])
    prob = compile_problem(env, Workflow([Task("t", 10, {"cpu": 1}), Task("u", 10, {"cpu": 4})]))
    from energykernel.sim.optimal import _Search, _weights

    _, weight = _weights(prob, "energy")
    bb = exact.BranchAndBound(prob, _Search(prob, weight, None), np.ones((2, 5)),
                              np.ones((2, 5)), np.ones((2, 5), dtype=bool), weight, None)
    assert bb.twin == [-1, 0, 1, 2, -1]
    assert bb.dom[0, 4] and not bb.dom[4, 0]
    # of the 4 twins only the first k; "dear" never without all four twins; no set with
    # more instances than steps, nor without any (nothing else could hold the steps)
    sets = sorted(tuple(int(i) for i in req) for _, _, req in bb._sets())
    assert sets == [(0,), (0, 1)]


@pytest.mark.parametrize("seed", range(16))
def test_exact_search_alone_finds_the_optimum(seed, monkeypatch):
    # Without the heuristic candidates the search starts with no schedule at all and must
    # find the optimum itself (every prune then rests on what it found).
    from energykernel.sim import optimal

    monkeypatch.setattr(optimal, "_heuristic", lambda prob, search, weight: None)
    env, wf = random_case(np.random.default_rng(300 + seed))
    prob = compile_problem(env, wf)
    r = solve(prob, objective="energy")
    assert r.info["proven_optimal"] and r.info["nodes"] > 0
    assert r.energy_j == pytest.approx(brute_force(prob), rel=1e-9)
    deadline = env.run(wf, "optimize").makespan_s
    r = solve(prob, objective="energy", deadline_s=deadline)
    assert r.energy_j == pytest.approx(brute_force(prob, deadline), rel=1e-9)


@pytest.mark.parametrize("seed", range(12))
def test_the_heuristics_lower_bound_is_below_every_schedule(seed):
    from energykernel.sim.optimal import _weights, lower_bound

    env, wf = random_case(np.random.default_rng(400 + seed))
    prob = compile_problem(env, wf)
    _, weight = _weights(prob, "energy")
    assert lower_bound(prob, weight) <= brute_force(prob) * (1 + 1e-9)
    d = env.run(wf, "optimize").makespan_s
    assert lower_bound(prob, weight, d) <= brute_force(prob, d) * (1 + 1e-9)


def test_idle_for_the_work_lifts_the_bound():
    # 10 steps of 100 s on 4 cores each, one 4-core instance idling at 10 W: the chain bound
    # sees 100 s of idle (1 kJ); the work needs 4,000 core-s = 1,000 s of the instance.
    env = ComputeEnvironment([ComputeInstance("a", {"cpu": Resource(4, 1.0)}, idle_power_w=10)])
    wf = Workflow([Task(f"t{k}", 100, {"cpu": 4}) for k in range(10)])
    from energykernel.sim.optimal import _weights, lower_bound

    prob = compile_problem(env, wf)
    _, weight = _weights(prob, "energy")
    assert lower_bound(prob, weight) == pytest.approx(4000 + 10 * 1000)
    assert env.run(wf, "optimal").energy_j == pytest.approx(4000 + 10 * 1000)


@pytest.mark.parametrize("seed", range(16))
@pytest.mark.parametrize("slack", [1.0, 1.25])
def test_tight_deadlines_cut_only_what_cannot_meet_them(seed, slack, monkeypatch):
    # Deadlines at and just above the fastest known makespan: most assignments miss them,
    # so the options the search drops for the deadline (a step, then the chain after it)
    # and for their cost decide; the search alone must still land on the optimum.
    from energykernel.sim import optimal

    monkeypatch.setattr(optimal, "_heuristic", lambda prob, search, weight: None)
    env, wf = random_case(np.random.default_rng(500 + seed))
    prob = compile_problem(env, wf)
    fast = min(env.run(wf, m).makespan_s for m in ("monitor", "optimize"))
    best = brute_force(prob, fast * slack)
    r = solve(prob, objective="energy", deadline_s=fast * slack)
    assert r.info["proven_optimal"]
    assert r.energy_j == pytest.approx(best, rel=1e-9)
