"""Workflows with dependencies (DESIGN §8): hand-computed DAG schedules in all three modes,
validation of ``after`` with errors naming file, task and field, and repeated names."""

from __future__ import annotations

import json

import pytest

from energykernel.sim import (
    ComputeEnvironment,
    ComputeInstance,
    Resource,
    SimulationInputError,
    Task,
    Workflow,
)
from energykernel.sim.whatif import lanes, scale_workflow


def placed(r):
    return [(t, r.instances[i], s, e) for t, i, s, e in
            zip(r.task_names, r.assignment, r.start_s.tolist(), r.end_s.tolist(), strict=True)]


def env_ab(cap_a: float, cost_a: float, cap_b: float, cost_b: float, **b) -> ComputeEnvironment:
    return ComputeEnvironment([ComputeInstance("a", {"cpu": Resource(cap_a, cost_a)}),
                               ComputeInstance("b", {"cpu": Resource(cap_b, cost_b)}, **b)])


def diamond() -> Workflow:
    return Workflow([Task("src", 10, {"cpu": 4}),
                     Task("left", 20, {"cpu": 2}, after=["src"]),
                     Task("right", 10, {"cpu": 4}, after=["src"]),
                     Task("sink", 5, {"cpu": 4}, after=["left", "right"])])


def fork_join() -> Workflow:
    return Workflow([Task("fork", 5, {"cpu": 2}),
                     *[Task(f"p{k}", 10, {"cpu": 2}, after=["fork"]) for k in (1, 2, 3)],
                     Task("join", 5, {"cpu": 2}, after=["p1", "p2", "p3"])])


# -- hand-computed schedules ---------------------------------------------------------------
def test_diamond_in_all_three_modes():
    env = env_ab(4, 5.0, 4, 1.0)
    mon = env.run(diamond(), "monitor")
    # src fills a; left and right are ready at 10: left takes a (2 of 4 cores), right needs
    # 4 and goes to b; sink waits for both (30 s) and takes a, first in order.
    assert placed(mon) == [("src", "a", 0, 10), ("left", "a", 10, 30),
                           ("right", "b", 10, 20), ("sink", "a", 30, 35)]
    assert mon.energy_j == pytest.approx(10 * 4 * 5 + 20 * 2 * 5 + 10 * 4 * 1 + 5 * 4 * 5)  # 540
    opt = env.run(diamond(), "optimize")
    assert placed(opt) == [("src", "b", 0, 10), ("left", "b", 10, 30),
                           ("right", "a", 10, 20), ("sink", "b", 30, 35)]
    assert opt.energy_j == pytest.approx(40 + 40 + 200 + 20)  # 300
    best = env.run(diamond(), "optimal")
    # All on b: right waits for left's cores (30 s), sink for right (40 s).
    assert placed(best) == [("src", "b", 0, 10), ("left", "b", 10, 30),
                            ("right", "b", 30, 40), ("sink", "b", 40, 45)]
    assert best.energy_j == pytest.approx(140) and best.info["proven_optimal"]
    fast = env.run(diamond(), "optimal", deadline_s=35)
    assert fast.makespan_s == 35 and fast.energy_j == pytest.approx(300)
    assert fast.info["solver"] == "exact" and fast.info["proven_optimal"]


def test_chain_runs_one_after_another_and_idle_over_its_makespan():
    env = env_ab(4, 5.0, 4, 1.0, idle_power_w=3.0)
    wf = Workflow([Task("x", 10, {"cpu": 1}), Task("y", 10, {"cpu": 1}, after=["x"]),
                   Task("z", 10, {"cpu": 1}, after=["y"])])
    mon = env.run(wf, "monitor")
    assert placed(mon) == [("x", "a", 0, 10), ("y", "a", 10, 20), ("z", "a", 20, 30)]
    assert mon.energy_j == pytest.approx(3 * 10 * 5)  # a has no idle power; b unused
    opt = env.run(wf, "optimize")
    # On b each link costs 10 J plus b's idle (3 W) while the chain lasts: 10 + 30 < 50 on a.
    assert placed(opt) == [("x", "b", 0, 10), ("y", "b", 10, 20), ("z", "b", 20, 30)]
    assert opt.energy_j == pytest.approx(3 * 10 + 3 * 30)  # 120
    best = env.run(wf, "optimal")
    assert best.energy_j == pytest.approx(120) and best.makespan_s == 30


