"""What-if arithmetic of the simulator (energykernel.sim.whatif): pure, no widgets."""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest

from energykernel.sim import ComputeEnvironment, ComputeInstance, Resource, Task, Workflow
from energykernel.sim.whatif import (
    breakdown,
    compute,
    default_environment,
    default_workflow,
    lanes,
    scale_workflow,
)

ENV = ComputeEnvironment([ComputeInstance("a", {"cpu": Resource(4, 5.0)}),
                          ComputeInstance("b", {"cpu": Resource(4, 1.0)})])
WF = Workflow([Task(f"t{k}", 10, {"cpu": 4}) for k in range(3)])


def test_imports_no_widgets_and_no_matplotlib():
    code = ("import sys, energykernel.sim.whatif; "
            "bad = {'ipywidgets', 'matplotlib', 'IPython'} & set(sys.modules); "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_scale_workflow():
    assert scale_workflow(WF) is WF
    assert [t.name for t in scale_workflow(WF, n_tasks=2)] == ["t0", "t1"]
    grown = scale_workflow(WF, n_tasks=7, duration_spread=0.2, seed=3)
    prefix = scale_workflow(WF, n_tasks=4, duration_spread=0.2, seed=3)
    assert [t.duration_s for t in grown][:4] == [t.duration_s for t in prefix]
    assert all(8 <= t.duration_s <= 12 for t in grown)
    assert scale_workflow(WF, demand_scale=1.5)[0].demand == {"cpu": 6.0}
    for kw, field in [({"n_tasks": 0}, "n_tasks"), ({"n_tasks": 2.5}, "n_tasks"),
                      ({"duration_spread": 1.0}, "duration_spread"),
                      ({"duration_spread": "x"}, "duration_spread"),
                      ({"demand_scale": 0}, "demand_scale"),
                      ({"demand_scale": float("nan")}, "demand_scale"), ({"seed": -1}, "seed")]:
        with pytest.raises(ValueError, match=f"^{field}: "):
            scale_workflow(WF, **kw)


def test_lanes_keep_concurrent_tasks_apart():
    env = ComputeEnvironment([ComputeInstance("a", {"cpu": Resource(8, 1.0)}),
                              ComputeInstance("b", {"cpu": Resource(8, 1.0)})])
    wf = Workflow([Task("x", 10, {"cpu": 2}), Task("y", 20, {"cpu": 2}),
                   Task("z", 5, {"cpu": 2}), Task("w", 30, {"cpu": 8})])
    r = env.run(wf, "monitor")
    lane, count = lanes(r)
    assert r.assignment.tolist() == [0, 0, 0, 1]
    assert sorted(lane.tolist()[:3]) == [0, 1, 2] and count.tolist() == [3, 1]
    for i in range(2):  # no two steps of one lane overlap
        for k in range(count[i]):
            steps = sorted((r.start_s[s], r.end_s[s]) for s in range(4)
                           if r.assignment[s] == i and lane[s] == k)
            assert all(a[1] <= b[0] for a, b in itertools.pairwise(steps))
    # sequential tasks share one lane
    seq = ComputeEnvironment([ComputeInstance("a", {"cpu": Resource(2, 1.0)})]).run(wf[:3])
    assert lanes(seq)[1].tolist() == [1]


def test_breakdown_per_instance_and_component():
    env = ComputeEnvironment([
        ComputeInstance("a", {"cpu": Resource(4, 5.0), "ram": Resource(8, 1.0)},
                        idle_power_w=36, intensity_g_per_kwh=100),
        ComputeInstance("b", {"cpu": Resource(4, 1.0)})])
    out = compute(env, Workflow([Task("t", 3600, {"cpu": 4, "ram": 8})]), mode="monitor")
    b = out["breakdown"]
    assert b["components"] == ["cpu", "ram"] and b["tasks"] == [1, 0]
    assert b["energy_kwh"]["cpu"] == pytest.approx([0.02, 0])
    assert b["energy_kwh"]["ram"] == pytest.approx([0.008, 0])
    assert b["energy_kwh"]["idle"] == pytest.approx([0.036, 0])
    assert b["energy_kwh"]["total"] == pytest.approx([0.064, 0])
    assert b["emissions_g"]["cpu"][0] == pytest.approx(2.0)
    assert b["emissions_g"]["total"][0] == pytest.approx(6.4)
    assert np.isnan(b["emissions_g"]["total"][1])  # b has no intensity
    again = breakdown(out["simulation"], out["environment"])
    assert again["energy_kwh"] == b["energy_kwh"] and again["tasks"] == b["tasks"]
    t = out["totals"]["monitor"]
    assert t["energy_kwh"] == pytest.approx(0.064) and t["idle_kwh"] == pytest.approx(0.036)
    assert t["component_kwh"]["cpu"] == pytest.approx(0.02)


def test_compute_is_pure():
    out = compute(ENV, WF, mode="monitor", instances={"a": {"speed": 2.0}}, compare=False)
    assert set(out["results"]) == {"monitor"} and out["errors"] == {}
    assert out["simulation"].end_s.max() == pytest.approx(10)
    out = compute(ENV, WF, instances={"a": {"pue": 0.5}})
    assert "a.pue" in out["errors"] and out["simulation"] is None
    out = compute(ENV, WF, mode="fastest")
    assert "mode" in out["errors"] and out["simulation"] is None


def test_compute_reports_errors_by_field():
    out = compute(ENV, WF, n_tasks=0, deadline_s="soon", instances={"a": {"cpu.cost": -1.0}})
    assert out["simulation"] is None
    assert set(out["errors"]) == {"n_tasks", "deadline", "a.cpu.cost"}
    assert "≥ 0" in out["errors"]["a.cpu.cost"]
    assert "number" in out["errors"]["deadline"]
    out = compute(ENV, WF, instances={"a": {"intensity_g_per_kwh": "lots"}})
    assert "number" in out["errors"]["a.intensity_g_per_kwh"]
    out = compute(ENV, WF, deadline_s="-5")
    assert out["errors"] == {"deadline": "must be > 0 s, or empty for none"}


def test_defaults_run_in_every_mode():
    out = compute(default_environment(), default_workflow())
    assert out["errors"] == {} and set(out["results"]) == {"monitor", "optimize", "optimal"}
    assert out["totals"]["optimal"]["energy_kwh"] <= out["totals"]["optimize"]["energy_kwh"] + 1e-9
