"""The accounting arithmetic: device deltas, components, process share, bounds."""

from __future__ import annotations

import math

import pytest

from energykernel.core.accounting import (
    combine_terms,
    component_energy,
    device_delta,
    energy_bounds,
    process_share,
    scale_to_share,
)
from energykernel.core.units import si_interval
from energykernel.counters.base import BoundTerms


def test_delta_is_never_negative_and_detail_devices_count_toward_nothing():
    delta = device_delta({"a": 5.0, "b": 1.0}, {"a": 7.0, "b": 0.5, "c": 2.0})
    assert delta == {"a": 2.0, "b": 0.0, "c": 2.0}
    assert device_delta({}, {"a": 1.0, "b": 2.0}, keep={"a"}) == {"a": 1.0}
    energy = component_energy({"pkg0": 3.0, "pkg1": 2.0, "psys": 9.0, "dram": 1.0},
                              {"pkg0": "cpu", "pkg1": "cpu", "psys": None, "dram": "ram"},
                              ["cpu", "ram", "gpu"])
    assert energy == {"cpu": 5.0, "ram": 1.0, "gpu": 0.0}


def test_process_share():
    assert process_share(1.0, 4.0) == 0.25
    assert process_share(5.0, 4.0) == 1.0
    assert process_share(0.01, 0.0) == 1.0 and process_share(0.0, 0.0) == 0.0
    assert scale_to_share({"cpu": 4.0, "ram": 2.0, "gpu": 8.0}, 0.5) == {
        "cpu": 2.0, "ram": 1.0, "gpu": 8.0}


def test_bounds_from_resolution_spread_and_cap():
    terms = {"cpu": BoundTerms(abs_j=0.1), "ram": BoundTerms(low=0.5, high=2.0),
             "gpu": BoundTerms(abs_j=1.0, cap_w=10.0)}
    got = energy_bounds({"cpu": 0.05, "ram": 4.0, "gpu": 3.0, "storage": 1.0}, terms, 0.2)
    assert got["cpu"] == pytest.approx([0.0, 0.15])  # never below 0
    assert got["ram"] == pytest.approx([2.0, 8.0])
    assert got["gpu"] == pytest.approx([2.0, 2.0])  # capped at 10 W × 0.2 s
    assert got["storage"] == [1.0, 1.0]  # exact where a component has no terms
    combined = combine_terms([BoundTerms(0.1, 0.9, 1.1, 5.0), BoundTerms(0.2, 0.8, 1.2, 7.0)])
    assert (combined.abs_j, combined.low, combined.high, combined.cap_w) == pytest.approx(
        (0.3, 0.8, 1.2, 12.0))
    assert combine_terms([BoundTerms(cap_w=5.0), BoundTerms()]).cap_w is None
    assert combine_terms([]) is None


def test_figures_are_shown_with_their_interval():
    assert si_interval(1.234, 1.233, 1.235, "J") == "1.23 J"
    assert si_interval(1.2, 1.1, 1.3, "J") == "≈ 1.2 J ± 100 mJ"
    assert si_interval(0.0337, 0.0, 0.0337, "J") == "< 33.7 mJ"
    assert si_interval(0.01, 0.001, 0.05, "J") == "10 mJ (1 mJ–50 mJ)"  # wide: the range
    assert si_interval(2.0, math.nan, math.nan, "J") == "2 J"
