"""The Grace / Grace Hopper hwmon backend against a faithful fake GH200 hwmon tree."""

from __future__ import annotations

import json
import os
import random
import sys
import tempfile
import types
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))

from fakes.hwmon import FakeGraceHwmon
from fakes.pynvml import FakeGpu, FakePynvml

from energykernel.core.accounting import combine_terms, energy_bounds
from energykernel.counters import DEFAULT_COUNTERS, KNOWN_BACKENDS
from energykernel.counters import hwmon as hwmon_mod
from energykernel.counters._integrate import POWER_POLL_S
from energykernel.counters.base import BackendUnavailable
from energykernel.counters.hwmon import CEILING_W, HwmonBackend

EXPECTED = {
    f"{kind}:socket-{s}": comp
    for s in (0, 1)
    for kind, comp in (("cpu", "cpu"), ("ram", "ram"), ("gpu", "gpu"), ("module", None),
                       ("grace", None))
}


@pytest.fixture
def fake(tmp_path):
    with FakeGraceHwmon(tmp_path) as tree:
        yield tree


def opened(tree: FakeGraceHwmon) -> HwmonBackend:
    b = HwmonBackend(str(tree.root))
    b._clock = tree.monotonic
    b.open()
    return b


@pytest.fixture
def backend(fake):
    b = opened(fake)
    yield b
    b.close()


def delta(r0: dict, r1: dict) -> dict:
    return {k: r1[k] - r0[k] for k in r1}


def test_probe_finds_the_meters_by_oem_info(fake):
    status = HwmonBackend(str(fake.root)).probe()
    assert status.available, status.reason
    assert status.components == ("cpu", "gpu", "ram")
    assert status.devices == tuple(EXPECTED)
    assert "8 Grace power meters" in status.reason
    assert "ram:socket-0 = Grace − CPU − SysIO" in status.reason
    assert "gpu:socket-1 = Module − Grace" in status.reason
    assert "detail only: module:socket-0, grace:socket-0" in status.reason
    assert "'Chassis Power') is not a Grace meter" in status.reason  # other meters: said


def test_devices_components_and_meta(fake, backend):
    assert {n: d.component for n, d in backend.devices.items()} == EXPECTED
    assert backend.components == ("cpu", "gpu", "ram")
    meta = backend.devices["ram:socket-1"].meta
    assert meta["socket"] == 1 and meta["formula"] == "Grace − CPU − SysIO"
    assert set(meta["meters"]) == {"Grace Power Socket 1", "CPU Power Socket 1",
                                   "SysIO Power Socket 1"}
    assert meta["reading"] == "power1_average" and meta["update_interval_s"] == 0.05
    assert backend.poll_interval_s() == POWER_POLL_S == 0.2


def test_both_sysfs_layouts_and_hwmon_numbers_do_not_matter(tmp_path):
    """Socket 1's files are in hwmonX/device/ (older kernels), socket 0's in hwmonX/;
    whatever the hwmon numbering, each device reads the meters its name says."""
    seen = []
    for seed in (1, 2, 3):
        with FakeGraceHwmon(tmp_path / str(seed), seed=seed) as tree:
            b = opened(tree)
            for name, dev in b.devices.items():
                for oem, path in dev.meta["meters"].items():
                    meter = tree.meters[int(oem.rsplit(" ", 1)[1]), oem.split()[0]]
                    assert path == str(tree.root / meter.hwmon / ("device/" if meter.socket
                                                                   else "") / "power1_average")
                    assert ("/device/" in path) == (dev.meta["socket"] == 1), name
            seen.append({n: d.meta["meters"] for n, d in b.devices.items()})
            b.close()
    assert seen[0] != seen[1]  # different hwmon numbers each time …
    assert [list(s) for s in seen] == [list(EXPECTED)] * 3  # … the same devices


def test_constant_power_is_exact_and_parts_add_up_to_the_module(fake, backend):
    fake.set_power(0, cpu=200.0, sysio=25.0, ram=40.0, gpu=500.0)
    fake.advance(1.0)  # the meters catch up (one to two 50 ms periods)
    r0 = backend.read()
    fake.advance(2.0)
    d = delta(r0, backend.read())
    assert d["cpu:socket-0"] == pytest.approx(2 * 225.0)
    assert d["ram:socket-0"] == pytest.approx(2 * 40.0)
    assert d["gpu:socket-0"] == pytest.approx(2 * 500.0)
    assert d["grace:socket-0"] == pytest.approx(2 * 265.0)
    for s in (0, 1):
        parts = sum(d[f"{k}:socket-{s}"] for k in ("cpu", "ram", "gpu"))
        assert parts == pytest.approx(d[f"module:socket-{s}"])
    assert d["cpu:socket-1"] == pytest.approx(2 * 70.0)  # the fake's default load


