"""Carbon over time: hourly profiles, start hour, workflow windows, shift, optimal, bad input.

Every scenario is hand-computed: one 1,000 W task (1 core × 1,000 W/core) of 1,800 s uses
0.5 kWh; on a profile alternating 100 and 300 gCO2e/kWh each hour (a 2-hour cycle) it emits
50 g in a 100-hour, 150 g in a 300-hour, and 100 g when it straddles both halves evenly.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from energykernel.sim import (
    ComputeEnvironment,
    ComputeInstance,
    Resource,
    SimulationInputError,
    Task,
    Workflow,
)
from energykernel.sim.profile import IntensityProfile, load_profile, named_profiles

PROFILE = IntensityProfile([100, 300], name="test")
X = ComputeInstance("x", {"cpu": Resource(1, 1000.0)}, intensity_profile=PROFILE)
ENV = ComputeEnvironment([X])
JOB = Task("job", 1800, {"cpu": 1})


def test_profile_integral_repeats_and_means():
    # F(t) over [0, 3600) = 100 t; over [3600, 7200) = 360,000 + 300 (t − 3600); then repeats
    assert PROFILE.integral([0, 1800, 3600, 5400, 7200, 9000]).tolist() == [
        0, 180_000, 360_000, 900_000, 1_440_000, 1_620_000]
    assert PROFILE.mean(2700, 4500) == pytest.approx(200)  # 900 s at 100 + 900 s at 300
    assert PROFILE.at([0, 3600, 7200]).tolist() == [100, 300, 100]
    assert PROFILE.mean(3600, 3600) == 300  # an instant: the value there


@pytest.mark.parametrize(("hour", "grams"), [(0, 50), (0.5, 50), (0.75, 100), (1, 150)])
def test_carbon_is_power_times_intensity_over_the_run(hour, grams):
    r = ENV.run([JOB], "monitor", start_hour=hour)
    assert r.energy_j == pytest.approx(1.8e6)
    assert r.emissions_g == pytest.approx(grams)
    ds = r.dataset
    assert float(ds.emissions.sum()) + float(ds.idle_emissions.sum()) == pytest.approx(grams)


def test_idle_power_is_integrated_over_the_span_too():
    env = ComputeEnvironment([X.with_changes(idle_power_w=1000.0)])
    # task 0.5 kWh + idle 1,000 W × 1,800 s = 0.5 kWh, both at a mean 200 g/kWh: 200 g
    assert env.run([JOB], "monitor", start_hour=0.75).emissions_g == pytest.approx(200)


def test_shift_waits_for_the_greener_hour_within_the_window():
    # At hour 1 (300 g/kWh) with no deadline: wait an hour (the window is a day) → 50 g.
    r = ENV.run([JOB], "optimize", start_hour=1, shift=True)
    assert r.info["shift_s"] == pytest.approx(3600) and r.emissions_g == pytest.approx(50)
    assert r.start_s[0] == 0 and r.offset_s == pytest.approx(3600)
    # Deadline 2,700 s: it may start up to 900 s late, still inside the 300 hour: no wait.
    tight = Workflow([JOB], deadline_s=2700)
    r = ENV.run(tight, "optimize", start_hour=1, shift=True)
    assert r.info["shift_s"] == 0 and r.emissions_g == pytest.approx(150)
    assert r.info["deadline_met"]
    # Hour 1.5, deadline 4,000 s: a start at +1,800 s runs [7,200, 9,000] s, all at 100.
    r = ENV.run(Workflow([JOB], deadline_s=4000), "monitor", start_hour=1.5, shift=True)
    assert r.info["shift_s"] == pytest.approx(1800) and r.emissions_g == pytest.approx(50)


def test_start_after_delays_and_a_missed_deadline_is_reported():
    r = ENV.run(Workflow([JOB], start_after_s=3600), "monitor")  # runs in hour 1: 150 g
    assert r.offset_s == 3600 and r.emissions_g == pytest.approx(150)
    late = ENV.run(Workflow([JOB], start_after_s=3600, deadline_s=4000), "monitor")
    assert late.info["deadline_met"] is False
    with pytest.raises(SimulationInputError, match="deadline_s: must be after start_after_s"):
        Workflow([JOB], start_after_s=10, deadline_s=5)


def test_optimal_delays_and_chooses_the_instance_by_integrated_carbon():
    # q: the same machine at a constant 180 g/kWh (90 g for the job).
    q = ComputeInstance("q", {"cpu": Resource(1, 1000.0)}, intensity_g_per_kwh=180)
    env = ComputeEnvironment([X, q])
    # At hour 1, x emits 150 g now but 50 g an hour later (the window is a day): x, delayed.
    r = env.run([JOB], "optimal", start_hour=1)
    assert r.instances[r.assignment[0]] == "x" and r.emissions_g == pytest.approx(50)
    assert r.info["offset_s"] == pytest.approx(3600) and r.info["proven_optimal"] is False
    # No room to wait (deadline = the run itself): x would emit 150 g, q 90 g.
    r = env.run(Workflow([JOB], deadline_s=1800), "optimal", start_hour=1)
    assert r.instances[r.assignment[0]] == "q" and r.emissions_g == pytest.approx(90)


def test_environment_profile_and_shipped_names():
    assert {"synthetic-solar-day", "synthetic-night-low"} <= set(named_profiles())
    env = ComputeEnvironment([ComputeInstance("y", {"cpu": Resource(1, 1000.0)})])
    solar = env.with_profile("synthetic-solar-day")
    prof = solar["y"].intensity_profile
    assert prof.synthetic and "synthetic" in prof.label() and prof.licence.startswith("CC0")
    # the solar profile is 150 g/kWh in hour 13 and 420 at night: 0.5 kWh → 75 g and 210 g
    assert solar.run([JOB], start_hour=13).emissions_g == pytest.approx(75)
    assert solar.run([JOB], start_hour=2).emissions_g == pytest.approx(210)


def test_profile_files_csv_json_and_instances_file(tmp_path):
    csv = tmp_path / "grid.csv"
    csv.write_text("# source: test\nhour,intensity_g_per_kwh\n0,100\n1,300\n")
    assert load_profile(csv).values_g_per_kwh == (100, 300)
    js = tmp_path / "grid.json"
    js.write_text(json.dumps({"intensity_g_per_kwh": [100, 300], "resolution_s": 1800}))
    assert load_profile(js).period_s == 3600
    inst = tmp_path / "instances.json"
    inst.write_text(json.dumps({"intensity_profile": "grid.csv", "instances": [
        {"name": "x", "resources": {"cpu": {"capacity": 1, "cost": 1000}}},
        {"name": "z", "resources": {"cpu": {"capacity": 1, "cost": 1000}},
         "intensity_profile": [300]}]}))
    env = ComputeEnvironment.from_json(inst)
    assert env["x"].intensity_profile.values_g_per_kwh == (100, 300)
    assert env["z"].intensity_profile.values_g_per_kwh == (300,)
    assert env.run([JOB], start_hour=0).emissions_g == pytest.approx(50)
    tasks = tmp_path / "tasks.json"
    tasks.write_text(json.dumps({"start_after_s": 3600, "deadline_s": 9000, "tasks": [
        {"name": "job", "duration_s": 1800, "demand": {"cpu": 1}}]}))
    wf = Workflow.from_json(tasks)
    assert (wf.start_after_s, wf.deadline_s) == (3600, 9000)
    assert env.run(wf, shift=True).emissions_g == pytest.approx(50)  # waits for hour 2


@pytest.mark.parametrize(("text", "match"), [
    ("hour,intensity_g_per_kwh\n0,100\n1,lots\n", r"grid.csv: line 3: field 'intensity_g_per_kwh'"),
    ("hour,intensity_g_per_kwh\n0,100\n2,300\n", r"line 3: field 'hour': expected 1"),
    ("hour,intensity_g_per_kwh\n0,-5\n", r"line 2: field 'intensity_g_per_kwh': must be"),
    ("hour,co2\n0,100\n", r"no column 'intensity_g_per_kwh'"),
    ("# only a comment\n", r"no header line"),
])
def test_bad_profile_files_name_file_line_and_field(tmp_path, text, match):
    p = tmp_path / "grid.csv"
    p.write_text(text)
    with pytest.raises(SimulationInputError, match=match):
        load_profile(p)


def test_bad_profiles_in_instances_and_tasks_files(tmp_path):
    inst = tmp_path / "instances.json"
    inst.write_text(json.dumps({"instances": [
        {"name": "x", "resources": {"cpu": {"capacity": 1, "cost": 1}},
         "intensity_profile": [100, "high"]}]}))
    with pytest.raises(SimulationInputError,
                       match=r"instances\[0\] \('x'\): field 'intensity_profile\[1\]': must be a number"):
        ComputeEnvironment.from_json(inst)
    inst.write_text(json.dumps({"instances": [
        {"name": "x", "resources": {"cpu": {"capacity": 1, "cost": 1}},
         "intensity_profile": "missing.csv"}]}))
    with pytest.raises(SimulationInputError, match="neither a file nor a shipped profile"):
        ComputeEnvironment.from_json(inst)
    tasks = tmp_path / "tasks.json"
    tasks.write_text(json.dumps({"start_after_s": -1, "tasks": []}))
    with pytest.raises(SimulationInputError, match=r"tasks.json: field start_after_s: must be"):
        Workflow.from_json(tasks)
    tasks.write_text(json.dumps({"tasks": [], "window": 3}))
    with pytest.raises(SimulationInputError, match="'window': unknown top-level field"):
        Workflow.from_json(tasks)
    with pytest.raises(SimulationInputError, match="start_hour: must be a number"):
        ENV.run([JOB], start_hour="noon")
    with pytest.raises(SimulationInputError, match="intensity_profile: empty"):
        ComputeInstance("x", {}, intensity_profile=[])


def test_without_profiles_nothing_changes():
    env = ComputeEnvironment([ComputeInstance("c", {"cpu": Resource(1, 1000.0)},
                                              intensity_g_per_kwh=200)])
    a = env.run([JOB], start_hour=5, shift=True)
    assert a.emissions_g == pytest.approx(100) and a.info["shift_s"] == 0
    assert np.isnan(ComputeEnvironment([X.with_changes(intensity_profile=None)]).run(
        [JOB]).emissions_g)


def test_gantt_shows_the_grid_clock():
    pytest.importorskip("matplotlib")
    from energykernel.viz.gantt import gantt_figure

    r = ENV.run([JOB], "optimize", start_hour=13.5)
    ax = gantt_figure(r).axes[0]
    assert "from 13:30 on test" in ax.get_title()
    assert gantt_figure(ENV.run([JOB], "optimize", start_hour=1, shift=True)).axes[0] \
        .get_title().count("from 02:00") == 1  # waited an hour for the 100 g/kWh hour
