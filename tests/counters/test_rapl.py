"""The powercap RAPL backend against a faithful fake powercap tree."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))

from fakes.powercap import FakePowercap
from fakes.unprivileged import run_json

from energykernel.counters._unwrap import MAX_POLL_S
from energykernel.counters.base import BackendUnavailable
from energykernel.counters.rapl import RaplBackend

REPO = Path(__file__).parents[2]
EXPECTED = {
    "cpu:package-0": "cpu",
    "cpu:core-0": None,
    "cpu:uncore-0": None,
    "ram:dram-0": "ram",
    "cpu:package-1": "cpu",
    "ram:dram-1": "ram",
    "cpu:psys": None,
    "cpu:package-0-mmio": None,
}


@pytest.fixture
def fake(tmp_path):
    with FakePowercap(tmp_path) as tree:
        yield tree


@pytest.fixture
def backend(fake):
    b = RaplBackend(str(fake.root))
    b.open()
    yield b
    b.close()


def uj(joules: float) -> int:
    return round(joules * 1e6)


def component_uj(backend: RaplBackend, r0: dict, r1: dict, component: str) -> int:
    return sum(
        uj(r1[n]) - uj(r0[n]) for n, d in backend.devices.items() if d.component == component
    )


class Clock:
    """A settable monotonic clock for the power observations."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_probe_and_devices(fake, backend):
    status = RaplBackend(str(fake.root)).probe()
    assert status.available, status.reason
    assert status.components == ("cpu", "ram")
    assert set(status.devices) == set(EXPECTED)
    assert {n: d.component for n, d in backend.devices.items()} == EXPECTED
    assert backend.components == ("cpu", "ram")
    mmio = backend.devices["cpu:package-0-mmio"]
    assert mmio.meta["interface"] == "mmio" and mmio.meta["duplicate_of"] == "cpu:package-0"
    assert backend.devices["ram:dram-1"].meta["zone"] == "intel-rapl:1:0"
    assert backend.devices["cpu:package-0"].meta["max_power_w"] == 150.0


def test_root_from_environment(fake, monkeypatch):
    monkeypatch.setenv("ENERGYKERNEL_POWERCAP_ROOT", str(fake.root))
    assert RaplBackend().root == str(fake.root)
    assert RaplBackend().probe().available


def test_nested_tree_without_flat_links(fake):
    """Pointed at /sys/devices/virtual/powercap the subzones are only nested dirs."""
    b = RaplBackend(str(fake.devices))
    b.open()
    try:
        assert {n: d.component for n, d in b.devices.items()} == EXPECTED
    finally:
        b.close()


def test_exact_energy_and_no_double_count(fake, backend):
    r0 = backend.read()
    fake.advance(2.5)
    r1 = backend.read()
    for name, device in backend.devices.items():
        zone = device.meta["zone"]
        power_w = fake.zones[zone].power_w
        assert uj(r1[name]) - uj(r0[name]) == round(power_w * 2.5 * 1e6), name
    # cpu = package-0 + package-1 (40 + 30 W); psys (90 W), core, uncore and the mmio
    # copy of package-0 are detail only.
    assert component_uj(backend, r0, r1, "cpu") == 175_000_000
    assert component_uj(backend, r0, r1, "ram") == 25_000_000  # dram 6 + 4 W
    assert uj(r1["cpu:package-0-mmio"]) - uj(r0["cpu:package-0-mmio"]) == 100_000_000


def test_mmio_package_counts_when_it_is_the_only_one(tmp_path):
    layout = (("intel-rapl-mmio:0", "package-0", 15.0, 28_000_000),)
    with FakePowercap(tmp_path, layout=layout) as tree:
        b = RaplBackend(str(tree.root))
        b.open()
        assert {n: d.component for n, d in b.devices.items()} == {"cpu:package-0": "cpu"}
        r0 = b.read()
        tree.advance(1.0)
        assert uj(b.read()["cpu:package-0"]) - uj(r0["cpu:package-0"]) == 15_000_000
        b.close()


