"""The simulator widget: set widget values, read ``.result`` (no browser)."""

from __future__ import annotations

import pytest

pytest.importorskip("ipywidgets")

from energykernel.sim import ComputeEnvironment, ComputeInstance, Resource, Task, Workflow
from energykernel.widgets.simulator import compute, simulator

ENV = ComputeEnvironment([ComputeInstance("a", {"cpu": Resource(4, 5.0)}),
                          ComputeInstance("b", {"cpu": Resource(4, 1.0)})])
WF = Workflow([Task(f"t{k}", 10, {"cpu": 4}) for k in range(3)])


def test_defaults_build_and_show_all_modes():
    sim = simulator(chart=False)
    assert sim.result is not None and sim.result.mode == "optimize"
    assert set(sim.results) == {"monitor", "optimize", "optimal"}
    assert "makespan" in sim.totals.value


def test_mode_and_costs_drive_the_result():
    sim = simulator(ENV, WF)
    assert sim.result.energy_j == pytest.approx(280)
    sim.mode.value = "monitor"
    assert sim.result.mode == "monitor" and sim.result.energy_j == pytest.approx(440)
    sim.controls["a"]["cpu.cost"].value = 1.0  # both instances now cost 1 W/core
    assert sim.result.energy_j == pytest.approx(120)
    sim.controls["b"]["speed"].value = 2.0
    assert sim.result.makespan_s == pytest.approx(10)
    sim.mode.value = "optimal"
    assert sim.result.energy_j <= sim.results["optimize"].energy_j + 1e-9
    assert sim.dataset.attrs["mode"] == "optimal"


def test_deadline_repeat_and_intensity():
    sim = simulator(ENV, WF, chart=False)
    sim.mode.value = "optimal"
    assert sim.result.makespan_s == 30
    sim.deadline.value = "20"
    assert sim.result.makespan_s <= 20 and sim.result.energy_j == pytest.approx(280)
    sim.repeat.value = 2  # 6 tasks cannot finish within 20 s: error, last result kept
    assert "deadline_s=20" in sim.error_labels["deadline"].value
    assert len(sim.result.task_names) == 3
    sim.deadline.value = ""
    assert len(sim.result.task_names) == 6 and sim.error_labels["deadline"].value == ""
    sim.controls["a"]["intensity_g_per_kwh"].value = "100"
    sim.controls["b"]["intensity_g_per_kwh"].value = "100"
    assert sim.result.emissions_g > 0


def test_invalid_entries_show_an_error_next_to_the_field_and_keep_the_result():
    sim = simulator(ENV, WF, chart=False)
    before = sim.result
    sim.controls["b"]["speed"].value = -1.0
    assert sim.result is before
    assert "must be &gt; 0" in sim.error_labels["b.speed"].value
    sim.controls["b"]["speed"].value = 1.0
    assert sim.error_labels["b.speed"].value == ""
    sim.controls["a"]["cpu.cost"].value = -3.0
    assert "≥ 0" in sim.error_labels["a.cpu.cost"].value
    sim.controls["a"]["cpu.cost"].value = 5.0
    sim.controls["a"]["intensity_g_per_kwh"].value = "lots"
    assert "number" in sim.error_labels["a.intensity_g_per_kwh"].value
    sim.controls["a"]["intensity_g_per_kwh"].value = ""
    sim.deadline.value = "soon"
    assert "number" in sim.error_labels["deadline"].value
    sim.deadline.value = ""
    sim.controls["a"]["cpu.capacity"].value = 1.0
    sim.controls["b"]["cpu.capacity"].value = 1.0  # now no instance holds a 4-core task
    assert "fits no instance" in sim.error_labels["run"].value
    sim.controls["b"]["cpu.capacity"].value = 4.0
    assert sim.error_labels["run"].value == "" and sim.result is not before


def test_impossible_deadline_reported_while_other_modes_update():
    sim = simulator(ENV, WF, chart=False)
    sim.deadline.value = "5"
    assert "deadline" in sim.error_labels["deadline"].value
    assert sim.result.mode == "optimize"  # the selected mode still computed


def test_compute_is_pure():
    out = compute(ENV, WF, mode="monitor", instances={"a": {"speed": 2.0}}, compare=False)
    assert set(out["results"]) == {"monitor"} and out["errors"] == {}
    assert out["result"].end_s.max() == pytest.approx(10)
    out = compute(ENV, WF, instances={"a": {"pue": 0.5}})
    assert "a.pue" in out["errors"] and out["result"] is None
