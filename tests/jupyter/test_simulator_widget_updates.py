"""The simulator widget's updates reuse what did not change: a mode switch runs no mode
again, a chart already drawn for a result is shown again; the output stays what
:func:`compute` gives for the fields (no browser)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ipywidgets")
pytest.importorskip("matplotlib")

import energykernel.jupyter.widgets.simulation as simulation
from energykernel.sim import ComputeEnvironment, ComputeInstance, Resource, Task, Workflow
from energykernel.sim.whatif import compute
from energykernel.viz.gantt import GanttChart, gantt_figure
from energykernel.viz.plot import figure_png

ENV = ComputeEnvironment([
    ComputeInstance("a", {"cpu": Resource(4, 5.0)}, intensity_g_per_kwh=300),
    ComputeInstance("b", {"cpu": Resource(4, 1.0)}, idle_power_w=20, intensity_g_per_kwh=100)])
WF = Workflow([Task("load", 10, {"cpu": 4}), Task("fit", 20, {"cpu": 2}, after=("load",)),
               Task("plot", 5, {"cpu": 1}, after=("load",))])


@pytest.fixture
def counted(monkeypatch):
    """Count the widget's calls of compute and of GanttChart.png."""
    calls = {"compute": 0, "png": 0}

    def counting_compute(*args, **kwargs):
        calls["compute"] += 1
        return compute(*args, **kwargs)

    png = GanttChart.png

    def counting_png(self, *args, **kwargs):
        calls["png"] += 1
        return png(self, *args, **kwargs)

    monkeypatch.setattr(simulation, "compute", counting_compute)
    monkeypatch.setattr(GanttChart, "png", counting_png)
    return calls


def _pixels(png: bytes) -> np.ndarray:
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))


def _same_as_compute(sim) -> None:
    """``sim.output`` is what compute gives for the widget's fields now."""
    out, ref = sim.output, compute(sim.env, sim.workflow, **sim.fields())
    assert out["errors"] == ref["errors"] and out["totals"] == ref["totals"]
    assert out["breakdown"] == ref["breakdown"] and out["shift"] == ref["shift"]
    assert out["dependencies"] == ref["dependencies"]
    for got, want in zip(out["lanes"], ref["lanes"], strict=True):
        assert np.array_equal(got, want)
    a, b = out["simulation"], ref["simulation"]
    assert a.mode == b.mode == sim.mode.value and a.energy_j == b.energy_j
    assert np.array_equal(a.assignment, b.assignment) and np.array_equal(a.start_s, b.start_s)
    assert set(out["results"]) == set(ref["results"])


@pytest.mark.parametrize("profile", ["", "synthetic-solar-day"])
def test_mode_switch_reuses_the_three_results(counted, profile):
    sim = simulation.simulator(ENV, WF, profile=profile, start_hour=5)
    assert counted == {"compute": 1, "png": 1}
    for n, mode in enumerate(["monitor", "optimal", "optimize", "monitor"]):
        sim.mode.value = mode
        sim.update()
        _same_as_compute(sim)
        assert sim.result.attrs["mode"] == mode and mode in sim.caption.value
        assert counted["compute"] == 1  # no mode run again
        assert counted["png"] == min(n + 2, 3)  # each result drawn once, then shown again
        fresh = figure_png(gantt_figure(sim.simulation, sim.output["lanes"]), dpi=80,
                           tight=False)
        assert (_pixels(bytes(sim.image.value)) == _pixels(fresh)).all()  # this mode's chart


def test_other_changes_run_the_modes_again(counted):
    sim = simulation.simulator(ENV, WF)
    sim.controls["a"]["speed"].value = 2.0
    sim.update()
    assert counted["compute"] == 2
    _same_as_compute(sim)
    sim.update()  # nothing changed: nothing run or drawn again
    assert counted == {"compute": 2, "png": 2}
    sim.deadline.value = "1000"
    sim.update()
    assert counted["compute"] == 3
    _same_as_compute(sim)
    sim.workflow.tasks[1] = Task("fit", 40, {"cpu": 2}, after=("load",))  # changed in place
    sim.update()
    assert counted["compute"] == 4 and sim.simulation.makespan_s >= 50
    _same_as_compute(sim)
    sim.env = ENV.replace_instance("b", idle_power_w=0.0)
    sim.update()
    assert counted["compute"] == 5
    _same_as_compute(sim)


def test_back_from_an_invalid_field_clears_the_stale_mark(counted):
    sim = simulation.simulator(ENV, WF)
    sim.controls["a"]["pue"].value = 0.5  # invalid: the last numbers stay, marked stale
    sim.update()
    assert "stale" in sim.totals.value and sim.errors
    sim.controls["a"]["pue"].value = 1.0
    sim.update()
    assert "stale" not in sim.totals.value and "stale" not in sim.caption.value
    assert not sim.errors
    _same_as_compute(sim)
