"""Backend selection, configuration, the sampler and lazy imports."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import energykernel as ek
from energykernel import config
from energykernel.engine import get_engine


def test_backends_lists_every_backend_with_a_reason():
    statuses = ek.backends()
    names = [s.name for s in statuses]
    assert names == ["rapl", "pyrapl", "nvml", "estimate"]
    for s in statuses:
        assert isinstance(s.available, bool) and s.reason
    assert str(statuses[-1]).startswith("estimate: available")


def test_configure_validates_names_and_values():
    with pytest.raises(ValueError, match="'bogus'"):
        ek.configure(backends=["rapl", "bogus"])
    with pytest.raises(ValueError, match="sample_interval_s"):
        ek.configure(sample_interval_s=0)
    with pytest.raises(TypeError, match="colour"):
        ek.configure(colour="red")
    assert ek.configure(backends="estimate").backends == ("estimate",)


def test_env_backends_and_bad_env_value(monkeypatch):
    monkeypatch.setenv("ENERGYKERNEL_BACKENDS", "estimate")
    config.reset_settings()
    assert get_engine().components == ("cpu", "ram", "storage")
    monkeypatch.setenv("ENERGYKERNEL_SAMPLE_INTERVAL_S", "soon")
    config.reset_settings()
    with pytest.raises(ValueError, match="ENERGYKERNEL_SAMPLE_INTERVAL_S"):
        config.settings()


def test_unavailable_backend_asked_for_by_name_warns(monkeypatch, tmp_path):
    monkeypatch.setenv("ENERGYKERNEL_POWERCAP_ROOT", str(tmp_path / "no-powercap"))
    ek.configure(backends=["rapl", "estimate"])
    with pytest.warns(RuntimeWarning, match="'rapl' was asked for but is unavailable"):
        engine = get_engine()
    assert [b.name for b in engine.backends] == ["estimate"]
    with ek.measure("x") as m:
        pass
    assert set(m.result.method.values()) == {"estimate"}


def test_no_estimate_means_no_silent_fallback(monkeypatch, tmp_path):
    monkeypatch.setenv("ENERGYKERNEL_POWERCAP_ROOT", str(tmp_path / "no-powercap"))
    ek.configure(backends=["rapl"])
    with pytest.warns(RuntimeWarning), ek.measure("x") as m:
        pass
    assert m.result.energy_j == {} and m.result.method == {}


def test_configure_restarts_engine_but_keeps_runs(estimate_only):
    with ek.measure("before"):
        pass
    first = get_engine()
    ek.configure(sample_interval_s=0.5)
    assert get_engine() is not first
    assert ek.runs().task.values.tolist() == ["before"]


def test_sampler_period_honours_backend_poll_interval(estimate_only):
    engine = get_engine()
    backend = engine.backends[0]
    backend.poll_interval_s = lambda: 0.004
    assert engine.period_s() == pytest.approx(0.004)


def test_import_and_measure_do_not_load_heavy_modules(tmp_path):
    code = (
        "import sys, json, energykernel as ek\n"
        "with ek.measure('x'):\n    pass\n"
        "heavy = ['xarray', 'pandas', 'matplotlib', 'IPython', 'ipywidgets', 'torch', 'dask']\n"
        "print(json.dumps([m for m in heavy if m in sys.modules]))\n"
    )
    env = {"ENERGYKERNEL_LOG_DIR": str(tmp_path), "ENERGYKERNEL_BACKENDS": "estimate",
           "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
