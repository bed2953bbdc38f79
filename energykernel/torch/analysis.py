"""Results of a ``LayerEnergy``: its Dataset, hotspot hints, and the loss/energy curve."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import xarray as xr


class Hotspot(NamedTuple):
    """A layer that costs more energy than its size suggests."""

    layer: str
    energy_share: float
    param_share: float
    ratio: float  # energy_share / param_share (inf for parameterless layers)
    reason: str


def build_dataset(le: Any) -> xr.Dataset:
    """The Dataset of a ``LayerEnergy``'s closed steps (see ``LayerEnergy.dataset``)."""
    import numpy as np
    import xarray as xr

    from ..core.config import settings

    passes = ("forward", "backward")
    steps, layers = le.steps, list(le.names)
    comps = list(getattr(le, "_comps", ()))
    ns, nl, nc = len(steps), len(layers), len(comps)
    lix = {n: i for i, n in enumerate(layers)}
    pix = {p: i for i, p in enumerate(passes)}
    e = np.zeros((ns, nl, 2, nc))
    t = np.zeros((ns, nl, 2))
    calls = np.zeros((nl, 2), dtype=np.int64)
    labels: dict[tuple[int, int, int], set[str]] = {}
    step_e = np.zeros((ns, nc))
    out_e = np.zeros((ns, nc))
    for s, st in enumerate(steps):
        for k, c in enumerate(comps):
            step_e[s, k] = st.step_j.get(c, np.nan)
            out_e[s, k] = st.outside_j.get(c, np.nan)
        for (layer, pass_), energy in st.layer_j.items():
            i, p = lix[layer], pix[pass_]
            t[s, i, p] = st.layer_s[(layer, pass_)]
            calls[i, p] += st.calls[(layer, pass_)]
            for k, c in enumerate(comps):
                e[s, i, p, k] = energy.get(c, 0.0)
                labels.setdefault((i, p, k), set()).update(
                    st.attribution[(layer, pass_)][c].split("+"))
    attribution = np.full((nl, 2, nc), "", dtype=object)
    for (i, p, k), names in labels.items():
        attribution[i, p, k] = "+".join(sorted(names))
    method = steps[-1].extra.get("method", {}) if steps else {}
    start = (np.array([st.start_s for st in steps], dtype=np.float64) * 1e9).astype(
        "datetime64[ns]")
    loss = np.array([np.nan if st.loss is None else st.loss for st in steps], dtype=np.float64)
    J, S = {"units": "J"}, {"units": "s"}
    return xr.Dataset(
        {
            "energy": (("layer", "pass", "component"), e.sum(axis=0),
                       {**J, "long_name": "energy, summed over steps"}),
            "duration": (("layer", "pass"), t.sum(axis=0),
                         {**S, "long_name": "exclusive time, summed over steps"}),
            "calls": (("layer", "pass"), calls, {"long_name": "calls, summed over steps"}),
            "attribution": (("layer", "pass", "component"), attribution,
                            {"long_name": "counter (read around the calls) or apportioned "
                                          "(share of the step's energy by time)"}),
            "params": ("layer", np.array(le.params, dtype=np.int64),
                       {"long_name": "parameters"}),
            "layer_energy": (("step", "layer", "pass", "component"), e,
                             {**J, "long_name": "energy per step"}),
            "layer_duration": (("step", "layer", "pass"), t,
                               {**S, "long_name": "exclusive time per step"}),
            "step_energy": (("step", "component"), step_e,
                            {**J, "long_name": "measured energy of the step"}),
            "outside_energy": (("step", "component"), out_e,
                               {**J, "long_name": "energy outside the selected layers"}),
            "step_duration": ("step", np.array([st.duration_s for st in steps]), S),
            "outside_duration": ("step", np.array([st.outside_s for st in steps]), S),
            "loss": ("step", loss, {"long_name": "logged loss"}),
            "status": ("step", np.array([st.status for st in steps], dtype=object)),
            "method": ("component", np.array([method.get(c, "") for c in comps], dtype=object),
                       {"long_name": "backend method (rapl, nvml, estimate, ...)"}),
        },
        coords={
            "layer": np.array(layers, dtype=object),
            "layer_type": ("layer", np.array([type(m).__name__ for m in le.layers.values()],
                                             dtype=object)),
            "pass": np.array(passes, dtype=object),
            "component": np.array(comps, dtype=object),
            "step": np.arange(ns),
            "step_start": ("step", start, {"long_name": "step start (UTC)"}),
        },
        attrs={"title": "energykernel per-layer energy", "prefix": le.prefix,
               "instance": settings().instance, "outside_layer": "(outside)"},
    )


