"""Two instances on one cluster (a worker per machine label, each with its own counters),
a worker killed mid-window (its nanny restarts it: lost, then joined)."""

from __future__ import annotations

import os
import signal
import time

import pytest

distributed = pytest.importorskip("distributed")

from fakes.powercap import FakePowercap  # noqa: E402

import energykernel as ek  # noqa: E402
import energykernel.dask as ekd  # noqa: E402

UJ = 1_000_000


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    with FakePowercap(tmp_path_factory.mktemp("node-a")) as a, \
            FakePowercap(tmp_path_factory.mktemp("node-b")) as b:
        yield {"node-a": a, "node-b": b}


@pytest.fixture(scope="module")
def client(trees):
    """A SpecCluster: one Nanny-managed worker per machine label and counter tree."""
    def worker(label):
        env = {"ENERGYKERNEL_INSTANCE": label,
               "ENERGYKERNEL_POWERCAP_ROOT": str(trees[label].root),
               "ENERGYKERNEL_BACKENDS": "rapl",
               "ENERGYKERNEL_SAMPLE_INTERVAL_S": "0.1"}
        return {"cls": distributed.Nanny, "options": {"nthreads": 1, "env": env}}

    scheduler = {"cls": distributed.Scheduler, "options": {"dashboard_address": ":0"}}
    with distributed.SpecCluster(workers={"a": worker("node-a"), "b": worker("node-b")},
                                 scheduler=scheduler) as cluster, \
            distributed.Client(cluster) as c:
        c.wait_for_workers(2)
        yield c


def _addresses(client, label):
    return [a for a, s in ekd.read_workers(client).items() if s["instance"] == label]


def test_two_instances(client, trees):
    with ekd.measure_cluster(client, "compare") as w:
        trees["node-a"].add_energy("intel-rapl:0", 5 * UJ)
        trees["node-b"].add_energy("intel-rapl:0", 7 * UJ)
        trees["node-b"].add_energy("intel-rapl:1:0", 2 * UJ)  # dram of package 1
    got = w.result.by_instance()
    assert set(got) == {"node-a", "node-b"}
    assert got["node-a"].energy_j == pytest.approx({"cpu": 5.0, "ram": 0.0})
    assert got["node-b"].energy_j == pytest.approx({"cpu": 7.0, "ram": 2.0})
    assert got["node-a"].extra["workers"] == _addresses(client, "node-a")
    assert w.result.total_j == pytest.approx(14.0)
    ds = ek.dataset()
    assert float(ds.energy.sel(task="compare", instance="node-b", component="cpu")) == 7.0
    assert sorted(ds.instance.values) == ["node-a", "node-b"]


def test_timeline_has_both_instances(client, trees):
    t0 = time.time()
    for tree in trees.values():
        tree.start()
    try:
        with ekd.measure_cluster(client, "tl"):
            time.sleep(0.5)
    finally:
        for tree in trees.values():
            tree.stop()
    tl = ekd.timeline(client, since_s=t0)
    assert set(tl.instance.values) == {"node-a", "node-b"}
    for label in ("node-a", "node-b"):
        part = tl.isel(time=(tl.instance == label).values)
        assert part.sizes["time"] >= 2
        assert (part.time.diff("time") > 0).all()  # each instance in time order


def test_worker_killed_mid_window(client, trees):
    (lost,) = _addresses(client, "node-b")
    pid = client.run(os.getpid, workers=[lost])[lost]
    w = ekd.ClusterWindow(client, "killed").start()
    trees["node-a"].add_energy("intel-rapl:0", 5 * UJ)
    trees["node-b"].add_energy("intel-rapl:0", 7 * UJ)
    ekd.window.wait_for_reading(w, lost, min_j=7.0)  # its reading reached the client
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while True:  # the nanny restarts it: a worker joining mid-window
        joined = [a for a in _addresses(client, "node-b") if a != lost]
        if joined and lost not in client.scheduler_info()["workers"]:
            break
        assert time.monotonic() < deadline, "the killed worker did not come back"
        time.sleep(0.1)
    trees["node-b"].add_energy("intel-rapl:0", 11 * UJ)  # seen by the joined worker only
    result = w.stop()
    got = result.by_instance()
    a, b = got["node-a"], got["node-b"]
    assert a.status == "ok" and a.extra["coverage"] == "full"
    assert a.energy_j["cpu"] == pytest.approx(5.0)
    assert b.status == "interrupted" and b.extra["partial"] is True
    assert b.extra["coverage"] == "lost+joined"
    assert b.energy_j["cpu"] == pytest.approx(7.0 + 11.0)
    assert set(b.extra["workers"]) == {lost, *joined}
    assert lost in b.extra["note"] and "joined" in b.extra["note"]
    runs = ek.runs()
    assert sorted(runs.status.values) == ["interrupted", "ok"]


def test_worker_retired_mid_window_sends_its_final_reading(client, trees):
    (gone,) = _addresses(client, "node-a")
    w = ekd.ClusterWindow(client, "retired").start()
    trees["node-a"].add_energy("intel-rapl:1", 3 * UJ)
    trees["node-b"].add_energy("intel-rapl:1", 4 * UJ)
    client.retire_workers([gone], close_workers=True)  # the plugin's teardown publishes
    got = w.stop().by_instance()
    a = got["node-a"]
    assert a.status == "interrupted" and a.extra["coverage"] == "lost" and a.extra["partial"] is True
    assert a.energy_j["cpu"] == pytest.approx(3.0)
    assert got["node-b"].energy_j["cpu"] == pytest.approx(4.0)
