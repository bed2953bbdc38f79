"""The Datasets of the README's "The Dataset": the cube, runs and timeline, and save/load round trips."""

from __future__ import annotations

import numpy as np
import pytest

import energykernel as ek


def _three_runs(manual):
    for task, cpu, ram in [("train", 5.0, 1.0), ("train", 3.0, 0.5), ("eval", 1.0, 0.25)]:
        with ek.measure(task, components=["cpu", "ram"]):
            manual.add("cpu:package-0", cpu)
            manual.add("ram:dram-0", ram)
    with ek.measure("train", instance="other", components=["cpu"]):
        manual.add("cpu:package-0", 2.0)


def test_cube_schema_and_sums(manual):
    _three_runs(manual)
    ds = ek.dataset()
    host = ek.runs().instance.values[0]
    assert ds.energy.dims == ("task", "instance", "component")
    assert ds.duration.dims == ds.runs.dims == ("task", "instance")
    assert ds.method.dims == ("task", "instance", "component")
    assert ds.component.values.tolist() == ["cpu", "gpu", "ram", "storage"]
    assert ds.energy.dtype == np.float64 and ds.runs.dtype == np.int64
    assert ds.energy.attrs["units"] == "J" and ds.duration.attrs["units"] == "s"
    assert ds.energy.sel(task="train", instance=host, component="cpu") == pytest.approx(8.0)
    assert ds.energy.sel(task="train", instance=host, component="ram") == pytest.approx(1.5)
    assert ds.energy.sel(task="train", instance="other", component="cpu") == pytest.approx(2.0)
    assert int(ds.runs.sel(task="train", instance=host)) == 2
    # not measured → NaN energy and "" method
    assert np.isnan(ds.energy.sel(task="train", instance="other", component="ram"))
    assert ds.method.sel(task="train", instance="other", component="ram").item() == ""
    assert np.isnan(ds.energy.sel(task="eval", instance="other", component="cpu"))
    assert int(ds.runs.sel(task="eval", instance="other")) == 0
    assert ds.method.sel(task="eval", instance=host, component="cpu").item() == "rapl"


def test_runs_schema(manual):
    _three_runs(manual)
    r = ek.runs()
    assert r.sizes["run"] == 4
    for coord in ("task", "instance", "start", "status"):
        assert r[coord].dims == ("run",)
    assert r.energy.dims == ("run", "component") and r.method.dims == ("run", "component")
    assert r.duration.dims == ("run",) and r.device_energy.dims == ("run", "device")
    assert r.energy.attrs["units"] == "J" and r.device_energy.attrs["units"] == "J"
    assert np.issubdtype(r.start.dtype, np.datetime64)
    assert r.energy.sel(component="cpu").values.tolist() == pytest.approx([5, 3, 1, 2])
    assert "cpu:package-0" in r.device.values.tolist()


def test_mixed_methods_are_named(manual, monkeypatch):
    from energykernel.core import config

    with ek.measure("t", components=["cpu"]):
        manual.add("cpu:package-0", 1.0)
    monkeypatch.setenv("ENERGYKERNEL_BACKENDS", "estimate")
    config.reset_settings()
    from energykernel.core.engine import shutdown_engine

    shutdown_engine()
    with ek.measure("t", components=["cpu"]):
        pass
    host = ek.runs().instance.values[0]
    assert ek.dataset().method.sel(task="t", instance=host, component="cpu").item() == (
        "estimate+rapl"
    )


def test_empty_record_gives_empty_cube():
    ds = ek.dataset()
    assert ds.sizes["task"] == 0 and ds.sizes["component"] == 4
    assert ek.runs().sizes["run"] == 0


def test_save_load_round_trip(manual, tmp_path):
    _three_runs(manual)
    before = ek.dataset()
    runs_before = ek.runs()
    path = ek.save(tmp_path / "energy.nc")
    assert path.exists()
    ek.reset()
    assert ek.runs().sizes["run"] == 0
    after = ek.load(path)
    assert after.task.values.tolist() == before.task.values.tolist()
    np.testing.assert_allclose(after.energy.values, before.energy.values)
    assert (after.method.values == before.method.values).all()
    runs_after = ek.runs()
    assert runs_after.run_id.values.tolist() == runs_before.run_id.values.tolist()
    assert (runs_after.start.values == runs_before.start.values).all()
    np.testing.assert_allclose(runs_after.device_energy.values, runs_before.device_energy.values)
    # loading again adds nothing: each run once
    ek.load(path)
    assert ek.runs().sizes["run"] == 4


