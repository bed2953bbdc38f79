"""Gantt charts of a simulated schedule (:class:`energykernel.sim.SimulationResult`).

One band per instance, one sub-row per lane (:func:`energykernel.sim.whatif.lanes`, so
concurrent tasks never overlap), the task legend below the axes. With dependencies, a grey
line joins the end of each predecessor to the start of the step that waited for it (up to
:data:`MAX_ARROWS` of them), and a dotted line on the step's row marks the time it was
ready but waited for an instance. Built on
``matplotlib.figure.Figure`` (never pyplot), imported when a chart is drawn.
:class:`GanttChart` redraws one figure for each new result (live views: the simulator
widget), the same picture as :func:`gantt_figure` in about half the time.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.units import J_PER_KWH
from .plot import _axes, _register_ipython_formatter

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..sim.result import SimulationResult

LEGEND_MAX_TASKS = 16  # more distinct task names than this: no task legend
MAX_ARROWS = 300  # more dependency edges than this: none drawn (a note says so)
_MAX_LANES_DRAWN = 8  # a band grows with its lanes up to this many, then lanes get thinner

Lanes = tuple[np.ndarray, np.ndarray]


def _lanes(result: SimulationResult, lane_info: Lanes | None) -> Lanes:
    if lane_info is not None:
        return lane_info
    from ..sim.whatif import lanes

    return lanes(result)


def _band_heights(count: np.ndarray) -> np.ndarray:
    """Height of each instance's band (axes units) from its number of lanes."""
    return np.minimum(count, _MAX_LANES_DRAWN) * 0.5 + 0.5


def _rects(ax: Axes, x: Any, y: Any, width: Any, height: Any, colours: Any,
           **kwargs: Any) -> None:
    """Axis-aligned rectangles as one PolyCollection (far cheaper than one patch each)."""
    from matplotlib.collections import PolyCollection

    x, y, width, height = np.broadcast_arrays(*(np.atleast_1d(np.asarray(v, dtype=float))
                                                for v in (x, y, width, height)))
    if not x.size:
        return
    verts: Any = np.stack([np.stack([x, y], -1), np.stack([x + width, y], -1),
                           np.stack([x + width, y + height], -1),
                           np.stack([x, y + height], -1)], 1)
    ax.add_collection(PolyCollection(verts, facecolors=colours, **kwargs), autolim=False)


def gantt(result: SimulationResult, ax: Axes | None = None,
          lane_info: Lanes | None = None) -> Figure:
    """Gantt chart of ``result`` on ``ax`` (a new figure without one). Returns the figure.

    ``lane_info``: ``(lane per step, lanes per instance)`` when already computed.
    """
    fig, ax = _axes(ax, (9, 1.5 + 0.5 * len(result.instances)))
    from matplotlib.colors import to_rgba_array
    from matplotlib.patches import Patch

    lane, count = _lanes(result, lane_info)
    names = list(dict.fromkeys(result.task_names))
    cycle = to_rgba_array([f"C{k}" for k in range(10)])  # "Cn" once each, not once a bar
    colours = {n: cycle[k % 10] for k, n in enumerate(names)}
    heights = _band_heights(count)
    bottoms = np.concatenate([[0.0], np.cumsum(heights + 0.3)[:-1]])
    assign = np.asarray(result.assignment, dtype=int)
    odd = np.arange(1, len(result.instances), 2)  # shaded bands group an instance's lanes
    _rects(ax, 0.0, bottoms[odd] - 0.15, 2 * max(result.makespan_s, 1.0), heights[odd] + 0.3,
           ["0.95"] * len(odd), linewidth=0)
    h = heights[assign] / count[assign]
    _rects(ax, result.start_s, bottoms[assign] + (lane + 0.05) * h,
           result.end_s - result.start_s, 0.9 * h,
           np.array([colours[n] for n in result.task_names]).reshape(-1, 4),
           edgecolor="white", linewidth=0.5)
    extra = _dependencies(ax, result, bottoms[assign] + (lane + 0.5) * h, 0.9 * h)
    ax.set_yticks(bottoms + heights / 2, result.instances)
    ax.set_ylim(float(bottoms[-1] + heights[-1] + 0.3) if len(bottoms) else 1, -0.3)  # 1st on top
    ax.set_xlim(0, max(result.makespan_s, 1e-9) * 1.01)
    ax.set_xlabel("time (s)")
    clock = _clock(ax, result)
    ax.set_title(f"{result.mode}: {result.energy_j / J_PER_KWH:.4g} kWh, "
                 f"makespan {result.makespan_s:,.0f} s{clock}", fontsize="medium", y=1.0,
                 pad=18 if clock else 4)
    if len(names) <= LEGEND_MAX_TASKS:
        axes_h = ax.get_position().height * fig.get_figheight()  # inches
        handles: list[Any] = [Patch(color=colours[n]) for n in names]
        ax.legend(handles + [h for h, _ in extra], names + [t for _, t in extra],
                  fontsize="small", loc="upper center",
                  bbox_to_anchor=(0.5, -0.5 / max(axes_h, 0.1)),
                  ncol=min(4, len(names) + len(extra)), frameon=False)
    else:
        ax.text(1.0, 1.01, f"{len(names)} task names (no legend)", transform=ax.transAxes,
                ha="right", va="bottom", fontsize="x-small", color="0.4")
    return fig


