"""The simulator widget: set widget values, call ``update()``, read ``.result`` (no browser)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

pytest.importorskip("ipywidgets")

from fakes.schedules import hard_case

import energykernel.jupyter.widgets
from energykernel.jupyter.widgets.simulation import Simulator, simulator
from energykernel.sim import ComputeEnvironment, ComputeInstance, Resource, Task, Workflow
from energykernel.sim.whatif import compute

ENV = ComputeEnvironment([ComputeInstance("a", {"cpu": Resource(4, 5.0)}),
                          ComputeInstance("b", {"cpu": Resource(4, 1.0)})])
WF = Workflow([Task(f"t{k}", 10, {"cpu": 4}) for k in range(3)])


def test_entry_point_survives_importing_the_module():
    """``energykernel.jupyter.widgets.simulator`` stays the function (no submodule of that name)."""
    first = energykernel.jupyter.widgets.simulator(ENV, WF, chart=False)
    importlib.import_module("energykernel.jupyter.widgets.simulation")
    importlib.import_module("energykernel.jupyter.widgets.carbon")
    second = energykernel.jupyter.widgets.simulator(ENV, WF, chart=False)
    assert callable(energykernel.jupyter.widgets.simulator)
    assert isinstance(first, Simulator) and isinstance(second, Simulator)
    from energykernel.jupyter.widgets import simulator as again

    assert isinstance(again(ENV, WF, chart=False), Simulator)
    assert callable(energykernel.jupyter.widgets.nn_calculator)


def test_no_pyplot():
    """Charts are drawn without pyplot's global state (safe under concurrent updates)."""
    code = ("import sys; from energykernel.jupyter.widgets import simulator; "
            "s = simulator(); s.mode.value = 'monitor'; s.update(); "
            "assert len(s.image.value) > 1000; "
            "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120,
                   env={**os.environ, "MPLBACKEND": "Agg"})


def test_defaults_build_and_show_all_modes():
    sim = simulator(chart=False)
    assert sim.simulation is not None and sim.simulation.mode == "optimize"
    assert set(sim.results) == {"monitor", "optimize", "optimal"}
    assert "makespan" in sim.totals.value
    for mode in ("monitor", "optimize", "optimal"):
        assert f"<td>{mode}</td>" in sim.totals.value


def test_result_is_the_dataset_of_the_selected_mode():
    sim = simulator(ENV, WF, chart=False)
    ds = sim.result
    assert ds.attrs["method"] == "simulated" and ds.attrs["mode"] == "optimize"
    assert {"task", "instance", "component"} <= set(ds.coords)
    assert float(ds.total_energy) == pytest.approx(sim.simulation.energy_j)
    assert sim.dataset is ds
    sim.mode.value = "monitor"
    sim.update()
    assert sim.result.attrs["mode"] == "monitor"
    assert float(sim.result.total_energy) == pytest.approx(440)


def test_mode_and_costs_drive_the_result():
    sim = simulator(ENV, WF)
    assert sim.simulation.energy_j == pytest.approx(280)
    sim.mode.value = "monitor"
    sim.update()
    assert sim.simulation.mode == "monitor" and sim.simulation.energy_j == pytest.approx(440)
    sim.controls["a"]["cpu.cost"].value = 1.0  # both instances now cost 1 W/core
    sim.update()
    assert sim.simulation.energy_j == pytest.approx(120)
    sim.controls["b"]["speed"].value = 2.0
    sim.update()
    assert sim.simulation.makespan_s == pytest.approx(10)
    sim.mode.value = "optimal"
    sim.refresh()
    assert sim.simulation.energy_j <= sim.results["optimize"].energy_j + 1e-9
    assert sim.result.attrs["mode"] == "optimal"
    assert bytes(sim.image.value[:8]) == b"\x89PNG\r\n\x1a\n"
    assert "optimal" in sim.caption.value


def test_changes_are_debounced_until_update():
    sim = simulator(ENV, WF, chart=False, debounce_s=60)
    sim.mode.value = "monitor"
    assert sim.pending and sim.simulation.mode == "optimize"  # not applied yet
    sim.update()
    assert not sim.pending and sim.simulation.mode == "monitor"


def test_debounced_change_applies_on_its_own():
    sim = simulator(ENV, WF, chart=False, debounce_s=0.01)
    sim.mode.value = "monitor"
    assert sim.wait(timeout=30)
    assert sim.simulation.mode == "monitor"


def test_concurrent_updates_are_serialised_and_the_last_state_wins():
    sim = simulator(ENV, WF, debounce_s=60)
    errors: list[BaseException] = []

    def hammer() -> None:
        try:
            for _ in range(3):
                sim.update()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    sim.mode.value = "monitor"
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sim.update()
    assert errors == []
    assert sim.simulation.mode == "monitor" and "<b>" not in sim.error_labels["run"].value
    assert bytes(sim.image.value).startswith(b"\x89PNG") and "monitor" in sim.caption.value


