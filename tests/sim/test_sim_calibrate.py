"""tasks_from_runs: measured runs → Tasks; the §4 Dataset of a simulation."""

from __future__ import annotations

import numpy as np
import pytest

from energykernel.data.schema import runs as runs_dataset
from energykernel.sim import (
    ComputeEnvironment,
    ComputeInstance,
    Resource,
    SimulationInputError,
    Task,
    Workflow,
    tasks_from_runs,
)


def record(k, task, start, duration, energy, status="ok"):
    return {"id": f"r{k}", "task": task, "instance": "host", "start_s": 1e9 + start,
            "end_s": 1e9 + start + duration, "duration_s": duration, "energy_j": energy,
            "method": dict.fromkeys(energy, "rapl"), "device_energy_j": {}, "status": status,
            "scope": "machine"}


RUNS = runs_dataset([
    record(0, "train", 0, 10, {"cpu": 500.0, "gpu": 3000.0}),
    record(1, "prep", 10, 4, {"cpu": 80.0}),
    record(2, "train", 20, 10, {"cpu": 500.0, "gpu": 3000.0}),
    record(3, "broken", 30, 1, {"cpu": 5.0}, status="error"),
])
HOST = ComputeInstance("host", {"cpu": Resource(64, 5.0), "gpu": Resource(4, 300.0)}, speed=2.0)


def test_demand_from_power_and_duration_from_speed():
    tasks = tasks_from_runs(RUNS, HOST)
    assert [t.name for t in tasks] == ["train", "prep"]  # failed run skipped
    train, prep = tasks
    assert train.duration_s == pytest.approx(20.0)  # 10 s measured at speed 2
    assert train.demand == {"cpu": pytest.approx(10.0), "gpu": pytest.approx(1.0)}
    assert prep.demand == {"cpu": pytest.approx(4.0)}


def test_simulating_on_the_described_instance_reproduces_measurement():
    tasks = tasks_from_runs(RUNS, HOST, per_run=True)
    assert [t.name for t in tasks] == ["train", "prep", "train"]
    r = ComputeEnvironment([HOST]).run(Workflow(tasks), "monitor")
    ds = r.dataset
    assert float(ds.energy.sel(task="train", instance="host", component="cpu")) == pytest.approx(1000)
    assert float(ds.energy.sel(task="train", instance="host", component="gpu")) == pytest.approx(6000)
    assert float(ds.duration.sel(task="train", instance="host")) == pytest.approx(20)


def test_what_if_on_another_fleet():
    fleet = ComputeEnvironment([
        ComputeInstance("old", {"cpu": Resource(16, 8.0), "gpu": Resource(1, 250.0)}),
        ComputeInstance("new", {"cpu": Resource(64, 3.0), "gpu": Resource(8, 400.0)}, speed=4),
    ])
    r = fleet.run(Workflow(tasks_from_runs(RUNS, HOST)), "optimize")
    assert r.energy_j > 0 and len(r.task_names) == 2


def test_include_failed_and_dict_description():
    tasks = tasks_from_runs(RUNS, HOST.to_dict(), include_failed=True)
    assert [t.name for t in tasks] == ["train", "prep", "broken"]


def test_clip_and_missing_component_warn():
    small = ComputeInstance("host", {"cpu": Resource(4, 5.0)})
    with pytest.warns(UserWarning) as caught:
        tasks = tasks_from_runs(RUNS, small)
    text = " ".join(str(w.message) for w in caught)
    assert "'train'" in text and "gpu" in text and "clipped" in text
    assert tasks[0].demand == {"cpu": 4.0}


def test_bad_arguments():
    with pytest.raises(SimulationInputError, match="instance_description"):
        tasks_from_runs(RUNS, 3)
    with pytest.raises(SimulationInputError, match="runs Dataset"):
        tasks_from_runs(RUNS.drop_vars("energy"), HOST)


def test_dataset_schema_and_schedule_variables():
    env = ComputeEnvironment([
        ComputeInstance("a", {"cpu": Resource(4, 5.0)}, idle_power_w=2.0),
        ComputeInstance("b", {"cpu": Resource(4, 1.0), "ram": Resource(8, 0.5)}),
        ComputeInstance("unused", {"gpu": Resource(1, 100.0)}),
    ])
    wf = Workflow([Task("x", 10, {"cpu": 4}), Task("y", 5, {"cpu": 4})])
    ds = env.run(wf, "monitor").dataset
    assert ds.energy.dims == ("task", "instance", "component")
    assert ds.instance.values.tolist() == ["a", "b", "unused"]
    assert ds.component.values.tolist() == ["cpu", "gpu", "ram", "storage"]
    assert ds.energy.attrs["units"] == "J" and ds.duration.attrs["units"] == "s"
    assert float(ds.energy.sel(task="x", instance="a", component="cpu")) == 200
    assert float(ds.energy.sel(task="y", instance="b", component="ram")) == 0.0
    assert ds.method.sel(task="y", instance="b", component="cpu").item() == "simulated"
    assert ds.method.sel(task="y", instance="a", component="cpu").item() == ""
    assert int(ds.runs.sel(instance="unused").sum()) == 0
    assert ds.start.values.tolist() == [0, 0] and ds.end.values.tolist() == [10, 5]
    assert ds.assigned_instance.values.tolist() == ["a", "b"]
    assert ds.idle_energy.sel(instance="a").item() == pytest.approx(2.0 * 10)
    assert float(ds.total_energy) == pytest.approx(200 + 20 + 20)
    assert float(np.nansum(ds.energy)) + float(ds.idle_energy.sum()) == pytest.approx(
        float(ds.total_energy))
    table = ds.ek.summary()
    assert table.loc["x", "cpu_j"] == 200
