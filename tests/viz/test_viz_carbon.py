"""energykernel.viz.carbon: the NN calculator's figures (bare Figures, lazy matplotlib)."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("matplotlib")

from matplotlib.figure import Figure

from energykernel.carbon import nn_total
from energykernel.viz.carbon import (
    breakdown_bars,
    breakdown_t,
    nn_description,
    nn_figure,
    sweep_plot,
)
from energykernel.viz.plot import figure_png

R = nn_total(training=dict(hardware_count=10_000, hardware_power_w=330, server_count=0,
                           server_power_w=0, hours=355.2, pue=1.10, intensity_g_per_kwh=429),
             embodied=2e6)


@pytest.fixture
def no_pyplot(monkeypatch):
    """Importing pyplot fails while the test runs."""
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)


def test_breakdown_bars_in_tonnes(no_pyplot):
    fig = breakdown_bars(R)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    heights = [p.get_height() for p in ax.patches]
    assert heights == pytest.approx([2.0, R.training_g / 1e6, 0.0])
    assert breakdown_t(R) == pytest.approx({"embodied": 2.0, "training": R.training_g / 1e6,
                                            "inference": 0.0})
    assert "total" in ax.get_title() and ax.get_ylabel() == "tCO2e"


def test_sweep_plot_marks_the_current_value(no_pyplot):
    fig = sweep_plot([1.0, 2.0], [1e6, 2e6], "training PUE", current=1.5,
                     current_total_g=1.5e6)
    ax = fig.axes[0]
    line, marker = ax.lines[0], ax.lines[-1]
    assert list(line.get_ydata()) == pytest.approx([1.0, 2.0])
    assert list(marker.get_xdata()) == [1.5] and list(marker.get_ydata()) == [1.5]
    assert ax.get_xlabel() == "training PUE"


def test_nn_figure_draws_both_into_one_png(no_pyplot):
    fig = nn_figure(R, "training hours", [0.0, 355.2], [0.0, float(R.total_g)], 355.2)
    assert len(fig.axes) == 2
    assert figure_png(fig, dpi=50, tight=False)[:8] == b"\x89PNG\r\n\x1a\n"
    assert nn_description(R, "training hours").endswith("total vs training hours")


def test_import_does_not_load_matplotlib():
    code = ("import sys, energykernel.viz.carbon; "
            "print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.split() == ["False"]


def test_the_widget_draws_with_viz_carbon_and_sweeps_with_the_carbon_package():
    pytest.importorskip("ipywidgets")
    from energykernel.carbon import sweep as carbon_sweep
    from energykernel.jupyter.widgets import carbon as widget
    from energykernel.viz import carbon as viz_carbon

    assert widget.nn_figure is viz_carbon.nn_figure
    assert widget.chart_description is viz_carbon.nn_description
    assert widget.sweep_totals is carbon_sweep.sweep_totals
    assert not hasattr(widget, "chart_figure")


def test_report_cells_use_the_shared_formatting():
    from energykernel.core import units
    from energykernel.viz import report, report_cells

    assert report.si is units.si and not hasattr(report, "_num")
    for name in ("si", "si_interval", "duration", "short_label"):
        assert getattr(report_cells, name) is getattr(units, name)
