"""Capacity prices of optimal's exact search (sim/relax.py): hand-computed, and against
brute force on cases where they bind."""

from __future__ import annotations

import numpy as np
import pytest
from fakes.schedules import brute_force, capacity_case, exact_search, independent_case

from energykernel.sim import ComputeEnvironment, ComputeInstance, Resource, Task, Workflow


def _two_instances():
    """A (1 cpu at 1 W, idle 10 W) and B (1 cpu at 3 W, idle 10 W); two 10 s steps of 1 cpu.

    Using both: one step on each — 10 J + 30 J + 20 W × 10 s = 240 J. The plain bound puts
    both on A (20 J) and sees a makespan of 10 s (the work over both capacities): 220 J.
    The LP's price on A's cpu is 2 J per cpu-second (each step on A then costs 30 J, as on
    B; 20 W − 2 W × 1 cpu is left for the makespan): 2 × 30 J + 18 W × 10 s = 240 J."""
    env = ComputeEnvironment([
        ComputeInstance("A", {"cpu": Resource(1, 1.0)}, idle_power_w=10.0),
        ComputeInstance("B", {"cpu": Resource(1, 3.0)}, idle_power_w=10.0)])
    return env, Workflow([Task("t0", 10.0, {"cpu": 1}), Task("t1", 10.0, {"cpu": 1})])


def test_prices_lift_the_root_bound_to_the_hand_computed_optimum():
    _prob, bb = exact_search(*_two_instances())
    both = np.array([True, True])
    required = np.array([0, 1])
    assert bb.set_root_bound(both, required) == pytest.approx(220.0)
    prices = bb.prices(both, required)
    assert prices[:, 0] == pytest.approx([2.0, 0.0])  # A's cpu, per cpu-second
    assert bb.set_root_bound(both, required, prices) == pytest.approx(240.0)


def test_no_prices_where_capacity_does_not_bind():
    env = ComputeEnvironment([
        ComputeInstance("A", {"cpu": Resource(8, 1.0)}, idle_power_w=10.0),
        ComputeInstance("B", {"cpu": Resource(8, 3.0)}, idle_power_w=10.0)])
    _prob, bb = exact_search(env, Workflow([Task("t0", 10.0, {"cpu": 1})]))
    assert bb.prices(np.array([True, True]), np.array([0, 1])) is None
    # without idle power nothing is charged to the makespan: no prices either
    _prob, bb = exact_search(*_two_instances())
    assert bb.prices(np.array([True, True]), np.array([], dtype=np.int64)) is None


@pytest.mark.parametrize("seed", range(16))
def test_priced_search_finds_and_proves_the_brute_force_optimum(seed):
    env, wf = capacity_case(np.random.default_rng(700 + seed))
    prob, bb = exact_search(env, wf)
    cap = np.array(prob.cap).T
    priced = 0
    for _b, allowed, required in bb._sets():
        prices = bb.prices(allowed, required)
        if prices is None:
            continue
        priced += 1
        assert (prices >= 0).all()
        assert (prices * cap).sum() <= bb.idle_rate[required].sum() * (1 + 1e-9)
    assert priced  # the case is one where they bind
    r = env.run(wf, "optimal", objective="energy")
    assert r.info["proven_optimal"]
    assert r.energy_j == pytest.approx(brute_force(prob), rel=1e-9)
    fast = env.run(wf, "optimize").makespan_s
    r = env.run(wf, "optimal", objective="energy", deadline_s=fast)
    assert r.energy_j == pytest.approx(brute_force(prob, fast), rel=1e-9)


def test_priced_bound_is_below_every_schedule_of_its_set():
    """Every set's priced root bound is at most the best schedule that uses exactly its
    idle-drawing instances (brute force over the assignments of the set)."""
    import itertools

    from energykernel.sim.result import SimulationResult
    from energykernel.sim.schedule import run_schedule

    for seed in range(4):
        env, wf = capacity_case(np.random.default_rng(800 + seed))
        prob, bb = exact_search(env, wf)
        best: dict[tuple, float] = {}
        for assign in itertools.product(range(prob.n), repeat=len(prob.steps)):
            if not bb.ok[np.arange(len(assign)), list(assign)].all():
                continue
            r = SimulationResult.build(prob, "x", *run_schedule(prob, "assigned", list(assign)))
            key = tuple(sorted(set(assign)))
            best[key] = min(best.get(key, np.inf), r.energy_j)
        others = [p for _b, a, r in bb._sets() if (p := bb.prices(a, r)) is not None]
        assert others
        for _b, allowed, required in bb._sets():
            prices = bb.prices(allowed, required)
            bound = bb.set_root_bound(allowed, required, prices)
            key = tuple(required.tolist())
            assert bound <= best.get(key, np.inf) * (1 + 1e-9)
            for borrowed in others:  # another set's prices, as the search borrows them
                bb.last_prices, bb.incumbent = borrowed, np.inf
                assert bb._borrowed_bound(allowed, required) <= best.get(key, np.inf) * (1 + 1e-9)


def test_fifty_independent_steps_are_proven_with_prices():
    """50 independent steps × 10 instances with idle power: with the prices the search ends
    in a few hundred nodes (without them it had not ended after 500,000)."""
    env, wf = independent_case(2)
    r = env.run(wf, "optimal")
    assert r.info["proven_optimal"] and r.info["nodes"] < 5_000
    assert r.energy_j <= env.run(wf, "optimize").energy_j
