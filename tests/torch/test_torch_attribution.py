"""Attribution arithmetic: exact sums, counter vs apportioned, through hand-driven counters."""

from __future__ import annotations

import time

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from fakes.counters import ManualBackend, use_manual_backend  # noqa: E402

from energykernel.torch import LayerEnergy  # noqa: E402
from energykernel.torch.attribution import (  # noqa: E402
    CallSpan,
    apportion_step,
    counter_backends,
    exclusive_ns,
)


@pytest.fixture
def manual(monkeypatch):
    """Manual counters for cpu and ram only."""
    return use_manual_backend(monkeypatch, estimate=False)


class BurnFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, backward_j):
        ctx.save_for_backward(x, w)
        ctx.backward_j = backward_j
        return x * w

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        ManualBackend.add("cpu:package-0", ctx.backward_j)
        return grad * w, (grad * x).sum().reshape(1), None


class Burn(nn.Module):
    """Spends ``forward_j`` in forward and ``backward_j`` in backward (on the counters)."""

    def __init__(self, forward_j: float, backward_j: float, sleep_s: float = 0.0) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))
        self.forward_j, self.backward_j, self.sleep_s = forward_j, backward_j, sleep_s

    def forward(self, x):
        ManualBackend.add("cpu:package-0", self.forward_j)
        if self.sleep_s:
            time.sleep(self.sleep_s)
        return BurnFn.apply(x, self.w, self.backward_j)


def run_steps(model, le, steps=3, outside_j=5.0, ram_j=1.0):
    for _ in range(steps):
        out = model(torch.ones(4))  # the input does not require grad: first-layer case
        ManualBackend.add("cpu:package-0", outside_j)  # "loss" work, outside layers
        ManualBackend.add("ram:dram-0", ram_j)
        out.sum().backward()
        le.step()


def test_counter_mode_gives_each_layer_exactly_its_energy(manual):
    model = nn.Sequential(Burn(1.0, 10.0), Burn(2.0, 20.0), Burn(3.0, 30.0))
    with LayerEnergy(model, counter_window_s=0) as le:
        run_steps(model, le)
    ds = le.dataset()
    cpu = ds.layer_energy.sel(component="cpu")
    for s in range(3):
        assert cpu.sel(step=s, **{"pass": "forward"}).values.tolist() == [1.0, 2.0, 3.0]
        assert cpu.sel(step=s, **{"pass": "backward"}).values.tolist() == [10.0, 20.0, 30.0]
        assert float(ds.outside_energy.sel(step=s, component="cpu")) == pytest.approx(5.0)
        assert float(ds.outside_energy.sel(step=s, component="ram")) == pytest.approx(1.0)
        assert float(ds.step_energy.sel(step=s, component="cpu")) == pytest.approx(71.0)
    assert set(ds.attribution.values.ravel()) == {"counter"}
    assert set(ds.method.values) == {"rapl"}


def test_apportioned_mode_shares_by_time_and_sums_exactly(manual):
    model = nn.Sequential(Burn(1.0, 10.0), Burn(2.0, 20.0))
    with LayerEnergy(model) as le:  # µs calls: far below RAPL's 10 ms → apportioned
        run_steps(model, le)
    ds = le.dataset()
    assert set(ds.attribution.values.ravel()) == {"apportioned"}
    for s in range(3):
        step_j = float(ds.step_energy.sel(step=s, component="cpu"))
        assert step_j == pytest.approx(33.0 + 5.0)
        layers_j = ds.layer_energy.sel(step=s, component="cpu")
        share = ds.layer_duration.sel(step=s) / float(ds.step_duration.sel(step=s))
        assert (abs(layers_j - step_j * share) <= 1e-9 * step_j).all()
        total = float(layers_j.sum()) + float(ds.outside_energy.sel(step=s, component="cpu"))
        assert total == pytest.approx(step_j, rel=1e-12)


def test_long_calls_switch_to_counters_after_the_first_step(manual):
    model = nn.Sequential(Burn(1.0, 10.0, sleep_s=0.012), Burn(2.0, 20.0))
    with LayerEnergy(model) as le:
        run_steps(model, le, steps=2)
    att = le.steps[1].attribution
    assert le.steps[0].attribution[("0", "forward")]["cpu"] == "apportioned"
    assert att[("0", "forward")]["cpu"] == "counter"
    assert att[("1", "forward")]["cpu"] == "apportioned"
    assert le.steps[1].layer_j[("0", "forward")]["cpu"] == pytest.approx(1.0)
    ds = le.dataset()
    assert ds.attribution.sel(layer="0", component="cpu", **{"pass": "forward"}) \
        == "apportioned+counter"
    step1 = ds.layer_energy.sel(step=1).sum(("layer", "pass")) + ds.outside_energy.sel(step=1)
    assert (abs(step1 - ds.step_energy.sel(step=1)) < 1e-9).all()


