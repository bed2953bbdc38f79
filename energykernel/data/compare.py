"""Two measurements of the same work, side by side: what changed, and whether it is real.

``compare(a, b)`` takes two cubes (or runs Datasets, or saved files' Datasets) and returns
one Dataset over the union of their tasks: ``energy (version, task, component)`` with
``version`` = ``a``, ``b``, then ``delta`` (b − a) and ``ratio`` (b / a) per task and
component and for each task's total, and, where both sides carry bounds, the interval of
the change (``delta_lo``, ``delta_hi``) and ``changed``: the interval excludes 0, so the
difference is larger than what the counters can resolve.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import xarray as xr


def as_cube(ds: xr.Dataset, name: str = "dataset") -> xr.Dataset:
    """The cube of ``ds`` (a runs Dataset is summed into one; a cube is returned as is)."""
    from .schema import cube, records_from_runs

    if "run" in ds.dims:
        return cube(records_from_runs(ds, source=name))
    if not {"task", "component"} <= set(ds.dims) or "energy" not in ds:
        raise ValueError(f"compare: {name} is not an energykernel cube or runs dataset")
    return ds


def _per_task(cube: xr.Dataset, var: str) -> xr.DataArray:
    """``var`` summed over instances (min_count 1: a component measured nowhere stays NaN)."""
    data = cube[var]
    return data.sum("instance", min_count=1) if "instance" in data.dims else data


def compare(a: xr.Dataset, b: xr.Dataset) -> xr.Dataset:
    """``b`` against ``a``: energy of both, ``delta`` = b − a and ``ratio`` = b / a per task ×
    component and per task (``total_*``), the change's interval and ``changed`` where
    both have bounds; tasks sorted by how much they moved (largest ``|total_delta|``)."""
    import xarray as xr

    ca, cb = as_cube(a, "a"), as_cube(b, "b")
    tasks = list(dict.fromkeys([*map(str, ca.task.values), *map(str, cb.task.values)]))
    sides = {}
    for side, cube in (("a", ca), ("b", cb)):
        sides[side] = {var: _per_task(cube, var).reindex(task=tasks)
                       for var in ("energy", "energy_lo", "energy_hi") if var in cube}
    ea, eb = sides["a"]["energy"], sides["b"]["energy"]
    out = xr.Dataset(coords={"task": np.array(tasks, dtype=object),
                             "component": ea.component.values})
    out["energy"] = xr.concat([ea, eb], dim=xr.DataArray(["a", "b"], dims="version"))
    out["energy"].attrs = {"units": "J", "long_name": "energy of a and of b"}
    out["delta"] = (eb.fillna(0) - ea.fillna(0)).where(ea.notnull() | eb.notnull())
    out["delta"].attrs = {"units": "J", "long_name": "b − a"}
    out["ratio"] = eb / ea.where(ea > 0)
    out["ratio"].attrs = {"long_name": "b / a (NaN where a is 0 or missing)"}
    total_a, total_b = ea.sum("component", min_count=1), eb.sum("component", min_count=1)
    out["total_delta"] = (total_b.fillna(0) - total_a.fillna(0)).where(
        total_a.notnull() | total_b.notnull())
    out["total_delta"].attrs = {"units": "J", "long_name": "b − a, all components"}
    out["total_ratio"] = total_b / total_a.where(total_a > 0)
    if all("energy_lo" in sides[s] and "energy_hi" in sides[s] for s in sides):
        lo = (sides["b"]["energy_lo"].where(eb.notnull(), 0.0).sum("component")
              - sides["a"]["energy_hi"].where(ea.notnull(), 0.0).sum("component"))
        hi = (sides["b"]["energy_hi"].where(eb.notnull(), 0.0).sum("component")
              - sides["a"]["energy_lo"].where(ea.notnull(), 0.0).sum("component"))
        out["delta_lo"], out["delta_hi"] = lo, hi
        out["delta_lo"].attrs = out["delta_hi"].attrs = {"units": "J"}
        out["changed"] = (lo > 0) | (hi < 0)
        out["changed"].attrs = {"long_name": "the change exceeds what the bounds allow"}
    order = np.argsort(-np.nan_to_num(np.abs(out.total_delta.values)), kind="stable")
    out = out.isel(task=order)
    out.attrs = {"title": "energykernel comparison (b against a)"}
    return out
