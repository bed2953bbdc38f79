"""``energykernel simulate`` (simulate_main) and ``python -m energykernel.cli.simulate``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import xarray as xr

from energykernel.cli.simulate import simulate_main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
INST, TASKS = str(EXAMPLES / "instances.json"), str(EXAMPLES / "tasks.json")


@pytest.mark.parametrize("mode", ["monitor", "optimize", "optimal"])
def test_prints_table_and_writes_dataset(tmp_path, capsys, mode):
    out = tmp_path / "sim.nc"
    assert simulate_main([INST, TASKS, "--mode", mode, "--dataset", str(out)]) == 0
    text = capsys.readouterr().out
    assert "instance" in text and "TOTAL" in text and f"mode {mode}: energy" in text
    assert "gpu-a100x4" in text
    with xr.open_dataset(out, engine="h5netcdf") as ds:
        assert set(ds.energy.dims) == {"task", "instance", "component"}
        assert ds.attrs["method"] == "simulated" and ds.attrs["mode"] == mode
        assert {"start", "end", "assigned_instance", "idle_energy"} <= set(ds.variables)
        assert (ds.method.values[~ds.energy.isnull().values] == "simulated").all()
    assert [p.name for p in tmp_path.iterdir()] == ["sim.nc"]


def test_deadline_option(capsys):
    assert simulate_main([INST, TASKS, "--mode", "optimal", "--deadline", "4000"]) == 0
    assert "proven optimal" in capsys.readouterr().out
    assert simulate_main([INST, TASKS, "--deadline", "4000"]) == 2
    assert "--deadline: only with --mode optimal" in capsys.readouterr().err


def test_time_limit_option(capsys):
    assert simulate_main([INST, TASKS, "--mode", "optimal", "--time-limit", "2"]) == 0
    assert "proven optimal" in capsys.readouterr().out
    assert simulate_main([INST, TASKS, "--time-limit", "2"]) == 2
    assert "--time-limit: only with --mode optimal" in capsys.readouterr().err
    assert simulate_main([INST, TASKS, "--mode", "optimal", "--time-limit", "0"]) == 2
    assert "time_limit_s" in capsys.readouterr().err


def test_bad_input_exit_2_one_line_and_no_file(tmp_path, capsys):
    bad = tmp_path / "tasks.json"
    bad.write_text(json.dumps({"tasks": [{"name": "x", "duration_s": -5}]}))
    out = tmp_path / "sim.nc"
    assert simulate_main([INST, str(bad), "--dataset", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert str(bad) in err and "tasks[0] ('x')" in err and "'duration_s'" in err
    assert not out.exists() and list(tmp_path.iterdir()) == [bad]


def test_unfit_task_and_bad_args(tmp_path, capsys):
    t = tmp_path / "t.json"
    t.write_text(json.dumps({"tasks": [{"name": "huge", "duration_s": 1,
                                        "demand": {"gpu": 99}}]}))
    assert simulate_main([INST, str(t)]) == 2
    assert "'huge'" in capsys.readouterr().err
    assert simulate_main([INST, TASKS, "--mode", "fastest"]) == 2
    assert simulate_main([str(tmp_path / "missing.json"), TASKS]) == 2
    assert "no such file" in capsys.readouterr().err
    assert simulate_main([INST, TASKS, "--dataset", str(tmp_path / "x.csv")]) == 2
    assert simulate_main([INST, TASKS, "--dataset", str(tmp_path / "no" / "x.nc")]) == 2


def test_python_dash_m(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "energykernel.cli.simulate", INST, TASKS,
                           "--mode", "optimize"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "mode optimize" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "energykernel.cli.simulate", INST,
                           str(tmp_path / "none.json")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_si_units_algorithm_and_start_hour_options(capsys):
    hourly = str(EXAMPLES / "instances-hourly.json")
    window = str(EXAMPLES / "tasks-dag-window.json")
    assert simulate_main([hourly, window, "--mode", "optimize", "--start-hour", "6",
                          "--shift"]) == 0
    text = capsys.readouterr().out
    assert "e+" not in text and "kWh" not in text  # one SI formatting: J, kJ, MJ
    assert " MJ" in text and "gCO2e" in text and "starts " in text
    assert simulate_main([INST, str(EXAMPLES / "tasks-dag.json"), "--mode", "optimize",
                          "--algorithm", "heft"]) == 0
    assert "mode optimize: energy" in capsys.readouterr().out
    assert simulate_main([INST, TASKS, "--algorithm", "heft"]) == 2  # monitor: no algorithm
    assert "algorithm" in capsys.readouterr().err
