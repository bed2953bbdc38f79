"""``energykernel compare A.nc B.nc [-o OUT.html]`` on datasets saved in the test."""

from __future__ import annotations

import pytest

import energykernel as ek
from energykernel.cli.main import main


def _save(path, manual, train_j, eval_j):
    ek.reset()
    for task, joules in (("train", train_j), ("eval", eval_j)):
        with ek.measure(task):
            manual.add("cpu:package-0", joules)
    ek.save(path)


def test_compare_prints_what_moved_and_writes_html(manual, tmp_path, capsys):
    _save(tmp_path / "a.nc", manual, 100.0, 5.0)
    _save(tmp_path / "b.nc", manual, 160.0, 5.0)
    out = tmp_path / "cmp.html"
    assert main(["compare", str(tmp_path / "a.nc"), str(tmp_path / "b.nc"), "-o", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[1].split()[0] == "train" and "+60 J" in printed[1] and "×1.6" in printed[1]
    html = out.read_text()
    assert "train" in html and "b − a" in html and "<script" not in html


@pytest.mark.parametrize("case", ["missing", "not-nc", "out-is-input", "bad-top"])
def test_compare_bad_input_exits_2_in_one_line(manual, tmp_path, capsys, case):
    _save(tmp_path / "a.nc", manual, 1.0, 1.0)
    a = str(tmp_path / "a.nc")
    (tmp_path / "junk.nc").write_text("junk")
    argv = {"missing": ["compare", a, str(tmp_path / "nope.nc")],
            "not-nc": ["compare", a, str(tmp_path / "junk.nc")],
            "out-is-input": ["compare", a, a, "-o", a.replace(".nc", ".html")],
            "bad-top": ["compare", a, a, "--top", "0"]}[case]
    if case == "out-is-input":
        (tmp_path / "a.html").symlink_to(tmp_path / "a.nc")
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("energykernel compare: error:")
