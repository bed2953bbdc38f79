"""The on-disk log: flushed per run, one per process, readable after a crash."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

import energykernel as ek
from energykernel.core.recorder import read_log, recorder


def test_run_is_on_disk_before_measure_returns(estimate_only, log_dir):
    with ek.measure("first"):
        pass
    path = recorder().log_path
    assert path is not None and path.parent == log_dir
    # read through a separate file object: the line must already be flushed
    with open(path, encoding="utf-8") as f:
        lines = [json.loads(x) for x in f]
    assert lines[0]["kind"] == "header" and lines[0]["pid"] == os.getpid()
    assert lines[-1]["kind"] == "run" and lines[-1]["task"] == "first"


def test_crash_in_third_block_keeps_first_two(log_dir):
    code = textwrap.dedent(
        """
        import os, energykernel as ek
        with ek.measure("one"):
            pass
        with ek.measure("two"):
            pass
        with ek.measure("three"):
            os._exit(17)
        """
    )
    env = {**os.environ, "ENERGYKERNEL_LOG_DIR": str(log_dir), "ENERGYKERNEL_BACKENDS": "estimate"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, timeout=60)
    assert proc.returncode == 17
    ds = ek.load(log_dir)
    assert sorted(ds.task.values.tolist()) == ["one", "two"]
    assert ek.runs().status.values.tolist() == ["ok", "ok"]


def test_unfinished_last_line_is_skipped_with_warning(estimate_only, log_dir):
    with ek.measure("kept"):
        pass
    path = recorder().log_path
    with open(path, "a", encoding="utf-8") as f:
        f.write('{"kind":"run","id":"abc","task":"half')  # the process died mid-write
    with pytest.warns(RuntimeWarning, match="line 3 .unfinished"):
        records = read_log(path)
    assert [r["task"] for r in records] == ["kept"]


def test_corrupt_middle_line_is_skipped_naming_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"kind":"header","version":1}\nnot json\n{"kind":"header"}\n')
    with pytest.warns(RuntimeWarning, match=r"bad\.jsonl: skipped 1 bad line.*line 2 .not JSON"):
        assert read_log(path) == []
    path.write_text('{"kind":"run","id":"x","task":"t"}\n{"kind":"header"}\n')
    with pytest.warns(RuntimeWarning, match=r"line 1: field 'instance' is missing"):
        assert read_log(path) == []


GOOD = {"kind": "run", "id": "good", "task": "t", "instance": "h", "start_s": 1.0,
        "end_s": 2.0, "duration_s": 1.0, "energy_j": {"cpu": 1.0}, "method": {"cpu": "rapl"},
        "device_energy_j": {"cpu:package-0": 1.0}, "status": "ok", "scope": "machine"}
HOSTILE = [
    ({"energy_j": "12"}, "energy_j"),
    ({"energy_j": {"gpux": 1.0}}, "energy_j"),
    ({"energy_j": {"cpu": float("inf")}}, "energy_j"),
    ({"energy_j": {"cpu": -1.0}}, "energy_j"),
    ({"start_s": "yesterday"}, "start_s"),
    ({"task": 42}, "task"),
    ({"task": "a\u0000b"}, "task"),
    ({"task": "\ud800"}, "task"),
    ({"task": "x" * 1_000_000}, "task"),
    ({"duration_s": "1"}, "duration_s"),
    ({"device_energy_j": [1, 2]}, "device_energy_j"),
    ({"status": "great"}, "status"),
    ({"method": {"cpu": 3}}, "method"),
    ({"extra": {"note": "\ud800"}}, "extra"),
    ({"pid": "1"}, "pid"),
]


@pytest.mark.parametrize(("change", "field"), HOSTILE, ids=[f for _, f in HOSTILE])
def test_hostile_lines_are_skipped_and_never_poison_the_record(estimate_only, tmp_path,
                                                                  change, field):
    """Valid JSON with wrong types is rejected line by line: good lines, other files and the
    process's own runs still load, and every Dataset and save keeps working."""
    import json

    with ek.measure("mine"):
        pass
    logs = tmp_path / "logs"
    logs.mkdir()
    bad = {**GOOD, "id": "bad", **change}
    (logs / "a.jsonl").write_text(json.dumps({"kind": "header", "version": 2}) + "\n"
                                  + json.dumps(bad) + "\n" + json.dumps(GOOD) + "\n")
    (logs / "b.jsonl").write_bytes(b'{"kind":"header"}\n\xff\xfe not utf-8\n'
                                   + json.dumps({**GOOD, "id": "other"}).encode() + b"\n")
    with pytest.warns(RuntimeWarning, match=rf"a\.jsonl: skipped 1 bad line.*line 2: field '{field}'"):
        ek.load(logs)
    assert sorted(ek.runs().run_id.values.tolist()) == sorted(
        [ek.last().id, "good", "other"])
    ek.dataset()
    ek.save(tmp_path / "all.nc")
    assert len(ek.load(tmp_path / "all.nc").task) == 2