def _dependencies(ax: Axes, result: SimulationResult, y: np.ndarray, h: np.ndarray
                  ) -> list[tuple[Any, str]]:
    """Dependency arrows and waits (module docstring) for bars centred at ``y``, ``h``
    high; returns the legend entries drawn."""
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D
    from matplotlib.patches import FancyArrowPatch

    preds = result.predecessors
    edges = [(p, s) for s, ps in enumerate(preds or ()) for p in ps]
    if not edges:
        return []
    if len(edges) > MAX_ARROWS:
        ax.text(0.0, 1.01, f"{len(edges)} dependencies (not drawn)", transform=ax.transAxes,
                ha="left", va="bottom", fontsize="x-small", color="0.4")
        return []
    start, end = np.asarray(result.start_s, float), np.asarray(result.end_s, float)
    grey = "0.3"
    tol = 1e-9 * max(1.0, float(end.max()))
    for p, s in edges:  # same row: a low bracket over the bars between; else straight
        same = abs(y[p] - y[s]) < 1e-9
        if same and start[s] <= end[p] + tol:
            continue  # the bars touch: nothing to join
        top = 0.45 * h[s] if same else 0.0
        ax.add_patch(FancyArrowPatch(
            (end[p], y[p] - top), (start[s], y[s] - top),
            connectionstyle="arc,angleA=90,armA=5,angleB=90,armB=5,rad=2" if same else "arc3",
            arrowstyle="-|>", mutation_scale=7, color=grey, linewidth=0.8, shrinkA=0,
            shrinkB=0, zorder=3, clip_on=False))
    out: list[tuple[Any, str]] = [(Line2D([], [], color=grey, marker=">", markersize=4,
                                          linewidth=0.8), "after (dependency)")]
    p, s = np.array(edges).T
    ready = np.full(len(start), -np.inf)
    np.maximum.at(ready, s, end[p])
    waited = np.flatnonzero(np.isfinite(ready) & (start > ready + tol))
    if waited.size:  # along the lower edge of the waiting step's row
        yw = y[waited] + 0.45 * h[waited]
        segs: Any = np.stack([np.stack([ready[waited], yw], -1),
                              np.stack([start[waited], yw], -1)], 1)
        ax.add_collection(LineCollection(segs, colors=grey, linewidths=1.5, linestyles=":",
                                         zorder=3), autolim=False)
        out.append((Line2D([], [], color=grey, linestyle=":", linewidth=1.5),
                    "ready, waiting for an instance"))
    return out


def _clock_profile(result: SimulationResult) -> Any:
    """The hourly profile of the first used instance that has one, else None."""
    used = result.used
    return next((p for i, p in enumerate(result.profiles or []) if p is not None and used[i]),
                None)


def _clock(ax: Axes, result: SimulationResult) -> str:
    """With an hourly profile: the grid's hours shaded behind the chart (darker = more
    carbon), the clock on a top axis; returns the title's "from HH:MM" ("" without)."""
    prof = _clock_profile(result)
    if prof is None:
        return ""
    from matplotlib.ticker import FuncFormatter, MultipleLocator

    from ..sim.timing import hhmm

    t0 = result.clock_s + result.offset_s
    span = max(result.makespan_s, 1e-9) * 1.01
    res = prof.resolution_s
    first = math.floor(t0 / res) * res
    edges = first + res * np.arange(min(200, math.ceil((t0 + span - first) / res) + 1))
    vals = prof.at(edges)
    lo, hi = min(prof.values_g_per_kwh), max(prof.values_g_per_kwh)
    level = (vals - lo) / (hi - lo) if hi > lo else np.zeros(len(vals))
    for e, v in zip(edges.tolist(), level.tolist(), strict=True):
        ax.axvspan(e - t0, e + res - t0, color=(0.55, 0.35, 0.1), alpha=0.04 + 0.16 * v,
                   linewidth=0, zorder=0)

    def to_hours(x: Any) -> Any:
        return (x + t0) / 3600.0

    def from_hours(h: Any) -> Any:
        return h * 3600.0 - t0

    top = ax.secondary_xaxis("top", functions=(to_hours, from_hours))
    hours_span = span / 3600.0
    step = next((s for s in (0.25, 0.5, 1, 2, 3, 6, 12, 24) if hours_span / s <= 10), 48)
    top.xaxis.set_major_locator(MultipleLocator(step))
    top.xaxis.set_major_formatter(FuncFormatter(lambda h, _pos: hhmm(h)))
    top.tick_params(labelsize="x-small", colors="0.35")
    return f", from {hhmm(t0 / 3600.0)} on {prof.label()} (shaded: gCO2e/kWh)"


