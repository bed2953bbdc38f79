"""The AMD SMI backend against a fake ``amdsmi`` with the real names, shapes and errors."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))

from fakes.amdsmi import COUNTER_MODULUS, FakeAmdGpu, FakeAmdSmi

from energykernel.counters._integrate import POWER_POLL_S
from energykernel.counters.amdsmi import NOT_INSTALLED, AmdSmiBackend
from energykernel.counters.base import BackendUnavailable

SERIAL0 = "0x4B2C1A0000000001"
SERIAL1 = "0x4B2C1A0000000002"
SERIAL2 = "0x4B2C1A0000000003"


def three_gpus() -> list[FakeAmdGpu]:
    """Listed by AMD SMI in an order that is not ROCm's (KFD node) order."""
    return [
        FakeAmdGpu("AMD Instinct MI300X", SERIAL1, kfd_node=3, power_w=500, mi300=True,
                   accumulator=10**12, power_cap_uw=750_000_000),
        FakeAmdGpu("AMD Instinct MI250X", SERIAL0, kfd_node=2, power_w=200),
        FakeAmdGpu("AMD Instinct MI100", SERIAL2, kfd_node=4, power_w=150, energy_supported=False),
    ]


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def smi(monkeypatch):
    for var in ("ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES"):
        monkeypatch.delenv(var, raising=False)
    fake = FakeAmdSmi(three_gpus())
    monkeypatch.setitem(sys.modules, "amdsmi", fake)
    return fake


@pytest.fixture
def backend(smi):
    b = AmdSmiBackend()
    b._clock = Clock()
    b.open()
    yield b
    b.close()


def test_probe_in_rocm_order(smi):
    status = AmdSmiBackend().probe()
    assert status.available, status.reason
    assert status.components == ("gpu",) and status.devices == ("gpu:0", "gpu:1", "gpu:2")
    assert status.reason.startswith("gpu:0 AMD Instinct MI250X (energy counter)")
    assert "gpu:2 AMD Instinct MI100 (power integration)" in status.reason
    assert smi.initialised == 0  # amdsmi_init balanced by amdsmi_shut_down


def test_devices_and_meta(backend):
    assert {n: d.component for n, d in backend.devices.items()} == dict.fromkeys(
        ("gpu:0", "gpu:1", "gpu:2"), "gpu")
    meta = backend.devices["gpu:1"].meta
    assert meta["model"] == "AMD Instinct MI300X" and meta["asic_serial"] == SERIAL1
    assert meta["source"] == "energy_counter" and meta["counter_resolution_uj"] == 15.3
    assert meta["power_limit_w"] == 750.0 and meta["bdf"] == "0000:c1:00.0"
    assert backend.devices["gpu:2"].meta["power_field"] == "average_socket_power"
    assert backend.poll_interval_s() == POWER_POLL_S


def test_energy_accumulator_times_resolution(smi, backend):
    r0 = backend.read()
    smi.advance(2.0)
    r1 = backend.read()
    assert r0["gpu:0"] == 0.0  # since open, not since the driver loaded
    assert r1["gpu:0"] == pytest.approx(400.0, abs=15.3e-6)  # 200 W × 2 s, whole counts
    assert r1["gpu:1"] == pytest.approx(1000.0, abs=15.3e-6)


def test_power_integration_trapezoid(smi, backend):
    clock = backend._clock
    assert backend.read()["gpu:2"] == 0.0
    clock.t += 1.0
    assert backend.read()["gpu:2"] == 150.0
    smi.gpus[2].power_w = 250
    clock.t += 2.0
    assert backend.read()["gpu:2"] == 150.0 + (150 + 250) / 2 * 2


@pytest.mark.parametrize(("shape", "field"), [({"mi300": True}, "current_socket_power"),
                                              ({"rocm7": True}, "socket_power"),
                                              ({}, "average_socket_power")])
