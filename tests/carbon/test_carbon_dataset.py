"""carbon_dataset on hand-built Datasets of the documented schema (cube and runs)."""

from __future__ import annotations

import json

import numpy as np
import pytest

xr = pytest.importorskip("xarray")

from energykernel.carbon import carbon_dataset, intensity  # noqa: E402

COMPONENTS = ["cpu", "gpu", "ram", "storage"]


def cube(method: str = "rapl") -> xr.Dataset:
    energy = np.array([
        [[3.6e6, np.nan, 1.8e6, 0.0], [7.2e6, 3.6e5, np.nan, np.nan]],
        [[1.0e6, 2.0e6, 3.0e5, 0.0], [np.nan] * 4],
    ])
    return xr.Dataset(
        {
            "energy": (("task", "instance", "component"), energy, {"units": "J"}),
            "duration": (("task", "instance"), np.array([[3600.0, 7200.0], [60.0, 0.0]]),
                         {"units": "s"}),
            "runs": (("task", "instance"), np.array([[1, 2], [1, 0]], dtype=np.int64)),
            "method": (("task", "instance", "component"),
                       np.where(np.isnan(energy), "", method).astype(object)),
        },
        coords={"task": ["train", "eval"], "instance": ["host-a", "host-b"],
                "component": COMPONENTS},
    )


def test_scalar_intensity_and_pue():
    ds = cube()
    out = carbon_dataset(ds, intensity=400.0, pue=1.5)
    em = out["emissions"]
    assert em.dims == ds["energy"].dims
    assert em.attrs["units"] == "gCO2e"
    assert float(em.sel(task="train", instance="host-a", component="cpu")) == pytest.approx(600.0)
    assert np.isnan(float(em.sel(task="train", instance="host-a", component="gpu")))
    assert em.attrs["intensity_g_per_kwh"] == 400.0 and em.attrs["pue"] == 1.5
    assert "emissions" not in ds  # a copy


def test_region_code():
    out = carbon_dataset(cube(), intensity="FR")
    v = float(out["emissions"].sel(task="train", instance="host-a", component="cpu"))
    assert v == pytest.approx(intensity("FR"))
    assert "FRA" in out["emissions"].attrs["intensity_source"]


def test_per_instance_mapping_and_dataarray():
    ds = cube(method="simulated")
    out = carbon_dataset(ds, intensity={"host-a": "FR", "host-b": 100.0},
                         pue={"host-a": 1.0, "host-b": 2.0})
    em = out["emissions"]
    assert float(em.sel(task="train", instance="host-b", component="cpu")) == pytest.approx(400.0)
    assert json.loads(em.attrs["intensity_g_per_kwh"]) == {"host-a": intensity("FR"),
                                                           "host-b": 100.0}
    da = xr.DataArray([intensity("FR"), 100.0], dims="instance",
                      coords={"instance": ["host-a", "host-b"]})
    out2 = carbon_dataset(ds, intensity=da, pue={"host-a": 1.0, "host-b": 2.0})
    xr.testing.assert_allclose(out2["emissions"], em)


def test_missing_instance_in_mapping_is_named():
    with pytest.raises(ValueError, match="host-b"):
        carbon_dataset(cube(), intensity={"host-a": 10.0})


def test_bad_inputs():
    with pytest.raises(ValueError, match="intensity"):
        carbon_dataset(cube(), intensity=-1)
    with pytest.raises(ValueError, match="pue"):
        carbon_dataset(cube(), intensity=1, pue=0.5)
    with pytest.raises(KeyError, match="Narnia"):
        carbon_dataset(cube(), intensity="Narnia")
    with pytest.raises(ValueError, match="energy"):
        carbon_dataset(xr.Dataset({"x": ("a", [1.0])}), intensity=1)


def test_intensity_required(monkeypatch):
    monkeypatch.delenv("ENERGYKERNEL_REGION", raising=False)
    from energykernel.carbon import dataset as mod

    monkeypatch.setattr(mod, "_configured_region", lambda: None)
    with pytest.raises(ValueError, match="intensity is required"):
        carbon_dataset(cube())
    monkeypatch.setattr(mod, "_configured_region", lambda: "DE")
    out = carbon_dataset(cube())
    assert out["emissions"].attrs["intensity_g_per_kwh"] == intensity("DE")


def test_embodied_amortised_over_duration():
    spec = dict(total_embodied_g=8760.0, expected_lifespan_h=8760.0)  # 1 g per hour
    out = carbon_dataset(cube(), intensity=0.0, embodied=spec)
    emb = out["embodied_emissions"]
    assert emb.dims == ("task", "instance") and emb.attrs["units"] == "gCO2e"
    assert float(emb.sel(task="train", instance="host-b")) == pytest.approx(2.0)
    total = out["emissions_incl_embodied"]
    assert float(total.sel(task="train", instance="host-a")) == pytest.approx(1.0)


def test_embodied_per_instance_numbers():
    out = carbon_dataset(cube(), intensity=1.0, embodied={"host-a": 5.0, "host-b": 0.0})
    assert float(out["embodied_emissions"].sel(task="eval", instance="host-a")) == 5.0


def test_runs_dataset():
    # ek.runs(): dim run, coordinate instance along run
    ds = xr.Dataset(
        {"energy": (("run", "component"), np.array([[3.6e6, 0, 0, 0], [7.2e6, 0, 0, 0]])),
         "duration": ("run", [10.0, 20.0])},
        coords={"component": COMPONENTS, "instance": ("run", ["a", "b"]),
                "task": ("run", ["t", "t"])},
    )
    out = carbon_dataset(ds, intensity={"a": 1.0, "b": 10.0})
    np.testing.assert_allclose(out["emissions"].sel(component="cpu").values, [1.0, 20.0])


def test_netcdf_round_trip(tmp_path):
    out = carbon_dataset(cube(), intensity={"host-a": "FR", "host-b": 1.0},
                         embodied=dict(total_embodied_g=1.0, expected_lifespan_h=1.0))
    path = tmp_path / "c.nc"
    out.drop_vars("method").to_netcdf(path, engine="h5netcdf")
    back = xr.load_dataset(path, engine="h5netcdf")
    xr.testing.assert_allclose(back["emissions"], out["emissions"])


def simulated() -> xr.Dataset:
    # the shape energykernel.sim produces: per-instance intensity (NaN = not given), idle
    ds = cube(method="simulated")
    ds["intensity"] = ("instance", [np.nan, 50.0])
    ds["idle_energy"] = ("instance", [3.6e6, 0.0])
    return ds


def test_dataset_intensity_variable(monkeypatch):
    from energykernel.carbon import dataset as mod

    monkeypatch.setattr(mod, "_configured_region", lambda: None)
    with pytest.raises(ValueError, match="host-a"):
        carbon_dataset(simulated())
    monkeypatch.setattr(mod, "_configured_region", lambda: "FR")
    out = carbon_dataset(simulated())
    em = out["emissions"]
    assert float(em.sel(task="train", instance="host-b", component="cpu")) == pytest.approx(100.0)
    assert float(em.sel(task="train", instance="host-a", component="cpu")) == pytest.approx(
        intensity("FR"))
    assert float(out["idle_emissions"].sel(instance="host-a")) == pytest.approx(intensity("FR"))
    # an explicit intensity wins over the variable
    out2 = carbon_dataset(simulated(), intensity=1.0)
    assert float(out2["emissions"].sel(task="train", instance="host-b", component="cpu")) == 2.0
