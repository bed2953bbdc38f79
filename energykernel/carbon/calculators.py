"""Neural-network carbon calculators (nn-et, nn-eq, nn-emb, nn-c and their sum).

Formulas (after the Impact Framework neural-network carbon plugins nn-et, nn-eq, nn-emb, nn-c):

- ``nn_et = pue × (hardware_count × hardware_power_w + server_count × server_power_w) × hours / 1000`` kWh
- ``nn_eq = pue × server_count × server_power_w × hours / 1000`` kWh
- ``nn_emb = Σ_h intensity_h / transport_h × production_energy_h × count_h`` gCO2e
- ``nn_c = Σ_d energy_d × intensity_d / transport_d`` gCO2e

Every argument accepts a scalar, a sequence (one entry per hardware type or datacentre,
summed over), a numpy array (axis 0 = entries) or an ``xarray.DataArray`` (summed over
``hardware`` / ``datacenter``, broadcast over every other dim, e.g. a what-if sweep).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from energykernel.carbon._args import (
    ResultNotFinite,
    checks_for,
    combine,
    evaluate_finite,
    is_dataarray,
    prepare,
)
from energykernel.core.units import J_PER_KWH  # also energykernel.carbon.J_PER_KWH


def _intensity_of(code: str) -> float:
    from energykernel.carbon.intensity import intensity

    return intensity(code)


_RESOLVE_INTENSITY = {"intensity_g_per_kwh": _intensity_of, "intensity": _intensity_of}


def _prepare(args: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`prepare` with each parameter's own check; region codes resolved."""
    return prepare(args, checks_for(*args), _RESOLVE_INTENSITY)


def nn_et(*, hardware_count: Any, hardware_power_w: Any, server_count: Any,
          server_power_w: Any, hours: Any, pue: Any) -> Any:
    """Training energy in kWh: ``pue × (hw_count × hw_W + servers × server_W) × hours / 1000``."""
    args = _prepare(dict(hardware_count=hardware_count, hardware_power_w=hardware_power_w,
                         server_count=server_count, server_power_w=server_power_w,
                         hours=hours, pue=pue))
    return combine(args, _et, "datacenter", "nn_et = pue × (hardware_count × hardware_power_w + "
                   "server_count × server_power_w) × hours / 1000")


def _et(*, hardware_count, hardware_power_w, server_count, server_power_w, hours, pue):
    return pue * (hardware_count * hardware_power_w + server_count * server_power_w) * hours / 1000.0


def nn_eq(*, server_count: Any, server_power_w: Any, hours: Any, pue: Any) -> Any:
    """Inference (querying) energy in kWh: ``pue × servers × server_W × hours / 1000``."""
    args = _prepare(dict(server_count=server_count, server_power_w=server_power_w,
                         hours=hours, pue=pue))
    return combine(args, _eq, "datacenter", "nn_eq = pue × server_count × server_power_w × hours "
                   "/ 1000")


def _eq(*, server_count, server_power_w, hours, pue):
    return pue * server_count * server_power_w * hours / 1000.0


def nn_emb(*, device_count: Any, production_energy_kwh: Any, intensity_g_per_kwh: Any,
           transport_factor: Any) -> Any:
    """Embodied emissions in gCO2e: ``Σ_h intensity_h / transport_h × production_kWh_h × count_h``.

    ``intensity_g_per_kwh`` is the grid intensity at the manufacturing site; a region code
    (str) is looked up with :func:`energykernel.carbon.intensity`.
    """
    args = _prepare(dict(device_count=device_count, production_energy_kwh=production_energy_kwh,
                         intensity_g_per_kwh=intensity_g_per_kwh,
                         transport_factor=transport_factor))
    return combine(args, _emb, "hardware", "nn_emb = Σ intensity_g_per_kwh / transport_factor × "
                   "production_energy_kwh × device_count")


def _emb(*, device_count, production_energy_kwh, intensity_g_per_kwh, transport_factor):
    return intensity_g_per_kwh / transport_factor * production_energy_kwh * device_count


