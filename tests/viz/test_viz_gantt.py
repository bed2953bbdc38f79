"""Gantt charts of a simulated schedule (energykernel.viz.gantt): bare Figures, no pyplot."""

from __future__ import annotations

import pytest

pytest.importorskip("matplotlib")

from matplotlib.figure import Figure

from energykernel.sim import ComputeEnvironment, ComputeInstance, Resource, Task, Workflow
from energykernel.sim.whatif import lanes
from energykernel.viz.gantt import LEGEND_MAX_TASKS, gantt, gantt_figure
from energykernel.viz.plot import figure_png

ENV = ComputeEnvironment([ComputeInstance("a", {"cpu": Resource(8, 1.0)}),
                          ComputeInstance("b", {"cpu": Resource(8, 1.0)})])
WF = Workflow([Task("x", 10, {"cpu": 2}), Task("y", 20, {"cpu": 2}),
               Task("z", 5, {"cpu": 2}), Task("w", 30, {"cpu": 8})])


@pytest.fixture
def no_pyplot(monkeypatch):
    """Importing pyplot fails while the test runs."""
    monkeypatch.setitem(__import__("sys").modules, "matplotlib.pyplot", None)


def test_gantt_draws_one_bar_per_step_without_pyplot(no_pyplot):
    r = ENV.run(WF, "monitor")
    fig = gantt(r)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    bars = ax.collections[-1]  # one PolyCollection of task bars (after the shading)
    assert len(bars.get_paths()) == len(WF)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b"]
    assert "monitor" in ax.get_title() and "kWh" in ax.get_title()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["x", "y", "z", "w"]


def test_gantt_on_given_axes_with_precomputed_lanes(no_pyplot):
    r = ENV.run(WF, "monitor")
    ax = Figure().subplots()
    assert gantt(r, ax, lanes(r)) is ax.figure


def test_gantt_figure_sized_to_its_bands_and_renders(no_pyplot):
    r = ENV.run(WF, "monitor")
    small = gantt_figure(r)
    many = ComputeEnvironment([ComputeInstance("a", {"cpu": Resource(64, 1.0)})]).run(
        Workflow([Task(f"t{k}", 10, {"cpu": 1}) for k in range(LEGEND_MAX_TASKS + 1)]))
    big = gantt_figure(many)
    assert big.get_figheight() > small.get_figheight()  # 17 lanes (capped) vs 3 + 1
    assert big.axes[0].get_legend() is None  # too many task names: a note instead
    assert "no legend" in big.axes[0].texts[0].get_text()
    png = figure_png(small, dpi=80, tight=False, compress_level=1)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"



def test_gantt_draws_dependencies_and_waits(no_pyplot):
    from matplotlib.patches import FancyArrowPatch

    from energykernel.viz.gantt import MAX_ARROWS

    env = ComputeEnvironment([ComputeInstance("a", {"cpu": Resource(2, 2.0)}),
                              ComputeInstance("b", {"cpu": Resource(2, 1.0)})])
    wf = Workflow([Task("fork", 5, {"cpu": 2}),
                   *[Task(f"p{k}", 10, {"cpu": 2}, after=["fork"]) for k in (1, 2, 3)],
                   Task("join", 5, {"cpu": 2}, after=["p1", "p2", "p3"])])
    r = env.run(wf, "monitor")  # p3 is ready at 5 s, starts at 15 s (both busy)
    ax = gantt_figure(r).axes[0]
    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    # fork→p1 and p3→join touch on one row (nothing drawn); the other four are arrows.
    assert len(arrows) == 4
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts[-2:] == ["after (dependency)", "ready, waiting for an instance"]
    waits = ax.collections[-1]
    assert waits.get_segments()[0][:, 0].tolist() == [5.0, 15.0]  # p3: ready → start
    assert figure_png(ax.figure, dpi=60, tight=False)[:4] == b"\x89PNG"
    chain = Workflow([Task("t0", 1, {"cpu": 1})] + [Task(f"t{k}", 1, {"cpu": 1}, after=[f"t{k - 1}"])
                                                    for k in range(1, MAX_ARROWS + 2)])
    big = gantt(env.run(chain, "monitor")).axes[0]
    assert not [p for p in big.patches if isinstance(p, FancyArrowPatch)]
    assert any("dependencies (not drawn)" in t.get_text() for t in big.texts)


def test_gantt_without_dependencies_has_no_dependency_legend(no_pyplot):
    ax = gantt(ENV.run(WF, "monitor")).axes[0]
    assert "after (dependency)" not in [t.get_text() for t in ax.get_legend().get_texts()]


def _pixels(png: bytes):
    import io

    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))


def test_gantt_chart_redraws_the_same_picture_as_a_fresh_figure(no_pyplot):
    from energykernel.viz.gantt import GanttChart

    deps = ComputeEnvironment([ComputeInstance("a", {"cpu": Resource(2, 2.0)}),
                               ComputeInstance("bb", {"cpu": Resource(2, 1.0)}),
                               ComputeInstance("c", {"cpu": Resource(2, 1.0)})]).run(
        Workflow([Task("fork", 5, {"cpu": 2}),
                  *[Task(f"p{k}", 10, {"cpu": 2}, after=["fork"]) for k in (1, 2, 3)],
                  Task("join", 5, {"cpu": 2}, after=["p1", "p2", "p3"])]), "monitor")
    clocked = ENV.with_profile("synthetic-solar-day").run(WF, "optimize", start_hour=7)
    many = ComputeEnvironment([ComputeInstance("a", {"cpu": Resource(64, 1.0)})]).run(
        Workflow([Task(f"t{k}", 10, {"cpu": 1}) for k in range(LEGEND_MAX_TASKS + 1)]))
    chart = GanttChart(dpi=80)
    for r in (ENV.run(WF, "monitor"), deps, clocked, many, deps, ENV.run(WF, "optimize")):
        png = chart.png(r)  # after charts of other sizes, legends, clock axis or none
        fresh = gantt_figure(r)
        assert _pixels(png).shape == _pixels(figure_png(fresh, dpi=80, tight=False)).shape
        assert (_pixels(png) == _pixels(figure_png(fresh, dpi=80, tight=False))).all()
        kept, new = chart.figure.axes[0], fresh.axes[0]
        for part in ("collections", "patches", "lines", "texts", "child_axes"):
            assert len(getattr(kept, part)) == len(getattr(new, part)), part
        assert (kept.get_legend() is None) == (new.get_legend() is None)
    assert len(chart.figure.axes) == 1
