"""SI formatting: a figure that rounds up to the next prefix takes it (never 1e+03 mJ)."""

from __future__ import annotations

import pytest

from energykernel.core.units import duration, si, si_interval


@pytest.mark.parametrize(("value", "text"), [
    (0.9996, "1 J"), (999.6, "1 kJ"), (-0.9996, "-1 J"), (4.213e-05, "42.1 µJ"),
    (1234.5, "1.23 kJ"), (0.0, "0 J"), (12.3456, "12.3 J"), (999.4e-3, "999 mJ")])
def test_si(value, text):
    assert si(value, "J") == text


@pytest.mark.parametrize(("seconds", "text"), [
    (0.25, "250 ms"), (0.9996, "1 s"), (4.2e-5, "42 µs"), (59.99, "60 s"),
    (3725, "62 min 5 s"), (0.0, "0 s")])
def test_duration(seconds, text):
    assert duration(seconds) == text


def test_no_exponent_anywhere():
    for k in range(-12, 10):  # up to the GJ
        for mantissa in (1.0, 9.996, 4.213):
            text = si(mantissa * 10.0 ** k, "J") + si_interval(
                mantissa * 10.0 ** k, 0.5 * 10.0 ** k, 20 * 10.0 ** k, "J")
            assert "e+" not in text and "e-" not in text, text
