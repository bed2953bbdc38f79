"""What the in-order start of steps without dependencies gives optimal's exact search
(sim/inorder.py): the pooled queue's makespan bound, hand-computed and against brute
force, and dominance between partial schedules."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from fakes.schedules import brute_force, capacity_case, exact_search

from energykernel.sim import ComputeEnvironment, ComputeInstance, Resource, Task, Workflow
from energykernel.sim.inorder import NodeMemo
from energykernel.sim.schedule import run_schedule


def test_the_pooled_queue_sees_the_wait_behind_a_step_that_does_not_fit():
    """One 2-cpu instance; 10 s steps of 1, 2 and 1 cpus in that order. Work over capacity
    says 40 cpu-s / 2 = 20 s, the longest step 10 s; but the 2-cpu step waits for the first
    (10 s) and the third, behind it, for the second (20 s): 30 s, the real makespan."""
    env = ComputeEnvironment([ComputeInstance("A", {"cpu": Resource(2, 1.0)})])
    wf = Workflow([Task("a", 10.0, {"cpu": 1}), Task("b", 10.0, {"cpu": 2}),
                   Task("c", 10.0, {"cpu": 1})])
    _prob, bb = exact_search(env, wf)
    assert bb.queue_makespan(np.array([True])) == pytest.approx(30.0)
    assert env.run(wf, "monitor").makespan_s == pytest.approx(30.0)


def test_no_pooled_bound_with_dependencies():
    env = ComputeEnvironment([ComputeInstance("A", {"cpu": Resource(2, 1.0)})])
    wf = Workflow([Task("a", 10.0, {"cpu": 1}), Task("b", 10.0, {"cpu": 2}, after=("a",))])
    _prob, bb = exact_search(env, wf)
    assert bb.queue_makespan(np.array([True])) == 0.0


def test_the_pooled_makespan_is_below_every_schedule_and_above_the_work_bound():
    """For every assignment of small blocking cases, the pooled queue of the instances it
    uses ends no later than its schedule; and in some, later than both the longest step
    and the work over capacity (the bound sees waits that those do not)."""
    above = 0
    for seed in range(6):
        env, wf = capacity_case(np.random.default_rng(900 + seed))
        prob, bb = exact_search(env, wf)
        steps = np.arange(bb.S)
        for assign in itertools.product(range(prob.n), repeat=bb.S):
            if not bb.ok[steps, list(assign)].all():
                continue
            _i, _s, end = run_schedule(prob, "assigned", list(assign))
            used = np.zeros(prob.n, dtype=bool)
            used[list(assign)] = True
            pooled = bb.queue_makespan(used)
            assert pooled <= float(end.max()) * (1 + 1e-9)
            area, capsum = bb._areas(used)
            simple = max(float(np.where(used[None, :], bb.runtime, np.inf).min(axis=1).max()),
                         float((area.sum(axis=0)[capsum > 0] / capsum[capsum > 0]).max()))
            above += pooled > simple * (1 + 1e-6)
    assert above


def test_a_memo_keeps_what_it_meets_and_beats_only_what_is_no_better():
    memo = NodeMemo()
    jobs = [(1, 0, 12.0), (0, 2, 15.0)]
    assert not memo.beaten(3, (0, 1), list(jobs), now=5.0, cost=100.0, maxend=15.0)
    # no earlier clock, no earlier ends, no lower cost: beaten (jobs in any order)
    assert memo.beaten(3, (0, 1), [(0, 2, 15.0), (1, 0, 13.0)], 5.0, 100.0, 15.0)
    # lower cost, an earlier end or an earlier clock: not beaten (and kept)
    assert not memo.beaten(3, (0, 1), list(jobs), 5.0, 99.0, 15.0)
    assert not memo.beaten(3, (0, 1), [(1, 0, 11.0), (0, 2, 15.0)], 5.0, 120.0, 15.0)
    assert not memo.beaten(3, (0, 1), list(jobs), 4.0, 120.0, 15.0)
    # another next step, other instances in use or other running steps: another key
    assert not memo.beaten(4, (0, 1), list(jobs), 5.0, 200.0, 15.0)
    assert not memo.beaten(3, (0, 1, 2), list(jobs), 5.0, 200.0, 15.0)
    assert not memo.beaten(3, (0, 1), [(1, 0, 12.0)], 5.0, 200.0, 15.0)
    assert memo.beaten_count == 1


def test_dominance_prunes_and_the_optimum_stays_the_brute_force_one():
    """Nine steps of three kinds on three instances with idle power, searched from no
    schedule: orders of the same steps meet in the same state, and the search, pruning
    them, still finds and proves the optimum."""
    pruned = 0
    for seed in range(3):
        rng = np.random.default_rng(300 + seed)
        env = ComputeEnvironment([
            ComputeInstance(f"i{j}", {"cpu": Resource(float(rng.integers(2, 4)),
                                                      float(rng.uniform(1, 4)))},
                            speed=float(rng.choice([0.5, 1.0, 2.0])),
                            idle_power_w=float(rng.choice([5.0, 20.0, 40.0])))
            for j in range(3)])
        durations, cpus = (10.0, 20.0, 5.0), (1.0, 2.0, 1.0)
        wf = Workflow([Task(f"t{k}", durations[int(rng.integers(0, 3))],
                            {"cpu": cpus[int(rng.integers(0, 3))]}) for k in range(9)])
        prob, bb = exact_search(env, wf)
        bb.incumbent = np.inf
        assert bb.run(30.0)
        assert bb.incumbent == pytest.approx(brute_force(prob), rel=1e-9)
        pruned += bb.dominated
    assert pruned
