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
    with pytest.warns(RuntimeWarning, match="unfinished last line"):
        records = read_log(path)
    assert [r["task"] for r in records] == ["kept"]


def test_corrupt_middle_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"kind":"header","version":1}\nnot json\n{"kind":"header"}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:2"):
        read_log(path)
    path.write_text('{"kind":"run","id":"x","task":"t"}\n{"kind":"header"}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:1.*instance"):
        read_log(path)


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
