"""Atomic writes: all or nothing."""

from __future__ import annotations

import os
import stat

import pytest

from energykernel.core._atomic import atomic_path, write_text_atomic


def test_write_replaces_whole_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    write_text_atomic(target, "new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_failed_write_leaves_nothing_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_missing_directory_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        write_text_atomic(tmp_path / "nope" / "out.txt", "x")


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_new_file_gets_the_mode_plain_open_would(tmp_path, umask):
    old = os.umask(umask)
    try:
        write_text_atomic(tmp_path / "new.txt", "x")
        with open(tmp_path / "plain.txt", "w") as f:
            f.write("x")
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "new.txt").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode) == 0o666 & ~umask


def test_existing_file_keeps_its_mode(tmp_path):
    target = tmp_path / "shared.txt"
    target.write_text("old")
    target.chmod(0o644)
    write_text_atomic(target, "new")
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    target.chmod(0o640)
    write_text_atomic(target, "newer")
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


def test_every_writer_of_the_package_gives_readable_files(tmp_path, estimate_only):
    """ek.save, the report, sim JSON and DataProduct logs all go through atomic_path."""
    import energykernel as ek
    from energykernel.sim import ComputeInstance, DataProduct, Resource, Task
    from energykernel.sim.jsonio import save_instances, save_tasks
    from energykernel.viz.report import open_dataset, write_report

    old = os.umask(0o022)
    try:
        with ek.measure("t"):
            pass
        ek.save(tmp_path / "a.nc")
        write_report(open_dataset(tmp_path / "a.nc"), tmp_path / "a.html", title="t",
                     source="a.nc")
        save_instances([ComputeInstance("i", {"cpu": Resource(1, 1.0)})], tmp_path / "i.json")
        save_tasks([Task("t", 1.0, {"cpu": 1})], tmp_path / "t.json")
        product = DataProduct("p", [])
        product.to_log(tmp_path / "p.jsonl")
    finally:
        os.umask(old)
    for name in ("a.nc", "a.html", "i.json", "t.json", "p.jsonl"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name


def test_full_disk_raises_naming_the_path_and_keeps_the_old_file(tmp_path, monkeypatch):
    """ENOSPC mid-write (injected): OSError naming the target, old file intact, no temp."""
    import errno

    from energykernel.core import _atomic

    target = tmp_path / "runs.nc"
    target.write_bytes(b"old")
    real_write = os.write
    calls = []

    def full_disk(fd, data):
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, bytes(data[: len(data) // 2]))  # a short write first
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_atomic.os, "write", full_disk)
    with pytest.raises(OSError, match=r"runs\.nc") as err:
        _atomic.write_bytes_atomic(target, b"x" * 10_000)
    monkeypatch.undo()
    assert err.value.errno == errno.ENOSPC
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["runs.nc"]


def test_save_on_a_full_disk_leaves_the_process_alive(tmp_path, estimate_only, monkeypatch):
    """ek.save builds the NetCDF file in memory: HDF5 never meets the full disk."""
    import errno

    import energykernel as ek
    from energykernel.core import _atomic

    with ek.measure("t"):
        pass
    (tmp_path / "out").mkdir()
    target = tmp_path / "out" / "a.nc"
    ek.save(target)
    before = target.read_bytes()

    def full_disk(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_atomic.os, "write", full_disk)
    with pytest.raises(OSError, match=r"a\.nc"):
        ek.save(target)
    monkeypatch.undo()
    assert target.read_bytes() == before
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.nc"]


def test_stale_temporaries_of_a_killed_save_are_removed(tmp_path):
    import subprocess
    import sys

    target = tmp_path / "out.txt"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    stale = tmp_path / f".out.txt.{dead}.abc123.tmp"
    stale.write_text("half")
    legacy = tmp_path / ".out.txt.k2j3h4.tmp"  # an older naming, no pid
    legacy.write_text("half")
    live = tmp_path / f".out.txt.{os.getppid()}.zzz.tmp"  # a running process's write
    live.write_text("in progress")
    other = tmp_path / ".other.txt.1.x.tmp"
    other.write_text("not ours")
    write_text_atomic(target, "new")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(["out.txt", live.name, other.name])


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_save_on_a_real_full_tmpfs(tmp_path, estimate_only):
    """The same on a real full file system, where one can be mounted."""
    import subprocess

    import energykernel as ek

    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (no CAP_SYS_ADMIN)")
    try:
        for k in range(50):
            with ek.measure(f"task-{k}-" + "x" * 200):
                pass
        target = mnt / "runs.nc"
        ek.save(target)
        before = target.read_bytes()
        (mnt / "filler").write_bytes(b"\0" * (256 * 1024 - len(before) - 4096))
        for k in range(2000):  # make the next file larger than what is left
            with ek.measure(f"more-{k}-" + "y" * 200):
                pass
        with pytest.raises(OSError, match=r"runs\.nc"):
            ek.save(target)
        assert target.read_bytes() == before
        assert sorted(p.name for p in mnt.iterdir()) == ["filler", "runs.nc"]
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