def test_power_is_integrated_with_the_trapezoid_rule(fake, backend):
    r0 = backend.read()["cpu:socket-0"]
    fake.set_power(0, cpu=130.0, sysio=10.0)  # 70 W → 140 W
    fake.advance(0.1)  # two periods later every meter shows the new power
    r1 = backend.read()["cpu:socket-0"]
    assert r1 - r0 == pytest.approx((70 + 140) / 2 * 0.1)
    fake.advance(0.2)
    assert backend.read()["cpu:socket-0"] - r1 == pytest.approx(140 * 0.2)


def test_window_energy_follows_the_truth_within_its_bound(fake, backend):
    """A load step read by 0.2 s polls: within (2 T + Δ) × P of the truth."""
    t0 = {c: fake.true_j(c, 0) for c in ("cpu", "ram", "gpu")}
    r0 = backend.read()
    fake.advance(0.07)
    fake.set_power(0, cpu=300.0, sysio=30.0, ram=60.0, gpu=600.0)
    for _ in range(10):
        fake.advance(POWER_POLL_S)
        backend.read()
    fake.set_power(0, cpu=60.0, sysio=10.0, ram=20.0, gpu=90.0)
    fake.advance(0.13)
    d = delta(r0, backend.read())
    terms = backend.bound_terms()
    for comp in ("cpu", "ram", "gpu"):
        truth = fake.true_j(comp, 0) - t0[comp]
        assert abs(d[f"{comp}:socket-0"] - truth) <= terms[f"{comp}:socket-0"].abs_j, comp


def test_bound_terms_derivation(fake, backend):
    fake.set_power(0, cpu=100.0, sysio=20.0, ram=30.0, gpu=400.0)
    fake.advance(0.2)
    backend.read()
    terms = backend.bound_terms()
    span = 2 * 0.05 + POWER_POLL_S
    assert terms["cpu:socket-0"].abs_j == pytest.approx(span * (100 + 20))
    assert terms["ram:socket-0"].abs_j == pytest.approx(span * (150 + 100 + 20))
    assert terms["gpu:socket-0"].abs_j == pytest.approx(span * (550 + 150))
    assert terms["module:socket-0"].abs_j == pytest.approx(span * 550)
    assert "50 ms update + 0.2 s poll" in terms["ram:socket-0"].source
    assert "Grace 150 W + CPU 100 W + SysIO 20 W" in terms["ram:socket-0"].source


def test_bound_uses_the_ceiling_before_any_reading(fake, backend):
    for meter in backend._meters:
        meter.max_w = None
    assert backend.bound_terms()["cpu:socket-0"].abs_j == pytest.approx(
        (2 * 0.05 + POWER_POLL_S) * 2 * CEILING_W)


@pytest.mark.parametrize("seed", range(12))
def test_bounds_hold_for_random_steps_and_phases(tmp_path, seed):
    """lo ≤ truth ≤ hi for windows of a load that steps up after the window opens and
    down before it closes, meters updating at different phases, 0.2 s polls."""
    rng = random.Random(seed)
    phases = {(s, k): rng.randrange(0, 50_000) for s in (0, 1)
              for k in ("Module", "Grace", "CPU", "SysIO")}
    with FakeGraceHwmon(tmp_path, phases_us=phases) as tree:
        b = opened(tree)
        tree.set_power(0, cpu=300.0, sysio=30.0, ram=60.0, gpu=600.0)  # peak seen once
        tree.advance(0.3)
        b.read()
        tree.set_power(0, cpu=50.0, sysio=10.0, ram=15.0, gpu=80.0)
        tree.advance(rng.uniform(0.2, 1.0))
        b.read()
        truth0 = {c: tree.true_j(c) for c in ("cpu", "ram", "gpu")}
        r0 = b.read()
        duration = rng.choice([0.01, 0.06, 0.15, 0.5, 2.0]) + rng.uniform(0, 0.2)
        on, off = sorted(rng.uniform(0, duration) for _ in range(2))
        events = [(on, dict(cpu=rng.uniform(50, 300), sysio=rng.uniform(10, 30),
                            ram=rng.uniform(15, 60), gpu=rng.uniform(80, 600))),
                  (off, dict(cpu=50.0, sysio=10.0, ram=15.0, gpu=80.0))]
        t = 0.0
        polls = [k * POWER_POLL_S + rng.uniform(0, POWER_POLL_S) for k in range(20)]
        for when, what in sorted([*events, *((p, None) for p in polls if p < duration)],
                                 key=lambda e: e[0]):
            tree.advance(when - t)
            t = when
            if what is None:
                b.read()
            else:
                tree.set_power(0, **what)
        tree.advance(duration - t)
        d = delta(r0, b.read())
        terms = b.bound_terms()
        energy = {c: sum(v for n, v in d.items() if b.devices[n].component == c)
                  for c in ("cpu", "ram", "gpu")}
        per_comp = {c: combine_terms(t for n, t in terms.items() if b.devices[n].component == c)
                    for c in energy}
        bounds = energy_bounds(energy, per_comp, duration)
        for comp, (lo, hi) in bounds.items():
            truth = tree.true_j(comp) - truth0[comp]
            assert lo - 1e-9 <= truth <= hi + 1e-9, (comp, lo, truth, hi)
        b.close()


