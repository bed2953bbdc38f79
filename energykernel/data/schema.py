"""Turn run records into the xarray Datasets of the README's "The Dataset", and save/load them.

Only this module (and the accessor) import xarray; measuring never does.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..core.record import RunRecord, record_from_dict
from ..core.units import COMPONENTS

if TYPE_CHECKING:
    import xarray as xr

#: NetCDF engine used by ``save``: NetCDF4/HDF5 through h5netcdf (variable-length
#: strings, compression, readable by netCDF4 and every NetCDF4 tool).
NETCDF_ENGINE = "h5netcdf"
BOUND_LO = "lowest energy consistent with the counter's resolution or the model's spread"
BOUND_HI = "highest energy consistent with the counter's resolution or the model's spread"
ACTIVE = "energy less idle power × duration (never below 0); NaN where idle power was unknown"
SCHEMA_VERSION = 2  # 2: parent, pid, extra per run; self_energy in the cube


def _register_accessor() -> None:
    """Make ``ds.ek`` available on every Dataset built here."""
    from . import accessor  # noqa: F401


def _index(values: Iterable[str]) -> tuple[list[str], dict[str, int]]:
    order: dict[str, int] = {}
    for v in values:
        if v not in order:
            order[v] = len(order)
    return list(order), order


def self_energy_j(records: Sequence[RunRecord]) -> list[dict[str, float]]:
    """Each run's energy less that of the runs nested directly inside it (same instance),
    per component, never below 0: summed over runs, every joule counts once. (Runs with
    nothing nested inside share their record's dict: read it, do not change it.)"""
    out = [r["energy_j"] for r in records]
    children = [r for r in records if r.get("parent_id")]
    if not children:
        return out
    index = {r["id"]: j for j, r in enumerate(records)}
    copied: set[int] = set()
    for r in children:
        j = index.get(r["parent_id"])
        if j is None or records[j]["instance"] != r["instance"]:
            continue
        if j not in copied:
            out[j] = dict(out[j])
            copied.add(j)
        own = out[j]
        for comp, joules in r["energy_j"].items():
            if comp in own:
                own[comp] = max(0.0, own[comp] - joules)
    return out


def cube(records: Sequence[RunRecord]) -> xr.Dataset:
    """The task × instance × component cube: energy (J) and runs summed per cell."""
    import xarray as xr

    _register_accessor()

    tasks, task_ix = _index(r["task"] for r in records)
    instances, inst_ix = _index(r["instance"] for r in records)
    nt, ni, nc = len(tasks), len(instances), len(COMPONENTS)
    comp_ix = {c: k for k, c in enumerate(COMPONENTS)}
    # One entry per (run, component) measured: its flat cell index and values; the sums
    # are then one bincount each (NaN, for a run without bounds or active energy, makes
    # its cell's sum NaN: unknown).
    cell: list[int] = []
    values: dict[str, list[float]] = {k: [] for k in ("energy", "lo", "hi", "active", "own")}
    run_cell: list[int] = []
    durations: list[float] = []
    first: dict[int, str] = {}
    mixed: dict[int, set[str]] = {}
    nan = float("nan")
    none = (nan, nan)
    for r, self_j in zip(records, self_energy_j(records), strict=True):
        base = task_ix[r["task"]] * ni + inst_ix[r["instance"]]
        run_cell.append(base)
        durations.append(r["duration_s"])
        method = r["method"]
        bounds = r.get("energy_bounds_j", {})
        active_j = r.get("active_energy_j", {})
        for comp, joules in r["energy_j"].items():
            index = base * nc + comp_ix[comp]
            cell.append(index)
            values["energy"].append(joules)
            low, high = bounds.get(comp, none)
            values["lo"].append(low)
            values["hi"].append(high)
            values["active"].append(active_j.get(comp, nan))
            values["own"].append(self_j[comp])
            name = method.get(comp, "")
            seen_name = first.setdefault(index, name)
            if seen_name != name:
                # A cell whose runs used different methods says so: e.g. "estimate+rapl".
                mixed.setdefault(index, {seen_name}).add(name)
    size = nt * ni * nc
    cells = np.asarray(cell, dtype=np.int64)
    seen = np.bincount(cells, minlength=size).reshape(nt, ni, nc) > 0

    def total(key: str) -> np.ndarray:
        out = np.bincount(cells, weights=np.asarray(values[key], dtype=np.float64),
                          minlength=size).astype(np.float64).reshape(nt, ni, nc)
        out[~seen] = np.nan
        return out

    energy, lo, hi, active, own = (total(k) for k in ("energy", "lo", "hi", "active", "own"))
    run_cells = np.asarray(run_cell, dtype=np.int64)
    duration = np.bincount(run_cells, weights=np.asarray(durations, dtype=np.float64),
                           minlength=nt * ni).astype(np.float64).reshape(nt, ni)
    runs = np.bincount(run_cells, minlength=nt * ni).reshape(nt, ni).astype(np.int64)
    flat_methods = np.full(size, "", dtype=object)
    for index, name in first.items():
        flat_methods[index] = name
    for index, names in mixed.items():
        flat_methods[index] = "+".join(sorted(n for n in names if n))
    method_arr = flat_methods.reshape(nt, ni, nc)
    ds = xr.Dataset(
        {
            "energy": (("task", "instance", "component"), energy,
                       {"units": "J", "long_name": "energy, summed over runs (inclusive of "
                                                 "runs nested inside)"}),
            "energy_lo": (("task", "instance", "component"), lo,
                          {"units": "J", "long_name": BOUND_LO + ", summed over runs"}),
            "energy_hi": (("task", "instance", "component"), hi,
                          {"units": "J", "long_name": BOUND_HI + ", summed over runs"}),
            "active_energy": (("task", "instance", "component"), active,
                              {"units": "J", "long_name": ACTIVE + ", summed over runs"}),
            "self_energy": (("task", "instance", "component"), own,
                            {"units": "J", "long_name": "energy less that of runs nested "
                                                      "inside; sums to each joule once"}),
            "duration": (("task", "instance"), duration,
                         {"units": "s", "long_name": "duration, summed over runs"}),
            "runs": (("task", "instance"), runs, {"long_name": "number of runs"}),
            "method": (("task", "instance", "component"), method_arr,
                       {"long_name": "how energy was obtained (rapl, pyrapl, nvml, "
                                     "estimate, simulated; '+' joins mixed runs)"}),
        },
        coords={
            "task": np.array(tasks, dtype=object),
            "instance": np.array(instances, dtype=object),
            "component": np.array(COMPONENTS, dtype=object),
        },
        attrs={"title": "energykernel energy cube", "energykernel_schema": SCHEMA_VERSION},
    )
    return ds


def runs(records: Sequence[RunRecord]) -> xr.Dataset:
    """One entry per run: energy/method per component, duration, per-device detail."""
    import xarray as xr

    _register_accessor()

    n = len(records)
    devices, dev_ix = _index(d for r in records for d in r["device_energy_j"])
    comp_ix = {c: k for k, c in enumerate(COMPONENTS)}
    energy = np.full((n, len(COMPONENTS)), np.nan)
    lo = np.full((n, len(COMPONENTS)), np.nan)
    hi = np.full((n, len(COMPONENTS)), np.nan)
    active = np.full((n, len(COMPONENTS)), np.nan)
    idle = np.full((n, len(COMPONENTS)), np.nan)
    method = np.full((n, len(COMPONENTS)), "", dtype=object)
    device_energy = np.full((n, len(devices)), np.nan)
    for j, r in enumerate(records):
        for comp, joules in r["energy_j"].items():
            energy[j, comp_ix[comp]] = joules
            method[j, comp_ix[comp]] = r["method"].get(comp, "")
        for comp, (low, high) in r.get("energy_bounds_j", {}).items():
            lo[j, comp_ix[comp]], hi[j, comp_ix[comp]] = low, high
        for target, key in ((active, "active_energy_j"), (idle, "idle_power_w")):
            for comp, value in r.get(key, {}).items():  # type: ignore[attr-defined]
                target[j, comp_ix[comp]] = value
        for dev, joules in r["device_energy_j"].items():
            device_energy[j, dev_ix[dev]] = joules

    def col(key, default, dtype=object):
        return np.array([r.get(key, default) for r in records], dtype=dtype)

    def times(key: Literal["start_s", "end_s"]) -> np.ndarray:
        return (np.array([r[key] for r in records], dtype=np.float64) * 1e9).astype(
            "datetime64[ns]"
        )

    ds = xr.Dataset(
        {
            "energy": (("run", "component"), energy, {"units": "J"}),
            "energy_lo": (("run", "component"), lo, {"units": "J", "long_name": BOUND_LO}),
            "energy_hi": (("run", "component"), hi, {"units": "J", "long_name": BOUND_HI}),
            "active_energy": (("run", "component"), active, {"units": "J", "long_name": ACTIVE}),
            "idle_power": (("run", "component"), idle,
                           {"units": "W", "long_name": "idle power known when the run ended"}),
            "duration": ("run", col("duration_s", np.nan, np.float64), {"units": "s"}),
            "method": (("run", "component"), method),
            "device_energy": (("run", "device"), device_energy, {"units": "J"}),
            "end": ("run", times("end_s"), {"long_name": "end time (UTC)"}),
            "scope": ("run", col("scope", "machine")),
            "error": ("run", col("error", "")),
            "cpu_share": ("run", col("cpu_share", np.nan, np.float64),
                          {"long_name": "process share of busy CPU time (scope=process)"}),
            "gpu_share": ("run", col("gpu_share", np.nan, np.float64),
                          {"long_name": "process share of the GPUs' energy (scope=process)"}),
            "gpu_share_basis": ("run", col("gpu_share_basis", ""),
                                {"long_name": "how gpu_share was obtained ('' for none)"}),
            "pid": ("run", col("pid", 0, np.int64), {"long_name": "measuring process"}),
            "extra": ("run", np.array([json.dumps(r["extra"], sort_keys=True)
                                       if r.get("extra") else "" for r in records], dtype=object),
                      {"long_name": "integration fields (JSON object; '' for none)"}),
        },
        coords={
            "run": np.arange(n),
            "run_id": ("run", col("id", "")),
            "parent": ("run", col("parent_id", ""),
                       {"long_name": "run_id of the enclosing run ('' at top level)"}),
            "task": ("run", col("task", "")),
            "instance": ("run", col("instance", "")),
            "start": ("run", times("start_s"), {"long_name": "start time (UTC)"}),
            "status": ("run", col("status", "ok")),
            "component": np.array(COMPONENTS, dtype=object),
            "device": np.array(devices, dtype=object),
        },
        attrs={"title": "energykernel runs", "energykernel_schema": SCHEMA_VERSION},
    )
    return ds


def timeline(samples: Sequence, instance: str) -> xr.Dataset:
    """Sampled power over time: ``power (time, component)`` in W, a task label per time."""
    import xarray as xr

    _register_accessor()

    n = len(samples)
    power = np.full((n, len(COMPONENTS)), np.nan)
    comp_ix = {c: k for k, c in enumerate(COMPONENTS)}
    for j, s in enumerate(samples):
        for comp, watts in s.power_w.items():
            power[j, comp_ix[comp]] = watts
    t = (np.array([s.time_s for s in samples], dtype=np.float64) * 1e9).astype("datetime64[ns]")
    return xr.Dataset(
        {
            "power": (("time", "component"), power, {"units": "W"}),
            "interval": ("time", np.array([s.interval_s for s in samples], dtype=np.float64),
                         {"units": "s", "long_name": "sample interval ending at time"}),
        },
        coords={
            "time": ("time", t, {"long_name": "end of sample interval (UTC)"}),
            "component": np.array(COMPONENTS, dtype=object),
            "task": ("time", np.array([s.task for s in samples], dtype=object)),
            "instance": ("time", np.full(n, instance, dtype=object)),
        },
        attrs={"title": "energykernel power timeline"},
    )


_RUN_VARIABLES = {"energy": ("run", "component"), "duration": ("run",),
                  "method": ("run", "component"), "task": ("run",), "instance": ("run",),
                  "start": ("run",), "end": ("run",), "run_id": ("run",)}


def check_runs_dataset(ds: xr.Dataset, source: str) -> None:
    """A ``ValueError`` naming ``source`` and what is missing or wrong, unless ``ds`` has
    the shape of :func:`runs`."""
    for name, dims in _RUN_VARIABLES.items():
        if name not in ds.variables:
            raise ValueError(f"{source}: not an energykernel runs dataset (no {name!r})")
        if set(ds[name].dims) != set(dims):
            raise ValueError(f"{source}: {name!r} has dims {ds[name].dims}, expected {dims}")
    for name in ("energy", "duration", *(v for v in ("device_energy", "cpu_share",
                                                      "gpu_share", "pid") if v in ds)):
        if not np.issubdtype(ds[name].dtype, np.number):
            raise ValueError(f"{source}: {name!r} holds {ds[name].dtype} values, not numbers")
    for name in ("start", "end"):
        if not np.issubdtype(ds[name].dtype, np.datetime64):
            raise ValueError(f"{source}: {name!r} holds {ds[name].dtype} values, not times")
    unknown = [str(c) for c in ds.component.values if str(c) not in COMPONENTS]
    if unknown:
        raise ValueError(f"{source}: unknown component {unknown[0]!r}")


def records_from_runs(ds: xr.Dataset, source: str = "dataset") -> list[RunRecord]:
    """Inverse of :func:`runs`: run records from a runs Dataset (e.g. a saved file).

    A dataset of the wrong shape is a ``ValueError`` naming ``source`` and what is wrong;
    a run whose values are not valid is skipped with a warning naming it.
    """
    check_runs_dataset(ds, source)
    comps = [str(c) for c in ds.component.values]
    devices = [str(d) for d in ds.device.values] if "device" in ds.dims else []
    energy = ds.energy.transpose("run", "component").values
    method = ds.method.transpose("run", "component").values
    dev_e = ds.device_energy.transpose("run", "device").values if devices else None
    bounds = (ds.energy_lo.transpose("run", "component").values,
              ds.energy_hi.transpose("run", "component").values) if (
        "energy_lo" in ds and "energy_hi" in ds) else None
    per_component = {name: ds[name].transpose("run", "component").values
                     for name in ("active_energy", "idle_power") if name in ds}
    start_s = ds.start.values.astype("datetime64[ns]").astype(np.int64) / 1e9
    end_s = ds.end.values.astype("datetime64[ns]").astype(np.int64) / 1e9
    optional = {name: ds[name].values for name in ("status", "scope", "error", "cpu_share",
                                                   "gpu_share", "gpu_share_basis", "pid",
                                                   "parent", "extra")
                if name in ds.variables and ds[name].dims == ("run",)}
    out = []
    skipped: list[str] = []
    for j in range(ds.sizes["run"]):
        where = f"run {j}"
        try:
            rec: dict[str, Any] = {
                "id": str(ds.run_id.values[j]),
                "task": str(ds.task.values[j]),
                "instance": str(ds.instance.values[j]),
                "start_s": float(start_s[j]),
                "end_s": float(end_s[j]),
                "duration_s": float(ds.duration.values[j]),
                "energy_j": {c: float(energy[j, k]) for k, c in enumerate(comps)
                             if not np.isnan(energy[j, k])},
                "method": {c: str(method[j, k]) for k, c in enumerate(comps)
                           if not np.isnan(energy[j, k])},
                "device_energy_j": {} if dev_e is None else {
                    d: float(dev_e[j, k]) for k, d in enumerate(devices)
                    if not np.isnan(dev_e[j, k])},
            }
            for name, key in (("active_energy", "active_energy_j"), ("idle_power", "idle_power_w")):
                if name in per_component:
                    values = per_component[name]
                    known = {c: float(values[j, k]) for k, c in enumerate(comps)
                             if c in rec["energy_j"] and not np.isnan(values[j, k])}
                    if known:
                        rec[key] = known
            if bounds is not None:
                rec["energy_bounds_j"] = {
                    c: [float(bounds[0][j, k]), float(bounds[1][j, k])]
                    for k, c in enumerate(comps) if c in rec["energy_j"]
                    and not (np.isnan(bounds[0][j, k]) or np.isnan(bounds[1][j, k]))}
            for name, key in (("status", "status"), ("scope", "scope"), ("parent", "parent_id"),
                              ("error", "error"), ("gpu_share_basis", "gpu_share_basis")):
                if name in optional and str(optional[name][j]):
                    rec[key] = str(optional[name][j])
            for name in ("cpu_share", "gpu_share"):
                if name in optional and not np.isnan(optional[name][j]):
                    rec[name] = float(optional[name][j])
            if "pid" in optional:
                rec["pid"] = int(optional["pid"][j])
            if "extra" in optional and str(optional["extra"][j]):
                try:
                    rec["extra"] = json.loads(str(optional["extra"][j]))
                except ValueError:
                    raise ValueError(f"{where}: 'extra' is not JSON") from None
            out.append(record_from_dict(rec, where))
        except (ValueError, TypeError, OverflowError) as exc:
            skipped.append(str(exc) if str(exc).startswith(where) else f"{where}: {exc}")
    if skipped:
        warnings.warn(f"{source}: skipped {len(skipped)} damaged run(s), kept {len(out)}: "
                      + "; ".join(skipped[:5]), RuntimeWarning, stacklevel=2)
    return out


def save(records: Sequence[RunRecord], samples: Sequence, instance: str,
         path: str | os.PathLike) -> Path:
    """Write runs (and the timeline) to one NetCDF4 file, atomically."""
    import xarray as xr

    path = Path(path)
    if path.suffix.lower() not in (".nc", ".nc4", ".h5", ".hdf5"):
        raise ValueError(f"save({str(path)!r}): use a NetCDF file name ending in .nc")
    if not path.parent.exists():
        raise FileNotFoundError(f"save({str(path)!r}): directory {str(path.parent)!r} does not exist")
    run_ds = runs(records)
    if samples:
        tl = timeline(samples, instance).rename(
            {"task": "time_task", "instance": "time_instance"}
        )
        run_ds = xr.merge([run_ds, tl], combine_attrs="override")
    from ..core._atomic import write_netcdf_atomic

    return write_netcdf_atomic(run_ds, path)


def open_netcdf(path: str | os.PathLike) -> xr.Dataset:
    """The whole NetCDF file at ``path``, loaded; a file that cannot be read as NetCDF is
    a ``ValueError`` (or ``FileNotFoundError``) naming it."""
    import xarray as xr

    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with xr.open_dataset(path, engine=NETCDF_ENGINE) as ds:
            return ds.load()
    except Exception as exc:  # a foreign or damaged file: whatever the HDF5 stack raises
        raise ValueError(f"{path}: not a readable NetCDF dataset "
                         f"({type(exc).__name__}: {str(exc)[:200]})") from None


def open_runs_file(path: str | os.PathLike) -> list[RunRecord]:
    """Run records from a file written by :func:`save`."""
    return records_from_runs(open_netcdf(path), source=str(path))


def open_timeline_samples(path: str | os.PathLike | None) -> list:
    """The power samples of a file written by ``ek.save`` (empty if none or unreadable)."""
    if path is None:
        return []
    import xarray as xr

    from ..core.engine import Sample

    try:
        with xr.open_dataset(path, engine=NETCDF_ENGINE) as ds:
            if "power" not in ds or "time" not in ds.dims:
                return []
            ds = ds[["power", "interval"]].load()
    except (OSError, ValueError):
        return []
    times = ds.time.values.astype("datetime64[ns]").astype(np.int64) / 1e9
    comps = [str(c) for c in ds.component.values]
    power = ds.power.transpose("time", "component").values
    labels = ds["time_task"].values if "time_task" in ds.coords else [""] * len(times)
    return [Sample(float(t), float(dt), {c: float(p) for c, p in zip(comps, row, strict=True)
                                         if p == p}, str(task))
            for t, dt, row, task in zip(times, ds.interval.values, power, labels, strict=True)]
