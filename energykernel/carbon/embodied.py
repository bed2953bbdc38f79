"""SCI helpers and cited embodied-carbon defaults.

SCI (Green Software Foundation, ISO/IEC 21031:2024): ``SCI = ((E × I) + M) / R`` with the
embodied share ``M = TE × (time_reserved / expected_lifespan) × (resources_reserved /
total_resources)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from energykernel.carbon._args import checks_for, combine, evaluate_finite, is_dataarray, prepare
from energykernel.core.units import HOURS_PER_YEAR  # also energykernel.carbon.HOURS_PER_YEAR


def sci(energy_kwh: Any, intensity_g_per_kwh: Any, embodied_g: Any,
        functional_units: Any) -> Any:
    """Software Carbon Intensity in gCO2e per functional unit: ``((E × I) + M) / R``.

    Elementwise over arrays / DataArrays (nothing is summed).
    """
    args = prepare(
        dict(energy_kwh=energy_kwh, intensity_g_per_kwh=intensity_g_per_kwh,
             embodied_g=embodied_g, functional_units=functional_units),
        checks_for("energy_kwh", "intensity_g_per_kwh", "embodied_g", "functional_units"),
        {"intensity_g_per_kwh": _intensity_of},
    )
    return _elementwise(args, _sci, "sci = (energy_kwh × intensity_g_per_kwh + embodied_g) / "
                        "functional_units")


def _sci(*, energy_kwh, intensity_g_per_kwh, embodied_g, functional_units):
    return (energy_kwh * intensity_g_per_kwh + embodied_g) / functional_units


def embodied_amortised(*, total_embodied_g: Any, time_reserved_h: Any,
                       expected_lifespan_h: Any, resources_reserved: Any = 1.0,
                       total_resources: Any = 1.0) -> Any:
    """SCI embodied share M in gCO2e: ``TE × (time_reserved / lifespan) × (reserved / total)``.

    Times in hours (``HOURS_PER_YEAR`` converts years). Sequences are summed over (one entry
    per device type); ``resources_reserved`` may not exceed ``total_resources``.
    """
    args = prepare(
        dict(total_embodied_g=total_embodied_g, time_reserved_h=time_reserved_h,
             expected_lifespan_h=expected_lifespan_h, resources_reserved=resources_reserved,
             total_resources=total_resources),
        checks_for("total_embodied_g", "time_reserved_h", "expected_lifespan_h",
                   "resources_reserved", "total_resources"),
    )
    over = combine({"r": args["resources_reserved"], "t": args["total_resources"]},
                   lambda r, t: (r > t) * 1.0, "hardware")
    if (over.any() if hasattr(over, "any") else over) > 0:
        raise ValueError("resources_reserved must not exceed total_resources")
    return combine(args, _amortise, "hardware", "embodied = total_embodied_g × (time_reserved_h "
                   "/ expected_lifespan_h) × (resources_reserved / total_resources)")


def _amortise(*, total_embodied_g, time_reserved_h, expected_lifespan_h, resources_reserved,
              total_resources):
    return (total_embodied_g * (time_reserved_h / expected_lifespan_h)
            * (resources_reserved / total_resources))


def _elementwise(args: dict[str, Any], fn, what: str) -> Any:
    """``fn(**args)`` elementwise (nothing summed), checked finite."""
    if any(is_dataarray(a) for a in args.values()):
        import xarray as xr

        for n, a in args.items():
            if not is_dataarray(a) and a.ndim:
                raise ValueError(f"{n}: pass a labelled xarray.DataArray to mix with DataArrays")
        das = [a if is_dataarray(a) else xr.DataArray(a) for a in args.values()]
        aligned = dict(zip(args, xr.align(*das, join="exact"), strict=True))
        return evaluate_finite(lambda a: fn(**a), aligned, what)
    out = evaluate_finite(lambda a: fn(**a), args, what)
    return float(out) if out.ndim == 0 else out


def _intensity_of(code: str) -> float:
    from energykernel.carbon.intensity import intensity

    return intensity(code)


@dataclass(frozen=True)
class EmbodiedDefault:
    """One cited embodied-carbon figure (gCO2e per unit, cradle to gate)."""

    value_g: float
    unit: str
    description: str
    source: str


_BLOOM = ("Luccioni, Viguier & Ligozat 2023, 'Estimating the Carbon Footprint of BLOOM, a "
          "176B Parameter Language Model', JMLR 24(253), §4.1 Embodied emissions")
_LLMCARBON = ("Faiz et al., 'LLMCarbon: Modeling the End-to-End Carbon Footprint of Large "
              "Language Models' (ICLR 2024), carbon per die area (CPA) × die area, values as "
              "tabulated in Scope3's cluster methodology (methodology.scope3.com/cluster)")

EMBODIED_DEFAULTS: dict[str, EmbodiedDefault] = {
    "hpe-apollo-6500-gen10-plus": EmbodiedDefault(
        2_500_000.0, "server (without GPUs)",
        "HPE Apollo 6500 Gen10 Plus GPU server, excluding GPUs (BLOOM training nodes)", _BLOOM),
    "nvidia-a100": EmbodiedDefault(150_000.0, "GPU", "NVIDIA A100 GPU (BLOOM estimate)", _BLOOM),
    "nvidia-v100-die": EmbodiedDefault(
        9_780.0, "GPU die", "NVIDIA V100 die only: 815 mm² × 1.2 kgCO2e/cm² (TSMC 12 nm)",
        _LLMCARBON),
    "google-tpu-v3-die": EmbodiedDefault(
        7_000.0, "TPU die", "Google TPU v3 die only: 700 mm² × 1.0 kgCO2e/cm² (TSMC 16 nm)",
        _LLMCARBON),
    "google-tpu-v4-die": EmbodiedDefault(
        6_400.0, "TPU die", "Google TPU v4 die only: 400 mm² × 1.6 kgCO2e/cm² (TSMC 7 nm)",
        _LLMCARBON),
}
"""Embodied carbon per device in gCO2e, each with its source."""

BLOOM_LIFESPAN_H = 6 * HOURS_PER_YEAR
"""Hardware lifespan assumed for BLOOM's embodied share (6 years; Luccioni et al. 2023)."""
BLOOM_USE_RATE = 0.85
"""Average cluster use rate assumed for BLOOM's embodied share (Luccioni et al. 2023)."""
