"""Plots of a ``LayerEnergy`` Dataset (matplotlib, imported when a plot is asked for).

Each function takes the Dataset of :meth:`LayerEnergy.dataset` and an optional ``ax``;
without one it makes a :class:`matplotlib.figure.Figure` (never pyplot), which Jupyter
shows when a cell returns it. :func:`plot` draws one kind or all four.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..core.units import J_PER_KWH, duration, si
from ..torch.analysis import loss_energy
from .plot import _axes, _figure

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

KINDS = ("layers", "violin", "loss", "total")
_COLORS = {"forward": "#4C72B0", "backward": "#DD8452", "outside": "#8C8C8C"}


def _labels(ds: xr.Dataset) -> list[str]:
    """Layer names with their class: ``features.0 (Conv2d)``."""
    types = ds["layer_type"].values if "layer_type" in ds.coords else [""] * ds.sizes["layer"]
    return [f"{n} ({t})" if t else str(n) for n, t in zip(ds.layer.values, types, strict=True)]


def _method_note(ds: xr.Dataset) -> str:
    methods = sorted({str(m) for m in ds.method.values if str(m)})
    return f" [{'+'.join(methods)}]" if methods else ""


def plot_layers(ds: xr.Dataset, ax: Axes | None = None) -> Figure:
    """Energy per layer, forward and backward stacked (summed over steps and components)."""
    fig, ax = _axes(ax, (6.0, max(2.5, 0.35 * ds.sizes["layer"] + 1.2)))
    energy = ds.energy.sum("component")
    layers = _labels(ds)
    y = list(range(len(layers)))[::-1]  # first layer on top
    left = [0.0] * len(layers)
    for pass_ in ("forward", "backward"):
        values = [float(v) for v in energy.sel({"pass": pass_}).values]
        ax.barh(y, values, left=left, color=_COLORS[pass_], label=pass_)
        left = [a + b for a, b in zip(left, values, strict=True)]
    ax.set_yticks(y, layers)
    ax.set_xlabel("energy (J)")
    ax.set_title("Energy per layer" + _method_note(ds))
    ax.legend(loc="lower right")
    return fig


def plot_violin(ds: xr.Dataset, ax: Axes | None = None) -> Figure:
    """Distribution over steps of each layer's energy (both passes), and outside layers."""
    import numpy as np

    fig, ax = _axes(ax, (max(5.0, 0.5 * ds.sizes["layer"] + 2), 4.0))
    per_layer = ds.layer_energy.sum(("pass", "component")).transpose("step", "layer").values
    outside = ds.outside_energy.sum("component").values
    names = [*_labels(ds), "(outside)"]
    columns = [*(per_layer[:, i] for i in range(per_layer.shape[1])), outside]
    positions = list(range(1, len(columns) + 1))
    if ds.sizes["step"] >= 2:
        spread = [c if np.ptp(c) > 0 else c + np.linspace(-1e-12, 1e-12, len(c))
                  for c in columns]
        ax.violinplot(spread, positions=positions, showmedians=True)
    else:
        ax.scatter(positions, [c[0] if len(c) else np.nan for c in columns])
    ax.set_xticks(positions, names, rotation=45, ha="right")
    ax.set_ylabel("energy per step (J)")
    ax.set_title(f"Energy per step, {ds.sizes['step']} steps" + _method_note(ds))
    return fig


def plot_loss(ds: xr.Dataset, axes: Any = None, window: int = 5,
              factor: float = 5.0) -> Figure:
    """Loss vs cumulative energy, and energy per unit of loss reduction (stop point marked)."""
    import numpy as np

    if axes is None:
        fig = _figure((10.0, 4.0))
        axes = fig.subplots(1, 2)
    else:
        fig = axes[0].figure
    curve = loss_energy(ds, window=window, factor=factor)
    left, right = axes
    cum = curve.cumulative_energy.values
    left.plot(cum, curve.loss.values, ".", alpha=0.5, label="loss")
    left.plot(cum, curve.loss_smoothed.values, "-", label="smoothed")
    left.set_xlabel("cumulative energy (J)")
    left.set_ylabel("loss")
    left.set_title("Loss vs energy")
    right.plot(cum, np.where(np.isfinite(curve.energy_per_loss), curve.energy_per_loss, np.nan),
               label="average so far")
    marginal = curve.marginal_energy_per_loss.values
    right.plot(cum, np.where(np.isfinite(marginal), marginal, np.nan),
               label=f"last {window} points")
    right.set_xlabel("cumulative energy (J)")
    right.set_ylabel("J per unit of loss reduction")
    right.set_title("Energy per loss improvement")
    stop = curve.attrs["stop_step"]
    if stop >= 0:
        x = float(curve.cumulative_energy.sel(step=stop))
        for a in (left, right):
            a.axvline(x, color="red", linestyle="--", linewidth=1)
        right.annotate(f"stops paying off\n(step {stop})", (x, 0.9), xycoords=("data", "axes fraction"),
                       color="red", fontsize=8, ha="left")
    if len(cum) == 0:
        left.text(0.5, 0.5, "no loss logged (log_loss / step(loss))", ha="center",
                  transform=left.transAxes)
    left.legend()
    right.legend()
    return fig


def plot_total(ds: xr.Dataset, ax: Axes | None = None) -> Figure:
    """Total energy per component: forward, backward and outside layers stacked."""
    fig, ax = _axes(ax, (5.0, 4.0))
    comps = [str(c) for c in ds.component.values]
    parts = {
        "forward": ds.energy.sel({"pass": "forward"}).sum("layer").values,
        "backward": ds.energy.sel({"pass": "backward"}).sum("layer").values,
        "outside": ds.outside_energy.sum("step").values,
    }
    bottom = [0.0] * len(comps)
    for name, values in parts.items():
        ax.bar(comps, values, bottom=bottom, color=_COLORS[name], label=name)
        bottom = [a + float(b) for a, b in zip(bottom, values, strict=True)]
    total_j = float(ds.step_energy.sum())
    ax.set_ylabel("energy (J)")
    ax.set_title(f"Total {si(total_j, 'J')} ({si(total_j / J_PER_KWH * 1e3, 'Wh')}), "
                 f"{duration(float(ds.step_duration.sum()))}" + _method_note(ds))
    ax.legend()
    return fig


def plot(ds: xr.Dataset, kind: str = "all") -> Figure:
    """One of :data:`KINDS`, or ``"all"``: the four in one figure."""
    if kind == "layers":
        return plot_layers(ds)
    if kind == "violin":
        return plot_violin(ds)
    if kind == "loss":
        return plot_loss(ds)
    if kind == "total":
        return plot_total(ds)
    if kind != "all":
        raise ValueError(f"plot(kind={kind!r}): use one of {', '.join(KINDS)} or 'all'")
    fig = _figure((13.0, 9.0), layout="constrained")
    grid = fig.add_gridspec(2, 4)
    plot_layers(ds, fig.add_subplot(grid[0, :2]))
    plot_total(ds, fig.add_subplot(grid[0, 2:]))
    plot_violin(ds, fig.add_subplot(grid[1, :2]))
    plot_loss(ds, [fig.add_subplot(grid[1, 2]), fig.add_subplot(grid[1, 3])])
    return fig


def figures(ds: xr.Dataset) -> dict[str, Figure]:
    """Every kind as its own figure, by name (for dashboards such as TensorBoard)."""
    return {kind: plot(ds, kind) for kind in KINDS}
