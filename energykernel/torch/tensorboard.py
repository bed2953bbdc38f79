"""Export a ``LayerEnergy`` Dataset to TensorBoard (needs the ``tensorboard`` package).

Scalars, by step: ``energy/step_j`` (measured), ``energy/cumulative_j``,
``energy/<layer>/<pass>_j`` per layer and pass, ``energy/outside_j``, ``loss`` and
``energy/per_loss_reduction`` (J per unit of loss); text: the hotspot hints; figures: the
four plots of :mod:`.plots` under ``energy/figure/<kind>``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

from .analysis import hotspots, loss_energy

if TYPE_CHECKING:
    import xarray as xr


def _writer(log_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise ImportError(
            "to_tensorboard needs the 'tensorboard' package: pip install tensorboard "
            f"({exc})"
        ) from None
    return SummaryWriter(log_dir=str(log_dir))


def to_tensorboard(ds: xr.Dataset, log_dir: str | os.PathLike, *, figures: bool = True,
                   tag: str = "energy") -> Path:
    """Write ``ds`` (from ``LayerEnergy.dataset()``) to ``log_dir``; returns the log dir."""
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    writer = _writer(log_dir)
    try:
        step_j = ds.step_energy.sum("component").values
        layer_j = ds.layer_energy.sum("component")
        outside_j = ds.outside_energy.sum("component").values
        cumulative = 0.0
        for s in range(ds.sizes["step"]):
            cumulative += float(step_j[s])
            writer.add_scalar(f"{tag}/step_j", float(step_j[s]), s)
            writer.add_scalar(f"{tag}/cumulative_j", cumulative, s)
            writer.add_scalar(f"{tag}/outside_j", float(outside_j[s]), s)
            for layer in ds.layer.values:
                for pass_ in ds["pass"].values:
                    value = float(layer_j.sel(step=s, layer=layer, **{"pass": pass_}))
                    writer.add_scalar(f"{tag}/{layer}/{pass_}_j", value, s)
        curve = loss_energy(ds)
        for step, loss, per_loss in zip(curve.step.values, curve.loss.values,
                                        curve.energy_per_loss.values, strict=True):
            writer.add_scalar("loss", float(loss), int(step))
            if math.isfinite(per_loss):
                writer.add_scalar(f"{tag}/per_loss_reduction", float(per_loss), int(step))
        hints = hotspots(ds)
        if hints:
            writer.add_text(f"{tag}/hotspots",
                            "\n".join(f"- **{h.layer}**: {h.reason}" for h in hints))
        if curve.attrs["stop_step"] >= 0:
            writer.add_text(f"{tag}/stop", f"energy per loss improvement jumps at step "
                                           f"{curve.attrs['stop_step']}")
        if figures:
            from ..viz.torch import figures as make_figures

            for kind, fig in make_figures(ds).items():
                writer.add_figure(f"{tag}/figure/{kind}", fig, close=True)
    finally:
        writer.close()
    return log_dir
