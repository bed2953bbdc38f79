"""Single steps delayed to greener hours (``shift="tasks"``): hand-computed cases, the
constraints it keeps (precedence, capacity, makespan, energy), bad input, CLI.

The profile alternates 500 and 100 gCO2e/kWh each hour. A 1-core step on the 2-core
instance draws 1,000 W × PUE 1 = 1 kW: 1,800 s of it emit 250 g in a 500-hour, 50 g in a
100-hour.
"""

from __future__ import annotations

import numpy as np
import pytest

from energykernel.cli import main
from energykernel.sim import (
    ComputeEnvironment,
    ComputeInstance,
    Resource,
    SimulationInputError,
    Task,
    Workflow,
)
from energykernel.sim.profile import IntensityProfile
from energykernel.sim.schedule import compile_problem

PROFILE = IntensityProfile([500, 100], name="test")
X = ComputeInstance("x", {"cpu": Resource(2, 1000.0)}, intensity_profile=PROFILE)
ENV = ComputeEnvironment([X])


def by_name(r):
    return {n: (float(a), float(b)) for n, a, b in zip(r.task_names, r.start_s, r.end_s,
                                                        strict=True)}


def test_a_step_with_slack_waits_for_the_green_hour():
    # "long" (2 h) sets the makespan; "short" (30 min) may start any time up to 1.5 h and
    # moves from the 500-hour into the 100-hour: 250 g → 50 g.
    wf = Workflow([Task("long", 7200, {"cpu": 1}), Task("short", 1800, {"cpu": 1})],
                  deadline_s=7200)  # no room to move the whole schedule
    before = ENV.run(wf, "monitor", shift=True)
    r = ENV.run(wf, "monitor", shift="tasks")
    assert by_name(before)["short"] == (0, 1800)
    assert by_name(r)["short"] == (3600, 5400) and by_name(r)["long"] == (0, 7200)
    assert before.emissions_g - r.emissions_g == pytest.approx(200)
    assert r.info["steps_shifted"] == 1 and r.info["step_shift_s"] == 3600
    assert r.info["step_shift_saved_g"] == pytest.approx(200)
    assert r.energy_j == before.energy_j and r.makespan_s == before.makespan_s


def test_a_step_waits_only_where_its_instance_can_hold_it():
    # On 2 cores beside "long": "late" first waits for a core (1800–3600) and moves to
    # 3600–5400; "early" would like 3600 too, but both cores are taken until 5400, so it
    # goes to 5400–7200 — the 100-hour still, never three steps on two cores.
    wf = Workflow([Task("long", 7200, {"cpu": 1}), Task("early", 1800, {"cpu": 1}),
                   Task("late", 1800, {"cpu": 1})], deadline_s=7200)
    r = ENV.run(wf, "monitor", shift="tasks")
    got = by_name(r)
    assert got["late"] == (3600, 5400) and got["early"] == (5400, 7200)
    assert r.info["steps_shifted"] == 2
    assert r.info["step_shift_saved_g"] == pytest.approx(400)


def test_a_step_ends_before_its_successor_starts():
    # "c" (1 h, after "b") moves into the 100-hour; "b" must end by c's new start (3600),
    # and [0, 3600) holds no 100-hour: b stays.
    wf = Workflow([Task("a", 7200, {"cpu": 1}), Task("b", 1800, {"cpu": 1}),
                   Task("c", 3600, {"cpu": 1}, after=("b",))], deadline_s=7200)
    r = ENV.run(wf, "monitor", shift="tasks")
    got = by_name(r)
    assert got["c"] == (3600, 7200) and got["b"] == (0, 1800)
    assert got["b"][1] <= got["c"][0]


def test_without_a_profile_nothing_moves():
    flat = ComputeEnvironment([X.with_changes(intensity_profile=None, intensity_g_per_kwh=300)])
    wf = Workflow([Task("long", 7200, {"cpu": 1}), Task("short", 1800, {"cpu": 1})])
    r = flat.run(wf, "monitor", shift="tasks")
    assert by_name(r)["short"] == (0, 1800) and r.info["steps_shifted"] == 0


