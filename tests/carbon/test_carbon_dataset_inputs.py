"""carbon_dataset (``ds.ek.carbon``) inputs: DataArray dims and coordinates, and the same
checks (one rule per parameter, ``energykernel.carbon._args``) as the calculators."""

from __future__ import annotations

import numpy as np
import pytest

xr = pytest.importorskip("xarray")

from energykernel.carbon import ResultNotFinite, carbon_dataset, check_parameter  # noqa: E402
from energykernel.carbon import dataset as dataset_mod  # noqa: E402


def cube() -> xr.Dataset:
    return xr.Dataset(
        {"energy": (("task", "instance", "component"), np.full((2, 2, 1), 3.6e6)),
         "duration": (("task", "instance"), np.full((2, 2), 3600.0)),
         "idle_energy": ("instance", [3.6e6, 0.0])},
        coords={"task": ["train", "eval"], "instance": ["host-a", "host-b"],
                "component": ["cpu"]})


def test_accessor_unknown_dim_names_intensity_and_the_dim():
    import energykernel.data.accessor  # noqa: F401  (registers ds.ek)

    with pytest.raises(ValueError) as info:
        cube().ek.carbon(intensity=xr.DataArray([100.0, 200.0], dims=["nonsense"]))
    msg = str(info.value)
    assert msg.startswith("intensity: unknown dim(s) 'nonsense'") and "instance" in msg, msg


@pytest.mark.parametrize("name", ["intensity", "pue"])
def test_unknown_dim_for_intensity_and_pue(name):
    kw = {"intensity": 100.0, name: xr.DataArray([1.0, 1.2], dims=["bogus"])}
    with pytest.raises(ValueError, match=rf"^{name}: unknown dim\(s\) 'bogus'"):
        carbon_dataset(cube(), **kw)


def test_embodied_dataarray_may_only_use_the_dims_of_duration():
    with pytest.raises(ValueError, match=r"^embodied: unknown dim\(s\) 'component'"):
        carbon_dataset(cube(), intensity=1.0,
                       embodied=xr.DataArray([1.0], dims=["component"]))


def test_dataarray_with_another_length_is_named():
    with pytest.raises(ValueError, match=r"^intensity: dim 'instance' has 3 entries"):
        carbon_dataset(cube(), intensity=xr.DataArray([1.0, 2.0, 3.0], dims=["instance"]))


def test_dataarray_missing_a_label_is_an_error_not_silent_nan():
    da = xr.DataArray([100.0, 200.0], dims="instance", coords={"instance": ["host-a", "zz"]})
    with pytest.raises(ValueError, match=r"^intensity: no value for instance.*host-b"):
        carbon_dataset(cube(), intensity=da)


def test_dataarray_with_extra_labels_in_another_order_is_aligned():
    da = xr.DataArray([200.0, 999.0, 100.0], dims="instance",
                      coords={"instance": ["host-b", "other", "host-a"]})
    out = carbon_dataset(cube(), intensity=da)
    em = out["emissions"]
    assert em.dims == ("task", "instance", "component")
    assert float(em.sel(task="train", instance="host-a", component="cpu")) == 100.0
    assert float(em.sel(task="train", instance="host-b", component="cpu")) == 200.0
    assert list(out.instance.values) == ["host-a", "host-b"]


@pytest.mark.parametrize(("kw", "name", "value"), [
    ({"intensity": -1.0}, "intensity", -1.0),
    ({"intensity": 1.0, "pue": 0.5}, "pue", 0.5),
    ({"intensity": 1.0, "pue": float("nan")}, "pue", float("nan")),
    ({"intensity": {"host-a": 1.0, "host-b": -2.0}}, "intensity", -2.0),
    ({"intensity": 1.0, "pue": {"host-a": 1.0, "host-b": "x"}}, "pue", "x"),
    ({"intensity": xr.DataArray([1.0, -3.0], dims="instance")}, "intensity", -3.0),
    ({"intensity": 1.0, "embodied": -5.0}, "embodied", -5.0),
])
def test_errors_are_the_calculators_own_checks(kw, name, value):
    """One check per parameter: carbon_dataset says what check_parameter says."""
    with pytest.raises((TypeError, ValueError)) as direct:
        check_parameter(name, value)
    with pytest.raises(type(direct.value)) as info:
        carbon_dataset(cube(), **kw)
    msg, expected = str(info.value), str(direct.value)
    label = expected.split(" ", 1)[0]
    assert msg.split(" ", 1)[1] == expected.split(" ", 1)[1], (msg, expected)
    assert msg.startswith(label) or msg.startswith(f"{label}["), msg


def test_no_private_copies_of_the_checks():
    for name in ("_check", "_check_array", "_num", "_lookup"):
        assert not hasattr(dataset_mod, name), name


def test_energy_is_checked_like_energy_j():
    ds = cube()
    ds["energy"][0, 0, 0] = np.inf
    with pytest.raises(ValueError, match=r"^ds\['energy'\] must be a finite number"):
        carbon_dataset(ds, intensity=1.0)
    ds["energy"][0, 0, 0] = np.nan  # not measured: allowed, stays NaN
    assert np.isnan(carbon_dataset(ds, intensity=1.0)["emissions"][0, 0, 0])


def test_overflow_in_the_dataset_is_an_error_naming_the_inputs():
    with pytest.raises(ResultNotFinite) as info:
        carbon_dataset(cube(), intensity=1e308, pue=10.0)
    assert "intensity=1e+308" in str(info.value) and "pue=10" in str(info.value)
    assert {"intensity", "pue"} <= set(info.value.parameters)
    ds = cube()
    ds["energy"][:] = 1e308
    with pytest.raises(ResultNotFinite, match="emissions_incl_embodied"):
        carbon_dataset(ds, intensity=3.6e6, embodied={"host-a": 1.7e308, "host-b": 0.0})