def nn_c(*, energy_kwh: Any, intensity_g_per_kwh: Any, transport_factor: Any) -> Any:
    """Operational emissions in gCO2e: ``Σ_d energy_kWh_d × intensity_d / transport_d``.

    ``intensity_g_per_kwh`` may also be a region code (or a sequence of them).
    """
    args = _prepare(dict(energy_kwh=energy_kwh, intensity_g_per_kwh=intensity_g_per_kwh,
                         transport_factor=transport_factor))
    return combine(args, _c, "datacenter", "nn_c = Σ energy_kwh × intensity_g_per_kwh / "
                   "transport_factor")


def _c(*, energy_kwh, intensity_g_per_kwh, transport_factor):
    return energy_kwh * intensity_g_per_kwh / transport_factor


def emissions(energy_j: Any, *, intensity: Any, pue: Any = 1.0) -> Any:
    """Emissions in gCO2e of ``energy_j`` joules: ``J / 3.6e6 × pue × intensity``.

    Elementwise (no summing): float, ndarray or DataArray in, same shape out. NaN energy
    (not measured) stays NaN. ``intensity`` is gCO2e/kWh or a region code.
    """
    vals = _prepare({"energy_j": energy_j, "intensity": intensity, "pue": pue})
    out = emissions_of(vals["energy_j"], vals["intensity"], vals["pue"])
    if is_dataarray(out):
        out.attrs = {"units": "gCO2e"}
        out.name = "emissions"
        return out
    return float(out) if getattr(out, "ndim", 0) == 0 else out


def emissions_of(energy: Any, intensity: Any, pue: Any, energy_name: str = "energy_j") -> Any:
    """:func:`emissions` of checked inputs (``energy_name`` names the energy in errors):
    NaN energy stays NaN, an overflow is a :class:`ResultNotFinite`."""
    import numpy as np

    return evaluate_finite(
        lambda a: a[energy_name] / J_PER_KWH * a["pue"] * a["intensity"],
        {energy_name: energy, "pue": pue, "intensity": intensity},
        "emissions = energy / 3.6e6 × pue × intensity", nan_ok=np.isnan(energy))