def check_feasible(env, wf, r):
    prob = compile_problem(env, wf)
    dem = prob.step_demand()
    cap = np.array(prob.cap).T
    for s, ps in enumerate(r.predecessors or []):
        assert all(r.start_s[s] >= r.end_s[p] - 1e-9 for p in ps)
    for i in range(prob.n):
        mine = np.flatnonzero(r.assignment == i)
        for s in mine:  # the use is highest where some step starts
            t = r.start_s[s]
            on = mine[(r.start_s[mine] <= t) & (t < r.end_s[mine])]
            assert (dem[on].sum(axis=0) <= cap[i] * (1 + 1e-9) + 1e-9).all()


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("mode", ["monitor", "optimize"])
def test_random_workflows_keep_every_constraint_and_never_emit_more(seed, mode):
    rng = np.random.default_rng(seed)
    prof = IntensityProfile(rng.uniform(50, 600, 24).tolist(), name="random")
    env = ComputeEnvironment([
        ComputeInstance(f"i{j}", {"cpu": Resource(float(rng.integers(2, 9)), 10.0),
                                  "ram": Resource(64, 0.4)},
                        speed=float(rng.choice([0.5, 1, 2])), intensity_profile=prof)
        for j in range(3)])
    tasks = [Task(f"t{k}", float(rng.uniform(600, 7200)),
                  {"cpu": float(rng.integers(1, 3)), "ram": float(rng.integers(1, 32))},
                  after=tuple(f"t{p}" for p in range(k) if rng.random() < 0.15))
             for k in range(30)]
    wf = Workflow(tasks)
    whole = env.run(wf, mode, shift=True, start_hour=float(rng.integers(0, 24)))
    steps = env.run(wf, mode, shift="tasks", start_hour=whole.clock_s / 3600)
    check_feasible(env, wf, steps)
    assert steps.energy_j == pytest.approx(whole.energy_j)
    assert steps.makespan_s == pytest.approx(whole.makespan_s)
    assert steps.offset_s == whole.offset_s
    assert steps.emissions_g <= whole.emissions_g + 1e-9
    assert whole.emissions_g - steps.emissions_g == pytest.approx(
        steps.info["step_shift_saved_g"], rel=1e-6, abs=1e-9)
    assert (steps.start_s >= whole.start_s - 1e-9).all()  # steps only ever wait


def test_optimal_may_shift_steps_too():
    wf = Workflow([Task("long", 7200, {"cpu": 1}), Task("short", 1800, {"cpu": 1})],
                  deadline_s=7200)
    r = ENV.run(wf, "optimal", shift="tasks")
    assert by_name(r)["short"] == (3600, 5400)
    assert r.info["objective_value"] == pytest.approx(r.emissions_g)


@pytest.mark.parametrize("bad", ["later", 1, None])
def test_shift_is_true_false_or_tasks(bad):
    with pytest.raises(SimulationInputError, match="shift: must be True, False or 'tasks'"):
        ENV.run([Task("a", 10, {"cpu": 1})], "monitor", shift=bad)


def test_cli_shift_tasks_says_what_waited(tmp_path, capsys):
    import json

    (tmp_path / "i.json").write_text(json.dumps({"instances": [{
        "name": "x", "intensity_profile": [500, 100],
        "resources": {"cpu": {"capacity": 2, "cost": 1000}}}]}))
    (tmp_path / "t.json").write_text(json.dumps({"deadline_s": 7200, "tasks": [
        {"name": "long", "duration_s": 7200, "demand": {"cpu": 1}},
        {"name": "short", "duration_s": 1800, "demand": {"cpu": 1}}]}))
    assert main(["simulate", str(tmp_path / "i.json"), str(tmp_path / "t.json"),
                 "--shift", "tasks"]) == 0
    assert "1 task waits for greener hours (in all 3,600 s): 200.0 gCO2e saved" in (
        capsys.readouterr().out)


def test_a_fine_profile_over_a_long_slack_tries_a_bounded_number_of_starts():
    # 10-second steps over a day (8,640 values): the schedule's and each task's greenest
    # start are looked for among at most ~2,000 candidates each; never more carbon.
    rng = np.random.default_rng(7)
    fine = IntensityProfile(rng.uniform(50, 600, 8640).tolist(), resolution_s=10, name="fine")
    env = ComputeEnvironment([X.with_changes(intensity_profile=fine)])
    wf = Workflow([Task("long", 80_000, {"cpu": 1}), Task("short", 600, {"cpu": 1})])
    now = env.run(wf, "monitor")
    whole = env.run(wf, "monitor", shift=True)
    steps = env.run(wf, "monitor", shift="tasks")
    assert steps.emissions_g <= whole.emissions_g + 1e-9 <= now.emissions_g + 2e-9
    assert steps.info["steps_shifted"] == 1  # "short" has 79,400 s of slack
    assert by_name(steps)["short"][1] <= steps.makespan_s