def hotspots(ds: xr.Dataset, ratio: float = 2.0, min_share: float = 0.05) -> list[Hotspot]:
    """Layers whose share of the layers' energy is at least ``ratio`` × their share of the
    parameters (and at least ``min_share``), or parameterless layers above ``min_share``:
    candidates for pruning, a cheaper operator, or a second look. Largest share first."""
    import numpy as np

    energy = ds.energy.sum(("pass", "component")).values
    params = ds.params.values.astype(np.float64)
    total_e, total_p = float(energy.sum()), float(params.sum())
    out = []
    if total_e <= 0:
        return out
    for name, e_j, n in zip(ds.layer.values, energy, params, strict=True):
        share = float(e_j) / total_e
        pshare = float(n) / total_p if total_p > 0 else 0.0
        if share < min_share:
            continue
        if pshare == 0:
            out.append(Hotspot(str(name), share, 0.0, math.inf,
                               f"{share:.0%} of the layers' energy with no parameters"))
        elif share / pshare >= ratio:
            out.append(Hotspot(str(name), share, pshare, share / pshare,
                               f"{share:.0%} of the energy for {pshare:.1%} of the parameters"))
    return sorted(out, key=lambda h: -h.energy_share)


def loss_energy(ds: xr.Dataset, window: int = 5, factor: float = 5.0) -> xr.Dataset:
    """Loss against cumulative energy, and where more steps stop paying off.

    Over the steps with a logged loss: ``loss_smoothed`` (EMA over ``window`` points, then
    running minimum), ``energy_per_loss`` (J per unit of loss reduction since the first
    logged step) and ``marginal_energy_per_loss`` (the same over the last ``window``
    points; inf when the loss did not improve). ``attrs["stop_step"]`` is the first step
    whose marginal cost exceeds ``factor`` × the average so far (-1 if none): past it, each
    unit of loss reduction costs much more energy than the ones before.
    """
    import numpy as np
    import xarray as xr

    if window < 1 or factor <= 0:
        raise ValueError(f"loss_energy(window={window}, factor={factor}): need window >= 1 "
                         "and factor > 0")
    total = ds.step_energy.sum("component", skipna=True).values
    cumulative = np.cumsum(total)
    loss = ds.loss.values
    logged = np.flatnonzero(np.isfinite(loss))
    lo, cum = loss[logged], cumulative[logged]
    smooth = np.empty_like(lo)
    alpha = 2.0 / (window + 1)
    for k, value in enumerate(lo):
        smooth[k] = value if k == 0 else alpha * value + (1 - alpha) * smooth[k - 1]
    smooth = np.minimum.accumulate(smooth) if len(smooth) else smooth
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = smooth[0] - smooth if len(smooth) else smooth
        average = np.where(gain > 0, (cum - (cum[0] if len(cum) else 0)) / gain, np.inf)
        marginal = np.full(len(lo), np.nan)
        if len(lo) > window:
            d_gain = smooth[:-window] - smooth[window:]
            d_e = cum[window:] - cum[:-window]
            marginal[window:] = np.where(d_gain > 0, d_e / d_gain, np.inf)
    stop = -1
    for k in range(window, len(lo)):
        if np.isfinite(average[k]) and marginal[k] > factor * average[k]:
            stop = int(logged[k])
            break
    J = {"units": "J"}
    return xr.Dataset(
        {
            "loss": ("step", lo),
            "loss_smoothed": ("step", smooth),
            "cumulative_energy": ("step", cum, {**J, "long_name": "energy up to the step"}),
            "energy_per_loss": ("step", average,
                                {"units": "J per unit of loss",
                                 "long_name": "energy per unit of loss reduction so far"}),
            "marginal_energy_per_loss": ("step", marginal,
                                         {"units": "J per unit of loss",
                                          "long_name": f"same, over the last {window} points"}),
        },
        coords={"step": logged},
        attrs={"stop_step": stop, "window": window, "factor": factor},
    )
