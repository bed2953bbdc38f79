"""measure(), track(), last() and Measurement, through the real engine and recorder."""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from datetime import timezone

import pytest

import energykernel as ek


def test_window_energy_is_counter_difference(manual):
    with ek.measure("train") as m:
        manual.add("cpu:package-0", 5.0)
        manual.add("cpu:package-1", 1.5)
        manual.add("ram:dram-0", 2.0)
        manual.add("cpu:psys", 10.0)
    r = m.result
    assert r.energy_j["cpu"] == pytest.approx(6.5)
    assert r.energy_j["ram"] == pytest.approx(2.0)
    assert r.method["cpu"] == r.method["ram"] == "rapl"
    assert r.method["storage"] == "estimate"  # no counter covers storage here
    assert "gpu" not in r.energy_j
    # psys is kept as detail but never added to cpu (psys ⊇ package)
    assert r.device_energy_j["cpu:psys"] == pytest.approx(10.0)
    assert r.total_j == pytest.approx(sum(r.energy_j.values()))
    assert r.status == "ok" and r.task == "train"


def test_measurement_attributes(manual):
    with ek.measure("t", instance="node-7") as m:
        pass
    r = m.result
    assert r is ek.last()
    assert r.instance == "node-7"
    assert r.start.tzinfo is timezone.utc and r.end.tzinfo is timezone.utc
    assert r.end >= r.start
    assert isinstance(r.duration_s, float) and r.duration_s >= 0
    assert math.isclose((r.end - r.start).total_seconds(), r.duration_s, abs_tol=1e-5)
    assert set(r.method) == set(r.energy_j)
    assert "node-7" in repr(r)


def test_default_instance_is_host_or_env(manual, monkeypatch):
    import socket

    with ek.measure("a") as m:
        pass
    assert m.result.instance == socket.gethostname()
    monkeypatch.setenv("ENERGYKERNEL_INSTANCE", "gpu-box")
    ek.configure()  # settings are re-read only on reset; configure keeps them
    from energykernel.core import config

    config.reset_settings()
    with ek.measure("a") as m:
        pass
    assert m.result.instance == "gpu-box"


def test_components_subset(manual):
    with ek.measure("x", components="cpu") as m:
        manual.add("cpu:package-0", 1.0)
        manual.add("ram:dram-0", 1.0)
    assert m.result.energy_j == {"cpu": pytest.approx(1.0)}
    with pytest.raises(ValueError, match="'disk'"):
        ek.measure("x", components=["cpu", "disk"])


@pytest.mark.parametrize("bad", [{"scope": "node"}, {"task": ""}, {"instance": ""}])
def test_bad_arguments_name_the_parameter(bad):
    name = next(iter(bad))
    with pytest.raises(ValueError, match=name):
        ek.measure(**{"task": "t", **bad})


def test_error_is_recorded_and_propagates_unchanged(manual):
    err = ValueError("boom")
    with pytest.raises(ValueError) as info, ek.measure("fails"):
        manual.add("cpu:package-0", 3.0)
        raise err
    assert info.value is err
    r = ek.last()
    assert r.status == "error" and r.error == "ValueError: boom"
    assert r.energy_j["cpu"] == pytest.approx(3.0)


def test_keyboard_interrupt_is_interrupted(manual):
    with pytest.raises(KeyboardInterrupt), ek.measure("stopped"):
        raise KeyboardInterrupt
    assert ek.last().status == "interrupted"
    assert ek.runs().status.values.tolist() == ["interrupted"]


def test_nested_windows_each_recorded_once(manual):
    with ek.measure("outer") as outer:
        manual.add("cpu:package-0", 1.0)
        with ek.measure("inner") as inner:
            manual.add("cpu:package-0", 2.0)
        manual.add("cpu:package-0", 4.0)
    assert inner.result.energy_j["cpu"] == pytest.approx(2.0)
    assert outer.result.energy_j["cpu"] == pytest.approx(7.0)
    assert sorted(ek.runs().task.values.tolist()) == ["inner", "outer"]


def test_threads_record_every_run_once(manual, log_dir):
    def work(k):
        for _ in range(25):
            with ek.measure(f"thread-{k}"):
                manual.add("cpu:package-0", 0.0)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    runs = ek.runs()
    assert runs.sizes["run"] == 200
    assert len(set(runs.run_id.values.tolist())) == 200
    lines = [json.loads(x) for f in log_dir.glob("*.jsonl") for x in f.read_text().splitlines()]
    assert sum(1 for x in lines if x["kind"] == "run") == 200
    assert (ek.dataset().runs.sel(instance=runs.instance.values[0]).values == 25).all()


