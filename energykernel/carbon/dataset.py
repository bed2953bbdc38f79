"""Carbon on energykernel Datasets (the README's "The Dataset"): ``carbon_dataset`` behind ``ds.ek.carbon``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from energykernel.carbon._args import is_dataarray
from energykernel.carbon.embodied import embodied_amortised
from energykernel.carbon.intensity import intensity_info
from energykernel.core.units import J_PER_KWH, S_PER_HOUR

INTENSITY_VARS = ("intensity_g_per_kwh", "intensity")


def carbon_dataset(ds: Any, *, intensity: Any = None, pue: Any = 1.0,
                   embodied: Any = None) -> Any:
    """A copy of ``ds`` with ``emissions`` (gCO2e, dims of ``energy``) and its inputs in attrs.

    ``intensity``: gCO2e/kWh, a region code, a mapping instance -> (number | code), or a
    DataArray (e.g. over ``instance``). ``None`` uses an ``intensity_g_per_kwh`` variable of
    ``ds`` if present, else the configured region (``ek.configure(region=...)``).
    ``pue``: a number, a mapping per instance, or a DataArray.
    ``embodied``: ``None``; gCO2e per instance (number, mapping or DataArray) amortised
    over nothing, i.e. added as is; or a mapping with ``total_embodied_g``,
    ``expected_lifespan_h`` and optionally ``resources_reserved`` / ``total_resources``
    (one for all instances, or a mapping instance -> such a mapping), amortised over each
    cell's ``duration``. Adds ``embodied_emissions`` and ``emissions_incl_embodied`` (gCO2e,
    dims of ``duration``) when given. An ``idle_energy`` variable (simulations) also gets
    ``idle_emissions``.
    """
    if "energy" not in getattr(ds, "data_vars", {}):
        raise ValueError("carbon_dataset needs a Dataset with an 'energy' variable (J)")
    inputs: dict[str, Any] = {}
    inten, inputs["intensity"], source = _intensity(ds, intensity)
    pue_da, inputs["pue"] = _per_instance(ds, pue, "pue", lo=1.0)
    energy = ds["energy"]
    if not np.issubdtype(energy.dtype, np.number):
        raise TypeError(f"ds['energy'] must be numeric joules, got dtype {energy.dtype}")
    neg = np.asarray(energy.values, dtype=float) < 0
    if neg.any():
        raise ValueError("ds['energy'] holds negative joules")
    out = ds.copy()
    em = energy / J_PER_KWH * pue_da * inten
    em = em.transpose(*energy.dims)
    em.attrs = {
        "units": "gCO2e",
        "long_name": "operational emissions: energy / 3.6e6 × pue × intensity",
        "intensity_g_per_kwh": _resolved(ds, inten),
        "intensity_input": _attr(inputs["intensity"]),
        "intensity_source": source,
        "pue": _resolved(ds, pue_da),
    }
    out["emissions"] = em
    if "idle_energy" in ds.data_vars:  # simulations: idle power, not part of energy
        idle = ds["idle_energy"] / J_PER_KWH * pue_da * inten
        idle.attrs = {"units": "gCO2e", "long_name": "emissions of idle_energy"}
        out["idle_emissions"] = idle
    if embodied is not None:
        emb, inputs["embodied"] = _embodied(ds, embodied)
        emb.attrs = {"units": "gCO2e", "long_name": "embodied emissions (amortised)",
                     "embodied": json.dumps(inputs["embodied"], default=str)}
        out["embodied_emissions"] = emb
        comp_dims = [d for d in em.dims if d not in emb.dims]
        op = em.sum(comp_dims, min_count=1) if comp_dims else em
        total = op.fillna(0.0) + emb
        total.attrs = {"units": "gCO2e", "long_name": "operational + embodied emissions"}
        out["emissions_incl_embodied"] = total
    out.attrs["carbon"] = json.dumps(inputs, default=str)
    return out


def _resolved(ds: Any, value: Any) -> Any:
    """A number, or a JSON mapping instance -> number when the value varies per instance."""
    if not is_dataarray(value):
        return float(value)
    if value.ndim == 0:
        return float(value)
    if "instance" in ds.variables and set(value.dims) <= set(ds["instance"].dims):
        import xarray as xr

        inst, val = xr.broadcast(ds["instance"], value)
        pairs = {str(i): float(v) for i, v in zip(np.ravel(inst.values), np.ravel(val.values),
                                                   strict=True)}
        return json.dumps(pairs)
    return f"DataArray over {', '.join(map(str, value.dims))}"


def _attr(value: Any) -> Any:
    return value if isinstance(value, int | float | str) else json.dumps(value, default=str)


def _instances(ds: Any) -> Any:
    if "instance" not in ds.variables:
        raise ValueError("per-instance values need an 'instance' coordinate in the Dataset")
    return ds["instance"]


def _lookup(value: Any, name: str) -> tuple[float, str]:
    if isinstance(value, str):
        info = intensity_info(value)
        return info.value_g_per_kwh, f"{info.code}: {info.source} ({info.year})"
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number or a region code, got {value!r}") from None
    return v, "given"


def _check(name: str, v: float, lo: float) -> float:
    if not np.isfinite(v) or v < lo:
        raise ValueError(f"{name} must be a finite number >= {lo:g}, got {v!r}")
    return v


def _intensity(ds: Any, intensity: Any) -> tuple[Any, Any, str]:
    if intensity is None:
        region = _configured_region()
        for var in INTENSITY_VARS:
            if var in ds.variables:
                return _from_variable(ds, var, region)
        if region is None:
            raise ValueError("intensity is required: gCO2e/kWh, a region code, or a mapping "
                             "per instance (or set ek.configure(region=...))")
        intensity = region
    if isinstance(intensity, Mapping):
        da, given, sources = _from_mapping(ds, intensity, "intensity", 0.0, _lookup)
        return da, given, json.dumps(sources)
    if is_dataarray(intensity):
        _check_array("intensity", intensity, 0.0)
        return intensity, "DataArray", "given"
    value, source = _lookup(intensity, "intensity")
    _check("intensity", value, 0.0)
    return value, intensity if isinstance(intensity, str) else value, source


def _from_variable(ds: Any, var: str, region: str | None) -> tuple[Any, Any, str]:
    """Intensity from a dataset variable (e.g. a simulation's per-instance values); NaN
    entries take the configured region or are an error naming the instances."""
    da = ds[var]
    missing = np.isnan(np.asarray(da.values, dtype=float))
    source = f"ds[{var!r}]"
    if missing.any():
        if region is None:
            names = ([str(v) for v in np.asarray(da["instance"].values)[missing]]
                     if da.dims == ("instance",) else [])
            raise ValueError(f"intensity is required: ds[{var!r}] has no value for instance(s) "
                             f"{', '.join(names) or '(all)'}; pass intensity=... or set "
                             "ek.configure(region=...)")
        fill, fill_source = _lookup(region, "region")
        da = da.fillna(fill)
        source += f", missing values from {fill_source}"
    _check_array("intensity", da, 0.0)
    return da, f"dataset variable {var}", source


def _per_instance(ds: Any, value: Any, name: str, lo: float) -> tuple[Any, Any]:
    if isinstance(value, Mapping):
        da, given, _ = _from_mapping(ds, value, name, lo, lambda v, n: (_num(v, n), "given"))
        return da, given
    if is_dataarray(value):
        _check_array(name, value, lo)
        return value, "DataArray"
    return _check(name, _num(value, name), lo), float(value)


def _num(v: Any, name: str) -> float:
    if isinstance(v, str):
        raise TypeError(f"{name} must be a number, got the string {v!r}")
    try:
        return float(v)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {v!r}") from None


def _check_array(name: str, da: Any, lo: float) -> None:
    vals = np.asarray(da.values, dtype=float)
    if not np.all(np.isfinite(vals)) or np.any(vals < lo):
        raise ValueError(f"{name} must hold finite numbers >= {lo:g}")


def _from_mapping(ds: Any, mapping: Mapping[str, Any], name: str, lo: float, lookup):
    import xarray as xr

    inst = _instances(ds)
    names = [str(v) for v in np.asarray(inst.values).ravel()]
    missing = sorted({n for n in names if n not in mapping})
    if missing:
        raise ValueError(f"{name}: no value for instance(s) {', '.join(missing)} "
                         f"(given for {', '.join(map(str, mapping))})")
    values, sources, given = {}, {}, {}
    for key in dict.fromkeys(names):
        v, src = lookup(mapping[key], f"{name}[{key!r}]")
        values[key] = _check(f"{name}[{key!r}]", v, lo)
        sources[key], given[key] = src, mapping[key]
    arr = np.array([values[n] for n in names], dtype=float).reshape(inst.shape)
    return xr.DataArray(arr, dims=inst.dims, coords=inst.coords), given, sources


def _configured_region() -> str | None:
    try:
        from energykernel import config
    except ImportError:  # pragma: no cover - config is part of the package
        return None
    settings = getattr(config, "settings", None)
    return getattr(settings(), "region", None) if callable(settings) else None


_AMORTISE_KEYS = {"total_embodied_g", "expected_lifespan_h", "resources_reserved",
                  "total_resources"}


def _embodied(ds: Any, embodied: Any) -> tuple[Any, Any]:
    import xarray as xr

    if "duration" not in ds.variables:
        raise ValueError("embodied needs the Dataset's 'duration' variable (s)")
    duration_h = ds["duration"] / S_PER_HOUR
    if isinstance(embodied, Mapping) and "total_embodied_g" in embodied:
        specs = {None: embodied}
    elif isinstance(embodied, Mapping) and all(isinstance(v, Mapping) for v in embodied.values()):
        specs = dict(embodied)
    else:
        da, given = _per_instance(ds, embodied, "embodied", lo=0.0)
        return xr.zeros_like(duration_h) + da, given
    for key, spec in specs.items():
        unknown = set(spec) - _AMORTISE_KEYS
        if unknown:
            raise TypeError(f"embodied{'' if key is None else f'[{key!r}]'}: unknown "
                            f"parameter(s) {', '.join(sorted(unknown))}")
    if None in specs:
        return embodied_amortised(time_reserved_h=duration_h, **specs[None]), dict(embodied)
    inst = _instances(ds)
    names = [str(v) for v in np.asarray(inst.values).ravel()]
    missing = sorted({n for n in names if n not in specs})
    if missing:
        raise ValueError(f"embodied: no value for instance(s) {', '.join(missing)}")
    share = {n: embodied_amortised(time_reserved_h=1.0, **specs[n]) for n in set(names)}
    per_h = xr.DataArray(np.array([share[n] for n in names]).reshape(inst.shape),
                         dims=inst.dims, coords=inst.coords)
    return duration_h * per_h, {k: dict(v) for k, v in specs.items()}