def test_save_rejects_bad_paths_without_leaving_files(manual, tmp_path):
    _three_runs(manual)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ek.save(tmp_path / "missing-dir" / "x.nc")
    with pytest.raises(ValueError, match=r"\.nc"):
        ek.save(tmp_path / "x.csv")
    assert list(tmp_path.iterdir()) == [tmp_path / "ek-logs"]


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.nc"):
        ek.load(tmp_path / "nope.nc")
    bogus = tmp_path / "bogus.nc"
    bogus.write_text("not netcdf")
    with pytest.raises(ValueError, match=r"bogus\.nc"):
        ek.load(bogus)
    empty = tmp_path / "empty-dir"
    empty.mkdir()
    with pytest.raises(ValueError, match="no energykernel logs"):
        ek.load(empty)


def test_timeline_labels_samples_with_tasks(estimate_only, tmp_path):
    import time

    ek.configure(sample_interval_s=0.02)
    with ek.measure("sampled"):
        deadline = time.time() + 0.3
        while time.time() < deadline:
            pass
    time.sleep(0.05)
    tl = ek.timeline()
    assert tl.power.dims == ("time", "component")
    assert tl.power.attrs["units"] == "W"
    assert "sampled" in tl.task.values.tolist()
    cpu = tl.power.sel(component="cpu").values
    assert (cpu[np.isfinite(cpu)] >= 0).all()
    assert np.isfinite(cpu).any()
    # the timeline travels with save/load's file
    path = ek.save(tmp_path / "t.nc")
    import xarray as xr

    with xr.open_dataset(path, engine="h5netcdf") as saved:
        assert "power" in saved and "sampled" in saved.time_task.values.tolist()


def test_accessor_summary_on_cube_and_runs(manual):
    _three_runs(manual)
    table = ek.dataset().ek.summary()
    assert list(table.index) == ["train", "eval"]  # largest total first
    assert table.loc["train", "cpu_j"] == pytest.approx(10.0)
    assert table.loc["train", "total_j"] == pytest.approx(11.5)
    assert table.loc["train", "runs"] == 3
    assert "cpu:rapl" in table.loc["train", "method"]
    by_instance = ek.runs().ek.summary(by="instance")
    assert by_instance.loc["other", "cpu_j"] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="by='component'"):
        ek.dataset().ek.summary(by="component")


def test_every_field_of_a_run_round_trips(manual, tmp_path):
    """Integration fields (Dask, PyTorch), pid and parent survive runs(), save and load."""
    from energykernel.core.recorder import recorder

    with ek.measure("parent") as parent, ek.measure("child"):
        manual.add("cpu:package-0", 2.0)
    base = parent.result.to_dict()
    dask_like = {**base, "id": "d1", "task": "cluster", "extra": {
        "workers": ["tcp://a:1", "tcp://a:2"], "coverage": "lost+joined", "partial": True,
        "note": "worker tcp://a:2 lost mid-window"}}
    torch_like = {**base, "id": "t1", "task": "layers/fc/forward", "parent_id": "d1", "extra": {
        "attribution": {"cpu": "counter+apportioned"},
        "meta": {"layer": "fc", "pass": "forward", "step": 0, "steps": 3}}}
    recorder().append(dask_like)
    recorder().append(torch_like)
    before = {r["id"]: r for r in recorder().records()}
    ek.save(tmp_path / "all.nc")
    ek.reset()
    ek.load(tmp_path / "all.nc")
    after = {r["id"]: r for r in recorder().records()}
    assert after.keys() == before.keys()
    for run_id, rec in before.items():
        got = after[run_id]
        for key in ("task", "instance", "status", "scope", "pid", "parent_id", "method"):
            assert got[key] == rec[key], (run_id, key)
        assert got.get("extra", {}) == rec.get("extra", {}), run_id
        assert got["energy_j"] == pytest.approx(rec["energy_j"])
    # the same from the crash log
    ek.reset()
    ek.load(tmp_path.parent / "ek-logs" if (tmp_path.parent / "ek-logs").exists()
            else recorder().log_path)
    logged = {r["id"]: r for r in recorder().records()}
    assert logged["d1"]["extra"] == dask_like["extra"]
    assert logged["t1"]["extra"]["meta"]["steps"] == 3


