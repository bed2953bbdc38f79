"""Tables of a cube or runs Dataset (pure functions behind ``ds.ek.summary``)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..core.units import COMPONENTS


def summary_table(ds: xr.Dataset, by: str = "task"):
    """Energy (J) per ``by`` × component, plus total (J), self (J: the total less runs
    nested inside, so the column sums to each joule once), the total's bounds ``lo_j`` /
    ``hi_j`` and ``active_j`` (NaN where unknown), duration (s), runs and methods.

    Works on the cube (dims task, instance, component) and on the runs Dataset (dim run).
    Components never measured are left out; rows are sorted by total energy, largest first.
    """
    import pandas as pd

    if "run" in ds.dims:  # a runs Dataset: summarise its cube
        from .schema import cube, records_from_runs

        ds = cube(records_from_runs(ds))
    if by not in ("task", "instance"):
        raise ValueError(f"summary(by={by!r}): choose 'task' or 'instance'")
    others = [d for d in ("task", "instance") if d != by and d in ds.dims]
    energy = ds.energy.sum(others, skipna=True, min_count=1)
    own = ds.self_energy.sum(others, skipna=True, min_count=1) if "self_energy" in ds else energy
    # bounds and active energy are unknown (NaN) for a cell with any run without them
    measured = ds.energy.notnull()
    extra = {name: ds[var].where(measured, 0.0).sum(others, skipna=False) for name, var in (
        ("lo_j", "energy_lo"), ("hi_j", "energy_hi"), ("active_j", "active_energy")) if var in ds}
    duration = ds.duration.sum(others).transpose(by).values if "duration" in ds else None
    runs = ds.runs.sum(others).transpose(by).values if "runs" in ds else None
    comps = [str(c) for c in energy.component.values]
    # plain arrays, read once (a .sel per row and component costs seconds at 200 tasks)
    joules = energy.transpose(by, "component").values
    own_j = own.transpose(by, "component").values
    extra_v = {name: v.transpose(by, "component").values for name, v in extra.items()}
    method_v = ds.method.transpose(by, *others, "component").values.reshape(
        ds.sizes[by], -1, ds.sizes["component"])
    method_comps = [str(c) for c in ds.method.component.values]
    present = [c for c in COMPONENTS if c in comps
               and bool(np.isfinite(joules[:, comps.index(c)]).any())]
    cols = [comps.index(c) for c in present]
    rows = []
    for j, key in enumerate(energy[by].values):
        row = {by: key}
        for comp, k in zip(present, cols, strict=True):
            row[f"{comp}_j"] = float(joules[j, k])
        row["total_j"] = float(np.nansum(joules[j, cols])) if present else 0.0
        row["self_j"] = float(np.nansum(own_j[j])) if present else 0.0
        for name, values in extra_v.items():  # NaN where unknown for a measured component
            row[name] = float(values[j].sum()) if present else np.nan
        if duration is not None:
            row["duration_s"] = float(duration[j])
        if runs is not None:
            row["runs"] = int(runs[j])
        methods = {c: "+".join(sorted({m for m in method_v[j, :, method_comps.index(c)] if m}))
                   for c in present}
        row["method"] = ", ".join(f"{c}:{m}" for c, m in methods.items() if m)
        rows.append(row)
    table = pd.DataFrame(rows)
    if not table.empty:
        table = table.sort_values("total_j", ascending=False).set_index(by)
    return table
