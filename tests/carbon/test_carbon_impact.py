"""Impact Framework export: manifest structure, YAML validity, and the real if-run round trip.

The round trip needs ``if-run`` (npm ``@grnsft/if``), found through ``ENERGYKERNEL_IF_RUN``,
``tools/if/node_modules/.bin/if-run`` or ``PATH``. Install it with
``npm install --prefix tools/if --no-audit --no-fund @grnsft/if@1.1.0``.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from energykernel.carbon import carbon_dataset, nn_total, to_if_manifest
from energykernel.carbon.impact import to_yaml

ROOT = Path(__file__).resolve().parents[2]


def _if_run() -> str | None:
    env = os.environ.get("ENERGYKERNEL_IF_RUN")
    if env and Path(env).is_file():
        return env
    local = ROOT / "tools/if/node_modules/.bin/if-run"
    if local.is_file():
        return str(local)
    return shutil.which("if-run")


IF_RUN = _if_run()
needs_if = pytest.mark.skipif(
    IF_RUN is None or shutil.which("node") is None,
    reason="if-run not installed: npm install --prefix tools/if --no-audit --no-fund "
           "@grnsft/if@1.1.0")


def breakdown():
    return nn_total(
        training=dict(hardware_count=10_000, hardware_power_w=330, server_count=[0, 2],
                      server_power_w=[0, 800], hours=355.2, pue=[1.10, 1.2],
                      intensity_g_per_kwh=[429, "FR"], transport_factor=[1.0, 0.9]),
        inference=dict(server_count=16, server_power_w=450, hours=24 * 365, pue=1.2,
                       intensity_g_per_kwh="aws:us-east-1"),
        embodied=dict(device_count=[10_000, 1250], production_energy_kwh=[400, 3000],
                      intensity_g_per_kwh=["TW", "CN"], transport_factor=1.0),
    )


def amortised():
    return nn_total(
        training=dict(hardware_count=384, hardware_power_w=400, server_count=0,
                      server_power_w=0, hours=2820.3, pue=1.0, intensity_g_per_kwh=57),
        embodied=dict(total_embodied_g=3_700_000, time_reserved_h=2820.3,
                      expected_lifespan_h=6 * 8760, resources_reserved=48,
                      total_resources=1000))


def dataset():
    xr = pytest.importorskip("xarray")
    energy = np.array([[[3.6e6, np.nan, 1.8e6, 0.0], [7.2e6, 3.6e5, np.nan, np.nan]]])
    ds = xr.Dataset(
        {"energy": (("task", "instance", "component"), energy, {"units": "J"}),
         "duration": (("task", "instance"), np.array([[12.5, 0.2]]), {"units": "s"}),
         "runs": (("task", "instance"), np.array([[1, 1]])),
         "method": (("task", "instance", "component"), np.full(energy.shape, "rapl", object))},
        coords={"task": ["cell-1"], "instance": ["host-a", "host-b"],
                "component": ["cpu", "gpu", "ram", "storage"]})
    return carbon_dataset(ds, intensity={"host-a": "FR", "host-b": 350.0},
                          pue={"host-a": 1.3, "host-b": 1.0})


def test_yaml_emitter_is_valid_yaml():
    yaml = pytest.importorskip("yaml")
    obj = {"a": 1, "b": [1.5, 1e-07, 2e20], "c": {"d": "x: y", "e": None, "f": [{"g": True}]},
           "h": "é\"quote"}
    assert yaml.safe_load(to_yaml(obj)) == obj


def test_yaml_rejects_nan():
    with pytest.raises(ValueError, match="non-finite"):
        to_yaml({"a": math.nan})


def test_manifest_structure(tmp_path):
    yaml = pytest.importorskip("yaml")
    path = tmp_path / "nn.yml"
    text = to_if_manifest(breakdown(), path, functional_units=1e6)
    assert path.read_text() == text
    m = yaml.safe_load(text)
    methods = {p["method"] for p in m["initialize"]["plugins"].values()}
    assert {"Multiply", "Sum", "Coefficient", "Divide", "Sci"} <= methods
    assert all(p["path"] == "builtin" for p in m["initialize"]["plugins"].values())
    node = m["tree"]["children"]["nn"]
    assert set(node["pipeline"]["compute"]) <= set(m["initialize"]["plugins"])
    obs = node["inputs"][0]
    assert obs["training-b/grid/carbon-intensity"] == pytest.approx(
        __import__("energykernel.carbon", fromlist=["intensity"]).intensity("FR"))
    # IF parameter names may not contain digits
    assert not any(ch.isdigit() for key in obs if "/" in key for ch in key)


def test_export_errors():
    with pytest.raises(TypeError, match="NNBreakdown"):
        to_if_manifest(42)
    with pytest.raises(ValueError, match="nothing to export"):
        to_if_manifest(nn_total())


def test_sweep_cannot_be_exported():
    xr = pytest.importorskip("xarray")
    r = nn_total(inference=dict(server_count=1, server_power_w=1, pue=1,
                                hours=xr.DataArray([1.0, 2.0], dims="hours"),
                                intensity_g_per_kwh=1))
    with pytest.raises(ValueError, match="sweep"):
        to_if_manifest(r)


def _run(tmp_path, text):
    yaml = pytest.importorskip("yaml")
    src = tmp_path / "in.yml"
    src.write_text(text)
    proc = subprocess.run([IF_RUN, "--manifest", str(src), "--output", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = yaml.safe_load((tmp_path / "out.yaml").read_text())
    assert out["execution"]["status"] == "success"
    return out


@needs_if
def test_if_run_round_trip_nn(tmp_path):
    r = breakdown()
    out = _run(tmp_path, to_if_manifest(r, functional_units=1e6))
    o = out["tree"]["children"]["nn"]["outputs"][0]
    assert o["carbon-training"] == pytest.approx(r.training_g, rel=1e-9)
    assert o["carbon-inference"] == pytest.approx(r.inference_g, rel=1e-9)
    assert o["carbon-embodied"] == pytest.approx(r.embodied_g, rel=1e-9)
    assert o["carbon"] == pytest.approx(r.total_g, rel=1e-9)
    assert o["energy-training"] == pytest.approx(r.training_kwh, rel=1e-9)
    assert o["energy-inference"] == pytest.approx(r.inference_kwh, rel=1e-9)
    assert o["sci"] == pytest.approx(r.total_g / 1e6, rel=1e-9)


@needs_if
def test_if_run_round_trip_amortised_embodied(tmp_path):
    r = amortised()
    out = _run(tmp_path, to_if_manifest(r))
    o = out["tree"]["children"]["nn"]["outputs"][0]
    assert o["carbon-embodied"] == pytest.approx(r.embodied_g, rel=1e-9)
    assert o["carbon"] == pytest.approx(r.total_g, rel=1e-9)


@needs_if
def test_if_run_round_trip_dataset(tmp_path):
    ds = dataset()
    out = _run(tmp_path, to_if_manifest(ds))
    seen = 0
    for inst, node in out["tree"]["children"]["cell-1"]["children"].items():
        for comp, leaf in node["children"].items():
            want = float(ds["emissions"].sel(task="cell-1", instance=inst, component=comp))
            assert leaf["outputs"][0]["carbon"] == pytest.approx(want, rel=1e-9)
            seen += 1
    assert seen == int(np.isfinite(ds["energy"].values).sum())