def test_deadline_workload_and_intensity():
    sim = simulator(ENV, WF, chart=False)
    sim.mode.value = "optimal"
    sim.update()
    assert sim.simulation.makespan_s == 30
    sim.deadline.value = "20"
    sim.update()
    assert sim.simulation.makespan_s <= 20 and sim.simulation.energy_j == pytest.approx(280)
    sim.n_tasks.value = 6  # 6 tasks cannot finish within 20 s: error, last result kept
    sim.update()
    assert "deadline_s=20" in sim.error_labels["deadline"].value
    assert len(sim.simulation.task_names) == 3
    sim.deadline.value = ""
    sim.update()
    assert len(sim.simulation.task_names) == 6 and sim.error_labels["deadline"].value == ""
    assert int(sim.result.runs.sum()) == 6
    sim.controls["a"]["intensity_g_per_kwh"].value = "100"
    sim.controls["b"]["intensity_g_per_kwh"].value = "100"
    sim.update()
    assert sim.simulation.emissions_g > 0


def test_workload_controls_regenerate_the_workflow_deterministically():
    sim = simulator(ENV, WF, chart=False)
    sim.mode.value = "monitor"
    sim.n_tasks.value = 5
    sim.duration_spread.value = 0.5
    sim.demand_scale.value = 0.5
    sim.update()
    first = sim.simulation
    durations = first.end_s - first.start_s
    assert len(first.task_names) == 5 and first.task_names[3:] == ["t0", "t1"]
    assert np.all(durations >= 5 - 1e-9) and np.all(durations <= 15 + 1e-9)
    assert len(set(np.round(durations, 9))) > 1
    # the same fields give the same tasks; a new seed gives others
    again = compute(ENV, WF, mode="monitor", n_tasks=5, duration_spread=0.5, demand_scale=0.5)
    assert np.allclose(again["simulation"].end_s, first.end_s)
    sim.seed.value = 1
    sim.update()
    assert not np.allclose(sim.simulation.end_s - sim.simulation.start_s, durations)
    # demand 2 cores each: two tasks share an instance at once
    assert first.step_energy_j[0, 0] == pytest.approx(durations[0] * 2 * 5.0)


def test_widget_shows_breakdown_and_chart():
    sim = simulator(ENV, WF)
    assert "ek-sim-breakdown" in sim.breakdown.value and "<td>a</td>" in sim.breakdown.value
    assert bytes(sim.image.value).startswith(b"\x89PNG")
    assert "optimize" in sim.caption.value and "0.0001 kWh" in sim.caption.value


def test_invalid_entries_show_an_error_next_to_the_field_and_keep_the_result():
    sim = simulator(ENV, WF, chart=False)
    before = sim.simulation

    def set_(widget, value):
        widget.value = value
        sim.update()

    set_(sim.controls["b"]["speed"], -1.0)
    assert sim.simulation is before
    assert "must be &gt; 0" in sim.error_labels["b.speed"].value
    set_(sim.controls["b"]["speed"], 1.0)
    assert sim.error_labels["b.speed"].value == ""
    set_(sim.controls["a"]["cpu.cost"], -3.0)
    assert "≥ 0" in sim.error_labels["a.cpu.cost"].value
    set_(sim.controls["a"]["cpu.cost"], 5.0)
    set_(sim.controls["a"]["intensity_g_per_kwh"], "lots")
    assert "number" in sim.error_labels["a.intensity_g_per_kwh"].value
    set_(sim.controls["a"]["intensity_g_per_kwh"], "")
    set_(sim.deadline, "soon")
    assert "number" in sim.error_labels["deadline"].value
    set_(sim.deadline, "")
    for widget, value, key in [(sim.n_tasks, 0, "n_tasks"),
                               (sim.duration_spread, 1.5, "duration_spread"),
                               (sim.demand_scale, -1.0, "demand_scale"), (sim.seed, -2, "seed")]:
        old, before = widget.value, sim.simulation
        set_(widget, value)
        assert "must be" in sim.error_labels[key].value and sim.simulation is before
        assert "Traceback" not in sim.error_labels[key].value
        set_(widget, old)
        assert sim.error_labels[key].value == ""
    set_(sim.demand_scale, 2.0)  # 8 cores: no instance holds a task
    assert "fits no instance" in sim.error_labels["run"].value
    set_(sim.demand_scale, 1.0)
    sim.controls["a"]["cpu.capacity"].value = 1.0
    set_(sim.controls["b"]["cpu.capacity"], 1.0)  # now no instance holds a 4-core task
    assert "fits no instance" in sim.error_labels["run"].value
    set_(sim.controls["b"]["cpu.capacity"], 4.0)
    assert sim.error_labels["run"].value == "" and sim.simulation is not before


def test_impossible_deadline_reported_while_other_modes_update():
    sim = simulator(ENV, WF, chart=False)
    sim.deadline.value = "5"
    sim.update()
    assert "deadline" in sim.error_labels["deadline"].value
    assert sim.simulation.mode == "optimize"  # the selected mode still computed


