"""Backend selection, configuration, the sampler and lazy imports."""

from __future__ import annotations

import pytest

import energykernel as ek
from energykernel.core import config
from energykernel.core.engine import get_engine


def test_backends_lists_every_backend_with_a_reason():
    statuses = ek.backends()
    names = [s.name for s in statuses]
    assert names == ["rapl", "pyrapl", "nvml", "amdsmi", "levelzero", "apple", "hwmon",
                     "estimate"]
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


def test_sampler_intervals_use_the_monotonic_clock(manual, monkeypatch):
    """A wall-clock step mid-window neither loses nor inflates the timeline's energy."""
    import time as time_mod

    from energykernel.core.engine import TIMELINE

    ek.configure(sample_interval_s=0.02)
    real_time = time_mod.time

    def wait_for(n):
        deadline = time_mod.monotonic() + 5.0
        while len(TIMELINE) < n and time_mod.monotonic() < deadline:
            manual.add("cpu:package-0", 0.01)
            time_mod.sleep(0.005)

    with ek.measure("w"):
        wait_for(3)
        monkeypatch.setattr(time_mod, "time", lambda: real_time() - 3600.0)  # clock steps back
        wait_for(6)
        monkeypatch.setattr(time_mod, "time", lambda: real_time() + 7200.0)  # and forward
        wait_for(9)
    monkeypatch.undo()
    samples = list(TIMELINE)
    assert len(samples) >= 9
    assert all(0 < s.interval_s < 1.0 for s in samples), [s.interval_s for s in samples]
    assert all(s.power_w["cpu"] < 100.0 for s in samples)  # ≈ 2 W was fed in


BAD_SETTINGS = [
    ("backends", 123, TypeError),
    ("backends", [1, 2], TypeError),
    ("backends", "", ValueError),
    ("sample_interval_s", "abc", TypeError),
    ("sample_interval_s", None, TypeError),
    ("sample_interval_s", float("inf"), ValueError),
    ("sample_interval_s", float("nan"), ValueError),
    ("sample_interval_s", True, TypeError),
    ("cpu_tdp_w", "abc", TypeError),
    ("cpu_tdp_w", [1], TypeError),
    ("cpu_tdp_w", -5, ValueError),
    ("log_dir", 123, TypeError),
    ("log_dir", None, TypeError),
    ("instance", "a\x00b", ValueError),
    ("instance", 7, ValueError),
    ("region", 5, TypeError),
    ("read_detail", "yes", TypeError),
]


@pytest.mark.parametrize(("key", "value", "error"), BAD_SETTINGS,
                         ids=[f"{k}={v!r}" for k, v, _ in BAD_SETTINGS])
def test_every_setting_is_checked_where_it_is_given(estimate_only, key, value, error):
    """A bad setting is an error naming it; nothing invalid reaches the engine."""
    before = ek.configure()
    with pytest.raises(error, match=key):
        ek.configure(**{key: value})
    assert ek.configure() == before
    with ek.measure("still works") as m:
        pass
    assert m.result.status == "ok"


@pytest.mark.parametrize("raw", ["inf", "nan", "-1", "0", "fast"])
def test_bad_sample_interval_in_the_environment_names_it(monkeypatch, raw):
    from energykernel.core import config

    monkeypatch.setenv("ENERGYKERNEL_SAMPLE_INTERVAL_S", raw)
    config.reset_settings()
    with pytest.raises(ValueError, match="ENERGYKERNEL_SAMPLE_INTERVAL_S"):
        config.settings()


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"components": 123}, "components"),
    ({"components": ["cpu", "disk"]}, "components"),
    ({"task": "a\x00b"}, "task"),
    ({"task": "\ud800"}, "task"),
    ({"task": "x" * 5000}, "task"),
    ({"task": 5}, "task"),
    ({"instance": "bad\nname"}, "instance"),
    ({"scope": "galaxy"}, "scope"),
])
def test_measure_arguments_are_checked_at_the_door(estimate_only, kwargs, name):
    with pytest.raises((TypeError, ValueError), match=name):
        ek.measure(**kwargs)


def test_present_but_unreadable_counters_are_told_once(monkeypatch, tmp_path):
    """Default selection with a root-only RAPL tree: the first window warns with the fix
    (and the security caveat); the figures are labelled estimates."""
    from energykernel.core import config, engine
    from energykernel.counters.base import BackendStatus
    from energykernel.counters.rapl import RaplBackend, permission_reason

    monkeypatch.delenv("ENERGYKERNEL_BACKENDS", raising=False)
    monkeypatch.setattr(engine, "_told", set())
    reason = permission_reason("/sys/class/powercap/intel-rapl:0/energy_uj")
    monkeypatch.setattr(RaplBackend, "probe", lambda self: BackendStatus("rapl", False, reason))
    config.reset_settings()
    told = pytest.warns(RuntimeWarning, match=r"rapl counters are present but not readable.*CVE")
    with told, ek.measure("t") as m:
        pass
    assert m.result.method["cpu"] == "estimate"
    ek.configure(sample_interval_s=0.5)  # a new engine: not told again
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with ek.measure("u"):
            pass