def test_fork_join_waits_for_predecessors_then_for_an_instance():
    env = env_ab(2, 2.0, 2, 1.0)
    mon = env.run(fork_join(), "monitor")
    # p1 and p2 start when fork ends; p3 is ready at 5 s but both instances are busy
    # until 15 s; join waits for p3.
    assert placed(mon) == [("fork", "a", 0, 5), ("p1", "a", 5, 15), ("p2", "b", 5, 15),
                           ("p3", "a", 15, 25), ("join", "a", 25, 30)]
    assert mon.energy_j == pytest.approx(20 + 40 + 20 + 40 + 20)  # 140
    opt = env.run(fork_join(), "optimize")
    assert placed(opt) == [("fork", "b", 0, 5), ("p1", "b", 5, 15), ("p2", "a", 5, 15),
                           ("p3", "b", 15, 25), ("join", "b", 25, 30)]
    assert opt.energy_j == pytest.approx(10 + 20 + 40 + 20 + 10)  # 100
    best = env.run(fork_join(), "optimal")
    assert [s for _, _, s, _ in placed(best)] == [0, 5, 15, 25, 35]
    assert best.energy_j == pytest.approx(80) and best.makespan_s == 40
    fast = env.run(fork_join(), "optimal", deadline_s=30)
    assert fast.energy_j == pytest.approx(100) and fast.makespan_s == 30


def test_a_waiting_step_does_not_block_ready_steps_behind_it():
    env = env_ab(4, 1.0, 4, 1.0)
    wf = Workflow([Task("slow", 30, {"cpu": 1}), Task("then", 5, {"cpu": 1}, after=["slow"]),
                   Task("free", 5, {"cpu": 1})])
    r = env.run(wf, "monitor")
    assert placed(r) == [("slow", "a", 0, 30), ("then", "a", 30, 35), ("free", "a", 0, 5)]


def test_ready_steps_keep_workflow_order_and_the_first_blocks_the_rest():
    env = ComputeEnvironment([ComputeInstance("a", {"cpu": Resource(4, 1.0)})])
    wf = Workflow([Task("hog", 10, {"cpu": 3}), Task("big", 10, {"cpu": 4}),
                   Task("small", 1, {"cpu": 1})])
    r = env.run(wf, "monitor")
    # small would fit beside hog at 0 s but is behind big, which waits for hog (no overtaking).
    assert placed(r) == [("hog", "a", 0, 10), ("big", "a", 10, 20), ("small", "a", 20, 21)]


def test_zero_duration_predecessor_releases_its_successor_at_once():
    env = env_ab(4, 1.0, 4, 1.0)
    wf = Workflow([Task("mark", 0, {"cpu": 4}), Task("work", 10, {"cpu": 4}, after=["mark"])])
    assert placed(env.run(wf, "monitor")) == [("mark", "a", 0, 0), ("work", "a", 0, 10)]


def test_predecessor_later_in_the_list():
    env = env_ab(4, 1.0, 4, 1.0)
    wf = Workflow([Task("use", 5, {"cpu": 1}, after=["make"]), Task("make", 10, {"cpu": 1})])
    assert placed(env.run(wf, "monitor")) == [("use", "a", 10, 15), ("make", "a", 0, 10)]


def test_repeated_names_wait_for_the_latest_earlier_run():
    load = Task("load", 10, {"cpu": 1})
    fit = Task("fit", 10, {"cpu": 1}, after=["load"])
    wf = Workflow([load, fit, load, fit])
    assert wf.dag.preds == [(), (0,), (), (2,)]
    r = ComputeEnvironment([ComputeInstance("a", {"cpu": Resource(8, 1.0)})]).run(wf)
    assert r.start_s.tolist() == [0, 10, 0, 10]
    assert r.predecessors == [(), (0,), (), (2,)]


def test_scaled_workflow_keeps_dependencies_per_repetition():
    wf = scale_workflow(Workflow([Task("load", 10, {"cpu": 1}),
                                  Task("fit", 10, {"cpu": 1}, after=["load"])]),
                        n_tasks=4, duration_spread=0.1, seed=1)
    assert [t.after for t in wf] == [(), ("load",), (), ("load",)]
    assert wf.dag.preds == [(), (0,), (), (2,)]


# -- the result ----------------------------------------------------------------------------
def test_dataset_keeps_its_schema_and_adds_after_per_step():
    r = env_ab(4, 5.0, 4, 1.0).run(diamond(), "monitor")
    ds = r.dataset
    assert ds.after.values.tolist() == ["", "0", "0", "1,2"]
    assert ds.after.dims == ("step",)
    assert {"energy", "duration", "runs", "method", "start", "end",
            "assigned_instance"} <= set(ds.data_vars)
    plain = env_ab(4, 5.0, 4, 1.0).run(Workflow([Task("t", 1, {"cpu": 1})]))
    assert plain.predecessors is None and plain.dataset.after.values.tolist() == [""]


def test_gantt_lanes_keep_a_chain_on_its_row():
    env = ComputeEnvironment([ComputeInstance("a", {"cpu": Resource(4, 1.0)})])
    wf = Workflow([Task("other", 5, {"cpu": 1}), Task("x", 10, {"cpu": 1}),
                   Task("y", 10, {"cpu": 1}, after=["x"])])
    r = env.run(wf)
    lane, count = lanes(r)
    # At 10 s both lanes are free; y takes x's (lane 1), not the lowest.
    assert lane.tolist() == [0, 1, 1] and count.tolist() == [2]