def test_a_difference_never_goes_negative(tmp_path):
    """The Grace meter updating later than the CPU meter: Grace − CPU − SysIO would
    dip below 0 during a step; it is clamped, counted, and no energy is negative."""
    with FakeGraceHwmon(tmp_path, phases_us={(0, "Grace"): 40_000}) as tree:
        b = opened(tree)
        last = b.read()
        tree.set_power(0, cpu=400.0)  # CPU meter shows it before the Grace meter does
        for _ in range(40):
            tree.advance(0.01)
            now = b.read()
            assert all(now[n] >= last[n] - 1e-12 for n in now)
            last = now
        meta = b.devices["ram:socket-0"].meta
        assert meta["clamped_readings"] > 0
        b.close()


def test_power1_input_fallback_says_so(tmp_path):
    with FakeGraceHwmon(tmp_path, input_only=(0,)) as tree:
        status = HwmonBackend(str(tree.root)).probe()
        assert status.available
        b = opened(tree)
        assert "power1_input" in b.devices["cpu:socket-0"].meta["reading"]
        assert "instantaneous" in b.devices["cpu:socket-0"].meta["reading"]
        assert b.devices["cpu:socket-1"].meta["reading"] == "power1_average"
        r0 = b.read()
        tree.advance(1.0)
        assert delta(r0, b.read())["cpu:socket-0"] == pytest.approx(70.0)
        b.close()


def test_grace_cpu_node_without_module_meter_has_no_gpu(tmp_path):
    with FakeGraceHwmon(tmp_path, module=False) as tree:
        status = HwmonBackend(str(tree.root)).probe()
        assert status.available and status.components == ("cpu", "ram")
        assert not any(d.startswith(("gpu:", "module:")) for d in status.devices)


def test_a_failed_read_loses_nothing(fake, backend):
    r0 = backend.read()["cpu:socket-0"]
    fake.advance(0.2)
    os.pwrite(fake.meters[0, "SysIO"].fd, b"garbage\n", 0)  # as a torn or failed read
    r1 = backend.read()
    assert r1["cpu:socket-0"] == r0  # held …
    assert "could not read" in backend.devices["cpu:socket-0"].meta["last_error"]
    assert r1["gpu:socket-0"] > 0  # … devices that do not use that meter go on
    fake.settle()
    fake.advance(0.2)
    assert backend.read()["cpu:socket-0"] - r0 == pytest.approx(70.0 * 0.4)  # … caught up


def test_missing_root_and_root_without_grace_meters(tmp_path):
    status = HwmonBackend(str(tmp_path / "nope")).probe()
    assert not status.available and "no hwmon interface" in status.reason
    with pytest.raises(BackendUnavailable):
        HwmonBackend(str(tmp_path / "nope")).open()
    other = tmp_path / "hwmon"
    (other / "hwmon0").mkdir(parents=True)
    (other / "hwmon0" / "name").write_text("coretemp\n")
    (other / "hwmon0" / "temp1_input").write_text("40000\n")
    status = HwmonBackend(str(other)).probe()
    assert not status.available
    assert "no Grace power meters" in status.reason and "acpi_power_meter" in status.reason


def test_root_from_environment(fake, monkeypatch):
    monkeypatch.setenv("ENERGYKERNEL_HWMON_ROOT", str(fake.root))
    assert HwmonBackend().root == str(fake.root)
    monkeypatch.delenv("ENERGYKERNEL_HWMON_ROOT")
    assert HwmonBackend().root == "/sys/class/hwmon"


def test_close_releases_the_files(fake):
    b = opened(fake)
    fds = [m.fd for m in b._meters]
    b.close()
    assert b.devices == {} and b.read() == {}
    for fd in fds:
        with pytest.raises(OSError):
            os.fstat(fd)