def test_multi_die_packages(tmp_path):
    layout = (
        ("intel-rapl:0", "package-0-die-0", 100.0, None),
        ("intel-rapl:0:0", "dram", 10.0, None),
        ("intel-rapl:1", "package-0-die-1", 100.0, None),
        ("intel-rapl:1:0", "dram", 10.0, None),
    )
    with FakePowercap(tmp_path, layout=layout) as tree:
        b = RaplBackend(str(tree.root))
        b.open()
        assert {n: d.component for n, d in b.devices.items()} == {
            "cpu:package-0-die-0": "cpu",
            "ram:dram-0-die-0": "ram",
            "cpu:package-0-die-1": "cpu",
            "ram:dram-0-die-1": "ram",
        }
        b.close()


@pytest.mark.parametrize(
    ("start_uj", "added_uj", "raw_after"),
    [
        (990, 20, 9),  # 990 → 1000 (max) → 0 → 9
        (1000, 1, 0),  # max → 0 is one µJ, the range is inclusive
        (0, 1000, 1000),  # reaching max is not a wrap
        (500, 1001, 500),  # a whole modulus: same raw value, undetectable without polls
    ],
)
def test_wrap_formula(tmp_path, start_uj, added_uj, raw_after):
    layout = (("intel-rapl:0", "package-0", 0.0, None),)
    with FakePowercap(tmp_path, layout=layout, range_uj=1000, start_uj=start_uj) as tree:
        b = RaplBackend(str(tree.root))
        b.open()
        tree.add_energy("intel-rapl:0", added_uj)
        assert tree.zones["intel-rapl:0"].raw_uj == raw_after
        got = uj(b.read()["cpu:package-0"])
        expected = 0 if added_uj == 1001 else added_uj
        assert got == expected
        b.close()


def test_two_wraps_in_one_window_with_sampler_polls(tmp_path):
    """A window spanning two wraps gets all its energy when the sampler polls between.

    package-0: 700_000 → 1_300_000 (wrap) → 900_000 → 1_500_000 (wrap) in steps of 0.6 J.
    """
    layout = (("intel-rapl:0", "package-0", 0.0, None), ("intel-rapl:0:0", "dram", 0.0, None))
    with FakePowercap(tmp_path, layout=layout, range_uj=999_999, start_uj=700_000) as tree:
        b = RaplBackend(str(tree.root))
        b.open()
        start = b.read()  # window begins
        for _ in range(3):
            tree.add_energy("intel-rapl:0", 600_000)
            tree.add_energy("intel-rapl:0:0", 333_333)
            b.read()  # the sampler's poll
        end = b.read()  # window ends
        assert uj(end["cpu:package-0"]) - uj(start["cpu:package-0"]) == 1_800_000
        assert uj(end["ram:dram-0"]) - uj(start["ram:dram-0"]) == 999_999
        assert b.wraps()["cpu:package-0"] == 2
        assert b.wraps()["ram:dram-0"] == 1
        b.close()


def test_missed_polls_never_give_negative_energy(tmp_path):
    layout = (("intel-rapl:0", "package-0", 0.0, None),)
    with FakePowercap(tmp_path, layout=layout, range_uj=999_999) as tree:
        b = RaplBackend(str(tree.root))
        b.open()
        last = 0
        for step in (600_000, 1_500_000, 999_999, 2_000_001):
            tree.add_energy("intel-rapl:0", step)
            now = uj(b.read()["cpu:package-0"])
            assert now >= last
            last = now
        b.close()


def test_poll_interval_from_constraint_power(tmp_path):
    layout = (("intel-rapl:0", "package-0", 0.0, 50_000_000),)
    with FakePowercap(tmp_path, layout=layout, range_uj=10_000_000) as tree:
        b = RaplBackend(str(tree.root))
        b.open()
        assert b.poll_interval_s() == pytest.approx(10 / 50 / 2)  # range J / W / 2
        b.close()


