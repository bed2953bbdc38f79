"""Cluster windows on a real LocalCluster (2 worker processes on this one host).

Workers read a fake powercap tree that only the test advances, so energies are exact.
"""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

from fakes.powercap import FakePowercap  # noqa: E402

import energykernel as ek  # noqa: E402
import energykernel.dask as ekd  # noqa: E402

UJ = 1_000_000  # µJ per J


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    with FakePowercap(tmp_path_factory.mktemp("powercap")) as tree:
        yield tree


@pytest.fixture(scope="module")
def client(fake):
    env = {
        "ENERGYKERNEL_POWERCAP_ROOT": str(fake.root),
        "ENERGYKERNEL_BACKENDS": "rapl",
        "ENERGYKERNEL_SAMPLE_INTERVAL_S": "0.1",
        "ENERGYKERNEL_READ_DETAIL": "1",  # psys etc. in each run's device detail
        "ENERGYKERNEL_INSTANCE": "",  # the host name, whatever the runner's environment
    }
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address=":0", env=env) as cluster, \
            distributed.Client(cluster) as c:
        ekd.register(c)
        yield c


def _worker_state(dask_worker):
    import threading

    return {
        "sampler": any(t.name == "energykernel-sampler" for t in threading.enumerate()),
        "plugin": "energykernel" in dask_worker.plugins,
        "callback": "energykernel" in dask_worker.periodic_callbacks,
        "handlers": sorted(h for h in dask_worker.handlers if h.startswith("energykernel")),
    }


def test_one_host_is_one_instance_counted_once(client, fake):
    host = next(iter(ekd.read_workers(client).values()))["host"]
    with ekd.measure_cluster(client, "train") as w:
        fake.add_energy("intel-rapl:0", 5 * UJ)       # package-0
        fake.add_energy("intel-rapl:1", 2 * UJ)       # package-1
        fake.add_energy("intel-rapl:0:2", 1 * UJ)     # dram under package 0
        fake.add_energy("intel-rapl:2", 9 * UJ)       # psys: detail only
        assert client.submit(sum, [1, 2, 3]).result() == 6
    (m,) = w.result
    assert m.instance == host
    assert m.energy_j == pytest.approx({"cpu": 7.0, "ram": 1.0}, abs=1e-9)  # not doubled
    assert m.method == {"cpu": "rapl", "ram": "rapl"}
    assert m.device_energy_j["cpu:psys"] == pytest.approx(9.0)
    assert m.status == "ok"
    # every figure has its interval, from the workers' own counters' resolution
    for comp, (lo, hi) in m.energy_bounds_j.items():
        assert lo < m.energy_j[comp] < hi, comp
        assert hi - m.energy_j[comp] == pytest.approx(m.energy_j[comp] - lo)  # a counter's ±
    runs = ek.runs()
    assert not np.isnan(runs.energy_lo.sel(component="cpu").values).any()
    rec = m.extra
    assert sorted(rec["workers"]) == sorted(client.scheduler_info()["workers"])
    assert rec["coverage"] == "full" and rec["partial"] is False
    ds = ek.dataset()
    assert list(ds.instance.values) == [host]
    assert float(ds.energy.sel(task="train", instance=host, component="cpu")) == pytest.approx(7.0)
    assert int(ds.runs.sel(task="train", instance=host)) == 1


def test_runs_land_in_the_client_log(client, fake, log_dir):
    with ekd.measure_cluster(client, "logged"):
        fake.add_energy("intel-rapl:1", 3 * UJ)
    ek.reset()
    ds = ek.load(log_dir)
    assert float(ds.energy.sel(task="logged", component="cpu").sum()) == pytest.approx(3.0)


def test_error_in_block_is_recorded_and_propagates(client, fake):
    w = ekd.ClusterWindow(client, "boom")
    with pytest.raises(ZeroDivisionError), w:
        fake.add_energy("intel-rapl:0", 1 * UJ)
        1 / 0  # noqa: B018
    (m,) = w.result
    assert m.status == "error" and "ZeroDivisionError" in m.error
    assert m.energy_j["cpu"] == pytest.approx(1.0)


def test_bad_arguments(client):
    with pytest.raises(ValueError, match="instance"):
        ekd.ClusterWindow(client, "t", instance="node")
    with pytest.raises(ValueError, match="scope"):
        ekd.ClusterWindow(client, "t", scope="galaxy")
    with pytest.raises(ValueError, match="component"):
        ekd.ClusterWindow(client, "t", components="cpu,disk")
    with pytest.raises(TypeError, match="Client"):
        ekd.ClusterWindow(object(), "t")
    w = ekd.ClusterWindow(client, "t")
    with pytest.raises(RuntimeError, match="not started"):
        w.stop()