def test_socket_power_field(monkeypatch, shape, field):
    fake = FakeAmdSmi([FakeAmdGpu(energy_supported=False, power_w=600, **shape)])
    monkeypatch.setitem(sys.modules, "amdsmi", fake)
    b = AmdSmiBackend()
    b._clock = clock = Clock()
    b.open()
    assert b.devices["gpu:0"].meta["power_field"] == field
    clock.t += 0.5
    assert b.read()["gpu:0"] == 300.0
    b.close()


def test_counter_wraps_at_64_bits(smi, backend):
    gpu = smi.gpus[1]
    backend.read()
    gpu.accumulator = COUNTER_MODULUS - 1000  # just below the wrap: no energy added
    backend._gpus[0].counter.last_uj = gpu.accumulator
    before = backend.read()["gpu:0"]
    smi.advance(1.0)  # 200 J = 13 071 895 counts: wraps
    assert gpu.accumulator < 1000 + 13_071_896
    assert backend.read()["gpu:0"] - before == pytest.approx(200.0, abs=15.3e-6)


def test_a_reset_counts_from_zero_not_as_a_wrap(smi, backend):
    smi.advance(1.0)
    before = backend.read()["gpu:1"]
    smi.gpus[0].accumulator = 1000  # GPU reset: the accumulator restarts
    after = backend.read()["gpu:1"]
    assert after - before == pytest.approx(1000 * 15.3e-6)
    assert backend.devices["gpu:1"].meta["counter_resets"] == 1


@pytest.mark.parametrize("shape", [{"key_power_only": True}, {"rocm7": True}])
def test_bindings_of_other_rocm_versions(monkeypatch, shape):
    """Before 6.4 the accumulator is only ``power``; 7.x drops ``power``."""
    fake = FakeAmdSmi([FakeAmdGpu(power_w=100, **shape)])
    monkeypatch.setitem(sys.modules, "amdsmi", fake)
    b = AmdSmiBackend()
    b.open()
    fake.advance(1.0)
    assert b.read()["gpu:0"] == pytest.approx(100.0, abs=15.3e-6)
    b.close()


@pytest.mark.parametrize(
    ("rocr", "hip", "devices"),
    [
        ("1", None, ("gpu:1",)),
        ("2,0", None, ("gpu:2", "gpu:0")),
        (f"GPU-{SERIAL2[2:]}", None, ("gpu:2",)),
        (f"GPU-{SERIAL0[2:].lower()},1", None, ("gpu:0", "gpu:1")),
        ("1,2", "1", ("gpu:2",)),  # HIP indexes the GPUs ROCr left visible
        (None, "0,2", ("gpu:0", "gpu:2")),
        ("0,9,2", None, ("gpu:0", "gpu:2")),  # an entry that names no GPU is skipped
        ("0,0", None, ("gpu:0",)),
    ],
)
def test_visible_devices(smi, monkeypatch, rocr, hip, devices):
    for var, value in (("ROCR_VISIBLE_DEVICES", rocr), ("HIP_VISIBLE_DEVICES", hip)):
        if value is not None:
            monkeypatch.setenv(var, value)
    status = AmdSmiBackend().probe()
    assert status.available and status.devices == devices, status.reason
    if rocr == "0,9,2":
        assert "ROCR_VISIBLE_DEVICES entry '9' names no GPU here" in status.reason


@pytest.mark.parametrize("spec", ["", "-1", "GPU-ffff"])
def test_visible_devices_hide_all(smi, monkeypatch, spec):
    monkeypatch.setenv("ROCR_VISIBLE_DEVICES", spec)
    status = AmdSmiBackend().probe()
    assert not status.available and "ROCR_VISIBLE_DEVICES" in status.reason
    with pytest.raises(BackendUnavailable):
        AmdSmiBackend().open()
    assert smi.initialised == 0


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (34, "amdgpu kernel driver is not loaded"),
        (10, "render"),
        (18, "/dev/kfd"),
        (0xFFFFFFFF, "AMD SMI error: Error code: 4294967295 | AMDSMI_STATUS_UNKNOWN_ERROR"),
    ],
)
def test_init_failure_is_a_reason(monkeypatch, code, text):
    monkeypatch.setitem(sys.modules, "amdsmi", FakeAmdSmi(three_gpus(), init_error=code))
    status = AmdSmiBackend().probe()
    assert not status.available and text in status.reason
    with pytest.raises(BackendUnavailable, match=text.split()[0]):
        AmdSmiBackend().open()