@dataclass(frozen=True)
class NNBreakdown:
    """Result of :func:`nn_total`; every value in gCO2e except the ``*_kwh`` energies.

    Values are floats, numpy arrays or DataArrays (when an input was a DataArray).
    """

    embodied_g: Any
    training_g: Any
    inference_g: Any
    total_g: Any
    training_kwh: Any
    inference_kwh: Any
    inputs: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The numbers as a dict (no inputs)."""
        return {
            "embodied_g": self.embodied_g, "training_g": self.training_g,
            "inference_g": self.inference_g, "total_g": self.total_g,
            "training_kwh": self.training_kwh, "inference_kwh": self.inference_kwh,
        }

    def to_dataset(self) -> Any:
        """The numbers as an ``xarray.Dataset`` with units in attrs."""
        import xarray as xr

        units = {"_g": "gCO2e", "_kwh": "kWh"}
        data = {}
        for k, v in self.to_dict().items():
            da = v if is_dataarray(v) else xr.DataArray(v)
            da = da.copy()
            da.attrs["units"] = next(u for s, u in units.items() if k.endswith(s))
            data[k] = da
        return xr.Dataset(data)


_TRAIN_KEYS = ("hardware_count", "hardware_power_w", "server_count", "server_power_w",
               "hours", "pue")
_INFER_KEYS = ("server_count", "server_power_w", "hours", "pue")
_EMB_KEYS = ("device_count", "production_energy_kwh", "intensity_g_per_kwh")


def _phase(name: str, spec: Mapping[str, Any], keys: tuple[str, ...],
           optional: tuple[str, ...] = ()) -> dict[str, Any]:
    if not isinstance(spec, Mapping):
        raise TypeError(f"{name} must be a mapping of keyword arguments, got {type(spec).__name__}")
    allowed = set(keys) | set(optional)
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise TypeError(f"{name}: unknown parameter(s) {', '.join(unknown)}; "
                        f"expected {', '.join(sorted(allowed))}")
    missing = [k for k in keys if k not in spec]
    if missing:
        raise TypeError(f"{name}: missing parameter(s) {', '.join(missing)}")
    return dict(spec)


def _operational(name: str, phase: Any, keys: tuple[str, ...], energy_kwh_of: Any,
                 entry_energy_of: Any, inputs: dict[str, Any]) -> tuple[Any, Any]:
    """(kWh, gCO2e) of a training or inference phase (zeros when it is left out)."""
    if phase is None:
        return 0.0, 0.0
    spec = _phase(name, phase, (*keys, "intensity_g_per_kwh"), ("transport_factor",))
    inputs[name] = spec
    try:
        kwh = energy_kwh_of(**{k: spec[k] for k in keys})
        grams = nn_c(energy_kwh=_per_entry_energy(spec, entry_energy_of, keys),
                     intensity_g_per_kwh=spec["intensity_g_per_kwh"],
                     transport_factor=spec.get("transport_factor", 1.0))
    except ResultNotFinite as exc:  # say which phase overflowed
        raise ResultNotFinite(f"{name}: {exc}", exc.parameters) from None
    return kwh, grams


def nn_total(*, training: Mapping[str, Any] | None = None,
             inference: Mapping[str, Any] | None = None,
             embodied: Mapping[str, Any] | float | None = None) -> NNBreakdown:
    """Embodied + training + inference emissions (the plugins' sum), as a breakdown.

    ``training``: keyword arguments of :func:`nn_et` plus ``intensity_g_per_kwh`` and an
    optional ``transport_factor`` (default 1). ``inference``: those of :func:`nn_eq` plus
    the same two. ``embodied``: keyword arguments of :func:`nn_emb` (``transport_factor``
    optional), or of :func:`energykernel.carbon.embodied_amortised`, or gCO2e directly.
    A phase left out counts as zero.
    """
    inputs: dict[str, Any] = {}
    tr_kwh, tr_g = _operational("training", training, _TRAIN_KEYS, nn_et, _et, inputs)
    in_kwh, in_g = _operational("inference", inference, _INFER_KEYS, nn_eq, _eq, inputs)
    emb_g: Any = 0.0
    if embodied is not None:
        emb_g, inputs["embodied"] = _embodied(embodied)
    total = evaluate_finite(lambda a: a["embodied_g"] + a["training_g"] + a["inference_g"],
                            {"embodied_g": emb_g, "training_g": tr_g, "inference_g": in_g},
                            "total_g = embodied_g + training_g + inference_g")
    return NNBreakdown(embodied_g=emb_g, training_g=tr_g, inference_g=in_g, total_g=total,
                       training_kwh=tr_kwh, inference_kwh=in_kwh, inputs=inputs)


def _per_entry_energy(spec: Mapping[str, Any], formula, keys: tuple[str, ...]) -> Any:
    """Energy per datacentre (not summed), so each entry gets its own intensity."""
    args = _prepare({k: spec[k] for k in keys})
    if any(is_dataarray(a) for a in args.values()):
        import xarray as xr

        das = [a if is_dataarray(a) else xr.DataArray(a, dims=("datacenter",)[: a.ndim])
               for a in args.values()]
        return formula(**dict(zip(args, xr.align(*das, join="exact"), strict=True)))
    import numpy as np

    arrays = list(args.values())
    ndim = max(a.ndim for a in arrays)
    shaped = {k: a.reshape(a.shape + (1,) * (ndim - a.ndim)) for k, a in args.items()}
    try:
        return formula(**shaped)
    except ValueError:
        lengths = ", ".join(f"{k} has {np.shape(v)[0]}" for k, v in args.items() if np.ndim(v))
        raise ValueError(f"sequence lengths differ: {lengths}") from None


def _embodied(embodied: Any) -> tuple[Any, Any]:
    from energykernel.carbon.embodied import embodied_amortised

    if not isinstance(embodied, Mapping):
        arr = _prepare({"embodied": embodied})["embodied"]
        value = combine({"embodied": arr}, lambda embodied: embodied, "hardware")
        return value, embodied
    if "total_embodied_g" in embodied:
        return embodied_amortised(**embodied), dict(embodied)
    spec = _phase("embodied", embodied, _EMB_KEYS, ("transport_factor",))
    value = nn_emb(transport_factor=spec.get("transport_factor", 1.0),
                   **{k: spec[k] for k in _EMB_KEYS})
    return value, spec