# -- validation ----------------------------------------------------------------------------
@pytest.mark.parametrize(("after", "match"), [
    ("load", r"after: must be a list of task names, got 'load' \(one name: write \['load'\]\)"),
    ([3], r"after\[0\]: must be a non-empty string, got 3"),
    (["x", ""], r"after\[1\]: must be a non-empty string"),
    (["t"], r"after\[0\]: task 't' cannot run after itself"),
    ({"x": 1}, r"after: must be a list of task names"),
])
def test_task_after_is_validated(after, match):
    with pytest.raises(SimulationInputError, match=match):
        Task("t", 1, after=after)


def test_task_after_is_a_tuple_without_repeats():
    t = Task("t", 1, after=["a", "b", "a"])
    assert t.after == ("a", "b")
    assert t.to_dict()["after"] == ["a", "b"]
    assert "after" not in Task("u", 1).to_dict()


def test_unknown_name_names_step_task_and_field():
    with pytest.raises(SimulationInputError,
                       match=r"workflow\[1\] \('fit'\): field 'after': unknown task 'lod'"):
        Workflow([Task("load", 1), Task("fit", 1, after=["lod"])])


def test_cycle_names_the_tasks_in_it():
    with pytest.raises(SimulationInputError,
                       match=r"workflow\[1\] \('a'\): field 'after': dependency cycle: "
                             r"'a' after 'c' after 'b' after 'a'"):
        Workflow([Task("free", 1), Task("a", 1, after=["c"]), Task("b", 1, after=["a"]),
                  Task("c", 1, after=["b"]), Task("d", 1, after=["a"])])


def test_changing_tasks_in_place_is_checked_again():
    wf = Workflow([Task("a", 1)])
    wf.tasks.append(Task("b", 1, after=["nope"]))
    env = env_ab(4, 1.0, 4, 1.0)
    with pytest.raises(SimulationInputError, match=r"workflow\[1\] \('b'\).*'nope'"):
        env.run(wf)


def write(tmp_path, tasks) -> str:
    p = tmp_path / "tasks.json"
    p.write_text(json.dumps({"tasks": tasks}))
    return str(p)


def test_json_after_round_trip(tmp_path):
    path = write(tmp_path, [{"name": "a", "duration_s": 1},
                            {"name": "b", "duration_s": 2, "after": ["a"]}])
    wf = Workflow.from_json(path)
    assert wf.dag.preds == [(), (0,)]
    wf.to_json(tmp_path / "out.json")
    assert Workflow.from_json(tmp_path / "out.json").tasks == wf.tasks


@pytest.mark.parametrize(("tasks", "match"), [
    ([{"name": "a", "duration_s": 1, "after": ["zz"]}],
     r"tasks\.json: tasks\[0\] \('a'\): field 'after': unknown task 'zz'"),
    ([{"name": "a", "duration_s": 1, "after": ["b"]}, {"name": "b", "duration_s": 1, "after": ["a"]}],
     r"tasks\.json: tasks\[0\] \('a'\): field 'after': dependency cycle: 'a' after 'b' after 'a'"),
    ([{"name": "a", "duration_s": 1, "after": "b"}],
     r"tasks\.json: tasks\[0\] \('a'\): field 'after': must be a list of task names"),
    ([{"name": "a", "duration_s": 1, "after": [1]}],
     r"tasks\.json: tasks\[0\] \('a'\): field 'after\[0\]': must be a non-empty string"),
    ([{"name": "a", "duration_s": 1, "after": ["a"]}],
     r"tasks\.json: tasks\[0\] \('a'\): field 'after\[0\]': task 'a' cannot run after itself"),
])
def test_json_after_errors_name_file_entry_and_field(tmp_path, tasks, match):
    with pytest.raises(SimulationInputError, match=match):
        Workflow.from_json(write(tmp_path, tasks))


def test_example_with_dependencies_runs_in_every_mode():
    from pathlib import Path

    examples = Path(__file__).resolve().parents[2] / "examples"
    env = ComputeEnvironment.from_json(examples / "instances.json")
    wf = Workflow.from_json(examples / "tasks-dag.json")
    assert wf.dag is not None and wf.dag.edges >= len(wf) - 1
    results = {m: env.run(wf, m) for m in ("monitor", "optimize", "optimal")}
    for r in results.values():
        for s, ps in enumerate(r.predecessors):
            assert all(r.start_s[s] >= r.end_s[p] for p in ps)
    assert results["optimal"].info["objective"] == "carbon"
    assert results["optimal"].emissions_g <= results["optimize"].emissions_g * (1 + 1e-12)


def test_a_long_cycle_is_named_by_its_ends_and_length():
    n = 5000
    tasks = [Task(f"t{k}", 1, after=[f"t{(k - 1) % n}"]) for k in range(n)]
    with pytest.raises(SimulationInputError) as err:
        Workflow(tasks)
    text = str(err.value)
    assert text.startswith("workflow[0] ('t0'): field 'after': dependency cycle of 5,000 tasks: "
                           "'t0' after 't4999' after 't4998' after 't4997' after … after ")
    assert text.endswith("after 't2' after 't1' after 't0'") and len(text) < 300
