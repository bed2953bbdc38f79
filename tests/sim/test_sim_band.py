"""Measured bounds carried as task uncertainty: energy_band → lo/hi totals."""

from __future__ import annotations

import json

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

HOST = ComputeInstance("host", {"cpu": Resource(8, 10.0)}, idle_power_w=5.0,
                       intensity_g_per_kwh=360.0)


def _run(k, task, energy, lo, hi):
    return {"id": f"r{k}", "task": task, "instance": "host", "start_s": 1e9 + 10 * k,
            "end_s": 1e9 + 10 * k + 10, "duration_s": 10.0, "energy_j": {"cpu": energy},
            "energy_bounds_j": {"cpu": (lo, hi)}, "method": {"cpu": "estimate"},
            "device_energy_j": {}, "status": "ok", "scope": "machine"}


def test_measured_bounds_become_the_task_band_and_the_result_band():
    # two runs of "fit": 400 J in [300, 600] and 400 J in [340, 440] →
    # band (640 / 800, 1040 / 800) = (0.8, 1.3); demand 40 W / 10 W per core = 4 cores
    ds = runs_dataset([_run(0, "fit", 400.0, 300.0, 600.0), _run(1, "fit", 400.0, 340.0, 440.0)])
    (task,) = tasks_from_runs(ds, HOST)
    assert task.energy_band == pytest.approx((0.8, 1.3))
    assert task.demand == {"cpu": pytest.approx(4.0)}
    r = ComputeEnvironment([HOST]).run(Workflow([task, task]))
    # each step 10 s × 4 × 10 W = 400 J, both at once (8 cores): idle 5 W × 10 s = 50 J
    b = r.band()
    assert r.energy_j == pytest.approx(850)
    assert b["energy_lo_j"] == pytest.approx(0.8 * 800 + 50)
    assert b["energy_hi_j"] == pytest.approx(1.3 * 800 + 50)
    # carbon at 360 g/kWh = 1e-4 g/J: 0.085 g, band 0.069–0.109 g
    assert r.emissions_g == pytest.approx(0.085)
    assert (b["emissions_lo_g"], b["emissions_hi_g"]) == pytest.approx((0.069, 0.109))
    assert float(r.dataset.total_energy_lo) == pytest.approx(690)


def test_band_field_validation_and_json_round_trip(tmp_path):
    with pytest.raises(SimulationInputError, match=r"energy_band\[0\]: must be ≤ 1|energy_band\[0\]"):
        Task("t", 1, energy_band=(1.5, 2.0))
    with pytest.raises(SimulationInputError, match=r"energy_band\[1\]: must be ≥ 1"):
        Task("t", 1, energy_band=(0.5, 0.9))
    with pytest.raises(SimulationInputError, match="energy_band: must be"):
        Task("t", 1, energy_band=(0.5,))
    wf = Workflow([Task("t", 1, {"cpu": 1}, energy_band=(0.9, 1.2))], deadline_s=50)
    path = tmp_path / "tasks.json"
    wf.to_json(path)
    data = json.loads(path.read_text())
    assert data["tasks"][0]["energy_band"] == [0.9, 1.2] and data["deadline_s"] == 50
    again = Workflow.from_json(path)
    assert again.tasks[0].energy_band == (0.9, 1.2) and again.deadline_s == 50


def test_without_bounds_the_band_is_the_figure():
    r = ComputeEnvironment([HOST]).run([Task("t", 10, {"cpu": 1})])
    b = r.band()
    assert b["energy_lo_j"] == b["energy_hi_j"] == pytest.approx(r.energy_j)
    assert "total_energy_lo" not in r.dataset
    assert np.isfinite(b["emissions_lo_g"])
