"""Matplotlib figures of energykernel Datasets (behind ``ds.ek.plot`` and ``%energy plot``).

- ``tasks``: energy per task, stacked by component; estimated (hatched) and simulated
  (dotted) parts are visibly distinct from counter readings.
- ``timeline``: sampled power per component over time, each task's span shaded and labelled.
- ``instances``: energy per instance, stacked by component.

Figures are built on ``matplotlib.figure.Figure`` with the Agg canvas, not pyplot, so they
work without a display and are not shown twice in Jupyter.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.units import COMPONENTS, short_label, si_scale

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

KINDS = ("tasks", "timeline", "instances")
COLORS = {"cpu": "#4C72B0", "gpu": "#DD8452", "ram": "#55A868", "storage": "#8172B3"}
IDLE_COLOR = "#B8B8B8"  # idle power, where it is drawn with the components
HATCH = {"estimate": "///", "simulated": "..."}


def plot(ds: xr.Dataset, kind: str = "tasks", ax: Axes | None = None, **kwargs: Any) -> Figure:
    """A Figure of ``ds`` (cube, runs, or timeline Dataset); draws into ``ax`` if given.

    ``kwargs`` go to the drawing function: ``title`` for all kinds.
    """
    if kind not in KINDS:
        raise ValueError(f"plot(kind={kind!r}): choose one of {', '.join(KINDS)}")
    fig, ax = _axes(ax, kwargs.pop("figsize", None))
    if kind == "timeline":
        _timeline(ax, ds, **kwargs)
    else:
        cube = _as_cube(ds)
        if cube.sizes.get("task", 0) == 0:
            raise ValueError(f"plot(kind={kind!r}): the Dataset has no tasks")
        if kind == "tasks":
            _stacked(ax, cube, by="task", **kwargs)
        else:
            _stacked(ax, cube, by="instance", **kwargs)
    fig.tight_layout()
    return fig


def _axes(ax: Axes | None, figsize: tuple[float, float] | None) -> tuple[Figure, Axes]:
    """``ax`` and its figure, or a new :func:`_figure` with one Axes."""
    if ax is not None:
        return ax.figure, ax
    fig = _figure(figsize or (7.0, 3.6))
    return fig, fig.add_subplot()


def _figure(figsize: tuple[float, float], **kwargs: Any) -> Figure:
    """A new bare Figure (no pyplot) that Jupyter shows as PNG when a cell returns it."""
    from matplotlib.figure import Figure

    _register_ipython_formatter()
    return Figure(figsize=figsize, dpi=100, **kwargs)


def _shell() -> Any:
    """The running IPython shell, or None (IPython is never imported here)."""
    if "IPython" not in sys.modules:
        return None
    from IPython import get_ipython

    return get_ipython()


def _show(fig: Figure) -> None:
    """Display ``fig`` now in Jupyter, as pyplot's inline backend did for a figure that a
    call made and did not return; nothing outside IPython."""
    if _shell() is None:
        return
    from IPython.display import display

    display(fig)


def _register_ipython_formatter() -> None:
    """Let Jupyter show a bare Figure as PNG even if pyplot was never imported."""
    shell = _shell()
    if shell is None:
        return
    from matplotlib.figure import Figure

    formatter = shell.display_formatter.formatters["image/png"]
    try:
        formatter.lookup_by_type(Figure)
    except KeyError:
        formatter.for_type(Figure, figure_png)


def figure_png(fig: Figure, dpi: int = 100, tight: bool = True,
               compress_level: int | None = None) -> bytes:
    """PNG bytes of a figure (Agg canvas; no pyplot, no display).

    ``tight=False`` saves one layout pass (about a third of the time) for figures whose
    margins are set by hand; ``compress_level`` (0-9, PNG zlib level) trades size for
    speed (1 for live widgets).
    """
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    extra: dict[str, Any] = {"bbox_inches": "tight", "pad_inches": 0.1} if tight else {}
    if compress_level is not None:
        extra["pil_kwargs"] = {"compress_level": compress_level}
    fig.savefig(buf, format="png", dpi=dpi, **extra)
    return buf.getvalue()


def figure_svg(fig: Figure) -> str:
    """SVG text of a figure."""
    import io

    from matplotlib.backends.backend_svg import FigureCanvasSVG

    FigureCanvasSVG(fig)
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    return buf.getvalue()


def _as_cube(ds: xr.Dataset) -> xr.Dataset:
    if "run" in ds.dims:
        from ..data.schema import cube, records_from_runs

        return cube(records_from_runs(ds))
    if "energy" not in ds or "task" not in ds.dims:
        raise ValueError("plot: expected an energykernel cube or runs Dataset "
                         "(an 'energy' variable over task × instance × component)")
    return ds


def _scale(max_j: float) -> tuple[float, str]:
    """Factor and unit of the energy axis (µJ at the smallest)."""
    factor, prefix = si_scale(max_j, smallest=1e-6)
    return factor, f"{prefix}J"


def _method_kind(method: str) -> str:
    """'estimate' or 'simulated' if any run of the cell was, else 'measured'."""
    for name in ("estimate", "simulated"):
        if name in method.split("+"):
            return name
    return "measured"


def _stacked(ax: Axes, cube: xr.Dataset, by: str, title: str | None = None) -> None:
    other = "instance" if by == "task" else "task"
    energy = cube.energy.sum(other, skipna=True, min_count=1).transpose(by, "component")
    methods = cube.method.transpose(by, other, "component").values
    labels = [short_label(str(v)) for v in cube[by].values]
    values = np.nan_to_num(energy.values)
    present = [k for k, c in enumerate(COMPONENTS) if np.isfinite(energy.values[:, k]).any()]
    factor, unit = _scale(float(values.sum(axis=1).max()) if values.size else 0.0)
    x = np.arange(len(labels))
    bottom = np.zeros(len(labels))
    kinds_seen = set()
    for k in present:
        comp = COMPONENTS[k]
        for j in range(len(labels)):
            kind = _method_kind("+".join(m for m in methods[j, :, k] if m))
            kinds_seen.add(kind)
            ax.bar(x[j], values[j, k] / factor, bottom=bottom[j], width=0.7,
                   color=COLORS[comp], alpha=0.55 if kind != "measured" else 0.95,
                   hatch=HATCH.get(kind), edgecolor="white", linewidth=0.6,
                   label=comp if j == 0 else None)
        bottom += values[:, k] / factor
    _whiskers(ax, cube, by, other, x, factor)
    # Label only bars tall enough to read; small ones would collide with their neighbours.
    tallest = float(np.nanmax(bottom)) if len(bottom) else 0.0
    for j, total in enumerate(bottom):
        if len(bottom) > 8 and total < 0.05 * tallest:
            continue
        ax.annotate(f"{total:.3g}", (x[j], total), ha="center", va="bottom", fontsize=8,
                    xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(x, labels, rotation=30 if len(labels) > 4 else 0,
                  ha="right" if len(labels) > 4 else "center")
    ax.set_ylabel(f"energy ({unit})")
    ax.set_xlabel(by)
    ax.set_title(title or f"Energy per {by}, by component", fontsize=11)
    _legend(ax, kinds_seen)
    _tidy(ax)
    ax.set_ylim(0, max(float(bottom.max()) if len(bottom) else 1.0, 1e-12) * 1.12)


def _whiskers(ax: Axes, cube: xr.Dataset, by: str, other: str, x: np.ndarray,
              factor: float) -> None:
    """Each bar's interval (the sums of ``energy_lo`` and ``energy_hi``) as a whisker,
    where every run of the bar has bounds."""
    if "energy_lo" not in cube or "energy_hi" not in cube:
        return
    measured_cells = cube.energy.notnull()  # unmeasured cells add nothing; NaN ones spoil
    lo = cube.energy_lo.where(measured_cells, 0.0).sum([other, "component"], skipna=False)
    hi = cube.energy_hi.where(measured_cells, 0.0).sum([other, "component"], skipna=False)
    lo, hi = lo.transpose(by).values, hi.transpose(by).values
    measured = cube.energy.notnull().sum([other, "component"]).transpose(by).values > 0
    # a NaN sum means some component of the bar has no bounds: no whisker
    known = measured & np.isfinite(lo) & np.isfinite(hi) & (hi > lo)
    if not known.any():
        return
    total = np.nansum(cube.energy.sum(other, skipna=True).transpose(by, "component").values,
                      axis=1)
    ax.errorbar(x[known], total[known] / factor,
                # (an estimate below resolution can read above its own cap: clip at 0)
                yerr=[np.clip(total - lo, 0, None)[known] / factor,
                      np.clip(hi - total, 0, None)[known] / factor],
                fmt="none", ecolor="#333", elinewidth=0.9, capsize=3, zorder=3,
                label="interval")


def _legend(ax: Axes, kinds: set[str]) -> None:
    from matplotlib.patches import Patch

    handles, labels = ax.get_legend_handles_labels()
    for kind in ("estimate", "simulated"):
        if kind in kinds:
            handles.append(Patch(facecolor="white", edgecolor="#555", hatch=HATCH[kind]))
            labels.append(f"hatched: {kind}" if kind == "estimate" else f"dotted: {kind}")
    if handles:
        ax.legend(handles, labels, frameon=False, fontsize=8, loc="upper left",
                  bbox_to_anchor=(1.0, 1.0))


def _tidy(ax: Axes) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.grid(axis="y", alpha=0.3, linewidth=0.6)
    ax.set_axisbelow(True)


def _timeline(ax: Axes, ds: xr.Dataset, title: str | None = None) -> None:
    if "power" not in ds or "time" not in ds.dims:
        raise ValueError("plot(kind='timeline'): needs power over time: ek.timeline(), "
                         "or a file written by ek.save")
    label_name = "task" if "task" in ds.coords and ds["task"].dims == ("time",) else "time_task"
    times = ds["time"].values
    if len(times) == 0:
        raise ValueError("plot(kind='timeline'): the timeline is empty (no samples yet; "
                         "measure something that lasts longer than the sampling interval)")
    power = ds.power.transpose("time", "component")
    comps = [str(c) for c in ds.component.values]
    # Each sample is the mean power over the interval ending at its time: draw it as a step
    # over that interval, so even a single sample is a visible segment.
    interval_s = ds["interval"].values if "interval" in ds else np.ones(len(times))
    starts = times - (np.asarray(interval_s) * 1e9).astype("timedelta64[ns]")
    xs = np.concatenate([starts[:1], times])
    for k, comp in enumerate(comps):
        series = power.values[:, k]
        if np.isfinite(series).any():
            ys = np.concatenate([series[:1], series])
            ax.plot(xs, ys, drawstyle="steps-pre", color=COLORS.get(comp, "#333"),
                    linewidth=1.2, label=comp)
    labels = ([short_label(str(v)) for v in ds[label_name].values]
              if label_name in ds.coords else [])
    _shade_spans(ax, starts, times, labels)
    ax.set_ylabel("power (W)")
    ax.set_xlabel("time (UTC)")
    ax.set_ylim(bottom=0)
    ax.set_title(title or "Power over time; shaded: task spans", fontsize=11)
    ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    _tidy(ax)


def _shade_spans(ax: Axes, starts: np.ndarray, ends: np.ndarray, labels: list[str]) -> None:
    """Shade each run of consecutive samples carrying the same non-empty task label, from
    the start of its first sample's interval to the end of its last."""
    j, n, shade = 0, len(labels), 0
    while j < n:
        k = j
        while k + 1 < n and labels[k + 1] == labels[j]:
            k += 1
        if labels[j]:
            start = starts[j]
            ax.axvspan(start, ends[k], color="#999", alpha=0.12 + 0.08 * (shade % 2),
                       linewidth=0)
            ax.annotate(labels[j], (start, 1.0), xycoords=("data", "axes fraction"),
                        fontsize=7, va="top", ha="left", xytext=(2, -2),
                        textcoords="offset points", color="#444")
            shade += 1
        j = k + 1
