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