def test_poll_interval_follows_observed_power(tmp_path):
    """Power above the constraint's max (e.g. PL2 bursts) shortens the interval."""
    layout = (("intel-rapl:0", "package-0", 200.0, 50_000_000),)
    with FakePowercap(tmp_path, layout=layout, range_uj=100_000_000) as tree:
        b = RaplBackend(str(tree.root))
        clock = Clock()
        b._clock = clock
        b.open()
        assert b.poll_interval_s() == pytest.approx(100 / 50 / 2)
        clock.t += 0.01
        tree.advance(0.01)
        b.read()  # too short a span to judge power (counters update in ~1 ms steps)
        assert b.poll_interval_s() == pytest.approx(100 / 50 / 2)
        clock.t += 0.09
        tree.advance(0.09)
        b.read()
        assert b.poll_interval_s() == pytest.approx(100 / 200 / 2)
        b.close()


def test_poll_interval_unknown_power_is_capped(fake, backend):
    # core/uncore have no constraint: assume 1 kW → 262 kJ / 1 kW / 2 = 131 s → cap.
    assert backend.poll_interval_s() == MAX_POLL_S


def test_driver_thread_wraps_are_all_counted(tmp_path):
    """Real time: the fake wraps every ~1.5 s; polling at poll_interval_s() misses none.

    (A wrap every 1.5 s leaves room for a loaded 2-core machine to delay the polling
    thread — at 0.5 s a starved thread missed one wrap in some runs of the whole suite;
    the exact, clock-free wrap arithmetic is tested above.)
    """
    layout = (("intel-rapl:0", "package-0", 20.0, None),)
    with FakePowercap(tmp_path, layout=layout, range_uj=29_999_999) as tree:
        b = RaplBackend(str(tree.root))
        b.open()
        base_uj = tree.total_uj("intel-rapl:0")
        stop = threading.Event()
        intervals = []

        def sampler() -> None:
            while not stop.is_set():
                b.read()
                intervals.append(b.poll_interval_s())
                stop.wait(intervals[-1])

        thread = threading.Thread(target=sampler)
        tree.start(tick_s=0.001)
        thread.start()
        threading.Event().wait(3.6)
        tree.stop()
        stop.set()
        thread.join()
        total = uj(b.read()["cpu:package-0"])
        assert total == tree.total_uj("intel-rapl:0") - base_uj
        assert b.wraps()["cpu:package-0"] >= 2
        assert max(intervals[-3:]) <= 30.0 / 20.0 / 2 * 1.5  # observed ~20 W
        b.close()


def test_garbled_read_loses_nothing(tmp_path):
    layout = (("intel-rapl:0", "package-0", 0.0, None),)
    with FakePowercap(tmp_path, layout=layout) as tree:
        b = RaplBackend(str(tree.root))
        b.open()
        tree.add_energy("intel-rapl:0", 1234)
        zone = tree.zones["intel-rapl:0"]
        os.pwrite(zone.fd, b"\n", 0)
        os.ftruncate(zone.fd, 1)
        assert uj(b.read()["cpu:package-0"]) == 0
        tree.add_energy("intel-rapl:0", 1)
        assert uj(b.read()["cpu:package-0"]) == 1235
        b.close()


def test_close_and_reopen_start_from_zero(fake, backend):
    fake.advance(1.0)
    assert backend.read()["cpu:package-0"] == pytest.approx(40.0)
    backend.close()
    assert backend.devices == {} and backend._fds == []
    backend.open()
    assert backend.read()["cpu:package-0"] == 0.0


def test_missing_root(tmp_path):
    status = RaplBackend(str(tmp_path / "nope")).probe()
    assert not status.available
    assert f"no RAPL powercap interface at {tmp_path / 'nope'}" in status.reason
    assert "VM/container" in status.reason
    with pytest.raises(BackendUnavailable):
        RaplBackend(str(tmp_path / "nope")).open()