def test_old_log_lines_are_read_with_defaults(tmp_path):
    """A log line written before parent_id/pid/extra existed still loads; unknown
    top-level fields are kept in extra."""
    import json

    log = tmp_path / "old.jsonl"
    line = {"kind": "run", "id": "x", "task": "t", "instance": "h", "start_s": 1.0,
            "end_s": 2.0, "duration_s": 1.0, "energy_j": {"cpu": 1.0},
            "method": {"cpu": "rapl"}, "device_energy_j": {}, "status": "ok",
            "scope": "machine", "coverage": "full"}
    log.write_text(json.dumps({"kind": "header", "version": 1}) + "\n" + json.dumps(line) + "\n")
    ek.load(log)
    (run,) = ek.runs().run_id.values
    from energykernel.core.recorder import read_log

    (rec,) = read_log(log)
    assert rec["parent_id"] == "" and rec["extra"] == {"coverage": "full"}
    assert run == "x"


def _saved(manual, tmp_path):
    _three_runs(manual)
    path = tmp_path / "good.nc"
    ek.save(path)
    import xarray as xr

    with xr.open_dataset(path, engine="h5netcdf") as ds:
        return ds.load()


DAMAGE = {
    "no-duration": (lambda ds: ds.drop_vars("duration"), "duration"),
    "renamed-run-id": (lambda ds: ds.rename({"run_id": "runid"}), "run_id"),
    "strings-for-numbers": (lambda ds: ds.assign(duration=ds.duration.astype(str)), "duration"),
    "strings-for-times": (lambda ds: ds.assign_coords(start=ds.start.astype(str)), "start"),
    "energy-wrong-dims": (lambda ds: ds.assign(energy=ds.energy.isel(component=0)), "energy"),
    "unknown-component": (lambda ds: ds.assign_coords(
        component=["cpu", "gpu", "ram", "disk"]), "disk"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_dataset_is_an_error_naming_file_and_what(manual, tmp_path, case, capsys):
    from energykernel.cli.main import main

    damage, what = DAMAGE[case]
    path = tmp_path / f"{case}.nc"
    damage(_saved(manual, tmp_path)).to_netcdf(path, engine="h5netcdf")
    with pytest.raises(ValueError, match=rf"{case}\.nc.*{what}|{what}.*{case}\.nc"):
        ek.load(path)
    capsys.readouterr()
    assert main(["report", str(path), "-o", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and case in err[0] and what in err[0]
    assert not (tmp_path / "r.html").exists()


def test_foreign_files_are_errors_naming_them(tmp_path, capsys):
    from energykernel.cli.main import main

    text = tmp_path / "notes.nc"
    text.write_text("hello")
    empty = tmp_path / "empty.nc"
    empty.write_bytes(b"")
    for path in (text, empty):
        with pytest.raises(ValueError, match=path.name):
            ek.load(path)
        assert main(["report", str(path), "-o", str(tmp_path / "r.html")]) == 2
        assert path.name in capsys.readouterr().err


def test_one_damaged_run_is_skipped_with_a_warning(manual, tmp_path):
    ds = _saved(manual, tmp_path)
    tasks = ds.task.values.copy()
    tasks[1] = "bad\ntask"  # a control character no label may hold
    path = tmp_path / "one-bad.nc"
    ds.assign_coords(task=("run", tasks)).to_netcdf(path, engine="h5netcdf")
    ek.reset()
    with pytest.warns(RuntimeWarning, match=r"one-bad\.nc: skipped 1 damaged run.*run 1: field 'task'"):
        ek.load(path)
    assert len(ek.runs().run) == 3


def test_bounds_are_in_runs_and_cube_and_survive_save_load(estimate_only, tmp_path):
    import time

    with ek.measure("quick") as quick:
        pass
    with ek.measure("busy") as busy:
        deadline = time.perf_counter() + 0.05
        while time.perf_counter() < deadline:
            pass
    lo, hi = quick.result.energy_bounds_j["cpu"]
    assert lo == 0.0 and hi > 0  # below one CPU tick: 0 to the tick's worth
    assert "cpu < " in quick.result.summary()
    runs = ek.runs()
    assert runs.energy_lo.attrs["units"] == "J" and runs.energy_hi.dims == ("run", "component")
    measured = runs.energy.notnull()
    assert bool((runs.energy_lo <= runs.energy_hi).where(measured, True).all())
    cube = ek.dataset()
    both = cube.sel(component="cpu", instance=busy.result.instance)
    assert float(both.energy_lo.sel(task="busy")) == pytest.approx(
        busy.result.energy_bounds_j["cpu"][0])
    ek.save(tmp_path / "b.nc")
    ek.reset()
    ek.load(tmp_path / "b.nc")
    from energykernel.core.recorder import recorder

    back = {r["id"]: r for r in recorder().records()}
    assert back[busy.result.id]["energy_bounds_j"]["cpu"] == pytest.approx(
        list(busy.result.energy_bounds_j["cpu"]))
