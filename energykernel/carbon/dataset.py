"""Carbon on energykernel Datasets (the README's "The Dataset"): ``carbon_dataset`` behind ``ds.ek.carbon``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from energykernel.carbon._args import check_number, check_parameter, evaluate_finite, is_dataarray
from energykernel.carbon.calculators import emissions_of
from energykernel.carbon.embodied import embodied_amortised
from energykernel.carbon.intensity import intensity_info
from energykernel.core.units import S_PER_HOUR

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
    energy = check_parameter("energy_j", ds["energy"], label="ds['energy']")
    inputs: dict[str, Any] = {}
    inten, inputs["intensity"], source = _intensity(ds, intensity, energy)
    pue_da, inputs["pue"] = _per_instance(ds, pue, "pue", energy)
    out = ds.copy()
    em = emissions_of(energy, inten, pue_da, "ds['energy']").transpose(*energy.dims)
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
        idle_j = check_parameter("energy_j", ds["idle_energy"], label="ds['idle_energy']")
        idle = emissions_of(idle_j, inten, pue_da, "ds['idle_energy']")
        idle.attrs = {"units": "gCO2e", "long_name": "emissions of idle_energy"}
        out["idle_emissions"] = idle
    if embodied is not None:
        emb, inputs["embodied"] = _embodied(ds, embodied)
        emb.attrs = {"units": "gCO2e", "long_name": "embodied emissions (amortised)",
                     "embodied": json.dumps(inputs["embodied"], default=str)}
        out["embodied_emissions"] = emb
        comp_dims = [d for d in em.dims if d not in emb.dims]
        op = em.sum(comp_dims, min_count=1) if comp_dims else em
        total = evaluate_finite(lambda a: a["emissions"] + a["embodied_emissions"],
                                {"emissions": op.fillna(0.0), "embodied_emissions": emb},
                                "emissions_incl_embodied = emissions + embodied_emissions")
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


def _value(name: str, value: Any, label: str) -> tuple[float, str]:
    """One number checked by ``name``'s rule (:data:`energykernel.carbon._args.CHECKS`),
    named ``label``; an intensity may also be a region code. Returns (value, source)."""
    if name == "intensity" and isinstance(value, str):
        info = intensity_info(value)
        return info.value_g_per_kwh, f"{info.code}: {info.source} ({info.year})"
    return check_number(name, value, label=label), "given"


def _dataarray(name: str, da: Any, target: Any, what: str) -> Any:
    """A DataArray ``name`` checked by its rule, whose dims are among ``target``'s and which
    has a value for every label of ``target`` on each shared dim (extra labels dropped)."""
    da = check_parameter(name, da)
    unknown = [str(d) for d in da.dims if d not in target.dims]
    if unknown:
        raise ValueError(f"{name}: unknown dim(s) {', '.join(map(repr, unknown))}: a DataArray "
                         f"{name} may only use the dims of {what} "
                         f"({', '.join(map(str, target.dims))})")
    for dim in da.dims:
        if dim in da.indexes and dim in target.indexes:
            labels = target.indexes[dim]
            missing = labels.difference(da.indexes[dim])
            if len(missing):
                raise ValueError(f"{name}: no value for {dim}(s) "
                                 f"{', '.join(map(str, missing[:5]))}"
                                 f"{' …' if len(missing) > 5 else ''}")
            da = da.sel({dim: labels})
        elif da.sizes[dim] != target.sizes[dim]:
            raise ValueError(f"{name}: dim {str(dim)!r} has {da.sizes[dim]} entries but "
                             f"{what} has {target.sizes[dim]}")
    return da


def _intensity(ds: Any, intensity: Any, target: Any) -> tuple[Any, Any, str]:
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
        da, given, sources = _from_mapping(ds, intensity, "intensity")
        return da, given, json.dumps(sources)
    if is_dataarray(intensity):
        return _dataarray("intensity", intensity, target, "ds['energy']"), "DataArray", "given"
    value, source = _value("intensity", intensity, "intensity")
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
        fill, fill_source = _value("intensity", region, "region")
        da = da.fillna(fill)
        source += f", missing values from {fill_source}"
    return check_parameter("intensity", da, label=f"ds[{var!r}]"), f"dataset variable {var}", source


def _per_instance(ds: Any, value: Any, name: str, target: Any) -> tuple[Any, Any]:
    """``value`` (a number, a mapping per instance or a DataArray over dims of ``target``)
    checked by ``name``'s rule; returns (value or DataArray, what was given)."""
    if isinstance(value, Mapping):
        da, given, _ = _from_mapping(ds, value, name)
        return da, given
    if is_dataarray(value):
        return _dataarray(name, value, target, f"ds[{target.name!r}]"), "DataArray"
    number, _ = _value(name, value, name)
    return number, number


def _from_mapping(ds: Any, mapping: Mapping[str, Any], name: str):
    import xarray as xr

    inst = _instances(ds)
    names = [str(v) for v in np.asarray(inst.values).ravel()]
    missing = sorted({n for n in names if n not in mapping})
    if missing:
        raise ValueError(f"{name}: no value for instance(s) {', '.join(missing)} "
                         f"(given for {', '.join(map(str, mapping))})")
    values, sources, given = {}, {}, {}
    for key in dict.fromkeys(names):
        values[key], sources[key] = _value(name, mapping[key], f"{name}[{key!r}]")
        given[key] = mapping[key]
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
        da, given = _per_instance(ds, embodied, "embodied", ds["duration"])
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