def test_runs_carry_backend_method_and_attribution(manual):
    import energykernel as ek

    model = nn.Sequential(Burn(1.0, 10.0))
    with LayerEnergy(model, counter_window_s={"rapl": 0}, prefix="net") as le:
        run_steps(model, le, steps=1)
    runs = ek.runs()
    assert sorted(runs.task.values) == ["net/(outside)/other", "net/0/backward", "net/0/forward"]
    assert set(runs.method.sel(component="cpu").values) == {"rapl"}
    cube = ek.dataset()
    assert float(cube.energy.sel(component="cpu").sum()) == pytest.approx(16.0)
    assert float(cube.energy.sel(task="net/0/backward", component="cpu").sum()) == \
        pytest.approx(10.0)


def test_layer_runs_carry_the_counters_bounds_per_step(manual):
    """Each layer run's interval: its energy ± one step reading's resolution per step."""
    import energykernel as ek

    manual.resolution_j = {"cpu:package-0": 0.25}  # ram's dram: exact readings
    model = nn.Sequential(Burn(1.0, 10.0))
    with LayerEnergy(model, counter_window_s={"rapl": 0}, prefix="net") as le:
        run_steps(model, le, steps=2)
    runs = ek.runs()
    fwd = runs.where(runs.task == "net/0/forward", drop=True)
    assert float(fwd.energy.sel(component="cpu").sum()) == pytest.approx(2.0)
    assert float(fwd.energy_lo.sel(component="cpu").sum()) == pytest.approx(2.0 - 2 * 0.25)
    assert float(fwd.energy_hi.sel(component="cpu").sum()) == pytest.approx(2.0 + 2 * 0.25)
    assert float(fwd.energy_hi.sel(component="ram").sum()) == \
        pytest.approx(float(fwd.energy.sel(component="ram").sum()))


def test_exclusive_time_of_nested_and_overlapping_calls():
    assert exclusive_ns([(0, 10), (2, 5)], 0, 20) == [7, 3]
    assert exclusive_ns([(2, 5), (0, 10)], 0, 20) == [3, 7]
    assert exclusive_ns([(0, 10), (5, 15)], 0, 20) == [10, 5]
    assert exclusive_ns([(-5, 5), (18, 30)], 0, 20) == [5, 2]
    assert exclusive_ns([(3, 3)], 0, 20) == [0]
    assert exclusive_ns([], 0, 20) == []


def test_apportion_step_is_exact_and_non_negative():
    spans = [CallSpan(("a", "forward"), 0, 40), CallSpan(("b", "forward"), 40, 60),
             CallSpan(("a", "backward"), 60, 80, frozenset({"rapl"}), {"cpu:0": 3.0})]
    shares = apportion_step({"cpu:0": 10.0, "gpu:0": 4.0}, spans, 0, 100,
                            {"cpu:0": "rapl", "gpu:0": "nvml"})
    e = shares.energy_j
    # cpu: 3 J measured, 7 J over 40 + 20 + 20 (outside) ns
    assert e[("a", "backward")]["cpu:0"] == 3.0
    assert e[("a", "forward")]["cpu:0"] == pytest.approx(3.5)
    assert e[("b", "forward")]["cpu:0"] == pytest.approx(1.75)
    assert shares.outside_j["cpu:0"] == pytest.approx(1.75)
    # gpu: no counter reading, so shared by time over all 100 ns
    assert e[("a", "backward")]["gpu:0"] == pytest.approx(0.8)
    assert shares.counter_calls[("a", "backward")] == {"rapl": 1}
    # a counter reading above the step total (rounding, skew) is scaled down, never negative
    over = apportion_step({"cpu:0": 2.0}, spans, 0, 100, {"cpu:0": "rapl"})
    assert over.energy_j[("a", "backward")]["cpu:0"] == pytest.approx(2.0)
    assert over.outside_j["cpu:0"] == 0.0 and over.energy_j[("a", "forward")]["cpu:0"] == 0.0


def test_counter_backends_thresholds():
    methods = {"rapl": "rapl", "nvml": "nvml", "estimate": "estimate"}
    assert counter_backends(0.0, methods, None) == frozenset()
    assert counter_backends(0.02, methods, None) == {"rapl"}
    assert counter_backends(0.2, methods, None) == {"rapl", "nvml", "estimate"}
    assert counter_backends(0.0, methods, 0) == {"rapl", "nvml", "estimate"}
    assert counter_backends(0.02, methods, {"nvml": 0.01}) == {"rapl", "nvml"}
