"""nn_et / nn_eq / nn_emb / nn_c / nn_total: formulas, broadcasting, validation."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from energykernel.carbon import (
    NNBreakdown,
    check_parameter,
    emissions,
    nn_c,
    nn_emb,
    nn_eq,
    nn_et,
    nn_total,
)

ET = dict(hardware_count=8, hardware_power_w=300, server_count=1, server_power_w=500,
          hours=10, pue=1.5)


def test_nn_et_formula():
    assert nn_et(**ET) == pytest.approx(1.5 * (8 * 300 + 1 * 500) * 10 / 1000)
    assert isinstance(nn_et(**ET), float)


def test_nn_eq_formula():
    assert nn_eq(server_count=4, server_power_w=250, hours=24, pue=1.2) == pytest.approx(28.8)


def test_nn_emb_formula_sums_hardware():
    g = nn_emb(device_count=[8, 1], production_energy_kwh=[100, 2000],
               intensity_g_per_kwh=[500, 400], transport_factor=[1.0, 0.8])
    assert g == pytest.approx(500 / 1.0 * 100 * 8 + 400 / 0.8 * 2000 * 1)


def test_nn_c_formula_sums_datacenters():
    g = nn_c(energy_kwh=[100, 200], intensity_g_per_kwh=[50, 400], transport_factor=[1, 0.5])
    assert g == pytest.approx(100 * 50 + 200 * 400 / 0.5)


def test_nn_c_accepts_region_codes():
    from energykernel.carbon import intensity

    g = nn_c(energy_kwh=[1, 1], intensity_g_per_kwh=["FR", "DE"], transport_factor=1)
    assert g == pytest.approx(intensity("FR") + intensity("DE"))


def test_zero_is_valid():
    assert nn_et(hardware_count=0, hardware_power_w=0, server_count=0, server_power_w=0,
                 hours=0, pue=1.0) == 0.0
    assert nn_c(energy_kwh=0, intensity_g_per_kwh=0, transport_factor=1) == 0.0
    assert nn_emb(device_count=0, production_energy_kwh=5, intensity_g_per_kwh=1,
                  transport_factor=1) == 0.0


@pytest.mark.parametrize("name", list(ET))
@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_bad_values_name_the_parameter(name, bad):
    with pytest.raises(ValueError, match=name):
        nn_et(**{**ET, name: bad})


def test_bad_value_inside_sequence_names_parameter():
    with pytest.raises(ValueError, match="energy_kwh"):
        nn_c(energy_kwh=[1, -2], intensity_g_per_kwh=1, transport_factor=1)


def test_transport_factor_zero_is_an_error():
    with pytest.raises(ValueError, match="transport_factor"):
        nn_c(energy_kwh=1, intensity_g_per_kwh=1, transport_factor=0)


def test_pue_below_one_is_an_error():
    with pytest.raises(ValueError, match="pue"):
        nn_eq(server_count=1, server_power_w=1, hours=1, pue=0.5)


def test_non_numbers_are_type_errors_naming_the_parameter():
    with pytest.raises(TypeError, match="hours"):
        nn_et(**{**ET, "hours": "ten"})
    with pytest.raises(TypeError, match="hours"):
        nn_et(**{**ET, "hours": {"a": 1}})


def test_check_parameter_is_the_calculators_own_check():
    """One check per parameter: check_parameter raises what the calculator raises."""
    ok = dict(hardware_count=1, hardware_power_w=300, server_count=0, server_power_w=0,
              hours=10, pue=1.2)
    for name, bad in [("pue", 0.5), ("hours", -3.0), ("hardware_count", math.nan)]:
        with pytest.raises(ValueError, match=f"^{name} ") as direct:
            nn_et(**{**ok, name: bad})
        with pytest.raises(ValueError) as alone:
            check_parameter(name, bad)
        assert str(alone.value) == str(direct.value)
    with pytest.raises(ValueError, match="transport_factor must be > 0"):
        check_parameter("transport_factor", 0)
    with pytest.raises(TypeError, match="hours must be a number, got the string 'abc'"):
        check_parameter("hours", "abc")
    assert float(check_parameter("pue", 1.0)) == 1.0
    with pytest.raises(KeyError):
        check_parameter("colour", 1)


def test_mismatched_lengths_name_both_parameters():
    with pytest.raises(ValueError, match=r"(?s)energy_kwh.*intensity_g_per_kwh"):
        nn_c(energy_kwh=[1, 2, 3], intensity_g_per_kwh=[1, 2], transport_factor=1)


def test_keyword_only():
    with pytest.raises(TypeError):
        nn_eq(1, 1, 1, 1)  # type: ignore[misc]


def test_numpy_arrays_and_tuples():
    a = nn_c(energy_kwh=np.array([1.0, 2.0]), intensity_g_per_kwh=(10, 20), transport_factor=1)
    assert a == pytest.approx(50.0)
    # n-D: axis 0 = datacentres (summed), axis 1 = scenarios (kept)
    e = np.array([[1.0, 2.0, 3.0], [10.0, 20.0, 30.0]])
    out = nn_c(energy_kwh=e, intensity_g_per_kwh=[100, 1], transport_factor=1)
    np.testing.assert_allclose(out, [110, 220, 330])


def test_xarray_sweep_over_pue_and_hours():
    xr = pytest.importorskip("xarray")
    pue = xr.DataArray([1.1, 1.5], dims="pue", coords={"pue": [1.1, 1.5]})
    hours = xr.DataArray([10.0, 20.0, 30.0], dims="hours", coords={"hours": [10, 20, 30]})
    out = nn_et(hardware_count=[8, 4], hardware_power_w=[300, 400], server_count=0,
                server_power_w=0, hours=hours, pue=pue)
    assert isinstance(out, xr.DataArray)
    assert set(out.dims) == {"pue", "hours"}
    expected = 1.5 * (8 * 300 + 4 * 400) * 20 / 1000
    assert float(out.sel(pue=1.5, hours=20)) == pytest.approx(expected)


def test_xarray_sums_datacenter_and_hardware_dims():
    xr = pytest.importorskip("xarray")
    energy = xr.DataArray([[1.0, 2.0], [3.0, 4.0]], dims=("datacenter", "scenario"))
    out = nn_c(energy_kwh=energy, intensity_g_per_kwh=[10, 100], transport_factor=1)
    assert out.dims == ("scenario",)
    np.testing.assert_allclose(out.values, [1 * 10 + 3 * 100, 2 * 10 + 4 * 100])
    count = xr.DataArray([2, 3], dims="hardware")
    assert float(nn_emb(device_count=count, production_energy_kwh=1, intensity_g_per_kwh=1,
                        transport_factor=1)) == 5.0


def test_xarray_mismatched_coords_error():
    xr = pytest.importorskip("xarray")
    a = xr.DataArray([1.0, 2.0], dims="region", coords={"region": ["a", "b"]})
    b = xr.DataArray([1.0, 2.0], dims="region", coords={"region": ["a", "c"]})
    with pytest.raises(ValueError, match="energy_kwh"):
        nn_c(energy_kwh=a, intensity_g_per_kwh=b, transport_factor=1)


def test_xarray_nan_is_rejected():
    xr = pytest.importorskip("xarray")
    with pytest.raises(ValueError, match="hours"):
        nn_eq(server_count=1, server_power_w=1, hours=xr.DataArray([1.0, np.nan]), pue=1)


def test_nn_total_breakdown():
    r = nn_total(
        training=dict(ET, intensity_g_per_kwh=400),
        inference=dict(server_count=[1, 2], server_power_w=100, hours=10, pue=1.0,
                       intensity_g_per_kwh=[100, 50], transport_factor=1.0),
        embodied=dict(device_count=8, production_energy_kwh=10, intensity_g_per_kwh=500),
    )
    assert isinstance(r, NNBreakdown)
    assert r.training_kwh == pytest.approx(nn_et(**ET))
    assert r.training_g == pytest.approx(nn_et(**ET) * 400)
    assert r.inference_kwh == pytest.approx(3.0)
    assert r.inference_g == pytest.approx(1.0 * 100 + 2.0 * 50)
    assert r.embodied_g == pytest.approx(8 * 10 * 500)
    assert r.total_g == pytest.approx(r.training_g + r.inference_g + r.embodied_g)
    d = r.to_dict()
    assert set(d) == {"embodied_g", "training_g", "inference_g", "total_g", "training_kwh",
                      "inference_kwh"}


def test_nn_total_embodied_number_and_amortised():
    assert nn_total(embodied=1234.0).total_g == 1234.0
    r = nn_total(embodied=dict(total_embodied_g=1000, time_reserved_h=10,
                               expected_lifespan_h=100, resources_reserved=1, total_resources=4))
    assert r.embodied_g == pytest.approx(25.0)


def test_nn_total_errors_name_phase_and_key():
    with pytest.raises(TypeError, match=r"training.*intensity_g_per_kwh"):
        nn_total(training=ET)
    with pytest.raises(TypeError, match=r"inference.*bogus"):
        nn_total(inference=dict(server_count=1, server_power_w=1, hours=1, pue=1,
                                intensity_g_per_kwh=1, bogus=2))


def test_nn_total_xarray_to_dataset():
    xr = pytest.importorskip("xarray")
    hours = xr.DataArray([1.0, 2.0], dims="hours")
    r = nn_total(training=dict(ET, hours=hours, intensity_g_per_kwh=100))
    ds = r.to_dataset()
    assert ds["training_g"].attrs["units"] == "gCO2e"
    assert ds["training_kwh"].dims == ("hours",)
    np.testing.assert_allclose(ds["total_g"].values, ds["training_g"].values)


def test_emissions_elementwise():
    assert emissions(3.6e6, intensity=100) == pytest.approx(100.0)
    assert emissions(3.6e6, intensity=100, pue=1.5) == pytest.approx(150.0)
    out = emissions(np.array([3.6e6, np.nan]), intensity=10)
    assert out[0] == pytest.approx(10.0) and np.isnan(out[1])
    with pytest.raises(ValueError, match="energy_j"):
        emissions(-1.0, intensity=10)
    with pytest.raises(ValueError, match="intensity"):
        emissions(1.0, intensity=-10)


def test_emissions_dataarray_and_region():
    xr = pytest.importorskip("xarray")
    from energykernel.carbon import intensity

    da = xr.DataArray([3.6e6, 7.2e6], dims="task")
    out = emissions(da, intensity="FR")
    assert out.attrs["units"] == "gCO2e"
    np.testing.assert_allclose(out.values, [intensity("FR"), 2 * intensity("FR")])


def test_import_does_not_load_xarray_or_pandas():
    code = ("import sys, energykernel.carbon as c; "
            "c.nn_et(hardware_count=1, hardware_power_w=1, server_count=0, server_power_w=0,"
            " hours=1, pue=1); c.intensity('FR'); "
            "print('xarray' in sys.modules, 'pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["False", "False"]