def _figure_layout(result: SimulationResult, lane_info: Lanes
                   ) -> tuple[tuple[float, float], tuple[float, float, float, float]]:
    """``(figure size in inches, axes rectangle in figure fractions)`` for ``result``:
    bands, instance names and task legend; margins set by hand (no tight-layout pass)."""
    gantt_h = min(6.0, 0.6 + 0.3 * float((_band_heights(lane_info[1]) + 0.3).sum()))  # in
    n_names = len(set(result.task_names)) + (2 if result.predecessors else 0)  # + dependencies
    legend_h = 0.1 + 0.2 * math.ceil(n_names / 4) if n_names <= LEGEND_MAX_TASKS + 2 else 0.0
    top = 0.6 if _clock_profile(result) is not None else 0.35  # title (and clock axis)
    foot = 0.55 + legend_h  # x label and the task legend
    height = top + gantt_h + foot
    width = 9.5
    left = 0.3 + 0.085 * max((len(n) for n in result.instances), default=4)
    return (width, height), (left / width, foot / height, 1 - (left + 0.15) / width,
                             gantt_h / height)


def gantt_figure(result: SimulationResult, lane_info: Lanes | None = None) -> Figure:
    """A figure sized to ``result`` (bands, instance names, task legend) with its Gantt
    chart; margins are set by hand, so it renders without a tight-layout pass."""
    from matplotlib.figure import Figure

    _register_ipython_formatter()
    lane_info = _lanes(result, lane_info)
    size, rect = _figure_layout(result, lane_info)
    fig = Figure(figsize=size)
    ax = fig.add_axes(rect)
    gantt(result, ax, lane_info)
    return fig


class GanttChart:
    """One Gantt figure redrawn for each new result, for live views (the simulator widget).

    :meth:`png` draws ``result`` as :func:`gantt_figure` would — the same picture — into a
    Figure and Axes kept between calls: what the last chart added is removed, the figure
    resized, and the axes' tick artists (the costliest part of a fresh figure) reused. The
    PNG comes straight from the Agg canvas at ``dpi`` (zlib RLE: lossless, fast on flat
    colours). Not thread-safe: a caller serialises its calls (the widget's update lock).
    """

    def __init__(self, dpi: float = 80) -> None:
        self.dpi = dpi
        self.figure: Figure | None = None

    def draw(self, result: SimulationResult, lane_info: Lanes | None = None) -> Figure:
        """The kept figure, now showing ``result`` (``lane_info`` as for :func:`gantt`)."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        lane_info = _lanes(result, lane_info)
        size, rect = _figure_layout(result, lane_info)
        if self.figure is None:
            self.figure = Figure(figsize=size, dpi=self.dpi)
            FigureCanvasAgg(self.figure)
            ax = self.figure.add_axes(rect)
            # No y label here: a fixed place spares measuring the tick labels to place it.
            ax.yaxis.set_label_coords(0.0, 0.5)
        else:
            ax = self.figure.axes[0]
            _clear(ax)
            self.figure.set_size_inches(size)
            ax.set_position(rect)
        gantt(result, ax, lane_info)
        return self.figure

    def png(self, result: SimulationResult, lane_info: Lanes | None = None) -> bytes:
        """PNG bytes of ``result``'s chart."""
        import io
        import zlib

        fig = self.draw(result, lane_info)
        buf = io.BytesIO()
        fig.canvas.print_png(buf, pil_kwargs={"compress_level": 1,  # type: ignore[attr-defined]
                                              "compress_type": zlib.Z_RLE})
        return buf.getvalue()


def _clear(ax: Axes) -> None:
    """Remove what :func:`gantt` added to ``ax`` (bars, shading, arrows, notes, legend,
    clock axis), keeping its axis and tick artists; :func:`gantt` sets the rest anew."""
    for artist in [*ax.collections, *ax.patches, *ax.lines, *ax.texts, *ax.child_axes]:
        artist.remove()
    legend = ax.get_legend()
    if legend is not None:
        legend.remove()