def test_not_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "amdsmi", None)
    status = AmdSmiBackend().probe()
    assert not status.available and status.reason == NOT_INSTALLED
    assert "energykernel[amd]" in status.reason and "libamd_smi.so" in status.reason


def test_bindings_without_their_library(monkeypatch, tmp_path, capsys):
    """The real bindings print, then fail with a KeyError, when libamd_smi.so is missing."""
    pkg = tmp_path / "amdsmi"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "print('libamd_smi.so: cannot open shared object file')\n"
        "print('Unable to find amdsmi library try installing amd-smi-lib')\n"
        "_libraries = {}\namdsmi_init = _libraries['libamd_smi.so'].amdsmi_init\n")
    monkeypatch.delitem(sys.modules, "amdsmi", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    status = AmdSmiBackend().probe()
    assert not status.available
    assert "installed but its library could not be loaded" in status.reason
    assert "cannot open shared object file" in status.reason and "amd-smi-lib" in status.reason
    assert capsys.readouterr().out == ""  # nothing printed into the notebook


def test_gpu_without_any_reading_is_skipped(monkeypatch):
    gpus = [*three_gpus(), FakeAmdGpu("AMD Radeon", "0x99", kfd_node=9, energy_supported=False,
                                      power_supported=False)]
    monkeypatch.setitem(sys.modules, "amdsmi", FakeAmdSmi(gpus))
    status = AmdSmiBackend().probe()
    assert status.available and status.devices == ("gpu:0", "gpu:1", "gpu:2")
    assert "gpu:3 (AMD Radeon): no energy or power reading" in status.reason


def test_lost_gpu_keeps_its_energy(smi, backend):
    smi.advance(1.0)
    assert backend.read()["gpu:0"] == pytest.approx(200.0, abs=1e-4)
    smi.gpus[1].lost = True
    smi.advance(1.0)
    assert backend.read()["gpu:0"] == pytest.approx(200.0, abs=1e-4)
    assert "driver is not loaded" in backend.devices["gpu:0"].meta["last_error"]
    smi.gpus[1].lost = False
    assert backend.read()["gpu:0"] == pytest.approx(400.0, abs=1e-4)


def test_bound_terms(backend):
    terms = backend.bound_terms()
    assert terms["gpu:1"].abs_j == pytest.approx(15.3e-6 + 750.0 * 0.1)
    assert terms["gpu:0"].abs_j == pytest.approx(15.3e-6 + 560.0 * 0.1)
    assert terms["gpu:2"].abs_j == pytest.approx(2 * 560.0 * POWER_POLL_S)
    assert "100 ms refresh" in terms["gpu:1"].source


def test_close_shuts_amdsmi_down(smi):
    b = AmdSmiBackend()
    b.open()
    assert smi.initialised == 1
    b.close()
    assert smi.initialised == 0 and smi.calls[-1] == "amdsmi_shut_down"
    assert b.devices == {} and b.read() == {}


@pytest.mark.skipif(importlib.util.find_spec("amdsmi") is None, reason="amdsmi not installed")
def test_fake_matches_real_amdsmi_names():
    """The fake must not drift from the real bindings: same function and class names."""
    real = pytest.importorskip("amdsmi")
    fake = FakeAmdSmi([])
    for name in dir(fake):
        if name.startswith(("amdsmi_", "AmdSmi")):
            assert hasattr(real, name), name