def test_start_stop_explicit(manual):
    w = ek.measure("manual-window").start()
    manual.add("ram:dram-0", 0.5)
    m = w.stop()
    assert m.energy_j["ram"] == pytest.approx(0.5)
    with pytest.raises(RuntimeError, match="not started"):
        w.stop()


def test_track_bare_named_and_options(manual):
    @ek.track
    def prepare(x):
        """Doc."""
        manual.add("cpu:package-0", 1.0)
        return x * 2

    @ek.track("fit", components=["cpu"])
    def fit():
        return "done"

    assert prepare(21) == 42 and fit() == "done"
    assert prepare.__doc__ == "Doc." and prepare.__name__ == "prepare"
    tasks = ek.runs().task.values.tolist()
    assert tasks == ["test_track_bare_named_and_options.<locals>.prepare", "fit"]
    assert ek.last().energy_j.keys() == {"cpu"}


def test_track_coroutine_and_generator(manual):
    @ek.track("async-step")
    async def step():
        await asyncio.sleep(0)
        manual.add("cpu:package-0", 2.0)
        return 7

    @ek.track("stream")
    def stream(n):
        for i in range(n):
            manual.add("cpu:package-0", 1.0)
            yield i

    assert asyncio.run(step()) == 7
    assert ek.last().task == "async-step" and ek.last().energy_j["cpu"] == pytest.approx(2.0)
    assert list(stream(3)) == [0, 1, 2]
    assert ek.last().task == "stream" and ek.last().energy_j["cpu"] == pytest.approx(3.0)


def test_track_rejects_non_name():
    with pytest.raises(TypeError, match="task name"):
        ek.track(3)


def test_process_scope_scales_cpu_and_ram(estimate_only):
    with ek.measure("busy", scope="process") as m:
        sum(i * i for i in range(2_000_000))
    r = m.result
    share = ek.runs().cpu_share.values[0]
    assert 0.0 <= share <= 1.0
    assert r.energy_j["cpu"] == pytest.approx(r.device_energy_j["cpu:estimate"] * share)
    assert r.energy_j["ram"] == pytest.approx(r.device_energy_j["ram:estimate"] * share)


def test_relabel_an_open_window(manual):
    from energykernel.core.engine import get_engine

    w = ek.measure("draft").start()
    w.relabel("final")
    assert get_engine().current_task() == "final"
    assert w.stop().task == "final"
    with pytest.raises(ValueError, match="relabel"):
        w.relabel("")


# -- the foundation's defects, each with a regression test ------------------------------


def test_configure_inside_an_open_window_keeps_its_engine(manual):
    """A cell that reconfigures under auto mode must not zero its own run."""
    with ek.measure("outer") as m:
        manual.add("cpu:package-0", 3.0)
        ek.configure(sample_interval_s=0.5)  # restarts the engine for new windows
        with ek.measure("after") as inner:
            manual.add("cpu:package-0", 2.0)
        manual.add("cpu:package-0", 1.0)
    assert m.result.status == "ok"
    assert m.result.energy_j["cpu"] == pytest.approx(6.0)
    assert inner.result.energy_j["cpu"] == pytest.approx(2.0)
    from energykernel.core import engine as engine_mod

    assert engine_mod._engine is not None and engine_mod._engine._period_s == 0.5


def test_retired_engine_stops_when_its_last_window_closes(manual):
    from energykernel.core import engine as engine_mod

    w = ek.measure("w").start()
    old = engine_mod._engine
    ek.configure(sample_interval_s=0.25)
    assert not old._stopped  # the open window still reads it
    w.stop()
    assert old._stopped and engine_mod._engine is not old


def test_window_whose_first_read_fails_is_not_left_registered(manual, monkeypatch):
    from energykernel.core.engine import get_engine

    engine = get_engine()

    def broken(detail=None):
        raise OSError("counter unreadable")

    monkeypatch.setattr(engine, "read", broken)
    with pytest.raises(OSError, match="counter unreadable"):
        ek.measure("broken").start()
    assert engine.current_task() == ""
    assert not engine._active
    monkeypatch.undo()


def test_cluster_is_keyword_only_and_windows_are_what_they_say():
    with pytest.raises(TypeError):
        ek.measure("t", None, None, "machine", object())  # cluster by position
    w = ek.measure("t")
    assert isinstance(w, ek.Window)
    with pytest.raises(TypeError, match=r"distributed\.Client"):
        ek.measure("t", cluster=object())


