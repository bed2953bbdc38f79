"""Argument checking and broadcasting shared by the carbon calculators.

Inputs may be scalars, sequences (list, tuple, 1-D array: one entry per hardware type or
datacentre, summed over), n-D numpy arrays (axis 0 is the entry axis) or
``xarray.DataArray`` objects (summed over ``hardware`` / ``datacenter``, broadcast over
every other dim). xarray is imported only when a DataArray is passed.

Every parameter has one check (:data:`CHECKS`), and every result is checked finite
(:func:`evaluate_finite`): a finite input whose result overflows the float range is a
:class:`ResultNotFinite` naming the parameters that make it so, never ``inf``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from energykernel.core.units import short_repr

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
        raise ValueError(f"{name} must be a finite number, got {float(bad)!r}")
    if np.any(values < 0):
        raise ValueError(f"{name} must be >= 0, got {float(values[values < 0].flat[0])!r}")


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
                         f"{float(values[values < 1].flat[0])!r}")


def measured(name: str, values: np.ndarray) -> None:
    """Measured energy: NaN (not measured) is allowed, anything else finite and >= 0."""
    non_negative(name, values[~np.isnan(values)])


#: The check of every calculator parameter, by name (one rule per parameter everywhere).
CHECKS: dict[str, Check] = {
    "hardware_count": non_negative, "hardware_power_w": non_negative,
    "server_count": non_negative, "server_power_w": non_negative, "hours": non_negative,
    "pue": at_least_one, "device_count": non_negative, "production_energy_kwh": non_negative,
    "intensity_g_per_kwh": non_negative, "intensity": non_negative,
    "transport_factor": positive, "energy_kwh": non_negative, "energy_j": measured,
    "embodied": non_negative, "embodied_g": non_negative, "functional_units": positive,
    "total_embodied_g": non_negative, "time_reserved_h": non_negative,
    "expected_lifespan_h": positive, "resources_reserved": non_negative,
    "total_resources": positive,
}


def checks_for(*names: str) -> dict[str, Check]:
    """The :data:`CHECKS` of ``names``, for :func:`prepare`."""
    return {n: CHECKS[n] for n in names}


def check_parameter(name: str, value: Any, *, label: str | None = None) -> Any:
    """Validate one calculator parameter as the calculators do and return it as a float
    array (or DataArray); ``TypeError`` / ``ValueError`` naming ``label`` (default
    ``name``: e.g. ``intensity['host-a']`` for one entry of a mapping) otherwise."""
    shown = name if label is None else label
    return prepare({shown: value}, {shown: CHECKS[name]})[shown]


def check_number(name: str, value: Any, *, label: str | None = None) -> float:
    """One number checked like :func:`check_parameter` (a sequence is a ``TypeError``)."""
    arr = check_parameter(name, value, label=label)
    if is_dataarray(arr) or arr.ndim:
        raise TypeError(f"{name if label is None else label} must be a number, "
                        f"got {short_repr(value)}")
    return float(arr)


def _numeric(name: str, x: Any) -> np.ndarray:
    if isinstance(x, str | bytes):
        raise TypeError(f"{name} must be a number, got the string {short_repr(x)}")
    if isinstance(x, Mapping):
        raise TypeError(f"{name} must be a number or a sequence of numbers, got a mapping")
    try:
        arr = np.asarray(x, dtype=float)
    except OverflowError:  # a Python int beyond the float range
        raise ValueError(f"{name} must be a finite number, got {short_repr(x)} (beyond the "
                         "float range)") from None
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number or a sequence of numbers, "
                        f"got {short_repr(x)}") from None
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


class ResultNotFinite(ValueError):
    """A result overflowed the float range; ``parameters`` names the inputs that make it so."""

    def __init__(self, message: str, parameters: tuple[str, ...]) -> None:
        super().__init__(message)
        self.parameters = parameters


def _ones_like(value: Any) -> Any:
    """A neutral stand-in (all ones) of ``value``'s shape, dims and coordinates."""
    if is_dataarray(value):
        import xarray as xr

        return xr.ones_like(value, dtype=float)
    return np.ones_like(np.asarray(value, dtype=float))


def _extreme(value: Any) -> tuple[float, float]:
    """(|log10|, value) of the entry of ``value`` farthest from 1 (the likeliest to overflow a
    product); (0, 0) when every entry is 0."""
    vals = np.asarray(value.values if is_dataarray(value) else value, dtype=float).ravel()
    vals = vals[np.isfinite(vals) & (vals != 0)]
    if not vals.size:
        return 0.0, 0.0
    logs = np.abs(np.log10(np.abs(vals)))
    k = int(np.argmax(logs))
    return float(logs[k]), float(vals[k])


def _not_finite(result: Any, nan_ok: Any) -> bool:
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(result)
        if nan_ok is not None:
            bad = bad & ~nan_ok
    return bool(np.any(bad.values if is_dataarray(bad) else bad))


def _culprits(evaluate: Callable[[dict[str, Any]], Any], args: Mapping[str, Any],
              nan_ok: Any) -> tuple[str, ...]:
    """The parameters whose replacement by ones makes the result finite: each one that does
    alone (a sum overflows through any of its terms), else the fewest of the most extreme
    values that do together (a product of several large factors), in parameter order."""
    def finite_without(names: Sequence[str]) -> bool:
        trial = {**args, **{n: _ones_like(args[n]) for n in names}}
        return not _not_finite(evaluate(trial), nan_ok)

    singles = tuple(n for n in args if finite_without([n]))
    if singles:
        return singles
    chosen: list[str] = []
    for n in sorted(args, key=lambda n: -_extreme(args[n])[0]):
        chosen.append(n)
        if finite_without(chosen):
            break
    else:
        return tuple(args)
    for n in list(chosen):  # drop those the others do without
        rest = [m for m in chosen if m != n]
        if finite_without(rest):
            chosen = rest
    return tuple(n for n in args if n in chosen)


def evaluate_finite(evaluate: Callable[[dict[str, Any]], Any], args: Mapping[str, Any],
                    what: str, nan_ok: Any = None) -> Any:
    """``evaluate(args)``, checked finite (except where ``nan_ok`` is True: NaN inputs).

    An overflow is a :class:`ResultNotFinite` naming the parameters that cause it
    (:func:`_culprits`), each with its most extreme value, and ``what`` (the formula).
    """
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        result = evaluate(dict(args))
        if not _not_finite(result, nan_ok):
            return result
        names = _culprits(evaluate, args, nan_ok)
    given = " and ".join(f"{n}={_extreme(args[n])[1]:g}" for n in names)
    raise ResultNotFinite(f"result is not finite: {given} overflow{'s' * (len(names) == 1)} "
                          f"{what}", names)


def combine(arrays: Mapping[str, Any], formula: Callable[..., Any],
            default_dim: str, what: str | None = None) -> Any:
    """Evaluate ``formula(**arrays)`` elementwise and sum over the entry axis / dims.

    Returns a float when every input is a scalar, a numpy array for array inputs (entry
    axis 0 summed), or a DataArray when any input is a DataArray; never ``inf`` or NaN
    (:func:`evaluate_finite`, ``what`` names the formula in its message).
    """
    return evaluate_finite(lambda a: _sum_entries(a, formula, default_dim), arrays,
                           what or formula.__name__)


def _sum_entries(arrays: Mapping[str, Any], formula: Callable[..., Any],
                 default_dim: str) -> Any:
    """:func:`combine` without the finiteness check."""
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
