"""Matplotlib figures of energykernel Datasets (behind ``ds.ek.plot`` and ``%energy plot``).

- ``tasks``: energy per task, stacked by component; estimated (hatched) and simulated
  (dotted) parts are visibly distinct from counter readings. Past 8 tasks the bars are
  horizontal, largest first; past ``top`` (20) the rest are summed into one bar.
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
TOP_TASKS = 20  # bars of the tasks chart at most; the rest summed into one
MAX_SPAN_LABELS = 15  # timeline: past this many spans, only those ≥ 1/15 of it labelled
HORIZONTAL_FROM = 8  # more bars than this: horizontal, largest first, labels readable


def plot(ds: xr.Dataset, kind: str = "tasks", ax: Axes | None = None, **kwargs: Any) -> Figure:
    """A Figure of ``ds`` (cube, runs, or timeline Dataset); draws into ``ax`` if given.

    ``kwargs`` go to the drawing function: ``title`` for all kinds; ``top`` (default 20)
    for ``tasks``: how many bars at most, the rest summed into one.
    """
    if kind not in KINDS:
        raise ValueError(f"plot(kind={kind!r}): choose one of {', '.join(KINDS)}")
    figsize = kwargs.pop("figsize", None)
    if kind == "timeline":
        fig, ax = _axes(ax, figsize)
        _timeline(ax, ds, **kwargs)
    else:
        cube = _as_cube(ds)
        if cube.sizes.get("task", 0) == 0:
            raise ValueError(f"plot(kind={kind!r}): the Dataset has no tasks")
        if kind == "tasks":
            top = kwargs.pop("top", TOP_TASKS)
            if not isinstance(top, int) or top < 2:
                raise ValueError(f"plot(top={top!r}): give a whole number ≥ 2")
            cube = _top_tasks(cube, top)
        by = "task" if kind == "tasks" else "instance"
        n = cube.sizes[by]
        horizontal = n > HORIZONTAL_FROM
        fig, ax = _axes(ax, figsize or ((7.0, 1.1 + 0.26 * n) if horizontal else None))
        _stacked(ax, cube, by=by, horizontal=horizontal, **kwargs)
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


def _top_tasks(cube: xr.Dataset, top: int) -> xr.Dataset:
    """``cube`` with its ``top - 1`` largest tasks and, past ``top``, the others summed
    into one task named ``other (N tasks)``."""
    if cube.sizes["task"] <= top:
        return cube
    import xarray as xr

    totals = np.nan_to_num(cube.energy.sum(["instance", "component"], skipna=True).values)
    order = np.argsort(-totals, kind="stable")
    keep, rest = np.sort(order[: top - 1]), order[top - 1:]
    others = cube.isel(task=rest)
    measured = others.energy.notnull()
    summed = {"energy": others.energy.sum("task", min_count=1)}
    for name in ("energy_lo", "energy_hi"):  # NaN where a measured run had none
        if name in others:
            summed[name] = others[name].where(measured, 0.0).sum("task", skipna=False)
    methods = others.method.transpose("task", ...).values
    joined = np.empty(methods.shape[1:], dtype=object)
    for index in np.ndindex(joined.shape):
        joined[index] = "+".join(sorted({p for m in methods[(slice(None), *index)] if m
                                         for p in str(m).split("+")}))
    summed["method"] = xr.DataArray(joined, dims=others.method.dims[1:],
                                    coords={d: others[d] for d in others.method.dims[1:]})
    label = f"other ({len(rest)} tasks)"
    other = xr.Dataset(summed).expand_dims(task=[label])
    kept = cube[list(summed)].isel(task=keep)
    out = xr.concat([kept, other], dim="task", coords="minimal", compat="override")
    out.attrs.update(other_task=label, other_count=len(rest))  # drawn last, whatever its size
    return out


def _stacked(ax: Axes, cube: xr.Dataset, by: str, title: str | None = None,
             horizontal: bool = False) -> None:
    other = "instance" if by == "task" else "task"
    if horizontal:  # largest on top
        totals = np.nan_to_num(cube.energy.sum([other, "component"], skipna=True).values)
        totals[cube[by].values == cube.attrs.get("other_task")] = -np.inf
        cube = cube.isel({by: np.argsort(-totals, kind="stable")})
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
            style = {"color": COLORS[comp], "alpha": 0.55 if kind != "measured" else 0.95,
                     "hatch": HATCH.get(kind), "edgecolor": "white", "linewidth": 0.6,
                     "label": comp if j == 0 else None}
            if horizontal:
                ax.barh(x[j], values[j, k] / factor, left=bottom[j], height=0.7, **style)
            else:
                ax.bar(x[j], values[j, k] / factor, bottom=bottom[j], width=0.7, **style)
        bottom += values[:, k] / factor
    ends = _whiskers(ax, cube, by, other, x, factor, horizontal)
    # Label only bars long enough to read; small ones would collide with their neighbours.
    tallest = float(np.nanmax(bottom)) if len(bottom) else 0.0
    for j, total in enumerate(bottom):
        if not horizontal and len(bottom) > 8 and total < 0.05 * tallest:
            continue
        end = max(total, ends[j]) if ends is not None and ends[j] == ends[j] else total
        where = {"xy": (end, x[j]), "ha": "left", "va": "center", "xytext": (3, 0)} \
            if horizontal else {"xy": (x[j], end), "ha": "center", "va": "bottom",
                                "xytext": (0, 2)}
        ax.annotate(f"{total:.3g}", fontsize=8, textcoords="offset points", **where)
    reach = max(tallest, float(np.nanmax(ends)) if ends is not None and np.isfinite(ends).any()
                else 0.0)
    span = (0, max(reach, 1e-12) * 1.12)
    if horizontal:
        ax.set_yticks(x, labels, fontsize=8)
        ax.set_ylim(len(labels) - 0.5, -0.5)
        ax.set_xlabel(f"energy ({unit})")
        ax.set_xlim(*span)
    else:
        ax.set_xticks(x, labels, rotation=30 if len(labels) > 4 else 0,
                      ha="right" if len(labels) > 4 else "center")
        ax.set_ylabel(f"energy ({unit})")
        ax.set_xlabel(by)
        ax.set_ylim(*span)
    summed = cube.attrs.get("other_task")
    ax.set_title(title or f"Energy per {by}, by component" + (
        f" (the {len(labels) - 1} largest; the other {cube.attrs['other_count']} summed)"
        if summed else ""), fontsize=11)
    _legend(ax, kinds_seen)
    _tidy(ax, "x" if horizontal else "y")


def _whiskers(ax: Axes, cube: xr.Dataset, by: str, other: str, x: np.ndarray,
              factor: float, horizontal: bool = False) -> np.ndarray | None:
    """Each bar's interval (the sums of ``energy_lo`` and ``energy_hi``) as a whisker,
    where every run of the bar has bounds; returns the whiskers' upper ends (axis units,
    NaN where none), or None."""
    if "energy_lo" not in cube or "energy_hi" not in cube:
        return None
    measured_cells = cube.energy.notnull()  # unmeasured cells add nothing; NaN ones spoil
    lo = cube.energy_lo.where(measured_cells, 0.0).sum([other, "component"], skipna=False)
    hi = cube.energy_hi.where(measured_cells, 0.0).sum([other, "component"], skipna=False)
    lo, hi = lo.transpose(by).values, hi.transpose(by).values
    measured = cube.energy.notnull().sum([other, "component"]).transpose(by).values > 0
    # a NaN sum means some component of the bar has no bounds: no whisker
    known = measured & np.isfinite(lo) & np.isfinite(hi) & (hi > lo)
    if not known.any():
        return None
    total = np.nansum(cube.energy.sum(other, skipna=True).transpose(by, "component").values,
                      axis=1)
    # (an estimate below resolution can read above its own cap: clip at 0)
    err = [np.clip(total - lo, 0, None)[known] / factor,
           np.clip(hi - total, 0, None)[known] / factor]
    where = (total[known] / factor, x[known]) if horizontal else (x[known], total[known] / factor)
    ax.errorbar(*where, **{"xerr" if horizontal else "yerr": err}, fmt="none", ecolor="#333",
                elinewidth=0.9, capsize=3, zorder=3, label="interval")
    return np.where(known, np.maximum(hi, total), np.nan) / factor


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


def _tidy(ax: Axes, grid: str = "y") -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.grid(axis=grid, alpha=0.3, linewidth=0.6)
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
    the start of its first sample's interval to the end of its last; label the spans wide
    enough to hold a label (all of them when there are few)."""
    j, n, shade = 0, len(labels), 0
    whole = (ends[-1] - starts[0]) if n else 0
    spans = sum(1 for k in range(n) if labels[k] and (k == 0 or labels[k - 1] != labels[k]))
    narrowest = whole / MAX_SPAN_LABELS if spans > MAX_SPAN_LABELS else None
    while j < n:
        k = j
        while k + 1 < n and labels[k + 1] == labels[j]:
            k += 1
        if labels[j]:
            start = starts[j]
            ax.axvspan(start, ends[k], color="#999", alpha=0.12 + 0.08 * (shade % 2),
                       linewidth=0)
            if narrowest is None or ends[k] - start >= narrowest:
                ax.annotate(labels[j], (start, 1.0), xycoords=("data", "axes fraction"),
                            fontsize=7, va="top", ha="left", xytext=(2, -2),
                            textcoords="offset points", color="#444")
            shade += 1
        j = k + 1