def test_nested_windows_know_their_parent(manual):
    with ek.measure("outer") as outer:
        manual.add("cpu:package-0", 1.0)
        with ek.measure("inner") as inner:
            manual.add("cpu:package-0", 4.0)
            with ek.measure("innermost") as innermost:
                manual.add("cpu:package-0", 2.0)
    assert outer.result.parent_id == ""
    assert inner.result.parent_id == outer.result.id
    assert innermost.result.parent_id == inner.result.id
    with ek.measure("sibling") as sibling:
        pass
    assert sibling.result.parent_id == ""
    runs = ek.runs()
    parents = dict(zip(runs.task.values, runs.parent.values, strict=True))
    assert parents == {"outer": "", "inner": outer.result.id, "innermost": inner.result.id,
                       "sibling": ""}
    ds = ek.dataset()
    cpu = ds.sel(component="cpu", instance=outer.result.instance)
    assert float(cpu.energy.sel(task="outer")) == pytest.approx(7.0)  # inclusive
    assert float(cpu.self_energy.sel(task="outer")) == pytest.approx(1.0)
    assert float(cpu.self_energy.sel(task="inner")) == pytest.approx(4.0)
    assert float(cpu.self_energy.sel(task="innermost")) == pytest.approx(2.0)
    assert float(cpu.self_energy.sum()) == pytest.approx(7.0)  # every joule once


def test_threads_nest_in_the_ambient_window_and_async_tasks_in_their_own(manual):
    cell = ek.Window("cell", ambient=True).start()
    seen = {}

    def worker():
        with ek.measure("in-thread") as m:
            pass
        seen["thread"] = m.result.parent_id

    t = threading.Thread(target=worker)
    t.start()
    t.join()

    async def job(name):
        with ek.measure(name) as m:
            await asyncio.sleep(0.01)
        return m.result.parent_id

    async def both():
        with ek.measure("gather") as g:
            ids = await asyncio.gather(job("a"), job("b"))
        return g.result.id, ids

    gather_id, ids = asyncio.run(both())
    cell.stop()
    assert seen["thread"] == cell.result.id
    assert ids == [gather_id, gather_id]  # concurrent tasks do not nest in each other


BUSY = "import time\nt = time.process_time()\nwhile time.process_time() - t < {s}: pass\n"


def test_process_scope_counts_a_subprocess(estimate_only):
    """A CPU-bound child started and finished inside the window is attributed."""
    import subprocess
    import sys

    from energykernel.core import _proc

    busy_s = 0.6
    before = _proc.process_tree_cpu_s()
    with ek.measure("child", scope="process") as m:
        subprocess.run([sys.executable, "-c", BUSY.format(s=busy_s)], check=True)
    tree_s = _proc.process_tree_cpu_s() - before
    assert tree_s >= 0.8 * busy_s  # the child's CPU time is in the tree
    assert m.result.to_dict()["cpu_share"] > 0


def test_process_scope_counts_live_children_and_pool_workers(estimate_only):
    """Descendants still running at the window's end (and a multiprocessing pool's
    workers) count too."""
    import multiprocessing as mp
    import subprocess
    import sys

    from energykernel.core import _proc

    start = _proc.process_tree_cpu_s()
    child = subprocess.Popen([sys.executable, "-c", BUSY.format(s=0.5) + "time.sleep(30)"])
    try:
        deadline = time.monotonic() + 20
        while _proc.process_tree_cpu_s() - start < 0.4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _proc.process_tree_cpu_s() - start >= 0.4  # counted while alive
    finally:
        child.kill()
        child.wait()
    ctx = mp.get_context("spawn")
    before = _proc.process_tree_cpu_s()
    with ctx.Pool(2) as pool:
        pool.map(exec, [BUSY.format(s=0.3)] * 2)
        during = _proc.process_tree_cpu_s() - before
    assert during >= 0.8 * 0.6


def test_live_descendants_read_from_proc_match_psutils_walk(monkeypatch):
    """The /proc children walk and psutil's walk of every process see the same tree and
    the same CPU seconds (to a tick per process)."""
    import subprocess
    import sys

    from energykernel.core import _proc

    if _proc.descendant_pids() is None:
        pytest.skip("this kernel has no /proc/PID/task/*/children")
    child = subprocess.Popen([sys.executable, "-c", BUSY.format(s=0.3) + "time.sleep(30)"])
    try:
        deadline = time.monotonic() + 20
        while child.pid not in _proc.tree_pids() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.6)  # the child has finished its busy loop: its CPU time is still
        fast_pids, fast_s = _proc.tree_pids(), _proc.process_tree_cpu_s()
        monkeypatch.setattr(_proc, "_proc_children", lambda pid: None)
        slow_pids, slow_s = _proc.tree_pids(), _proc.process_tree_cpu_s()
    finally:
        child.kill()
        child.wait()
    assert child.pid in fast_pids and fast_pids == slow_pids
    assert fast_s >= 0.25 and slow_s == pytest.approx(fast_s, abs=3 / _proc.CLK_TCK + 0.05)
