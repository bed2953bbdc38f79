"""ds.ek.to_dataframe and energykernel report --csv: the tidy table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import energykernel as ek
from energykernel.cli.main import main
from energykernel.data.schema import cube, runs


def _run(task, energy, instance="h", run_id=None, parent="", bounds=True):
    r = {"id": run_id or f"{task}-{instance}-{sum(energy.values())}", "task": task,
         "instance": instance, "start_s": 1.0, "end_s": 3.0, "duration_s": 2.0,
         "energy_j": dict(energy), "method": {c: "estimate" for c in energy},
         "device_energy_j": {}, "status": "ok", "scope": "machine", "pid": 1,
         "parent_id": parent}
    if bounds:
        r["energy_bounds_j"] = {c: [0.9 * e, 1.1 * e] for c, e in energy.items()}
        r["active_energy_j"] = {c: 0.5 * e for c, e in energy.items()}
    return r


RECORDS = [_run("cell-1", {"cpu": 10.0, "ram": 1.0}, run_id="outer"),
           _run("inner", {"cpu": 4.0}, run_id="in", parent="outer"),
           _run("cell-1", {"cpu": 2.0, "ram": 0.5}, instance="g")]


def test_one_row_per_task_instance_component_measured():
    df = cube(RECORDS).ek.to_dataframe()
    assert list(df.columns) == ["task", "instance", "component", "energy_j", "energy_lo_j",
                                "energy_hi_j", "self_energy_j", "active_energy_j",
                                "duration_s", "runs", "method"]
    assert len(df) == 5  # cell-1 × {h, g} × {cpu, ram} + inner × h × cpu; no NaN rows
    row = df[(df.task == "cell-1") & (df.instance == "h") & (df.component == "cpu")].iloc[0]
    assert row.energy_j == 10 and row.energy_lo_j == pytest.approx(9)
    assert row.energy_hi_j == pytest.approx(11) and row.active_energy_j == 5
    assert row.self_energy_j == pytest.approx(6)  # the nested block's 4 J counted once
    assert row.duration_s == 2 and row.runs == 1 and row.method == "estimate"
    assert df.self_energy_j.sum() == pytest.approx(13.5)  # every joule once
    assert df.runs.dtype == np.int64


def test_runs_dataset_carbon_and_empty():
    df = runs(RECORDS).ek.to_dataframe()
    assert len(df) == 5
    emitted = cube(RECORDS).ek.carbon(intensity=360).ek.to_dataframe()
    assert emitted.emissions_g.sum() == pytest.approx(
        emitted.energy_j.sum() / 3.6e6 * 360)
    assert cube([]).ek.to_dataframe().empty


def test_unknown_bounds_stay_nan():
    df = cube([_run("t", {"cpu": 1.0}, bounds=False)]).ek.to_dataframe()
    assert np.isnan(df.energy_lo_j[0]) and np.isnan(df.active_energy_j[0])


def test_report_csv_writes_the_table(tmp_path, estimate_only, capsys):
    with ek.measure("load"):
        pass
    with ek.measure("a & <b>, \"quoted\""):
        sum(range(10_000))
    path = tmp_path / "runs.nc"
    ek.save(path)
    out = tmp_path / "table.csv"
    assert main(["report", str(path), "--csv", str(out)]) == 0
    df = pd.read_csv(out)
    expected = ek.dataset().ek.to_dataframe()
    assert list(df.task) == list(expected.task)  # labels with commas and quotes survive
    assert np.allclose(df.energy_j, expected.energy_j, rtol=0, atol=0)  # full precision
    assert "table:" in capsys.readouterr().out
    assert not list(tmp_path.glob("*.html"))  # only what was asked

    assert main(["report", str(path)]) == 2  # neither -o nor --csv
    assert "--csv" in capsys.readouterr().err
    assert main(["report", str(path), "--csv", str(tmp_path / "t.txt")]) == 2
    assert "must end in .csv" in capsys.readouterr().err
