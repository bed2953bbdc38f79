"""The Apple Silicon backend against a fake ``zeus_apple_silicon`` with the real API."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))

from fakes.zeus_apple_silicon import FIELDS, FakeChip, FakeZeusAppleSilicon, m1_max, m5_max

from energykernel.counters import apple, create
from energykernel.counters.apple import MODEL_BASED, NOT_INSTALLED, AppleBackend
from energykernel.counters.base import BackendUnavailable


@pytest.fixture
def mac(monkeypatch):
    monkeypatch.setattr(apple, "_host", lambda: ("darwin", "arm64"))
    monkeypatch.setattr(apple, "_chip", lambda: "Apple M1 Max")


def install(monkeypatch, chip: FakeChip) -> FakeZeusAppleSilicon:
    fake = FakeZeusAppleSilicon(chip)
    monkeypatch.setitem(sys.modules, "zeus_apple_silicon", fake)
    return fake


@pytest.fixture
def zeus(mac, monkeypatch):
    return install(monkeypatch, m1_max())


@pytest.fixture
def backend(zeus):
    b = AppleBackend()
    b.open()
    yield b
    b.close()


def test_probe_labels_model_based_figures(zeus):
    status = create("apple").probe()
    assert status.available, status.reason
    assert status.components == ("cpu", "gpu", "ram")
    assert status.reason.startswith("Apple M1 Max: cpu, gpu, ram (cpu_total_mj, gpu_mj, ane_mj, "
                                    "dram_mj)")
    assert MODEL_BASED in status.reason and "not power sensors" in status.reason


def test_devices(backend):
    assert {n: d.component for n, d in backend.devices.items()} == {
        "cpu:soc": "cpu", "gpu:0": "gpu", "gpu:ane": "gpu", "gpu:0:sram": None, "ram:dram": "ram",
        "cpu:efficiency-cluster-0": None, "cpu:performance-cluster-0": None,
        "cpu:performance-cluster-1": None}
    assert backend.components == ("cpu", "gpu", "ram")
    assert backend.devices["gpu:ane"].meta == {"field": "ane_mj", "source": "model"}


def test_energy_since_open(zeus, backend):
    zeus.advance(10.0)  # before open nothing counts; now 10 s
    r0 = backend.read()
    zeus.advance(2.0)
    r1 = backend.read()
    assert r1["cpu:soc"] - r0["cpu:soc"] == pytest.approx(24.0)  # 12 W × 2 s, whole mJ
    assert r1["gpu:0"] - r0["gpu:0"] == pytest.approx(40.0)
    assert r1["gpu:ane"] - r0["gpu:ane"] == pytest.approx(4.0)
    assert r1["ram:dram"] - r0["ram:dram"] == pytest.approx(3.0)
    assert r1["cpu:performance-cluster-1"] - r0["cpu:performance-cluster-1"] == pytest.approx(10.0)
    assert set(backend.read(detail=False)) == {"cpu:soc", "gpu:0", "gpu:ane", "ram:dram"}


def test_m5_has_no_gpu_sram(mac, monkeypatch):
    install(monkeypatch, m5_max())
    status = AppleBackend().probe()
    assert status.available and "gpu:0:sram" not in status.devices


def test_missing_channels_give_no_device(mac, monkeypatch):
    install(monkeypatch, FakeChip({"cpu_total_mj": 5.0}))  # e.g. no DRAM on an older chip
    status = AppleBackend().probe()
    assert status.components == ("cpu",) and status.devices == ("cpu:soc",)


def test_no_known_channel(mac, monkeypatch):
    install(monkeypatch, FakeChip({}))
    status = AppleBackend().probe()
    assert not status.available and "pip install -U zeus-apple-silicon" in status.reason


def test_error_mid_window_keeps_energy(zeus, backend):
    zeus.advance(1.0)
    assert backend.read()["gpu:0"] == pytest.approx(20.0)
    zeus.error = RuntimeError("IOReport sample failed")
    zeus.advance(1.0)
    assert backend.read()["gpu:0"] == pytest.approx(20.0)  # held
    assert "IOReport sample failed" in backend.devices["gpu:0"].meta["last_error"]
    assert backend.read()["gpu:0"] == pytest.approx(40.0)  # the gap counted once


def test_a_restarted_counter_counts_from_zero(zeus, backend):
    zeus.advance(1.0)
    before = backend.read()["cpu:soc"]
    zeus.energy_mj["cpu_total_mj"] = 3.0  # below the last reading
    assert backend.read()["cpu:soc"] - before == pytest.approx(0.003)


def test_older_package_without_cumulative_api(mac, monkeypatch):
    chip = m1_max()
    chip.cumulative_api = False
    fake = install(monkeypatch, chip)
    b = AppleBackend()
    assert b.probe().available
    b.open()
    fake.advance(1.0)
    assert b.read()["gpu:0"] == pytest.approx(20.0)
    fake.advance(1.0)
    assert b.read()["gpu:0"] == pytest.approx(40.0)
    b.close()


def test_subscription_failure(mac, monkeypatch):
    chip = m1_max()
    chip.subscribe_error = True
    install(monkeypatch, chip)
    status = AppleBackend().probe()
    assert not status.available
    assert "could not subscribe" in status.reason and "Failed to create IOReport" in status.reason
    with pytest.raises(BackendUnavailable):
        AppleBackend().open()


def test_unavailable_off_macos(monkeypatch):
    monkeypatch.setattr(apple, "_host", lambda: ("linux", "x86_64"))
    install(monkeypatch, m1_max())  # even with the package importable
    status = AppleBackend().probe()
    assert not status.available
    assert status.reason == "Apple Silicon energy (IOReport) exists only on macOS; this is linux"


def test_unavailable_on_intel_mac(monkeypatch):
    monkeypatch.setattr(apple, "_host", lambda: ("darwin", "x86_64"))
    assert "not Apple Silicon" in AppleBackend().probe().reason


def test_real_host_here():
    status = AppleBackend().probe()
    if sys.platform != "darwin":
        assert not status.available and "only on macOS" in status.reason


def test_not_installed(mac, monkeypatch):
    monkeypatch.setitem(sys.modules, "zeus_apple_silicon", None)
    status = AppleBackend().probe()
    assert not status.available and status.reason == NOT_INSTALLED


def test_bound_terms(backend):
    terms = backend.bound_terms()
    assert terms["cpu:soc"].abs_j == 1e-3 and "no published accuracy" in terms["cpu:soc"].source


def test_fake_fields_are_the_real_ones():
    real = pytest.importorskip("zeus_apple_silicon")
    metrics = real.AppleEnergyMetrics()
    for name in FIELDS:
        assert hasattr(metrics, name), name
    for name in ("get_cumulative_energy", "begin_window", "end_window"):
        assert hasattr(real.AppleEnergyMonitor, name), name