def test_root_without_rapl_zones(tmp_path):
    (tmp_path / "dtpm").mkdir()
    status = RaplBackend(str(tmp_path)).probe()
    assert not status.available and "no intel-rapl zones" in status.reason


_PROBE_AS_NOBODY = """
import json, os, sys
from energykernel.counters.base import BackendUnavailable
from energykernel.counters.rapl import RaplBackend
if os.geteuid() == 0:  # imported first: the interpreter may live under a 0700 /root
    os.setgroups([]); os.setgid(65534); os.setuid(65534)
b = RaplBackend(sys.argv[1])
status = b.probe()
try:
    b.open()
    opened = "opened"
except BackendUnavailable as exc:
    opened = str(exc)
print(json.dumps({"available": status.available, "reason": status.reason, "open": opened}))
"""


def test_unreadable_energy_uj_gives_fix_and_security_caveat():
    """Real file permissions, as Linux >= 5.10 sets them (0400 root).

    Tests often run as root, who reads any file, so the probe runs in a subprocess that
    drops to ``nobody`` first; the kernel, not a mock, then refuses the read.
    """
    base = tempfile.mkdtemp(prefix="ek-powercap-")
    os.chmod(base, 0o755)
    try:
        with FakePowercap(Path(base)) as tree:
            path = tree.make_unreadable("intel-rapl:1")
            if os.geteuid() != 0:
                os.chmod(path, 0)
            result = run_json(_PROBE_AS_NOBODY, str(tree.root))
    finally:
        subprocess.run(["rm", "-rf", base], check=False)
    assert not result["available"]
    reason = result["reason"]
    assert "permission denied" in reason and "intel-rapl:1/energy_uj" in reason
    assert 'SUBSYSTEM=="powercap"' in reason and "chgrp -R powercap" in reason
    assert "CVE-2020-8694" in reason and "PLATYPUS" in reason
    assert "world-readable" in reason
    assert result["open"] == reason


def test_counted_read_skips_detail_zones_but_loses_no_wrap(tmp_path):
    """Window boundaries read only package/dram zones; the detail zones stay exact
    because every full read (the sampler's) keeps their wrap counters up to date."""
    layout = (("intel-rapl:0", "package-0", 40.0, None), ("intel-rapl:0:0", "core", 25.0, None),
              ("intel-rapl:1", "psys", 90.0, None))
    with FakePowercap(tmp_path, layout=layout, range_uj=9_999_999) as tree:
        b = RaplBackend(str(tree.root))
        b.open()
        assert set(b.read(detail=False)) == {"cpu:package-0"}
        assert set(b.read()) == {"cpu:package-0", "cpu:core-0", "cpu:psys"}
        for _ in range(3):  # three wraps of package-0, seen by counted reads only
            tree.add_energy("intel-rapl:0", 6_000_000)
            tree.add_energy("intel-rapl:1", 6_000_000)
            b.read(detail=False)
            b.read()  # the sampler's full read
        got = b.read(detail=False)
        assert uj(got["cpu:package-0"]) == 18_000_000
        assert uj(b.read()["cpu:psys"]) == 18_000_000
        b.close()


