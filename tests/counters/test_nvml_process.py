"""NVML per-process GPU attribution (scope="process") and Hopper memory power, against the
fake ``pynvml`` with the real function names and structures."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))

from fakes.pynvml import FakeGpu, FakePynvml

from energykernel.core.accounting import gpu_process_share
from energykernel.counters.nvml import NvmlBackend

ME = os.getpid()
UUID0 = "GPU-aaaaaaaa-1111-2222-3333-444444444444"
UUID1 = "GPU-bbbbbbbb-5555-6666-7777-888888888888"


# -- the share, pure -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("sm", "compute", "share", "basis"),
    [
        ({ME: 60.0, 99: 20.0}, {ME: 1, 99: 1}, 0.75, "sm_utilization"),
        ({99: 50.0}, {ME: 1, 99: 1}, 0.0, "sm_utilization"),
        (None, {ME: 10}, 1.0, "only_compute_processes"),
        ({ME: 0.0}, {ME: 10}, 1.0, "only_compute_processes"),  # samples, all idle
        (None, {99: 10}, 0.0, "no_compute_process"),
        (None, {}, 0.0, "no_compute_process"),
        (None, {ME: 3 << 30, 99: 1 << 30}, 0.75, "memory_share"),
        (None, {ME: None, 99: 5, 98: 5}, 1 / 3, "memory_share"),  # memory unknown: by count
    ],
)
def test_gpu_process_share(sm, compute, share, basis):
    assert gpu_process_share(sm, compute, {ME}) == (pytest.approx(share), basis)


# -- the backend -----------------------------------------------------------------------------
def hopper_and_ampere() -> list[FakeGpu]:
    return [FakeGpu("NVIDIA H100 80GB HBM3", UUID0, power_mw=400_000, power_limit_mw=700_000,
                    memory_power_mw=60_000),
            FakeGpu("NVIDIA A100-SXM4-40GB", UUID1, power_mw=200_000)]


@pytest.fixture
def nv(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    fake = FakePynvml(hopper_and_ampere())
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    return fake


def test_memory_power_is_detail(nv):
    status = NvmlBackend().probe()
    assert status.devices == ("gpu:0", "gpu:0:memory", "gpu:1")
    assert "gpu:0:memory (memory power, detail)" in status.reason
    b = NvmlBackend()
    t = [10.0]
    b._clock = lambda: t[0]
    b.open()
    assert b.devices["gpu:0:memory"].component is None
    assert b.poll_interval_s() == 0.2  # the sampler integrates the memory power
    assert b.devices["gpu:0:memory"].meta["field"] == "NVML_FI_DEV_POWER_INSTANT (memory)"
    t[0] += 2.0
    nv.advance(2.0)
    reading = b.read()
    assert reading["gpu:0:memory"] == pytest.approx(120.0)  # 60 W × 2 s
    assert reading["gpu:0"] == pytest.approx(800.0)  # the counter, memory inside it
    assert set(b.read(detail=False)) == {"gpu:0", "gpu:1"}
    nv.gpus[0].memory_power_mw = None  # the field stops answering mid-window: held
    t[0] += 1.0
    assert b.read()["gpu:0:memory"] == pytest.approx(120.0)
    b.close()


def test_process_usage_shapes(nv):
    now_us = int(time.time() * 1e6)
    nv.gpus[0].processes = [(ME, 2 << 30), (4242, None)]
    nv.gpus[0].util_samples = [(ME, now_us - 10, 99, 0),  # before the window: not returned
                               (ME, now_us + 1, 40, 5), (ME, now_us + 2, 20, 5),
                               (4242, now_us + 3, 30, 1)]
    b = NvmlBackend()
    b.open()
    usage = b.process_usage(now_us)
    assert usage["gpu:0"].sm_util == {ME: 60.0, 4242: 30.0}
    assert usage["gpu:0"].compute == {ME: 2 << 30, 4242: None}
    assert usage["gpu:1"].sm_util is None and usage["gpu:1"].compute == {}  # NotFound
    assert "gpu:0:memory" not in usage
    nv.gpus[1].process_util_supported = False
    assert b.process_usage(now_us)["gpu:1"].sm_util is None
    assert b.devices["gpu:1"].meta["process_error"] == "Not Supported"
    b.close()
    assert b.process_usage(now_us) == {}


# -- through a measured window -------------------------------------------------------------
@pytest.fixture
def nvml_engine(nv, monkeypatch):
    from energykernel.core import config

    monkeypatch.setenv("ENERGYKERNEL_BACKENDS", "nvml,estimate")
    config.reset_settings()
    return nv


def samples(gpu: FakeGpu, *rows: tuple[int, int]) -> None:
    """Utilisation samples (pid, smUtil) stamped now, inside the open window."""
    now_us = int(time.time() * 1e6)
    gpu.util_samples += [(pid, now_us + 1 + k, sm, 0) for k, (pid, sm) in enumerate(rows)]


def test_process_scope_attributes_gpu_energy(nvml_engine):
    import energykernel as ek

    nv = nvml_engine
    nv.gpus[0].processes = [(ME, 1 << 30), (4242, 1 << 30)]
    nv.gpus[1].processes = [(ME, 1 << 30)]
    with ek.measure("train", scope="process") as m:
        nv.advance(1.0)  # gpu:0 400 J, gpu:1 200 J
        samples(nv.gpus[0], (ME, 30), (4242, 90))  # ours: a quarter of gpu:0's SM time
    r = m.result
    assert r.device_energy_j["gpu:0"] == pytest.approx(400.0)
    assert r.energy_j["gpu"] == pytest.approx(400.0 * 0.25 + 200.0)  # gpu:1: only ours
    record = r.to_dict()
    assert record["gpu_share"] == pytest.approx(300.0 / 600.0)
    assert record["gpu_share_basis"] == "only_compute_processes,sm_utilization"
    lo, hi = r.energy_bounds_j["gpu"]
    assert 0 < lo <= r.energy_j["gpu"] <= hi < 600.0

    runs = ek.runs()
    assert float(runs.gpu_share.values[0]) == pytest.approx(0.5)
    assert str(runs.gpu_share_basis.values[0]) == "only_compute_processes,sm_utilization"


def test_unknown_share_widens_the_bounds(nvml_engine):
    import energykernel as ek

    nv = nvml_engine
    nv.gpus[0].processes = [(ME, 1 << 30), (4242, 3 << 30)]  # no samples: a memory proxy
    with ek.measure("shared", scope="process", components="gpu") as m:
        nv.advance(1.0)
    r = m.result
    assert r.to_dict()["gpu_share_basis"] == "memory_share,no_compute_process"
    assert r.energy_j["gpu"] == pytest.approx(400.0 * 0.25)  # gpu:1 has no process: 0
    lo, hi = r.energy_bounds_j["gpu"]
    assert lo == 0.0 and hi >= 600.0  # [0, the machine-wide figure and its resolution]


def test_machine_scope_is_unchanged(nvml_engine):
    import energykernel as ek

    nv = nvml_engine
    with ek.measure("all") as m:
        nv.advance(1.0)
    assert m.result.energy_j["gpu"] == pytest.approx(600.0)
    assert "gpu_share" not in m.result.to_dict()


def test_gpu_share_round_trips_save_and_load(nvml_engine, tmp_path):
    import energykernel as ek

    nv = nvml_engine
    nv.gpus[0].processes = [(ME, 1)]
    with ek.measure("train", scope="process"):
        nv.advance(1.0)
    path = tmp_path / "runs.nc"
    ek.save(path)
    before = ek.runs()
    ek.reset()
    ek.load(path)
    after = ek.runs()
    assert float(after.gpu_share.values[0]) == pytest.approx(float(before.gpu_share.values[0]))
    assert str(after.gpu_share_basis.values[0]) == str(before.gpu_share_basis.values[0])


def test_record_from_dict_checks_gpu_share():
    from energykernel.core.record import record_from_dict

    base = {"id": "a", "task": "t", "instance": "h", "start_s": 1.0, "end_s": 2.0,
            "energy_j": {"gpu": 1.0}}
    assert record_from_dict({**base, "gpu_share": 0.5, "gpu_share_basis": "sm_utilization"},
                            "log")["gpu_share"] == 0.5
    with pytest.raises(ValueError, match="'gpu_share' must be a number in"):
        record_from_dict({**base, "gpu_share": 1.5}, "log")
    with pytest.raises(ValueError, match="gpu_share_basis"):
        record_from_dict({**base, "gpu_share_basis": 3}, "log")


def test_tree_pids_finds_children(monkeypatch):
    import subprocess

    from energykernel.core import _proc

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert {ME, child.pid} <= _proc.tree_pids()
        monkeypatch.setattr(_proc, "_proc_children", lambda pid: None)  # no children file
        assert {ME, child.pid} <= _proc.tree_pids()  # psutil's walk instead
    finally:
        child.kill()
        child.wait()


def test_child_process_gpu_use_is_ours(nvml_engine):
    """A subprocess's GPU work counts for the tree (its pid is in the samples)."""
    import subprocess

    import energykernel as ek

    nv = nvml_engine
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        nv.gpus[0].processes = [(child.pid, 1), (4242, 1)]
        with ek.measure("child", scope="process", components="gpu") as m:
            nv.advance(1.0)
            samples(nv.gpus[0], (child.pid, 50), (4242, 50))
            samples(nv.gpus[1], (4242, 10))
    finally:
        child.kill()
        child.wait()
    assert m.result.energy_j["gpu"] == pytest.approx(400.0 * 0.5 + 0.0)