def _as_nobody(root: Path) -> dict:
    """Probe and open ``root`` in a forked child that has dropped to ``nobody``."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the kernel, not a mock, refuses the read
        code = 1
        try:
            os.close(read_fd)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            b = HwmonBackend(str(root))
            status = b.probe()
            try:
                b.open()
                how = "opened"
            except BackendUnavailable as exc:
                how = str(exc)
            os.write(write_fd, json.dumps({"available": status.available,
                                           "reason": status.reason, "open": how}).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        text = pipe.read()
    _, wait_status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(wait_status) == 0
    return json.loads(text)


def test_unreadable_meter_gives_the_fix():
    """Real file permissions (0400 root), read by ``nobody``."""
    with tempfile.TemporaryDirectory(prefix="ek-hwmon-") as base:
        os.chmod(base, 0o755)  # nobody must reach the tree, not read the meter
        with FakeGraceHwmon(Path(base)) as tree:
            path = tree.make_unreadable(1, "CPU")
            if os.geteuid() != 0:
                os.chmod(path, 0)
            result = _as_nobody(tree.root)
    assert not result["available"]
    reason = result["reason"]
    assert reason.startswith("permission denied") and "device/power1_average" in reason
    assert "chgrp" in reason and "udev" in reason
    assert result["open"] == reason


# -- with NVML on the same node: one backend per figure ----------------------------------
def test_registry_puts_hwmon_after_nvml():
    names = list(KNOWN_BACKENDS)
    assert names.index("nvml") < names.index("hwmon") < names.index("estimate")
    assert DEFAULT_COUNTERS.index("nvml") < DEFAULT_COUNTERS.index("hwmon")


@pytest.fixture
def gh200(fake, monkeypatch, tmp_path):
    """A GH200 node: the fake meters, a fake NVML with one H100, simulated time."""
    import energykernel as ek  # noqa: F401 - the package first, then its modules
    from energykernel.core import config
    from energykernel.core import window as window_mod

    nv = FakePynvml([FakeGpu("NVIDIA GH200 480GB", "GPU-9a9a9a9a-0000-0000-0000-000000000000",
                             power_mw=300_000, power_limit_mw=900_000)])
    monkeypatch.setitem(sys.modules, "pynvml", nv)
    monkeypatch.setitem(sys.modules, "amdsmi", None)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("ENERGYKERNEL_HWMON_ROOT", str(fake.root))
    monkeypatch.setenv("ENERGYKERNEL_POWERCAP_ROOT", str(tmp_path / "no-powercap"))
    monkeypatch.setattr(hwmon_mod, "time", types.SimpleNamespace(monotonic=fake.monotonic))
    clock = types.SimpleNamespace(perf_counter=fake.monotonic, time=lambda: 1.7e9 + fake.monotonic())
    monkeypatch.setattr(window_mod, "time", clock)
    fake.set_power(0, cpu=200.0, sysio=20.0, ram=30.0, gpu=450.0)
    fake.advance(1.0)
    config.reset_settings()
    return nv


@pytest.mark.parametrize("backends", [None, "nvml,hwmon,estimate"])
def test_nvml_gives_gpu_and_hwmon_cpu_and_ram(gh200, fake, monkeypatch, backends):
    import energykernel as ek
    from energykernel.core import config

    if backends is None:
        monkeypatch.delenv("ENERGYKERNEL_BACKENDS", raising=False)
    else:
        monkeypatch.setenv("ENERGYKERNEL_BACKENDS", backends)
    config.reset_settings()
    with ek.measure("train") as m:
        fake.advance(2.0)
        gh200.advance(2.0)
    result = m.result
    assert result.method == {"cpu": "hwmon", "gpu": "nvml", "ram": "hwmon",
                             "storage": "estimate"}
    assert result.energy_j["gpu"] == pytest.approx(300.0 * 2)  # NVML's, not Module − Grace
    assert result.energy_j["cpu"] == pytest.approx(2 * (220.0 + 70.0))
    assert result.energy_j["ram"] == pytest.approx(2 * (30.0 + 20.0))
    assert not any(d.startswith("gpu:socket") for d in result.device_energy_j)
    lo, hi = result.energy_bounds_j["cpu"]
    assert lo <= result.energy_j["cpu"] <= hi
    statuses = {s.name: s for s in ek.backends()}
    assert statuses["hwmon"].available and statuses["nvml"].available


def test_without_nvml_hwmon_gives_gpu_too(gh200, fake, monkeypatch):
    import energykernel as ek
    from energykernel.core import config

    monkeypatch.setitem(sys.modules, "pynvml", None)
    monkeypatch.delenv("ENERGYKERNEL_BACKENDS", raising=False)
    config.reset_settings()
    with ek.measure("train") as m:
        fake.advance(2.0)
    assert m.result.method["gpu"] == "hwmon"
    assert m.result.energy_j["gpu"] == pytest.approx(2 * (450.0 + 90.0))  # Module − Grace
    module = sum(v for d, v in m.result.device_energy_j.items() if d.startswith("module:"))
    parts = sum(m.result.energy_j[c] for c in ("cpu", "ram", "gpu"))
    assert module == pytest.approx(parts) or not module  # detail kept only when asked
