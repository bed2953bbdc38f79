"""Idle power (calibrated or learned from quiet sampler periods) and active energy."""

from __future__ import annotations

import time

import pytest

import energykernel as ek
from energykernel.core import idle
from energykernel.core.units import si
from energykernel.jupyter.display import measurement_html


def test_nothing_known_says_how_to_get_it(manual):
    got = ek.idle_power()
    assert got == {} and "calibrate_idle" in got.source
    with ek.measure("t") as m:
        manual.add("cpu:package-0", 1.0)
    assert m.result.active_energy_j == {}
    assert "active" not in m.result.summary()
    assert "active" not in measurement_html(m.result)
    assert bool(ek.runs().active_energy.isnull().all())


def test_calibrated_idle_gives_active_energy_everywhere(manual, monkeypatch, tmp_path):
    real_sleep = time.sleep

    def quiet_pause(seconds):  # the machine draws 2 J during the pause: ≈ 10 W
        manual.add("cpu:package-0", 2.0)
        real_sleep(seconds)

    monkeypatch.setattr(idle.time, "sleep", quiet_pause)
    got = ek.calibrate_idle(0.2)
    monkeypatch.undo()
    assert got["cpu"] == pytest.approx(10.0, rel=0.2) and got["ram"] == 0.0
    assert got.source.startswith("calibrated") and ek.idle_power() == got
    with ek.measure("work") as m:
        manual.add("cpu:package-0", 5.0)
        time.sleep(0.05)
    r = m.result
    expect = 5.0 - got["cpu"] * r.duration_s
    assert r.active_energy_j["cpu"] == pytest.approx(expect)
    assert r.to_dict()["idle_power_w"]["cpu"] == pytest.approx(got["cpu"])
    assert "(active " in r.summary()
    # The inline line shows the active energy of every component (storage may carry an
    # estimate from the machine's own disk traffic during the block).
    shown = si(sum(r.active_energy_j.values()), "J")
    assert f"(active {shown})" in measurement_html(r)  # the inline line too
    runs = ek.runs()
    assert float(runs.active_energy.sel(component="cpu")[0]) == pytest.approx(expect)
    cube = ek.dataset()
    assert float(cube.active_energy.sel(task="work", component="cpu").squeeze()) == (
        pytest.approx(expect))
    ek.save(tmp_path / "a.nc")
    ek.reset()
    ek.load(tmp_path / "a.nc")
    assert float(ek.runs().active_energy.sel(component="cpu")[0]) == pytest.approx(expect)


def test_active_energy_is_never_negative(manual):
    idle.current = {"cpu": 1e6}  # an idle power far above what the block drew
    with ek.measure("t") as m:
        manual.add("cpu:package-0", 1.0)
    assert m.result.active_energy_j["cpu"] == 0.0


def test_idle_is_learned_from_quiet_periods():
    for watts in (10.0, 12.0, 11.0, 50.0, 11.5):
        idle.observe_quiet({"cpu": watts, "ram": 2.0})
    got = ek.idle_power()
    assert got == {"cpu": 11.5, "ram": 2.0}  # the median: a busy outlier does not count
    assert got.source.startswith("learned")


def test_sampler_learns_idle_between_windows(manual):
    ek.configure(sample_interval_s=0.01)
    with ek.measure("wake the sampler"):
        pass
    deadline = time.monotonic() + 10
    while not ek.idle_power() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert set(ek.idle_power()) >= {"cpu", "ram"}


@pytest.mark.parametrize("seconds", [0, -1, float("nan"), "2", True, 1e9])
def test_calibrate_idle_checks_its_argument(seconds):
    with pytest.raises(ValueError, match="calibrate_idle"):
        ek.calibrate_idle(seconds)
