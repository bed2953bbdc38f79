"""Cells across runs: source hash and head, collecting, keeping N, the verdict."""

from __future__ import annotations

import math

from energykernel.data.history import collect, entry, source_head, source_sha, update, verdict


def _entry(run_id, total, lo=None, hi=None, at="2026-01-01T00:00:00+00:00", status="ok"):
    e = {"run_id": run_id, "at": at, "total_j": total, "duration_s": 1.0, "status": status}
    if lo is not None:
        e.update(lo_j=lo, hi_j=hi)
    return e


def test_source_sha_and_head():
    assert source_sha("x = 1") == source_sha("x = 1") != source_sha("x = 2")
    assert len(source_sha("")) == 16
    head, more = source_head("\n\n  \na = 1\nb = 2\nc = 3\nd = 4")
    assert head == "a = 1\nb = 2\nc = 3" and more
    head, more = source_head("x" * 500)
    assert len(head) == 160 and head.endswith("…") and not more


def test_entry_of_a_run():
    r = {"id": "r1", "end_s": 0.0, "duration_s": 2.0, "status": "ok",
         "energy_j": {"cpu": 3.0, "ram": 1.0},
         "energy_bounds_j": {"cpu": [2.0, 4.0], "ram": [0.5, 1.5]}}
    e = entry(r)
    assert e == {"run_id": "r1", "at": "1970-01-01T00:00:00+00:00", "total_j": 4.0,
                 "duration_s": 2.0, "status": "ok", "lo_j": 2.5, "hi_j": 5.5}
    del r["energy_bounds_j"]["ram"]
    assert "lo_j" not in entry(r)  # no bounds for every component: none


def test_collect_merges_dedupes_and_skips_junk():
    cells = [
        {"metadata": {"energykernel": {"history": {"a": [_entry("1", 1.0, at="t1")]}}}},
        {"metadata": {"energykernel": {"history": {"a": [_entry("1", 1.0, at="t1"),
                                                         _entry("2", 2.0, at="t2")]}}}},
        {"metadata": {"energykernel": {"history": "junk"}}},
        {"metadata": {"energykernel": {"history": {"b": [{"run_id": 3}, "x", None]}}}},
        {"metadata": {}}, {},
    ]
    assert collect(cells) == {"a": [_entry("1", 1.0, at="t1"), _entry("2", 2.0, at="t2")]}


def test_update_keeps_the_last_n_and_compares_with_the_last_finished():
    past = {"s": [_entry(str(k), float(k), at=f"t{k}") for k in range(5)]
            + [_entry("bad", 99.0, at="t9", status="error")]}
    kept, previous = update(past, "s", _entry("new", 7.0), keep=3)
    assert [e["run_id"] for e in kept] == ["4", "bad", "new"]
    assert previous["run_id"] == "4"  # not the run that raised
    assert update({}, "s", _entry("new", 1.0), keep=5) == ([_entry("new", 1.0)], None)
    assert update(past, "s", _entry("new", 1.0), keep=0)[0] == []


def test_verdict():
    prev = {"lo_j": 9.0, "hi_j": 11.0}
    assert verdict(11.5, 13.0, prev) == "rose"
    assert verdict(7.0, 8.5, prev) == "fell"
    assert verdict(10.5, 12.0, prev) == "same"
    assert verdict(math.nan, 1.0, prev) == "" and verdict(1.0, 2.0, {}) == ""
