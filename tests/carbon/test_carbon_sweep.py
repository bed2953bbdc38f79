"""energykernel.carbon.sweep: the what-if sweep behind the NN calculator (pure arithmetic)."""

from __future__ import annotations

import math

import pytest

from energykernel.carbon import nn_total
from energykernel.carbon.sweep import sweep_points, sweep_totals

GPT3 = {"training": dict(hardware_count=10_000, hardware_power_w=330, server_count=0,
                         server_power_w=0, hours=355.2, pue=1.10, intensity_g_per_kwh=429)}


def test_sweep_points():
    assert sweep_points("pue", 7.0) == pytest.approx([1 + k / 10 for k in range(11)])
    assert sweep_points("hours", 355.2, n=5) == pytest.approx([0, 177.6, 355.2, 532.8, 710.4])
    assert sweep_points("hours", 0.0, n=3) == pytest.approx([0, 50, 100])
    assert sweep_points("intensity_g_per_kwh", math.nan, n=2) == pytest.approx([0, 1000])
    with pytest.raises(ValueError, match="n must be >= 2"):
        sweep_points("hours", 1.0, n=1)


def test_sweep_totals_vary_one_input():
    totals = sweep_totals(GPT3, "training", "pue", [1.0, 2.0])
    assert totals[1] == pytest.approx(2 * totals[0])
    assert totals[0] == pytest.approx(
        nn_total(training=dict(GPT3["training"], pue=1.0)).total_g)
    assert GPT3["training"]["pue"] == 1.10  # the input is not changed


def test_invalid_or_overflowing_points_are_nan():
    totals = sweep_totals(GPT3, "training", "pue", [0.5, 1.0, 1e308])
    assert math.isnan(totals[0]) and math.isfinite(totals[1]) and math.isnan(totals[2])
