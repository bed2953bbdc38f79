"""The estimate backend on this machine's real /proc, and its cited constants."""

from __future__ import annotations

import pytest

import energykernel as ek
from energykernel.counters import _constants as C
from energykernel.counters.estimate import EstimateBackend


def test_estimate_is_labelled_and_cites_sources():
    status = EstimateBackend().probe()
    assert status.available
    assert "W per busy thread" in status.reason and "CodeCarbon" in status.reason
    assert {"cpu", "ram"} <= set(status.components)


def test_busy_loop_costs_cpu_energy(estimate_only):
    with ek.measure("spin") as m:
        sum(i * i for i in range(3_000_000))
    r = m.result
    assert set(r.method.values()) == {"estimate"}
    assert r.energy_j["cpu"] > 0
    assert r.energy_j["ram"] > 0
    assert r.energy_j.get("storage", 0.0) >= 0
    # cpu estimate = busy seconds × W/thread, so it cannot exceed all threads flat out
    import os

    watts, _ = EstimateBackend().cpu_power_per_thread()
    assert r.energy_j["cpu"] <= watts * (os.cpu_count() or 1) * r.duration_s * 1.5 + watts * 0.02


def test_configured_tdp_is_used(estimate_only):
    import os

    ek.configure(cpu_tdp_w=200.0)
    watts, source = EstimateBackend().cpu_power_per_thread()
    assert watts == pytest.approx(200.0 / (os.cpu_count() or 1))
    assert "cpu_tdp_w=200" in source


def test_default_watts_per_thread_is_the_table_median():
    import statistics

    assert statistics.median(
        s.tdp_w / s.threads for s in C.CPU_TABLE
    ) == C.DEFAULT_WATTS_PER_THREAD
    assert all(s.source for s in C.CPU_TABLE)


@pytest.mark.parametrize(
    "model, tdp",
    [
        ("AMD EPYC 7763 64-Core Processor", 280),
        ("Intel(R) Xeon(R) Platinum 8380 CPU @ 2.30GHz", 270),
        ("12th Gen Intel(R) Core(TM) i7-12700", 65),
    ],
)
def test_cpu_table_lookup(model, tdp):
    assert C.lookup_cpu(model).tdp_w == tdp


def test_unknown_cpu_has_no_row():
    assert C.lookup_cpu("Mystery CPU 9000") is None