def test_measure_on_a_two_socket_tree(fake, monkeypatch):
    """Through ek.measure: cpu = Σ package-N, ram = Σ dram, detail zones only when asked."""
    import energykernel as ek
    from energykernel.core import config

    monkeypatch.setenv("ENERGYKERNEL_POWERCAP_ROOT", str(fake.root))
    monkeypatch.setenv("ENERGYKERNEL_BACKENDS", "rapl")
    config.reset_settings()

    def window() -> ek.Measurement:
        with ek.measure("w") as m:
            for zone, joules in (("intel-rapl:0", 5), ("intel-rapl:1", 3), ("intel-rapl:0:2", 2),
                                 ("intel-rapl:1:0", 1), ("intel-rapl:0:0", 4),
                                 ("intel-rapl:2", 20), ("intel-rapl-mmio:0", 5)):
                fake.add_energy(zone, uj(joules))
        return m.result

    plain = window()
    assert plain.energy_j == pytest.approx({"cpu": 8.0, "ram": 3.0})
    assert set(plain.device_energy_j) == {"cpu:package-0", "cpu:package-1", "ram:dram-0",
                                          "ram:dram-1"}
    ek.configure(read_detail=True)
    detailed = window()
    assert detailed.energy_j == pytest.approx({"cpu": 8.0, "ram": 3.0})  # detail never added
    assert detailed.device_energy_j["cpu:psys"] == pytest.approx(20.0)
    assert detailed.device_energy_j["cpu:core-0"] == pytest.approx(4.0)
    assert detailed.device_energy_j["cpu:package-0-mmio"] == pytest.approx(5.0)
    with pytest.raises(TypeError, match="read_detail"):
        ek.configure(read_detail="yes")


class VirtualTime:
    """A clock the test moves, for the window; the fake counters follow it the way RAPL
    does: updated every RAPL_UPDATE_S, in whole energy units."""

    def __init__(self, tree, powers_w: dict[str, float]) -> None:
        self.t = 1000.0
        self.tree, self.powers_w = tree, powers_w
        self.written = dict.fromkeys(powers_w, 0)

    def perf_counter(self) -> float:
        return self.t

    time = perf_counter

    def move_to(self, t: float) -> None:
        from energykernel.counters._unwrap import RAPL_ENERGY_UNIT_J, RAPL_UPDATE_S

        self.t = t
        updated = math.floor(t / RAPL_UPDATE_S) * RAPL_UPDATE_S  # the last update
        for zone, power in self.powers_w.items():
            units = math.floor(power * (updated - 1000.0) / RAPL_ENERGY_UNIT_J)
            raw = round(units * RAPL_ENERGY_UNIT_J * 1e6)
            self.tree.add_energy(zone, raw - self.written[zone])
            self.written[zone] = raw


@pytest.mark.parametrize("duration_s", [0.0002, 0.001, 0.0037, 0.05, 1.0, 10.0])
@pytest.mark.parametrize("phase", [0.0, 0.4, 0.999])
def test_bounds_hold_for_windows_of_any_length(fake, monkeypatch, duration_s, phase):
    """lo ≤ truth ≤ hi for windows from below one RAPL update (1 ms) to 10 s, whatever
    the window's phase against the counter's updates."""
    import energykernel as ek
    from energykernel.core import config
    from energykernel.core import window as window_mod

    monkeypatch.setenv("ENERGYKERNEL_POWERCAP_ROOT", str(fake.root))
    monkeypatch.setenv("ENERGYKERNEL_BACKENDS", "rapl")
    config.reset_settings()
    powers = {"intel-rapl:0": 40.0, "intel-rapl:1": 30.0, "intel-rapl:0:2": 6.0,
              "intel-rapl:1:0": 4.0}
    clock = VirtualTime(fake, powers)
    monkeypatch.setattr(window_mod, "time", clock)
    t0 = 1000.0 + 0.5 + phase * 1e-3
    clock.move_to(t0)
    w = ek.measure("w").start()
    clock.move_to(t0 + duration_s)
    m = w.stop()
    truth = {"cpu": 70.0 * duration_s, "ram": 10.0 * duration_s}
    # one energy unit + one update at the zones' power limits (2 × 150 W, 2 × 30 W)
    half_j = {"cpu": 2 * (2**-14 + 150 * 1e-3), "ram": 2 * (2**-14 + 30 * 1e-3)}
    for comp, true_j in truth.items():
        lo, hi = m.energy_bounds_j[comp]
        assert lo <= true_j <= hi, (comp, lo, true_j, hi, m.energy_j[comp])
        assert hi - lo <= 2 * half_j[comp] + 1e-9  # no wider than the resolution