def test_components_and_process_scope(client, fake):
    with ekd.measure_cluster(client, "cpu-only", components="cpu", scope="process") as w:
        fake.add_energy("intel-rapl:0", 4 * UJ)
        fake.add_energy("intel-rapl:0:2", 4 * UJ)
        client.submit(lambda: sum(i * i for i in range(300_000)), pure=False).result()
    (m,) = w.result
    assert set(m.energy_j) == {"cpu"}
    share = m.to_dict()["cpu_share"]
    assert 0.0 <= share <= 1.0
    assert m.energy_j["cpu"] == pytest.approx(4.0 * share)
    lo, hi = m.energy_bounds_j["cpu"]  # the machine's interval, scaled by the same share
    assert lo <= m.energy_j["cpu"] <= hi
    assert hi - m.energy_j["cpu"] == pytest.approx(m.energy_j["cpu"] - lo)


def test_timeline_gathers_worker_samples(client, fake):
    t0 = time.time()
    fake.start()
    try:
        with ekd.measure_cluster(client, "sampled"):
            time.sleep(0.6)
    finally:
        fake.stop()
    tl = ekd.timeline(client, since_s=t0)
    assert tl.power.attrs["units"] == "W"
    assert tl.sizes["time"] >= 2
    assert set(tl.instance.values) == {next(iter(ekd.read_workers(client).values()))["instance"]}
    assert "sampled" in set(tl.task.values)
    # Only samples whose whole interval lies after t0: an earlier test's instantaneous
    # add_energy can fall inside the interval of the first sample taken after t0.
    starts = tl.time.values - (tl.interval.values * 1e9).astype("timedelta64[ns]")
    inside = starts >= np.datetime64(int(t0 * 1e9), "ns")
    cpu = tl.power.sel(component="cpu").values[inside]
    interval = tl.interval.values[inside]
    # The fake's packages draw 40 + 30 W; samples at the window's edges see part of it.
    # The fake's thread advances its counters by the time since it last ran, so on a
    # loaded machine one sample can see a catch-up burst: the mean over the samples is
    # what stays within the draw.
    assert (cpu > 0).any() and (cpu <= 70.0 * 4).all()
    assert (cpu * interval).sum() / interval.sum() <= 70.0 * 1.5


def test_unregister_stops_worker_samplers(client, fake):
    assert all(s["sampler"] and s["plugin"] and s["callback"]
               for s in client.run(_worker_state).values())
    assert ekd.unregister(client) is True
    states = client.run(_worker_state)
    assert all(not s["sampler"] and not s["plugin"] and not s["callback"] and not s["handlers"]
               for s in states.values()), states
    assert ekd.unregister(client) is False
    # The next window installs the plugin again.
    with ekd.measure_cluster(client, "again") as w:
        fake.add_energy("intel-rapl:0", 2 * UJ)
    assert [m.energy_j["cpu"] for m in w.result] == [pytest.approx(2.0)]
    assert all(s["sampler"] for s in client.run(_worker_state).values())


def test_import_energykernel_does_not_import_dask(tmp_path):
    code = ("import sys, energykernel as ek\n"
            "with ek.measure('x'): pass\n"
            "bad = [m for m in ('dask', 'distributed') if m in sys.modules]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True,
                   env={"ENERGYKERNEL_BACKENDS": "estimate", "PATH": "/usr/bin:/bin",
                        "ENERGYKERNEL_LOG_DIR": str(tmp_path)})


def test_worker_joining_a_measured_host_is_listed_not_added(client, fake):
    cluster = client.cluster
    before = set(client.scheduler_info()["workers"])
    w = ekd.ClusterWindow(client, "scaled").start()
    fake.add_energy("intel-rapl:0", 1 * UJ)
    cluster.scale(3)
    client.wait_for_workers(3)
    (new,) = set(client.scheduler_info()["workers"]) - before
    ekd.read_workers(client)  # its plugin is set up: it is measured from here
    fake.add_energy("intel-rapl:0", 2 * UJ)
    (m,) = w.stop()
    rec = m.extra
    assert rec["coverage"] == "full" and new in rec["workers"] and len(rec["workers"]) == 3
    assert m.energy_j["cpu"] == pytest.approx(3.0)  # the joined worker's piece overlaps
    cluster.scale(2)
    while len(client.scheduler_info()["workers"]) > 2:
        time.sleep(0.05)


def test_ek_measure_with_cluster_is_a_cluster_window(client, fake):
    with ek.measure("via-measure", cluster=client) as w:
        fake.add_energy("intel-rapl:0", 2 * UJ)
    assert isinstance(w, ekd.ClusterWindow)
    (m,) = w.result
    assert m.task == "via-measure" and m.energy_j["cpu"] == pytest.approx(2.0)


def test_energy_magic_cluster_option(client, fake):
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        shell.run_line_magic("load_ext", "energykernel")
        shell.user_ns["fake"], shell.user_ns["cl"] = fake, client
        result = shell.run_cell("%%energy -t on-cluster --cluster cl -q\n"
                                "fake.add_energy('intel-rapl:1', 3_000_000)\n")
        result.raise_error()
        runs = ek.runs()
        assert runs.task.values.tolist()[-1] == "on-cluster"
        assert float(runs.energy.sel(component="cpu").values[-1]) == pytest.approx(3.0)
        bad = shell.run_cell("%%energy --cluster 1x\npass\n")
        assert bad.error_in_exec is not None or bad.error_before_exec is not None
    finally:
        shell.run_line_magic("unload_ext", "energykernel")
        InteractiveShell.clear_instance()
