"""Finite inputs whose result overflows the float range: a ValueError naming the parameters
that make it so, never ``inf`` (nor NaN), from every calculator and ``emissions``."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from energykernel.carbon import (
    ResultNotFinite,
    check_parameter,
    embodied_amortised,
    emissions,
    nn_c,
    nn_emb,
    nn_eq,
    nn_et,
    nn_total,
    sci,
)

ET = dict(hardware_count=10_000, hardware_power_w=330, server_count=0, server_power_w=0,
          hours=355.2, pue=1.10)
BIG = 1e308


def raises_naming(*names: str, absent: tuple[str, ...] = ()):
    """pytest.raises for a ResultNotFinite naming ``names`` (and not ``absent``)."""
    class _Check:
        def __enter__(self):
            self.ctx = pytest.raises(ResultNotFinite)
            self.info = self.ctx.__enter__()
            return self.info

        def __exit__(self, *exc):
            self.ctx.__exit__(*exc)
            msg = str(self.info.value)
            assert msg.startswith("result is not finite") or ": result is not finite" in msg
            for n in names:
                assert f"{n}=" in msg, (n, msg)
                assert n in self.info.value.parameters
            for n in absent:
                assert f"{n}=" not in msg, (n, msg)
            assert isinstance(self.info.value, ValueError)
            return True
    return _Check()


def test_nn_et_names_the_overflowing_factors():
    with raises_naming("hours", "hardware_power_w", absent=("pue", "server_count")):
        nn_et(**{**ET, "hours": BIG, "hardware_power_w": BIG})
    with raises_naming("hardware_count", "hardware_power_w"):
        nn_et(**{**ET, "hardware_count": BIG, "hardware_power_w": BIG})


def test_nn_et_sum_of_two_finite_terms_overflowing():
    with raises_naming("hardware_power_w", "server_power_w"):
        nn_et(hardware_count=1, hardware_power_w=BIG, server_count=1, server_power_w=BIG,
              hours=1, pue=1.5)


def test_every_calculator_and_emissions():
    with raises_naming("server_count"):
        nn_eq(server_count=BIG, server_power_w=10, hours=1, pue=1)
    with raises_naming("transport_factor"):  # a tiny divisor overflows too
        nn_emb(device_count=1, production_energy_kwh=1, intensity_g_per_kwh=1,
               transport_factor=1e-320)
    with raises_naming("energy_kwh", "intensity_g_per_kwh"):
        nn_c(energy_kwh=BIG, intensity_g_per_kwh=BIG, transport_factor=1)
    with raises_naming("energy_kwh"):  # each entry finite, their sum is not
        nn_c(energy_kwh=[BIG, BIG], intensity_g_per_kwh=1, transport_factor=1)
    with raises_naming("energy_j", "intensity"):
        emissions(BIG, intensity=BIG)
    with raises_naming("energy_kwh", "intensity_g_per_kwh"):
        sci(BIG, BIG, 0, 1)
    with raises_naming("total_embodied_g", "time_reserved_h"):
        embodied_amortised(total_embodied_g=BIG, time_reserved_h=BIG, expected_lifespan_h=1)


def test_nn_total_names_the_phase_and_checks_the_total():
    training = dict(ET, hardware_power_w=1e300, intensity_g_per_kwh=1e300)
    with pytest.raises(ResultNotFinite, match=r"^training: result is not finite"):
        nn_total(training=training)
    with raises_naming("embodied_g", "training_g"):
        nn_total(training=dict(ET, hardware_power_w=1e290, intensity_g_per_kwh=1e14),
                 embodied=1.7e308)


def test_emissions_keeps_nan_energy_and_flags_only_overflow():
    out = emissions(np.array([np.nan, 1.0]), intensity=BIG)
    assert np.isnan(out[0]) and math.isfinite(out[1])
    with raises_naming("energy_j"):
        emissions(np.array([np.nan, BIG]), intensity=BIG)


def test_dataarray_sweep_overflowing_at_one_point():
    xr = pytest.importorskip("xarray")
    hours = xr.DataArray([1.0, BIG], dims="sweep")
    with raises_naming("hours", absent=("pue",)):
        nn_et(**{**ET, "hours": hours})


def test_no_runtime_warning_leaks():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ResultNotFinite):
            nn_et(**{**ET, "hours": BIG})


@pytest.mark.parametrize("value", [10 ** 400, [1, 10 ** 400], 10 ** 5000],
                         ids=["401-digits", "in-a-list", "5001-digits"])
def test_integers_beyond_the_float_range_are_value_errors(value):
    with pytest.raises(ValueError, match=r"^hours must be a finite number, got .*beyond the "
                                         r"float range") as info:
        nn_et(**{**ET, "hours": value})
    assert len(str(info.value)) < 200  # never thousands of digits
    with pytest.raises(ValueError, match=r"^hours "):
        check_parameter("hours", value)


def test_large_but_finite_results_are_unchanged():
    assert nn_et(**{**ET, "hours": 1e290}) == pytest.approx(1.10 * 10_000 * 330 * 1e290 / 1000)
    assert nn_et(**ET) / 1000 == pytest.approx(1289.376, rel=1e-6)
