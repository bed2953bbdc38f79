"""ds.ek.compare: two measurements of the same work."""

from __future__ import annotations

import numpy as np
import pytest

import energykernel as ek
from energykernel.data.schema import cube


def _run(task, cpu, lo=None, hi=None, instance="h", run_id=None):
    r = {"id": run_id or f"{task}-{cpu}-{instance}", "task": task, "instance": instance,
         "start_s": 1.0, "end_s": 2.0, "duration_s": 1.0, "energy_j": {"cpu": cpu},
         "method": {"cpu": "rapl"}, "device_energy_j": {}, "status": "ok",
         "scope": "machine", "pid": 1, "parent_id": ""}
    if lo is not None:
        r["energy_bounds_j"] = {"cpu": [lo, hi]}
    return r


def test_compare_reports_delta_ratio_and_what_changed():
    a = cube([_run("load", 10, 9.9, 10.1), _run("train", 100, 99, 101),
              _run("old", 5, 4.9, 5.1)])
    b = cube([_run("load", 10.05, 9.95, 10.15), _run("train", 150, 149, 151),
              _run("new", 7, 6.9, 7.1)])
    c = a.ek.compare(b)
    assert list(c.task.values) == ["train", "new", "old", "load"]  # largest move first
    assert float(c.delta.sel(task="train", component="cpu")) == pytest.approx(50)
    assert float(c.ratio.sel(task="train", component="cpu")) == pytest.approx(1.5)
    assert float(c.total_delta.sel(task="old")) == pytest.approx(-5)
    assert np.isnan(float(c.ratio.sel(task="new", component="cpu")))  # nothing to divide by
    assert bool(c.changed.sel(task="train")) and not bool(c.changed.sel(task="load"))
    assert c.energy.sel(version="b", task="new", component="cpu").item() == 7
    assert c.delta.attrs["units"] == "J"


def test_compare_takes_runs_datasets_and_saved_files(estimate_only, tmp_path):
    with ek.measure("t"):
        pass
    ek.save(tmp_path / "a.nc")
    runs = ek.runs()
    c = runs.ek.compare(ek.dataset())
    assert list(c.task.values) == ["t"] and float(c.total_delta.sel(task="t")) == 0
    import xarray as xr

    with pytest.raises(ValueError, match="not an energykernel"):
        runs.ek.compare(xr.Dataset({"x": ("y", [1.0])}))
