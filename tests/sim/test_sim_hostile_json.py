"""Hostile instances/tasks files and values: huge numbers, deep nesting, duplicate keys,
overflowing products. Every one is an error naming file, entry and field (or what
overflowed), never a traceback from deep inside and never an ``inf``/NaN result; the CLI
prints one line and exits 2 without writing, and never writes over one of its inputs."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from energykernel.cli.simulate import simulate_main
from energykernel.sim import (
    ComputeEnvironment,
    ComputeInstance,
    Resource,
    SimulationInputError,
    Task,
    Workflow,
)
from energykernel.sim.jsonio import load_instances, load_tasks
from energykernel.sim.model import MAX_VALUE

HUGE_INT = "1" + "0" * 400  # beyond the float range
LONG_INT = "9" * 5000  # beyond Python's int-string conversion limit (4300 digits)
DEEP = "[" * 100_000 + "]" * 100_000

INSTANCES = '{"instances": [{"name": "a", "resources": {"cpu": {"capacity": 8, "cost": 5}}}]}'
TASKS = '{"tasks": [{"name": "t", "duration_s": 10, "demand": {"cpu": 4}}]}'


def tasks_with(duration: str = "10", demand: str = '{"cpu": 4}') -> str:
    return f'{{"tasks": [{{"name": "t", "duration_s": {duration}, "demand": {demand}}}]}}'


def instances_with(capacity: str = "8", cost: str = "5", extra: str = "") -> str:
    return ('{"instances": [{"name": "a"' + extra + ', "resources": {"cpu": {"capacity": '
            f'{capacity}, "cost": {cost}}}}}}}]}}')


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = simulate_main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_one_line_error(code: int, err: str, *parts: str) -> None:
    assert code == 2
    assert err.startswith("energykernel simulate: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for part in parts:
        assert part in err, (part, err)


# -- numbers beyond the float range -----------------------------------------------------------

@pytest.mark.parametrize(("value", "shown"), [(HUGE_INT, "an integer of 401 digits"),
                                              (LONG_INT, "an integer of 5000 digits"),
                                              ("-" + LONG_INT, "an integer of 5000 digits"),
                                              ("1e400", "1e400")])
def test_huge_numbers_name_file_entry_and_field(tmp_path, value, shown):
    p = write(tmp_path, "tasks.json", tasks_with(duration=value))
    with pytest.raises(SimulationInputError) as info:
        Workflow.from_json(p)
    msg = str(info.value)
    assert str(p) in msg and "tasks[0] ('t')" in msg and "'duration_s'" in msg, msg
    assert shown in msg and len(msg) < 300, msg  # never the 5000 digits themselves
    p = write(tmp_path, "inst.json", instances_with(capacity=value))
    with pytest.raises(SimulationInputError, match=r"instances\[0\] \('a'\): field "
                                                   r"'resources\.cpu\.capacity'"):
        ComputeEnvironment.from_json(p)


def test_huge_integer_in_the_python_api_is_out_of_range_not_overflow_error():
    with pytest.raises(SimulationInputError, match=r"duration_s: out of range.*401 digits"):
        Task("t", int(HUGE_INT))
    with pytest.raises(SimulationInputError, match="cost: out of range"):
        Resource(1, 10 ** 5000)


# -- finite values whose products overflow: bounded fields -----------------------------------

@pytest.mark.parametrize(("kind", "text", "field"), [
    ("tasks", tasks_with(duration="1e308"), "duration_s"),
    ("tasks", tasks_with(demand='{"cpu": 1e308}'), "demand.cpu"),
    ("instances", instances_with(cost="1e308"), "resources.cpu.cost"),
    ("instances", instances_with(capacity="1e16"), "resources.cpu.capacity"),
    ("instances", instances_with(extra=', "idle_power_w": 1e300'), "idle_power_w"),
    ("instances", instances_with(extra=', "pue": 1e300'), "pue"),
    ("instances", instances_with(extra=', "speed": 1e300'), "speed"),
    ("instances", instances_with(extra=', "intensity_g_per_kwh": 1e300'), "intensity_g_per_kwh"),
])
def test_values_beyond_the_bounds_are_errors_naming_the_field(tmp_path, kind, text, field):
    p = write(tmp_path, f"{kind}.json", text)
    load = load_tasks if kind == "tasks" else load_instances
    with pytest.raises(SimulationInputError) as info:
        load(p)
    msg = str(info.value)
    assert str(p) in msg and f"{kind}[0]" in msg and f"'{field}'" in msg, msg
    assert f"≤ {MAX_VALUE:g}" in msg, msg


def test_values_at_the_bounds_give_finite_results_in_every_mode():
    m = MAX_VALUE
    env = ComputeEnvironment([
        ComputeInstance("a", {"cpu": Resource(m, m), "gpu": Resource(m, m)}, speed=1e-6,
                        idle_power_w=m, pue=m, intensity_g_per_kwh=m),
        ComputeInstance("b", {"cpu": Resource(m, m)}, idle_power_w=m, pue=m,
                        intensity_g_per_kwh=m)])
    wf = Workflow([Task(f"t{k}", m, {"cpu": m, "gpu": m * (k % 2)}) for k in range(6)])
    for mode in ("monitor", "optimize", "optimal"):
        totals = env.run(wf, mode).totals()
        assert all(math.isfinite(v) for v in totals.values()), (mode, totals)
    r = env.run(wf, "optimal", deadline_s=1e300)  # a deadline is only a bound: any finite
    assert math.isfinite(r.energy_j)


# -- results checked finite ----------------------------------------------------------------

def _overflowing_cost() -> Resource:
    r = Resource(8, 5.0)
    object.__setattr__(r, "cost", 1e308)  # around the validation (frozen dataclass)
    return r


@pytest.mark.parametrize("mode", ["monitor", "optimize", "optimal"])
def test_an_overflowing_energy_is_an_error_naming_task_instance_and_product(mode):
    env = ComputeEnvironment([ComputeInstance("a", {"cpu": _overflowing_cost()})])
    with pytest.raises(SimulationInputError) as info:
        env.run(Workflow([Task("t", MAX_VALUE, {"cpu": 8})]), mode)
    msg = str(info.value)
    assert msg.startswith("result is not finite") and "'t'" in msg and "'a'" in msg, msg
    assert "cost" in msg and "overflows" in msg, msg


@pytest.mark.parametrize("mode", ["monitor", "optimize", "optimal"])
def test_a_speed_so_small_that_the_runtime_overflows_is_named(mode):
    env = ComputeEnvironment([ComputeInstance("slow", {"cpu": Resource(8, 5.0)}, speed=1e-300)])
    with pytest.raises(SimulationInputError, match=r"end time of task 't' on instance "
                                                   r"'slow'.*duration_s / speed overflows"):
        env.run(Workflow([Task("t", MAX_VALUE, {"cpu": 8})]), mode)


def test_optimal_avoids_an_overflowing_instance_when_a_finite_schedule_exists():
    """A NaN objective (0 × an overflowed rate) must not win over a finite schedule."""
    env = ComputeEnvironment([ComputeInstance("slow", {"cpu": Resource(8, 5.0)}, speed=1e-300),
                              ComputeInstance("ok", {"cpu": Resource(8, 5.0)})])
    r = env.run(Workflow([Task("t", MAX_VALUE, {"cpu": 8})] * 3), "optimal")
    assert set(r.schedule()["instance"]) == {"ok"} and math.isfinite(r.energy_j)


def test_overflowing_idle_energy_and_emissions_are_named():
    inst = ComputeInstance("a", {"cpu": Resource(8, 1.0)}, idle_power_w=MAX_VALUE)
    object.__setattr__(inst, "pue", 1e300)
    with pytest.raises(SimulationInputError, match="idle energy of instance 'a'"):
        ComputeEnvironment([inst]).run(Workflow([Task("t", 1, {"cpu": 0})]))
    inst = ComputeInstance("a", {"cpu": Resource(8, MAX_VALUE)}, intensity_g_per_kwh=1)
    object.__setattr__(inst, "intensity_g_per_kwh", 1e300)
    with pytest.raises(SimulationInputError, match="emissions of instance 'a'"):
        ComputeEnvironment([inst]).run(Workflow([Task("t", MAX_VALUE, {"cpu": 8})]))


# -- nesting and duplicate keys ------------------------------------------------------------

@pytest.mark.parametrize("text", [DEEP, '{"tasks": ' + DEEP + "}",
                                  '{"tasks": [{"name": "t", "duration_s": ' + DEEP + "}]}"])
def test_deep_nesting_is_an_error_naming_the_file(tmp_path, text):
    p = write(tmp_path, "tasks.json", text)
    with pytest.raises(SimulationInputError) as info:
        load_tasks(p)
    assert str(p) in str(info.value) and "nested too deeply" in str(info.value)


def test_moderate_nesting_inside_a_field_is_named_briefly(tmp_path):
    p = write(tmp_path, "tasks.json", tasks_with(duration="[" * 500 + "]" * 500))
    with pytest.raises(SimulationInputError) as info:
        load_tasks(p)
    msg = str(info.value)
    assert "'duration_s'" in msg and "must be a number" in msg and len(msg) < 300, msg


@pytest.mark.parametrize(("text", "where"), [
    ('{"tasks": [{"name": "a", "name": "b", "duration_s": 1}]}', "tasks[0] ('b'): field 'name'"),
    ('{"tasks": [{"name": "a", "duration_s": 1, "demand": {"cpu": 1, "cpu": 2}}]}',
     "tasks[0] ('a'): field 'demand.cpu'"),
    ('{"tasks": [], "tasks": [{"name": "a", "duration_s": 1}]}', "key 'tasks'"),
    ('{"tasks": [{"name": "a", "duration_s": 1}, {"name": "b", "duration_s": 2, '
     '"duration_s": 3}]}', "tasks[1] ('b'): field 'duration_s'"),
])
def test_duplicate_keys_name_the_key_and_the_file(tmp_path, text, where):
    p = write(tmp_path, "tasks.json", text)
    with pytest.raises(SimulationInputError) as info:
        Workflow.from_json(p)
    msg = str(info.value)
    assert str(p) in msg and where in msg and "duplicate key" in msg, msg


def test_duplicate_key_in_an_instance_resource(tmp_path):
    p = write(tmp_path, "inst.json", '{"instances": [{"name": "a", "resources": {"cpu": '
                                     '{"capacity": 8, "cost": 5, "cost": 6}}}]}')
    with pytest.raises(SimulationInputError, match=r"instances\[0\] \('a'\): field "
                                                   r"'resources\.cpu\.cost': duplicate key"):
        ComputeEnvironment.from_json(p)


# -- the CLI: one line, exit 2, nothing written --------------------------------------------

@pytest.mark.parametrize(("kind", "text", "parts"), [
    ("tasks", tasks_with(duration=HUGE_INT), ("tasks[0] ('t')", "'duration_s'", "401 digits")),
    ("tasks", tasks_with(duration=LONG_INT), ("tasks[0] ('t')", "'duration_s'", "5000 digits")),
    ("tasks", DEEP, ("nested too deeply",)),
    ("tasks", tasks_with(duration="1e308"), ("tasks[0] ('t')", "'duration_s'", "out of range")),
    ("instances", instances_with(cost="1e308"), ("instances[0] ('a')", "'resources.cpu.cost'")),
    ("tasks", '{"tasks": [{"name": "a", "name": "b", "duration_s": 1}]}',
     ("'name'", "duplicate key")),
])
def test_cli_one_line_exit_2_and_no_output(tmp_path, capsys, kind, text, parts):
    bad = write(tmp_path, f"{kind}.json", text)
    inst = bad if kind == "instances" else write(tmp_path, "instances.json", INSTANCES)
    tasks = bad if kind == "tasks" else write(tmp_path, "tasks.json", TASKS)
    out = tmp_path / "sim.nc"
    code, stdout, err = run_cli(capsys, str(inst), str(tasks), "--dataset", str(out))
    assert_one_line_error(code, err, str(bad), *parts)
    assert "inf" not in stdout and not out.exists()


def test_cli_overflowing_runtime_is_one_line_without_warnings(tmp_path, capsys):
    inst = write(tmp_path, "instances.json", instances_with(extra=', "speed": 1e-300'))
    tasks = write(tmp_path, "tasks.json", tasks_with(duration="1e15"))
    code, stdout, err = run_cli(capsys, str(inst), str(tasks))
    assert_one_line_error(code, err, "result is not finite", "'t'", "'a'", "speed")
    assert stdout == ""


def test_cli_subprocess_has_no_traceback(tmp_path):
    bad = write(tmp_path, "tasks.json", tasks_with(duration=LONG_INT))
    inst = write(tmp_path, "instances.json", INSTANCES)
    proc = subprocess.run([sys.executable, "-m", "energykernel.cli.simulate", str(inst),
                           str(bad)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and "5000 digits" in proc.stderr


# -- the CLI never writes over an input ----------------------------------------------------

def _inputs_as_nc(tmp_path: Path) -> tuple[Path, Path]:
    """JSON inputs with NetCDF names, which --dataset accepts."""
    return write(tmp_path, "inst.nc", INSTANCES), write(tmp_path, "tasks.nc", TASKS)


@pytest.mark.parametrize("how", ["same", "relative", "symlink", "hardlink", "tasks"])
def test_cli_dataset_never_overwrites_an_input(tmp_path, capsys, monkeypatch, how):
    inst, tasks = _inputs_as_nc(tmp_path)
    before = {p: p.read_bytes() for p in (inst, tasks)}
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    if how == "same":
        target = str(inst)
    elif how == "relative":
        target = os.path.join("sub", "..", "inst.nc")
    elif how == "symlink":
        (tmp_path / "link.nc").symlink_to(inst)
        target = "link.nc"
    elif how == "hardlink":
        os.link(inst, tmp_path / "hard.nc")
        target = "hard.nc"
    else:
        target = str(tasks)
    code, _, err = run_cli(capsys, str(inst), str(tasks), "--dataset", target)
    assert_one_line_error(code, err, "--dataset", "would overwrite the input")
    assert {p: p.read_bytes() for p in before} == before


def test_cli_dataset_next_to_the_inputs_is_fine(tmp_path, capsys):
    inst, tasks = _inputs_as_nc(tmp_path)
    code, _, err = run_cli(capsys, str(inst), str(tasks), "--dataset", str(tmp_path / "o.nc"))
    assert code == 0, err
    assert json.loads(inst.read_text())["instances"][0]["name"] == "a"
