"""Tidy exports of a cube (pure functions behind ``ds.ek.to_dataframe`` and
``energykernel report --csv``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

#: Columns of :func:`to_dataframe`, in order: cube variable (or None) → column name.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("energy", "energy_j"), ("energy_lo", "energy_lo_j"), ("energy_hi", "energy_hi_j"),
    ("self_energy", "self_energy_j"), ("active_energy", "active_energy_j"),
    ("emissions", "emissions_g"), ("duration", "duration_s"), ("runs", "runs"),
    ("method", "method"))


def to_dataframe(ds: xr.Dataset) -> pd.DataFrame:
    """One row per task × instance × component measured (energy not NaN), with columns
    ``task``, ``instance``, ``component``, ``energy_j``, ``energy_lo_j``, ``energy_hi_j``,
    ``self_energy_j``, ``active_energy_j`` (NaN where unknown), ``emissions_g`` (after
    ``ds.ek.carbon``), ``duration_s`` and ``runs`` (of the task on that instance, repeated
    on each of its components) and ``method``. Takes a cube or a runs Dataset; rows in
    the cube's task order, then instance, then component."""
    import pandas as pd

    from .compare import as_cube

    cube = as_cube(ds)
    names = [(var, col) for var, col in COLUMNS if var in cube]
    if "component" not in cube.dims or cube.sizes.get("task", 0) == 0:
        return pd.DataFrame(columns=["task", "instance", "component", *(c for _, c in names)])
    dims = ("task", "instance", "component")
    shape = tuple(cube.sizes[d] for d in dims)
    grid = np.meshgrid(*(np.asarray(cube[d].values, dtype=object) for d in dims),
                       indexing="ij")
    data: dict[str, np.ndarray] = {d: g.ravel() for d, g in zip(dims, grid, strict=True)}
    for var, col in names:
        values = cube[var].transpose(*(d for d in dims if d in cube[var].dims)).values
        if values.ndim < len(dims):  # (task, instance): the same on every component
            values = np.broadcast_to(values[..., None], shape)
        data[col] = np.asarray(values).ravel()
    table = pd.DataFrame(data)
    measured = table["energy_j"].notna()
    table = table[measured].reset_index(drop=True)
    if "runs" in table:
        table["runs"] = table["runs"].astype("int64")
    for col in ("task", "instance", "component", "method"):
        if col in table:
            table[col] = table[col].astype(str)
    return table


def write_csv(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """:func:`to_dataframe` of ``ds`` as CSV (UTF-8, full precision), written atomically."""
    from ..core._atomic import write_text_atomic

    return write_text_atomic(path, to_dataframe(ds).to_csv(index=False, float_format="%.17g"))
