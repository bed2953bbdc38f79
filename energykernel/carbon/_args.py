"""Argument checking and broadcasting shared by the carbon calculators.

Inputs may be scalars, sequences (list, tuple, 1-D array: one entry per hardware type or
datacentre, summed over), n-D numpy arrays (axis 0 is the entry axis) or
``xarray.DataArray`` objects (summed over ``hardware`` / ``datacenter``, broadcast over
every other dim). xarray is imported only when a DataArray is passed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

ENTRY_DIMS = ("hardware", "datacenter")

Check = Callable[[str, np.ndarray], None]


def is_dataarray(x: object) -> bool:
    """True if ``x`` is an ``xarray.DataArray`` (without importing xarray)."""
    xr = sys.modules.get("xarray")
    return xr is not None and isinstance(x, xr.DataArray)


def non_negative(name: str, values: np.ndarray) -> None:
    """Raise ``ValueError`` naming ``name`` unless every value is finite and >= 0."""
    if values.size == 0:
        return
    if not np.all(np.isfinite(values)):
        bad = values[~np.isfinite(values)].flat[0]
        raise ValueError(f"{name} must be a finite number, got {bad!r}")
    if np.any(values < 0):
        raise ValueError(f"{name} must be >= 0, got {values[values < 0].flat[0]!r}")


def positive(name: str, values: np.ndarray) -> None:
    """Like :func:`non_negative` but zero is also an error (a divisor)."""
    non_negative(name, values)
    if np.any(values == 0):
        raise ValueError(f"{name} must be > 0 (it divides), got 0")


def at_least_one(name: str, values: np.ndarray) -> None:
    """PUE-like factors: finite and >= 1."""
    non_negative(name, values)
    if np.any(values < 1):
        raise ValueError(f"{name} must be >= 1 (a power usage effectiveness), got "
                         f"{values[values < 1].flat[0]!r}")


#: The check of every calculator parameter, by name (one rule per parameter everywhere).
CHECKS: dict[str, Check] = {
    "hardware_count": non_negative, "hardware_power_w": non_negative,
    "server_count": non_negative, "server_power_w": non_negative, "hours": non_negative,
    "pue": at_least_one, "device_count": non_negative, "production_energy_kwh": non_negative,
    "intensity_g_per_kwh": non_negative, "intensity": non_negative,
    "transport_factor": positive, "energy_kwh": non_negative, "energy_j": non_negative,
    "embodied": non_negative,
}


def checks_for(*names: str) -> dict[str, Check]:
    """The :data:`CHECKS` of ``names``, for :func:`prepare`."""
    return {n: CHECKS[n] for n in names}


def check_parameter(name: str, value: Any) -> Any:
    """Validate one calculator parameter as the calculators do and return it as a float
    array (or DataArray); ``TypeError`` / ``ValueError`` naming ``name`` otherwise."""
    return prepare({name: value}, checks_for(name))[name]


def _numeric(name: str, x: Any) -> np.ndarray:
    if isinstance(x, str | bytes):
        raise TypeError(f"{name} must be a number, got the string {x!r}")
    if isinstance(x, Mapping):
        raise TypeError(f"{name} must be a number or a sequence of numbers, got a mapping")
    try:
        arr = np.asarray(x, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number or a sequence of numbers, got {x!r}") from None
    return arr


def prepare(args: Mapping[str, Any], checks: Mapping[str, Check],
            resolve: Mapping[str, Callable[[Any], Any]] | None = None) -> dict[str, Any]:
    """Validate ``args`` (name -> value) and return them as float arrays or DataArrays.

    ``resolve`` maps a parameter name to a function applied to string entries first (e.g.
    region code -> gCO2e/kWh).
    """
    resolve = resolve or {}
    out: dict[str, Any] = {}
    for name, value in args.items():
        if name in resolve:
            value = _resolve(value, resolve[name])
        if is_dataarray(value):
            if not np.issubdtype(value.dtype, np.number):
                raise TypeError(f"{name} must hold numbers, got dtype {value.dtype}")
            arr = value.astype(float)
            checks[name](name, np.asarray(arr.values))
            out[name] = arr
        else:
            arr = _numeric(name, value)
            checks[name](name, arr)
            out[name] = arr
    return out


def _resolve(value: Any, fn: Callable[[Any], Any]) -> Any:
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, Sequence) and not isinstance(value, bytes):
        return [fn(v) if isinstance(v, str) else v for v in value]
    return value


def combine(arrays: Mapping[str, Any], formula: Callable[..., Any],
            default_dim: str) -> Any:
    """Evaluate ``formula(**arrays)`` elementwise and sum over the entry axis / dims.

    Returns a float when every input is a scalar, a numpy array for array inputs (entry
    axis 0 summed), or a DataArray when any input is a DataArray.
    """
    if any(is_dataarray(a) for a in arrays.values()):
        return _combine_xarray(arrays, formula, default_dim)
    lengths = {n: a.shape[0] for n, a in arrays.items() if a.ndim >= 1}
    _check_lengths(lengths)
    if not lengths:
        return float(formula(**{n: float(a) for n, a in arrays.items()}))
    ndim = max(a.ndim for a in arrays.values())
    shaped = {}
    for n, a in arrays.items():
        a = a.reshape(1) if a.ndim == 0 else a
        shaped[n] = a.reshape(a.shape + (1,) * (ndim - a.ndim))
    try:
        np.broadcast_shapes(*(a.shape for a in shaped.values()))
    except ValueError:
        shapes = ", ".join(f"{n}{tuple(a.shape)}" for n, a in arrays.items())
        raise ValueError(f"array shapes do not broadcast: {shapes}") from None
    result = np.sum(formula(**shaped), axis=0)
    return float(result) if result.ndim == 0 else result


def _check_lengths(lengths: Mapping[str, int]) -> None:
    multi = {n: k for n, k in lengths.items() if k != 1}
    names = list(multi)
    for other in names[1:]:
        if multi[other] != multi[names[0]]:
            raise ValueError(
                f"{names[0]} has {multi[names[0]]} entries but {other} has {multi[other]}; "
                "sequences are one entry per hardware type / datacentre and must match")


def _combine_xarray(arrays: Mapping[str, Any], formula: Callable[..., Any],
                    default_dim: str) -> Any:
    import xarray as xr

    lengths = {n: a.shape[0] for n, a in arrays.items() if not is_dataarray(a) and a.ndim >= 1}
    _check_lengths(lengths)
    das = {}
    for n, a in arrays.items():
        if is_dataarray(a):
            das[n] = a
        elif a.ndim == 0:
            das[n] = xr.DataArray(float(a))
        elif a.ndim == 1:
            das[n] = xr.DataArray(a, dims=(default_dim,))
        else:
            raise ValueError(f"{n}: mix n-D numpy arrays with DataArrays by labelling them "
                             "(pass an xarray.DataArray)")
    entry_sizes = {}
    for n, da in das.items():
        for dim in ENTRY_DIMS:
            if dim in da.dims:
                entry_sizes.setdefault(dim, {})[n] = da.sizes[dim]
    for sizes in entry_sizes.values():
        _check_lengths(sizes)
    try:
        aligned = xr.align(*das.values(), join="exact")
    except ValueError as exc:
        raise ValueError(f"inputs {', '.join(das)} have different coordinates: {exc}") from None
    result = formula(**dict(zip(das, aligned, strict=True)))
    dims = [d for d in ENTRY_DIMS if d in result.dims]
    return result.sum(dims) if dims else result
