"""@tag_tracker, execute_tracking (both ways of the report) and DataProduct logs."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest

from energykernel.sim import (
    ComputeEnvironment,
    ComputeInstance,
    DataProduct,
    Resource,
    SimulationInputError,
    TagTracker,
    Task,
    execute_tracking,
    tag_tracker,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ENV = ComputeEnvironment([ComputeInstance("a", {"cpu": Resource(4, 5.0)}),
                          ComputeInstance("b", {"cpu": Resource(4, 1.0)})])
CATALOGUE = {"load": Task("load", 10, {"cpu": 4}), "train": Task("train", 20, {"cpu": 4})}


@pytest.fixture
def tracker():
    return TagTracker()


def test_decorator_records_call_order(tracker):
    @tracker
    def load():
        """Load."""
        return 1

    @tracker("train")
    def fit(x):
        return x + 1

    @tracker()
    def report():
        return None

    assert fit(load()) == 2
    load()
    report()
    assert tracker.order == ["load", "train", "load", "report"]
    assert load.__name__ == "load" and load.__doc__ == "Load." and fit.task_name == "train"
    assert fit.__wrapped__(1) == 2
    tracker.clear()
    assert tracker.order == []


def test_records_even_when_the_function_raises(tracker):
    @tracker
    def boom():
        raise KeyError("x")

    with pytest.raises(KeyError):
        boom()
    assert tracker.order == ["boom"]


def test_async_functions(tracker):
    @tracker("fetch")
    async def fetch():
        return 3

    assert asyncio.run(fetch()) == 3
    assert tracker.order == ["fetch"]


def test_thread_safe(tracker):
    @tracker("work")
    def work():
        pass

    threads = [threading.Thread(target=lambda: [work() for _ in range(500)]) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(tracker.order) == 4000


def test_bad_name(tracker):
    with pytest.raises(SimulationInputError):
        tracker("")


def test_execute_tracking_simulates_recorded_order(tracker):
    @tracker
    def load():
        pass

    @tracker
    def train():
        pass

    load()
    train()
    train()
    r = execute_tracking(instances=ENV, tasks=CATALOGUE, mode="optimize", tracker=tracker,
                         clear=True)
    assert r.task_names == ["load", "train", "train"]
    assert [r.instances[i] for i in r.assignment] == ["b", "a", "b"]
    assert tracker.order == []


def test_execute_tracking_pre_emptive_from_files():
    r = execute_tracking(instances=EXAMPLES / "instances.json",
                         tasks=str(EXAMPLES / "tasks.json"), mode="monitor",
                         tracker=TagTracker())
    assert r.task_names[0] == "load-data" and len(r.task_names) == 8


def test_execute_tracking_given_list_and_order(tracker):
    tasks = [CATALOGUE["train"], CATALOGUE["load"]]
    r = execute_tracking(instances=list(ENV), tasks=tasks, tracker=tracker)
    assert r.task_names == ["train", "load"]
    r = execute_tracking(instances=ENV, tasks=tasks, order=["load", "load"], tracker=tracker)
    assert r.task_names == ["load", "load"]


def test_execute_tracking_default_tracker():
    tag_tracker.clear()

    @tag_tracker("load")
    def step():
        pass

    step()
    try:
        r = execute_tracking(ENV, CATALOGUE)
        assert r.task_names == ["load"]
    finally:
        tag_tracker.clear()


def test_execute_tracking_bad_input(tracker):
    tracker.record("missing")
    with pytest.raises(SimulationInputError, match="no task description for 'missing'"):
        execute_tracking(ENV, CATALOGUE, tracker=tracker)
    with pytest.raises(SimulationInputError, match="instances"):
        execute_tracking(42, CATALOGUE, tracker=TagTracker())
    with pytest.raises(SimulationInputError, match=r"tasks\[1\]"):
        execute_tracking(ENV, [CATALOGUE["load"], "train"], tracker=TagTracker())


def test_data_product_history_log_and_summary(tmp_path):
    model = DataProduct("model", [CATALOGUE["train"]])
    data = DataProduct("data", ["load"])
    r = execute_tracking(ENV, CATALOGUE, order=["load", "train", "train"],
                         products=[model, data], mode="monitor", tracker=TagTracker())
    assert [h["task"] for h in model.history] == ["train", "train"]
    assert model.history[0]["instance"] == "b" and model.history[1]["instance"] == "a"
    assert model.history[0]["energy_j"] == {"cpu": pytest.approx(20 * 4 * 1.0)}
    assert model.total_j == pytest.approx(80 + 400)
    ENV.run([CATALOGUE["train"]], "optimize", products=[model])  # a second simulation
    assert [h["simulation"] for h in model.history] == [1, 1, 2]
    log = model.to_log(tmp_path / "model.jsonl")
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert len(lines) == 3 and lines[2]["mode"] == "optimize" and lines[0]["product"] == "model"
    text = model.summary()
    assert "3 runs over 2 simulation(s)" in text and "task train" in text and "instance a" in text
    assert str(data).startswith("DataProduct 'data': 1 runs")
    assert "no runs observed" in DataProduct("x", ["y"]).summary()
    assert r.energy_j > 0
    with pytest.raises(FileNotFoundError):
        model.to_log(tmp_path / "no" / "dir.jsonl")


WIDE = ComputeEnvironment([ComputeInstance("a", {"cpu": Resource(8, 1.0)})])


def test_decorator_after_and_data_dependencies(tracker):
    @tracker
    def load():
        return [1, 2, 3]  # a list: no weak reference, matched while the tracker keeps it

    class Model:
        pass

    @tracker("train")
    def fit(data):
        return Model()

    @tracker(after=["load"])
    def report(model, *, title=None):
        return None

    data = load()
    model = fit(data)
    report(model, title="x")
    report(model=model)
    assert tracker.order == ["load", "train", "report", "report"]
    assert tracker.dependencies == [(), ("load",), ("load", "train"), ("load", "train")]
    assert report.task_after == ("load",)
    catalogue = {"load": Task("load", 10, {"cpu": 1}), "train": Task("train", 20, {"cpu": 1}),
                 "report": Task("report", 1, {"cpu": 1})}
    r = execute_tracking(WIDE, catalogue, tracker=tracker)
    assert r.start_s.tolist() == [0, 10, 30, 30]
    assert r.predecessors == [(), (0,), (0, 1), (0, 1)]


def test_values_python_shares_and_dead_objects_are_not_dependencies(tracker):
    class Box:
        pass

    @tracker
    def nothing():
        return None

    @tracker
    def make():
        return Box()

    @tracker
    def use(x):
        return x

    use(nothing())
    use(7)
    box = make()
    use(box)
    del box
    for _ in range(50):  # new objects, some at the freed address: never taken for make's
        use(Box())
    deps = tracker.dependencies
    assert tracker.order[:5] == ["nothing", "use", "use", "make", "use"]
    assert deps[:5] == [(), (), (), (), ("make",)]
    assert all(d == () for d in deps[5:])


def test_a_function_fed_its_own_result_is_not_after_itself(tracker):
    @tracker
    def step(x):
        return [x]

    step(step(step(0)))
    assert tracker.dependencies == [(), (), ()]


def test_execute_tracking_after_mapping():
    r = execute_tracking(WIDE, CATALOGUE, order=["load", "train", "load", "train"],
                         after={"train": ["load"]}, tracker=TagTracker())
    assert r.predecessors == [(), (0,), (), (2,)]
    assert r.start_s.tolist() == [0, 10, 0, 10]
    with pytest.raises(SimulationInputError, match=r"after: must be a mapping"):
        execute_tracking(WIDE, CATALOGUE, after=["load"], tracker=TagTracker())
    with pytest.raises(SimulationInputError, match=r"after\['train'\]: must be a list"):
        execute_tracking(WIDE, CATALOGUE, after={"train": "load"}, tracker=TagTracker())
    with pytest.raises(SimulationInputError,
                       match=r"\('train'\): field 'after': unknown task 'fetch'"):
        execute_tracking(WIDE, CATALOGUE, after={"train": ["fetch"]}, tracker=TagTracker())


def test_decorator_after_must_be_names(tracker):
    with pytest.raises(SimulationInputError, match=r"after: must be a list of task names"):
        tracker("x", after="load")


def test_clear_forgets_dependencies(tracker):
    @tracker
    def a():
        return []

    @tracker
    def b(x):
        return None

    b(a())
    tracker.clear()
    assert tracker.order == [] and tracker.dependencies == []