def test_foreign_file_in_a_log_directory_is_skipped(estimate_only, tmp_path):
    import json

    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "notes.jsonl").write_text('{"hello": 1}\n[1, 2]\n')
    (logs / "mine.jsonl").write_text(json.dumps(GOOD) + "\n")
    with pytest.warns(RuntimeWarning, match=r"skipped .*notes\.jsonl: .*not an energykernel"):
        ek.load(logs)
    assert ek.runs().run_id.values.tolist() == ["good"]
    with pytest.raises(TypeError, match="load"):
        ek.load(None)


def test_reset_keeps_the_log_and_load_adds_once(estimate_only, log_dir):
    for name in ("a", "b"):
        with ek.measure(name):
            pass
    ek.reset()
    assert ek.runs().sizes["run"] == 0
    ek.load(log_dir)
    ek.load(recorder().log_path)
    assert sorted(ek.runs().task.values.tolist()) == ["a", "b"]
    # new runs after reset still go to the same log
    with ek.measure("c"):
        pass
    assert [r["task"] for r in read_log(recorder().log_path)] == ["a", "b", "c"]


def test_forked_child_writes_its_own_log(estimate_only, log_dir):
    with ek.measure("parent"):
        pass
    pid = os.fork()
    if pid == 0:  # child
        try:
            with ek.measure("child"):
                pass
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    logs = sorted(log_dir.glob("*.jsonl"))
    assert len(logs) == 2
    tasks = sorted(r["task"] for f in logs for r in read_log(f))
    assert tasks == ["child", "parent"]


def test_full_log_disk_reports_every_unlogged_run_and_resumes(estimate_only, log_dir,
                                                              monkeypatch):
    """ENOSPC on the log (injected, with a torn partial write): a warning per run, a
    count, and logging resumes cleanly when space returns."""
    import errno
    import os

    from energykernel.core import recorder as recorder_mod

    with ek.measure("before"):
        pass
    real_write = os.write
    state = {"full": True}

    def disk(fd, data):
        if state["full"]:
            real_write(fd, bytes(data[:7]))  # part of the line reaches the file
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(recorder_mod.os, "write", disk)
    with pytest.warns(RuntimeWarning) as caught:
        for k in range(3):
            with ek.measure(f"lost-{k}"):
                pass
    texts = [str(w.message) for w in caught if "could not be appended" in str(w.message)]
    assert len(texts) == 3 and all(f"lost-{k}" in texts[k] for k in range(3))
    assert "3 run(s) so far" in texts[-1]
    assert recorder().unlogged == 3
    state["full"] = False
    with ek.measure("after"):
        pass
    monkeypatch.undo()
    path = recorder().log_path
    with pytest.warns(RuntimeWarning, match="skipped"):  # the torn pieces, never a good line
        tasks = [r["task"] for r in read_log(path)]
    assert tasks == ["before", "after"]
    assert len(ek.runs().task) == 5  # every run is still in memory


def test_long_instance_label_still_gets_a_log(estimate_only, log_dir):
    ek.configure(instance="node-" + "x" * 400)
    with ek.measure("t"):
        pass
    path = recorder().log_path
    assert path is not None and len(path.name) < 120
    assert [r["instance"] for r in read_log(path)] == ["node-" + "x" * 400]
