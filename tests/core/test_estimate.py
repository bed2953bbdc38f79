"""The estimate backend on this machine's real /proc, and its cited constants."""

from __future__ import annotations

import pytest

import energykernel as ek
from energykernel.counters import _constants as C
from energykernel.counters.estimate import EstimateBackend


def test_estimate_is_labelled_and_cites_sources():
    status = EstimateBackend().probe()
    assert status.available
    assert "idle" in status.reason and "max" in status.reason and "spread" in status.reason
    assert "CodeCarbon" in status.reason or "CCF" in status.reason
    assert {"cpu", "ram"} <= set(status.components)


def test_busy_loop_costs_cpu_energy(estimate_only):
    with ek.measure("spin") as m:
        sum(i * i for i in range(3_000_000))
    r = m.result
    assert set(r.method.values()) == {"estimate"}
    assert r.energy_j["cpu"] > 0
    assert r.energy_j["ram"] > 0
    assert r.energy_j.get("storage", 0.0) >= 0
    # idle power over the window plus busy seconds above it: never more than every CPU
    # busy (max power), never less than idle power (a tick of slack for /proc/stat)
    model = EstimateBackend().cpu_model()
    tick_j = model.cpus * model.j_per_busy_s / 100
    assert r.energy_j["cpu"] <= model.max_w * r.duration_s * 1.5 + tick_j
    assert r.energy_j["cpu"] >= model.idle_w * r.duration_s * 0.99


def test_idle_power_is_counted_in_an_empty_window(estimate_only):
    with ek.measure("nothing") as m:
        pass
    assert m.result.energy_j["cpu"] > 0  # idle power accrues, like a counter's
    lo, hi = m.result.energy_bounds_j["cpu"]
    assert lo == 0.0 and hi > m.result.energy_j["cpu"]  # below one CPU tick: "< hi"


def test_a_tick_inside_a_short_window_stays_within_the_model(estimate_only, monkeypatch):
    # /proc/stat counts busy time in ticks: one tick of every CPU can land inside a window
    # of a few µs. The estimate never exceeds the model's cap × duration, and stays within
    # its own bounds.
    from energykernel.core import _proc

    real = _proc.machine_cpu_busy_s
    tick = [0.0]

    def ticking() -> float:
        return real() + tick[0]

    monkeypatch.setattr(_proc, "machine_cpu_busy_s", ticking)
    with ek.measure("tick") as m:
        tick[0] = 2 * 0.01 * (_proc.os.cpu_count() or 1)  # a 10 ms tick of every CPU, twice
    r = m.result
    model = EstimateBackend().cpu_model()
    lo, hi = r.energy_bounds_j["cpu"]
    assert lo <= r.energy_j["cpu"] <= hi <= model.cap_w * r.duration_s * (1 + 1e-9)
    assert r.device_energy_j["cpu:estimate"] > hi  # the raw reading keeps the tick


def test_configured_tdp_is_used(estimate_only):
    ek.configure(cpu_tdp_w=200.0)
    model = EstimateBackend().cpu_model()
    assert model.max_w == 200.0 and model.idle_w == pytest.approx(200.0 * C.IDLE_FRACTION_OF_TDP)
    assert "cpu_tdp_w=200" in model.source


def test_idle_fraction_is_codecarbons():
    assert C.IDLE_FRACTION_OF_TDP == 0.10


@pytest.mark.parametrize(
    "model, tdp",
    [
        ("AMD EPYC 7763 64-Core Processor", 280),
        ("Intel(R) Xeon(R) Platinum 8380 CPU @ 2.30GHz", 270),
        ("Intel(R) Core(TM) i9-13900K", 125),
    ],
)
def test_cpu_table_lookup(model, tdp):
    assert C.lookup_cpu(model).tdp_w == tdp


def test_unknown_cpu_has_no_row():
    assert C.lookup_cpu("Mystery CPU 9000") is None
