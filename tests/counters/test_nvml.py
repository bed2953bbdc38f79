"""The NVML backend against a fake ``pynvml`` with the real names and error classes."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))

from fakes.pynvml import FakeGpu, FakePynvml

from energykernel.counters.base import BackendUnavailable
from energykernel.counters.nvml import NOT_INSTALLED, POWER_POLL_S, NvmlBackend

UUID0 = "GPU-aaaaaaaa-1111-2222-3333-444444444444"
UUID1 = "GPU-bbbbbbbb-5555-6666-7777-888888888888"


def two_gpus() -> list[FakeGpu]:
    return [
        FakeGpu("NVIDIA A100-SXM4-40GB", UUID0, power_mw=100_000, energy_mj=5_000_000),
        FakeGpu("Tesla P100-PCIE-16GB", UUID1, power_mw=50_000, energy_counter=False),
    ]


class Clock:
    def __init__(self) -> None:
        self.t = 500.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def nv(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    fake = FakePynvml(two_gpus())
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    return fake


@pytest.fixture
def backend(nv):
    b = NvmlBackend()
    b._clock = Clock()
    b.open()
    yield b
    b.close()


def test_probe(nv):
    status = NvmlBackend().probe()
    assert status.available, status.reason
    assert status.components == ("gpu",)
    assert status.devices == ("gpu:0", "gpu:1")
    assert "A100" in status.reason and "power integration" in status.reason
    assert nv.refcount == 0  # probe's nvmlInit is balanced by nvmlShutdown


def test_devices_and_sources(backend):
    assert {n: d.component for n, d in backend.devices.items()} == {"gpu:0": "gpu", "gpu:1": "gpu"}
    assert backend.devices["gpu:0"].meta["source"] == "energy_counter"
    assert backend.devices["gpu:1"].meta["source"] == "power_integration"
    assert backend.devices["gpu:1"].meta["uuid"] == UUID1
    assert backend.components == ("gpu",)


def test_energy_counter_is_exact(nv, backend):
    r0 = backend.read()
    nv.advance(2.0)  # 100 W × 2 s
    r1 = backend.read()
    assert r1["gpu:0"] - r0["gpu:0"] == 200.0
    assert r0["gpu:0"] == 0.0  # cumulative since open, not since driver load


def test_power_integration_trapezoid(nv, backend):
    clock = backend._clock
    assert backend.read()["gpu:1"] == 0.0
    clock.t += 1.0
    assert backend.read()["gpu:1"] == 50.0  # 50 W for 1 s
    nv.gpus[1].power_mw = 150_000
    clock.t += 2.0
    assert backend.read()["gpu:1"] == 50.0 + (50 + 150) / 2 * 2
    assert backend.poll_interval_s() == POWER_POLL_S


def test_counter_only_needs_no_polling(monkeypatch):
    fake = FakePynvml([FakeGpu(uuid=UUID0)])
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    b = NvmlBackend()
    b.open()
    assert b.poll_interval_s() is None
    b.close()


@pytest.mark.parametrize(
    ("spec", "devices"),
    [
        ("1", ("gpu:1",)),
        ("1,0", ("gpu:1", "gpu:0")),
        (UUID1, ("gpu:1",)),
        (f"{UUID1},{UUID0}", ("gpu:1", "gpu:0")),
        ("GPU-bbbbbbbb", ("gpu:1",)),  # CUDA accepts a unique UUID prefix
        ("0,7,1", ("gpu:0",)),  # an invalid entry ends the list, as in CUDA
        ("0,0", ("gpu:0",)),
    ],
)
def test_cuda_visible_devices(nv, monkeypatch, spec, devices):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", spec)
    status = NvmlBackend().probe()
    assert status.available and status.devices == devices
    if spec == "0,7,1":
        assert "'7'" in status.reason


@pytest.mark.parametrize("spec", ["", "-1", "GPU-ffff"])
def test_cuda_visible_devices_hides_all(nv, monkeypatch, spec):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", spec)
    status = NvmlBackend().probe()
    assert not status.available
    assert "CUDA_VISIBLE_DEVICES" in status.reason
    with pytest.raises(BackendUnavailable):
        NvmlBackend().open()
    assert nv.refcount == 0


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (12, "libnvidia-ml.so.1 was not found"),
        (9, "driver is not loaded"),
        (18, "versions differ"),
        (999, "NVML error: Unknown Error (code 999)"),
    ],
)
def test_init_failure_is_a_reason(monkeypatch, code, text):
    monkeypatch.setitem(sys.modules, "pynvml", FakePynvml(two_gpus(), init_error=code))
    status = NvmlBackend().probe()
    assert not status.available and text in status.reason
    with pytest.raises(BackendUnavailable, match=text.split()[0]):
        NvmlBackend().open()


def test_not_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    status = NvmlBackend().probe()
    assert not status.available and status.reason == NOT_INSTALLED
    assert "energykernel[gpu]" in status.reason


def test_gpu_without_any_reading_is_skipped(monkeypatch):
    gpus = [
        *two_gpus(),
        FakeGpu("Quadro K600", "GPU-cccc", energy_counter=False, power_supported=False),
    ]
    monkeypatch.setitem(sys.modules, "pynvml", FakePynvml(gpus))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    status = NvmlBackend().probe()
    assert status.available and status.devices == ("gpu:0", "gpu:1")
    assert "gpu:2 (Quadro K600): no energy or power reading" in status.reason


def test_lost_gpu_keeps_its_energy(nv, backend):
    nv.advance(1.0)
    assert backend.read()["gpu:0"] == 100.0
    nv.gpus[0].lost = True
    nv.advance(1.0)
    assert backend.read()["gpu:0"] == 100.0
    assert backend.devices["gpu:0"].meta["last_error"] == "GPU is lost"
    nv.gpus[0].lost = False
    assert backend.read()["gpu:0"] == 200.0


def test_close_shuts_nvml_down(nv):
    b = NvmlBackend()
    b.open()
    assert nv.refcount == 1
    b.close()
    assert nv.refcount == 0 and nv.calls[-1] == "nvmlShutdown"
    assert b.devices == {}


@pytest.mark.skipif(importlib.util.find_spec("pynvml") is None, reason="nvidia-ml-py missing")
def test_fake_matches_real_pynvml_names():
    """The fake must not drift from nvidia-ml-py: same names, codes and error classes."""
    import pynvml as real

    fake = FakePynvml([])
    used = [n for n in dir(fake) if n.startswith(("nvml", "NVML"))]
    assert len(used) > 20
    for name in used:
        assert hasattr(real, name), name
        if name.startswith("NVML_"):
            assert getattr(real, name) == getattr(fake, name), name
    err = real.NVMLError(real.NVML_ERROR_NOT_SUPPORTED)
    assert isinstance(err, real.NVMLError_NotSupported) and err.value == 3
    err = fake.NVMLError(fake.NVML_ERROR_NOT_SUPPORTED)
    assert isinstance(err, fake.NVMLError_NotSupported) and err.value == 3


@pytest.mark.parametrize("duration_s", [0.001, 0.05, 0.25, 3.0])
@pytest.mark.parametrize("phase", [0.0, 0.5, 0.99])
def test_bounds_hold_on_the_energy_counter(nv, monkeypatch, duration_s, phase):
    """lo ≤ truth ≤ hi, windows shorter and longer than the ~100 ms counter refresh."""
    import math
    import types

    import energykernel as ek
    from energykernel.core import config
    from energykernel.core import window as window_mod
    from energykernel.counters.nvml import ENERGY_UPDATE_S

    monkeypatch.setenv("ENERGYKERNEL_BACKENDS", "nvml")
    nv.gpus[:] = [FakeGpu("NVIDIA H100", UUID0, power_mw=300_000, power_limit_mw=700_000)]
    config.reset_settings()
    clock = types.SimpleNamespace(t=0.0)
    clock.perf_counter = clock.time = lambda: clock.t
    monkeypatch.setattr(window_mod, "time", clock)
    base_mj = nv.gpus[0].energy_mj

    def move_to(t):
        clock.t = t
        refreshed = math.floor(t / ENERGY_UPDATE_S) * ENERGY_UPDATE_S
        nv.gpus[0].energy_mj = base_mj + math.floor(300_000 * refreshed)  # mW × s = mJ

    t0 = 10.0 + phase * ENERGY_UPDATE_S
    move_to(t0)
    w = ek.measure("w").start()
    move_to(t0 + duration_s)
    m = w.stop()
    lo, hi = m.energy_bounds_j["gpu"]
    assert lo <= 300.0 * duration_s <= hi, (lo, 300.0 * duration_s, hi)
    assert hi - lo <= 2 * (1e-3 + 700.0 * ENERGY_UPDATE_S) + 1e-9


# -- MIG: CUDA_VISIBLE_DEVICES naming MIG devices ------------------------------------------
MIG_A = "MIG-11111111-aaaa-bbbb-cccc-000000000001"
MIG_B = "MIG-11111111-aaaa-bbbb-cccc-000000000002"
MIG_C = "MIG-22222222-aaaa-bbbb-cccc-000000000003"


@pytest.fixture
def mig(nv):
    """GPU 0 in MIG mode with two instances, GPU 1 with one."""
    from fakes.pynvml import FakeMig

    nv.gpus[0].mig = [FakeMig(MIG_A, gpu_instance_id=1, slot=0),
                      FakeMig(MIG_B, gpu_instance_id=2, compute_instance_id=0, slot=1)]
    nv.gpus[1].mig = [FakeMig(MIG_C, gpu_instance_id=5, slot=3)]
    return nv


@pytest.mark.parametrize(
    ("spec", "devices", "migs"),
    [
        (MIG_A, ("gpu:0",), {"gpu:0": [MIG_A]}),
        (f"{MIG_A},{MIG_B}", ("gpu:0",), {"gpu:0": [MIG_A, MIG_B]}),  # one GPU, counted once
        (f"{MIG_B},{MIG_C}", ("gpu:0", "gpu:1"), {"gpu:0": [MIG_B], "gpu:1": [MIG_C]}),
        (f"MIG-{UUID0}/2/0", ("gpu:0",), {"gpu:0": [f"MIG-{UUID0}/2/0"]}),  # CUDA 11.0 form
        (f"MIG-{UUID1}/5/0,{MIG_A}", ("gpu:1", "gpu:0"),
         {"gpu:1": [f"MIG-{UUID1}/5/0"], "gpu:0": [MIG_A]}),
        (f"0,{MIG_A}", ("gpu:0",), {"gpu:0": [MIG_A]}),
    ],
)
def test_mig_devices_map_to_their_physical_gpu(mig, monkeypatch, spec, devices, migs):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", spec)
    status = NvmlBackend().probe()
    assert status.available and status.devices == devices, status.reason
    assert "energy is per physical GPU" in status.reason
    b = NvmlBackend()
    b.open()
    try:
        for name in devices:
            meta = b.devices[name].meta
            assert meta.get("mig_devices", []) == migs.get(name, [])
            assert ("scope" in meta) == (name in migs)
            assert meta["uuid"] == (UUID0 if name == "gpu:0" else UUID1)  # the parent's
    finally:
        b.close()
    assert mig.refcount == 0


def test_mig_energy_is_the_parents_once(mig, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", f"{MIG_A},{MIG_B}")
    b = NvmlBackend()
    b.open()
    r0 = b.read()
    mig.advance(2.0)  # the physical GPU draws 100 W
    r1 = b.read()
    b.close()
    assert r1 == {"gpu:0": r0["gpu:0"] + 200.0}


@pytest.mark.parametrize(
    "spec",
    [
        "MIG-99999999-0000-0000-0000-000000000000",  # no such MIG device
        f"MIG-{UUID0}/3/0",  # no such GPU instance
        f"MIG-{UUID1}/5/1",  # no such compute instance
        "MIG-GPU-ffffffff-0000-0000-0000-000000000000/1/0",  # no such GPU
    ],
)
def test_unknown_mig_device_ends_the_list(mig, monkeypatch, spec):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", f"1,{spec},0")
    status = NvmlBackend().probe()
    assert status.available and status.devices == ("gpu:1",)
    assert f"{spec!r} names no GPU here" in status.reason


def test_mig_uuid_on_a_gpu_not_in_mig_mode(nv, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", MIG_A)
    status = NvmlBackend().probe()
    assert not status.available and "CUDA_VISIBLE_DEVICES" in status.reason


def test_old_pynvml_without_mig_functions_says_so(mig, monkeypatch):
    monkeypatch.delattr(type(mig), "nvmlDeviceGetDeviceHandleFromMigDeviceHandle")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", MIG_A)
    status = NvmlBackend().probe()
    assert not status.available and "no MIG functions" in status.reason


def test_fake_mig_functions_match_pynvml_shapes(mig):
    """As in pynvml: ``nvmlDeviceIsMigDeviceHandle`` gives a c_uint; MIG handles have no
    index or energy of their own."""
    import ctypes

    mig.nvmlInit()
    try:
        handle = mig.nvmlDeviceGetHandleByUUID(MIG_B)
        flag = mig.nvmlDeviceIsMigDeviceHandle(handle)
        assert isinstance(flag, ctypes.c_uint) and flag.value == 1
        assert mig.nvmlDeviceIsMigDeviceHandle(mig.nvmlDeviceGetHandleByIndex(0)).value == 0
        parent = mig.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(handle)
        assert mig.nvmlDeviceGetIndex(parent) == 0
        assert mig.nvmlDeviceGetMigMode(parent) == [mig.NVML_DEVICE_MIG_ENABLE] * 2
        with pytest.raises(mig.NVMLError):
            mig.nvmlDeviceGetIndex(handle)
        with pytest.raises(mig.NVMLError_NotFound):
            mig.nvmlDeviceGetMigDeviceHandleByIndex(parent, 4)
        assert mig.nvmlDeviceGetGpuInstanceId(mig.nvmlDeviceGetMigDeviceHandleByIndex(parent, 1)) == 2
    finally:
        mig.nvmlShutdown()
