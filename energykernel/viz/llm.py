"""Heatmap of an LLM prompt campaign's correlation matrix (:func:`energykernel.llm.correlations`).

Drawn on ``matplotlib.figure.Figure`` (never pyplot), imported when a plot is asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.units import number
from .plot import _axes, _show

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.axes import Axes


def plot_correlations(corr: xr.DataArray, ax: Axes | None = None) -> Any:
    """Heatmap of a matrix from :func:`~energykernel.llm.correlations`; returns the Axes.

    Without ``ax`` it draws a new figure and shows it in Jupyter.
    """
    created = ax is None
    fig, ax = _axes(ax, (5.2, 4.4))
    names = [str(v) for v in corr.quantity.values]
    im = ax.imshow(corr.values, cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=40, ha="right")
    ax.set_yticks(range(len(names)), names)
    for i in range(len(names)):
        for j in range(len(names)):
            v = corr.values[i, j]
            ax.text(j, i, number(v, ".2f"), ha="center", va="center",
                    fontsize=8, color="white" if abs(np.nan_to_num(v)) > 0.6 else "black")
    fig.colorbar(im, ax=ax, shrink=0.8, label=f"{corr.attrs.get('method', '')} r")
    ax.set_title(f"LLM prompts (n={corr.attrs.get('prompts', '?')})")
    fig.tight_layout()
    if created:
        _show(fig)
    return ax