def test_fields_are_words_with_units_and_name_their_parameter():
    env = ComputeEnvironment([ComputeInstance("a", {"cpu": Resource(4, 5.0),
                                                    "ram": Resource(64, 0.4)})])
    sim = simulator(env, WF, chart=False)
    ctl = sim.controls["a"]
    assert ctl["ram.capacity"].description == "ram capacity (GB)"
    assert ctl["ram.capacity"].tooltip.startswith("resources.ram.capacity")
    assert ctl["cpu.cost"].description == "cpu power (W/unit)"
    assert ctl["idle_power_w"].description == "idle power (W)"
    assert ctl["idle_power_w"].tooltip.startswith("idle_power_w")
    assert ctl["intensity_g_per_kwh"].tooltip.startswith("intensity_g_per_kwh")


def test_tables_have_one_quantity_a_column_a_scale_and_no_unused_component():
    sim = simulator(ENV, WF, chart=False)
    table = sim.breakdown.value
    assert "<th>cpu (kWh)</th>" in table and "<th>carbon (gCO2e)</th>" in table
    assert "overflow-x:auto" in table
    totals = sim.totals.value
    assert "storage" not in totals and "gpu" not in totals  # ENV has CPUs only
    assert "■</span> cpu" in totals and "■</span> idle" in totals
    # the scale under the bars ends at the widest total: optimize/optimal 280 J, monitor 440 J
    assert f"{440 / 3.6e6:,.4g} kWh" in totals


def test_invalid_input_marks_the_numbers_stale():
    sim = simulator(ENV, WF, chart=False)
    assert "stale" not in sim.totals.value
    sim.controls["a"]["speed"].value = -1.0
    sim.update()
    assert "stale" in sim.totals.value and "stale" in sim.breakdown.value
    assert "must be" in sim.error_labels["a.speed"].value
    sim.controls["a"]["speed"].value = 1.0
    sim.update()
    assert "stale" not in sim.totals.value


def test_start_hour_shows_the_carbon_saved_by_waiting():
    # one instance, 1 core × 1,000 W: a 1,800 s task uses 0.5 kWh. On the synthetic solar
    # day it emits 0.5 × 420 = 210 g at 02:00 and 0.5 × 150 = 75 g if it waits for 13:00.
    env = ComputeEnvironment([ComputeInstance("x", {"cpu": Resource(1, 1000.0)})])
    wf = Workflow([Task("job", 1800, {"cpu": 1})])
    sim = simulator(env, wf, chart=False, profile="synthetic-solar-day", start_hour=2)
    shift = sim.output["shift"]
    assert shift["emissions_g"] == pytest.approx(210)
    assert shift["best_emissions_g"] == pytest.approx(75) and shift["saved_g"] == pytest.approx(135)
    assert shift["best_start_hour"] == pytest.approx(13) and len(shift["by_hour_g"]) == 24
    assert "135.0 gCO2e saved" in sim.shift.value
    sim.start_hour.value = 13
    sim.update()
    assert sim.output["shift"]["saved_g"] == pytest.approx(0)
    assert "no later start" in sim.shift.value
    sim.profile.value = ""  # the instances' own: none, so the hour does not matter
    sim.update()
    assert "does not depend on the start hour" in sim.shift.value


def test_dependencies_are_shown():
    wf = Workflow([Task("load", 10, {"cpu": 4}), Task("fit", 10, {"cpu": 4}, after=("load",))])
    sim = simulator(ENV, wf, chart=False)
    assert "fit ← load" in sim.dependencies.value
    assert "No dependencies" in simulator(ENV, WF, chart=False).dependencies.value


def test_optimal_waits_and_says_so():
    # the 210 g / 75 g job of the test above: optimal itself waits for 13:00 (a day's window)
    env = ComputeEnvironment([ComputeInstance("x", {"cpu": Resource(1, 1000.0)})])
    wf = Workflow([Task("job", 1800, {"cpu": 1})])
    sim = simulator(env, wf, chart=False, profile="synthetic-solar-day", start_hour=2)
    sim.mode.value = "optimal"
    sim.update()
    assert sim.output["totals"]["optimal"]["emissions_g"] == pytest.approx(75)
    assert "optimal starts 11.0 h later" in sim.totals.value
    shift = sim.output["shift"]  # measured from the submission, not from optimal's start
    assert shift["emissions_g"] == pytest.approx(210) and shift["saved_g"] == pytest.approx(135)


def test_optimal_says_whether_it_is_proven():
    sim = simulator(ENV, WF, chart=False)
    assert sim.output["totals"]["optimal"]["proven_optimal"] is True
    assert "optimal: proven optimal" in sim.totals.value
    assert "proven_optimal" not in sim.output["totals"]["monitor"]


def test_optimal_in_an_update_stops_at_the_widget_time_limit():
    """A small workflow whose exact search would take optimal's full 10 s: the update's
    optimal stops at its time limit and the widget says how far from its bound it may be."""
    env, wf = hard_case()
    out = compute(env, wf, mode="optimal", compare=False, time_limit_s=0.2)
    info = out["simulation"].info
    assert not info["proven_optimal"] and info["gap"] > 0
    sim = simulator(env, wf, chart=False)
    totals = sim.output["totals"]["optimal"]
    assert totals["proven_optimal"] is False
    assert "optimal: not proven, at most" in sim.totals.value
