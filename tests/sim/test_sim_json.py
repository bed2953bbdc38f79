"""Model validation and the instances/tasks JSON files: round trips and every bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from energykernel.sim import (
    ComputeEnvironment,
    ComputeInstance,
    Resource,
    SimulationInputError,
    Task,
    Workflow,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

GOOD_INSTANCE = {"name": "a", "speed": 1.0, "idle_power_w": 5.0, "pue": 1.2,
                 "intensity_g_per_kwh": 50.0,
                 "resources": {"cpu": {"capacity": 8, "cost": 4.0},
                               "ram": {"capacity": 32, "cost": 0.375}}}
GOOD_TASK = {"name": "t", "duration_s": 10, "demand": {"cpu": 2}}


def write(tmp_path, name, obj) -> Path:
    p = tmp_path / name
    p.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return p


def test_examples_load_and_run():
    env = ComputeEnvironment.from_json(EXAMPLES / "instances.json")
    wf = Workflow.from_json(EXAMPLES / "tasks.json")
    assert len(env) >= 3 and len(wf) >= 5
    assert {"gpu"} <= {c for i in env for c in i.resources}
    for mode in ("monitor", "optimize", "optimal"):
        assert env.run(wf, mode).energy_j > 0


def test_round_trip(tmp_path):
    env = ComputeEnvironment.from_json(EXAMPLES / "instances.json")
    env.to_json(tmp_path / "i.json")
    again = ComputeEnvironment.from_json(tmp_path / "i.json")
    assert again.instances == env.instances
    wf = Workflow.from_json(EXAMPLES / "tasks.json")
    wf.to_json(tmp_path / "t.json")
    assert Workflow.from_json(tmp_path / "t.json").tasks == wf.tasks
    # intensity may be null or omitted
    inst = dict(GOOD_INSTANCE, intensity_g_per_kwh=None)
    env = ComputeEnvironment.from_json(write(tmp_path, "n.json", {"instances": [inst]}))
    assert env[0].intensity_g_per_kwh is None


def bad_instance(**change):
    entry = json.loads(json.dumps(GOOD_INSTANCE))
    for key, value in change.items():
        if key.startswith("res_"):
            comp, field = key[4:].split("__")
            entry["resources"].setdefault(comp, {})[field] = value
        elif value is ...:
            del entry[key]
        else:
            entry[key] = value
    return entry


INSTANCE_CASES = [
    (bad_instance(res_cpu__capacity=-1), "resources.cpu.capacity", "≥ 0"),
    (bad_instance(res_cpu__capacity=math.nan), "resources.cpu.capacity", "finite"),
    (bad_instance(res_cpu__cost=math.inf), "resources.cpu.cost", "finite"),
    (bad_instance(res_cpu__cost="4"), "resources.cpu.cost", "number"),
    (bad_instance(res_cpu__cost=True), "resources.cpu.cost", "number"),
    (bad_instance(res_tpu__capacity=1, res_tpu__cost=1), "resources.tpu", "unknown component"),
    (bad_instance(res_cpu__watts=1), "resources.cpu.watts", "unknown field"),
    (bad_instance(speed=0), "speed", "> 0"),
    (bad_instance(pue=0.9), "pue", "≥ 1"),
    (bad_instance(idle_power_w=-3), "idle_power_w", "≥ 0"),
    (bad_instance(intensity_g_per_kwh=-1), "intensity_g_per_kwh", "≥ 0"),
    (bad_instance(name=...), "name", "missing"),
    (bad_instance(name=""), "name", "non-empty"),
    (bad_instance(resources=...), "resources", "missing"),
    (bad_instance(resources=[1]), "resources", "must be an object"),
    (bad_instance(idle_power=3), "idle_power", "unknown field"),
]


@pytest.mark.parametrize(("entry", "field", "why"), INSTANCE_CASES)
def test_bad_instance_names_file_entry_and_field(tmp_path, entry, field, why):
    good = dict(GOOD_INSTANCE, name="first")
    p = write(tmp_path, "inst.json", {"instances": [good, entry]})
    with pytest.raises(SimulationInputError) as info:
        ComputeEnvironment.from_json(p)
    msg = str(info.value)
    assert str(p) in msg and "instances[1]" in msg
    assert f"'{field}'" in msg and why in msg
    if isinstance(entry.get("name"), str) and entry["name"]:
        assert "('a')" in msg


def test_duplicate_instance_names(tmp_path):
    p = write(tmp_path, "inst.json", {"instances": [GOOD_INSTANCE, GOOD_INSTANCE]})
    with pytest.raises(SimulationInputError, match=r"instances\[1\] \('a'\): field 'name': duplicate"):
        ComputeEnvironment.from_json(p)
    with pytest.raises(SimulationInputError, match="duplicate"):
        ComputeEnvironment([ComputeInstance("a"), ComputeInstance("a")])


TASK_CASES = [
    (dict(GOOD_TASK, duration_s=-1), "duration_s", "≥ 0"),
    (dict(GOOD_TASK, duration_s=math.nan), "duration_s", "finite"),
    (dict(GOOD_TASK, duration_s=None), "duration_s", "number"),
    (dict(GOOD_TASK, demand={"cpu": -2}), "demand.cpu", "≥ 0"),
    (dict(GOOD_TASK, demand={"cpu": math.nan}), "demand.cpu", "finite"),
    (dict(GOOD_TASK, demand={"npu": 1}), "demand.npu", "unknown component"),
    (dict(GOOD_TASK, demand=[1]), "demand", "must be an object"),
    ({"duration_s": 1}, "name", "missing"),
    ({"name": "t"}, "duration_s", "missing"),
    (dict(GOOD_TASK, runtime=3), "runtime", "unknown field"),
]


@pytest.mark.parametrize(("entry", "field", "why"), TASK_CASES)
def test_bad_task_names_file_entry_and_field(tmp_path, entry, field, why):
    p = write(tmp_path, "tasks.json", {"tasks": [dict(GOOD_TASK, name="ok"), entry]})
    with pytest.raises(SimulationInputError) as info:
        Workflow.from_json(p)
    msg = str(info.value)
    assert str(p) in msg and "tasks[1]" in msg and f"'{field}'" in msg and why in msg


def test_duplicate_task_names(tmp_path):
    p = write(tmp_path, "tasks.json", {"tasks": [GOOD_TASK, GOOD_TASK]})
    with pytest.raises(SimulationInputError, match=r"tasks\[1\] \('t'\): field 'name': duplicate"):
        Workflow.from_json(p)


@pytest.mark.parametrize(("text", "why"), [
    ("{not json", "not valid JSON (line 1"),
    ("[]", "expected an object with a 'instances' list"),
    ('{"instances": {}}', "must be a list"),
    ('{"instances": []}', "is empty"),
    ('{"instances": [3]}', "instances[0]: entry must be an object"),
])
def test_bad_files(tmp_path, text, why):
    p = write(tmp_path, "i.json", text)
    with pytest.raises(SimulationInputError) as info:
        ComputeEnvironment.from_json(p)
    assert str(p) in str(info.value) and why in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(SimulationInputError, match="no such file"):
        ComputeEnvironment.from_json(tmp_path / "nope.json")
    assert issubclass(SimulationInputError, ValueError)


def test_constructors_validate():
    with pytest.raises(SimulationInputError, match="capacity"):
        Resource(-1, 1)
    with pytest.raises(SimulationInputError, match=r"demand\.gpu"):
        Task("t", 1, {"gpu": -1})
    with pytest.raises(SimulationInputError, match="unknown component 'tpu'"):
        ComputeInstance("x", {"tpu": Resource(1, 1)})
    inst = ComputeInstance("x", {"ram": {"capacity": 4, "cost": 1}, "cpu": Resource(2, 3)})
    assert list(inst.resources) == ["cpu", "ram"]  # canonical component order
    assert Task("t", 1, {"cpu": 0, "ram": 2}).demand == {"ram": 2.0}  # zero demands dropped
    env = ComputeEnvironment([inst])
    assert env.replace_instance("x", speed=2.0)["x"].speed == 2.0
    with pytest.raises(SimulationInputError, match="speed"):
        env.replace_instance("x", speed=-2.0)
