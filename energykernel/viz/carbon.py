"""Figures of the neural-network carbon calculators (:func:`energykernel.carbon.nn_total`).

The breakdown (embodied, training, inference emissions as bars) and a what-if sweep (total
against one input, :mod:`energykernel.carbon.sweep`), drawn by the NN calculator widget.
Built on ``matplotlib.figure.Figure`` (never pyplot), imported when a chart is drawn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .plot import _axes, _figure

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..carbon import NNBreakdown

#: Bar colour of each phase of the breakdown.
PHASE_COLORS = {"embodied": "#8172b3", "training": "#dd8452", "inference": "#4c72b0"}
_G_PER_T = 1e6


def breakdown_t(r: NNBreakdown) -> dict[str, float]:
    """tCO2e per phase (embodied, training, inference), as the bars show them."""
    return {"embodied": float(r.embodied_g) / _G_PER_T, "training": float(r.training_g) / _G_PER_T,
            "inference": float(r.inference_g) / _G_PER_T}


def breakdown_bars(r: NNBreakdown, ax: Axes | None = None) -> Figure:
    """The breakdown as labelled bars (tCO2e) on ``ax`` (a new figure without one)."""
    fig, ax = _axes(ax, (4.5, 3.2))
    parts = breakdown_t(r)
    vals = list(parts.values())
    ax.bar(list(parts), vals, color=[PHASE_COLORS[p] for p in parts])
    top = max(vals) if max(vals) > 0 else 1.0
    for k, v in enumerate(vals):
        ax.text(k, v + 0.01 * top, f"{v:,.3f}", ha="center", va="bottom", fontsize="small")
    ax.set_ylim(0, top * 1.15)
    ax.set_ylabel("tCO2e")
    ax.set_title(f"breakdown: total {float(r.total_g) / _G_PER_T:,.3f} tCO2e", fontsize="medium",
                 y=1.0, pad=4)  # a fixed title position skips a layout pass
    return fig


def sweep_plot(points: Sequence[float], totals_g: Sequence[float], label: str,
               ax: Axes | None = None, current: float | None = None,
               current_total_g: float | None = None) -> Figure:
    """Total tCO2e against ``label`` over ``points`` on ``ax`` (a new figure without one);
    the ``current`` value is marked (with its total, when given)."""
    fig, ax = _axes(ax, (4.5, 3.2))
    ax.plot(list(points), [t / _G_PER_T for t in totals_g], marker="o", markersize=3)
    if current is not None and math.isfinite(current):
        ax.axvline(current, color="0.5", linestyle=":", linewidth=1)
        if current_total_g is not None:
            ax.plot([current], [float(current_total_g) / _G_PER_T], "o", color="black",
                    markersize=5)
    ax.set_xlabel(label)
    ax.set_ylabel("total tCO2e")
    ax.set_title(f"total vs {label}", fontsize="medium", y=1.0, pad=4)
    return fig


def nn_figure(r: NNBreakdown, sweep_label: str, points: Sequence[float],
              totals_g: Sequence[float], current: float | None = None) -> Figure:
    """:func:`breakdown_bars` and :func:`sweep_plot` side by side; margins set by hand, so it
    renders without a tight-layout pass."""
    fig = _figure((9, 3.2))
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.17, top=0.9, wspace=0.28)
    ax1, ax2 = fig.subplots(1, 2)
    breakdown_bars(r, ax1)
    sweep_plot(points, totals_g, sweep_label, ax2, current, r.total_g)
    return fig


def nn_description(r: NNBreakdown, sweep_label: str) -> str:
    """Text equivalent of :func:`nn_figure` (its caption), with the numbers as drawn."""
    t = breakdown_t(r)
    return (f"Breakdown: embodied {t['embodied']:,.3f} t, training {t['training']:,.3f} t, "
            f"inference {t['inference']:,.3f} t; total vs {sweep_label}")
