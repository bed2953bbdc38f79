"""Bare Figures (no pyplot) that still show in Jupyter: the helpers of energykernel.viz.plot."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("IPython")

from matplotlib.figure import Figure

from energykernel.viz.plot import _figure, _scale, figure_png


def test_figure_png_options():
    fig = _figure((3.0, 2.0))
    fig.add_subplot().plot([0, 1], [1, 0])
    tight, loose = figure_png(fig), figure_png(fig, dpi=50, tight=False, compress_level=1)
    assert tight[:4] == loose[:4] == b"\x89PNG"
    assert isinstance(fig, Figure) and len(loose) < len(tight)


def test_energy_axis_scale():
    assert _scale(2.5e6) == (1e6, "MJ")
    assert _scale(12.0) == (1.0, "J")
    assert _scale(0.0) == (1e-6, "µJ")  # never smaller than µJ
    assert _scale(1e-9) == (1e-6, "µJ")


SHELL = """
import sys
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
shown = []
import IPython.display
IPython.display.display = lambda obj, **kw: shown.append(obj)
{body}
assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'
"""


def _in_shell(body: str) -> None:
    subprocess.run([sys.executable, "-c", SHELL.format(body=body)], check=True, timeout=120,
                   env={**os.environ, "MPLBACKEND": "Agg"})


def test_a_returned_figure_shows_as_png_in_jupyter():
    """A cell that returns a Figure from energykernel gets a PNG (no pyplot, no inline backend)."""
    _in_shell("from energykernel.viz.plot import _figure\n"
              "fig = _figure((3.0, 2.0)); fig.add_subplot().plot([0, 1])\n"
              "data, _ = shell.display_formatter.format(fig)\n"
              "assert data['image/png'][:4] == b'\\x89PNG', data.keys()")


def test_gantt_figure_shows_in_jupyter():
    _in_shell("from energykernel.sim.whatif import compute, default_environment, default_workflow\n"
              "from energykernel.viz.gantt import gantt\n"
              "out = compute(default_environment(), default_workflow())\n"
              "data, _ = shell.display_formatter.format(gantt(out['simulation']))\n"
              "assert 'image/png' in data")


def test_a_heatmap_drawn_for_the_caller_is_displayed():
    """``correlations(plot=True)`` keeps no figure: it is shown, as pyplot inline did."""
    _in_shell("import numpy as np, xarray as xr\n"
              "from energykernel.viz.llm import plot_correlations\n"
              "names = ['energy', 'duration']\n"
              "corr = xr.DataArray(np.eye(2), dims=('quantity', 'quantity_2'),\n"
              "                    coords={'quantity': names, 'quantity_2': names})\n"
              "ax = plot_correlations(corr)\n"
              "assert shown == [ax.figure], shown\n"
              "plot_correlations(corr, ax=ax)  # the caller's own axes: nothing shown\n"
              "assert len(shown) == 1")
