"""``energykernel measure | report | backends | simulate`` on notebooks made in the test."""

from __future__ import annotations

import subprocess
import sys
import types
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

import energykernel as ek
from energykernel.cli.main import main


class Tags(HTMLParser):
    """Tag names and text of an HTML document."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def parse_html(path: Path) -> Tags:
    parser = Tags()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    return parser


def write_nb(path: Path, *sources: str) -> Path:
    cells = [new_markdown_cell("# generated")]
    cells += [new_code_cell(s) for s in sources]
    nbformat.write(new_notebook(cells=cells), path)
    return path


@pytest.mark.slow
def test_measure_stops_at_a_failing_cell_and_writes_what_it_measured(tmp_path, estimate_only,
                                                                     capsys):
    source = write_nb(tmp_path / "work.ipynb",
                      "# task: setup\nx = 41",
                      "import asyncio\nawait asyncio.sleep(0.01)\nx + 1",
                      "%%energy -t marked -q\nsum(range(1000))",
                      "1 / 0",
                      "print('never runs')")
    original = source.read_bytes()
    code = main(["measure", str(source), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1
    assert "cell 5 of 6 raised ZeroDivisionError" in err
    assert source.read_bytes() == original  # the input is never modified

    out = nbformat.read(tmp_path / "work.energy.ipynb", as_version=4)
    code_cells = out.cells[1:]
    meta = [c.metadata.get("energykernel") for c in code_cells]
    assert [m["task"] for m in meta[:4]] == ["setup", "cell-2", "marked", "cell-4"]
    assert [m["status"] for m in meta[:4]] == ["ok", "ok", "ok", "error"]
    assert meta[4] is None and code_cells[4].outputs == []
    assert all(m["total_j"] >= 0 and m["method"]["cpu"] == "estimate" for m in meta[:4])
    for k, cell in enumerate(code_cells[:4]):  # a ⚡ line in every measured cell but -q's
        texts = [o.get("text") or o.get("data", {}).get("text/plain", "") for o in cell.outputs]
        assert any(t.startswith("⚡") for t in texts) == (k != 2), texts
    results = [o for o in out.cells[2].outputs if o["output_type"] == "execute_result"]
    assert results[0]["data"]["text/plain"] == "42"
    assert out.metadata["energykernel"]["complete"] is False
    assert len(out.cells) == 6 and not any("load_ext" in c.source for c in out.cells)

    cube = ek.load(tmp_path / "work.energy.nc")
    assert set(cube.task.values) == {"setup", "cell-2", "marked", "cell-4"}
    html = parse_html(tmp_path / "work.energy.html")
    assert "svg" in html.tags
    text = " ".join(html.text)
    assert "marked" in text and "stopped early" in text


@pytest.mark.slow
def test_measure_success_with_explicit_outputs(tmp_path, estimate_only, capsys):
    source = write_nb(tmp_path / "ok.ipynb", "%energy auto off\ny = 2",
                      "import time\ntime.sleep(0.3)\ny")
    outdir = tmp_path / "out"
    outdir.mkdir()
    code = main(["measure", str(source), "-o", str(outdir / "a.ipynb"), "--dataset",
                 str(outdir / "a.nc"), "--report", str(outdir / "a.html"), "--timeout", "60",
                 "--no-progress"])
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in outdir.iterdir()) == ["a.html", "a.ipynb", "a.nc"]
    out = nbformat.read(outdir / "a.ipynb", as_version=4)
    assert [c.metadata["energykernel"]["task"] for c in out.cells[1:]] == ["cell-1", "cell-2"]
    assert out.metadata["energykernel"]["complete"] is True
    assert "a.html" in capsys.readouterr().out


def _no_new_files(tmp_path: Path, before: set[Path]) -> bool:
    return set(tmp_path.rglob("*")) == before


@pytest.mark.parametrize("case", ["missing", "directory", "not-json", "not-notebook",
                                  "out-dir-missing", "out-under-file", "out-is-input",
                                  "bad-suffix", "bad-timeout", "unknown-kernel"])
def test_measure_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, case):
    good = write_nb(tmp_path / "good.ipynb", "x = 1")
    (tmp_path / "text.ipynb").write_text("this is not JSON")
    (tmp_path / "other.ipynb").write_text('{"some": "json"}')
    (tmp_path / "file.txt").write_text("x")
    argv = {
        "missing": [str(tmp_path / "nope.ipynb")],
        "directory": [str(tmp_path)],
        "not-json": [str(tmp_path / "text.ipynb")],
        "not-notebook": [str(tmp_path / "other.ipynb")],
        "out-dir-missing": [str(good), "-o", str(tmp_path / "no" / "dir.ipynb")],
        "out-under-file": [str(good), "-o", str(tmp_path / "file.txt" / "x.ipynb")],
        "out-is-input": [str(good), "-o", str(good)],
        "bad-suffix": [str(good), "--dataset", str(tmp_path / "d.csv")],
        "bad-timeout": [str(good), "--timeout", "-1"],
        "unknown-kernel": [str(good), "--kernel", "no-such-kernel"],
    }[case]
    before = set(tmp_path.rglob("*"))
    code = main(["measure", *argv, "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("energykernel: error:") and err.count("\n") == 1, err
    assert _no_new_files(tmp_path, before)


def _saved_runs(path: Path) -> Path:
    for task in ("load", "train", "train"):
        with ek.measure(task):
            sum(range(20_000))
    ek.save(path)
    return path


def test_report_from_saved_runs_and_from_a_cube(tmp_path, estimate_only, capsys):
    runs_file = _saved_runs(tmp_path / "runs.nc")
    assert main(["report", str(runs_file), "-o", str(tmp_path / "r.html")]) == 0
    html = parse_html(tmp_path / "r.html")
    text = " ".join(html.text)
    assert "svg" in html.tags and "table" in html.tags
    assert "load" in text and "train" in text and "estimate" in text
    assert "How to read" in text

    cube_file = tmp_path / "cube.nc"
    ek.dataset().to_netcdf(cube_file, engine="h5netcdf")
    assert main(["report", str(cube_file), "-o", str(tmp_path / "c.html")]) == 0
    assert "train" in " ".join(parse_html(tmp_path / "c.html").text)


def test_report_bad_input_exits_2(tmp_path, capsys):
    (tmp_path / "junk.nc").write_text("not netcdf")
    before = set(tmp_path.rglob("*"))
    assert main(["report", str(tmp_path / "junk.nc"), "-o", str(tmp_path / "j.html")]) == 2
    assert main(["report", str(tmp_path / "absent.nc"), "-o", str(tmp_path / "j.html")]) == 2
    assert main(["report", str(tmp_path / "junk.nc")]) == 2  # -o is required
    assert _no_new_files(tmp_path, before)
    assert "junk.nc" in capsys.readouterr().err


def test_backends_and_module_entry_point(estimate_only):
    out = subprocess.run([sys.executable, "-m", "energykernel", "backends"],
                         capture_output=True, text=True, check=True)
    assert "estimate: available" in out.stdout and "rapl:" in out.stdout


def test_simulate_dispatches_to_the_sim_cli(monkeypatch):
    calls = []
    fake = types.ModuleType("energykernel.cli.simulate")
    fake.simulate_main = lambda argv: calls.append(argv) or 0
    monkeypatch.setitem(sys.modules, "energykernel.cli.simulate", fake)
    assert main(["simulate", "inst.json", "tasks.json", "--mode", "optimize"]) == 0
    assert calls == [["inst.json", "tasks.json", "--mode", "optimize"]]


def test_usage_errors_exit_2(capsys):
    assert main([]) == 2
    assert main(["measure"]) == 2
    assert main(["frobnicate"]) == 2


@pytest.mark.slow
def test_measure_counts_blocks_nested_in_cells_once(tmp_path, estimate_only, capsys):
    """A cell that measures a block of its own (here also from a thread): the block is
    recorded with the cell as parent, and every total counts its joules once."""
    source = write_nb(tmp_path / "nested.ipynb",
                      "import threading, energykernel as ek\n"
                      "with ek.measure('block'):\n    sum(i * i for i in range(300000))\n"
                      "t = threading.Thread(target=lambda: ek.measure('threaded').__enter__()"
                      ".__exit__(None, None, None))\nt.start(); t.join()",
                      "sum(range(1000))")
    assert main(["measure", str(source), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    runs = ek.load(tmp_path / "nested.energy.nc") and ek.runs()
    by_task = {str(t): j for j, t in enumerate(runs.task.values)}
    cell_id = str(runs.run_id.values[by_task["cell-1"]])
    assert str(runs.parent.values[by_task["block"]]) == cell_id
    assert str(runs.parent.values[by_task["threaded"]]) == cell_id
    assert str(runs.parent.values[by_task["cell-1"]]) == ""
    energy = runs.energy.sum("component").values
    cells_j = energy[by_task["cell-1"]] + energy[by_task["cell-2"]]
    from energykernel.core.units import si

    assert f"{si(cells_j, 'J')} in total" in printed  # not cells + block
    cube = ek.dataset()
    assert float(cube.self_energy.sum()) == pytest.approx(cells_j)
    out = nbformat.read(tmp_path / "nested.energy.ipynb", as_version=4)
    assert out.cells[1].metadata["energykernel"]["task"] == "cell-1"
    html = (tmp_path / "nested.energy.html").read_text()
    text = " ".join(parse_html(tmp_path / "nested.energy.html").text)
    assert f"total {si(cells_j, 'J')}" in text and "<th>self</th>" in html
    import re

    # the blocks, each listed in its cell (cell 1 is markdown), the cell's id in the tooltip
    assert len(re.findall(r'href="#cell-2" title="cell 2, id [^"]+">in 2</a>', html)) == 2


def _alias(tmp_path: Path, target: Path, name: str, how: str) -> str:
    """A second name for ``target``: a symlink, a hard link or a relative path."""
    link = tmp_path / name
    if how == "symlink":
        link.symlink_to(target)
    elif how == "hardlink":
        import os

        os.link(target, link)
    else:
        (tmp_path / "sub").mkdir(exist_ok=True)
        return str(tmp_path / "sub" / ".." / target.name)
    return str(link)


@pytest.mark.parametrize(("option", "how"), [
    ("-o", "symlink"), ("-o", "hardlink"), ("-o", "relative"), ("--dataset", "symlink"),
    ("--dataset", "hardlink"), ("--report", "symlink"), ("--report", "hardlink")])
def test_measure_never_writes_over_its_notebook(tmp_path, capsys, option, how):
    """One shared path check (energykernel.cli._paths): every output, every alias."""
    good = write_nb(tmp_path / "good.ipynb", "x = 1")
    suffix = {"-o": ".ipynb", "--dataset": ".nc", "--report": ".html"}[option]
    target = _alias(tmp_path, good, f"alias{suffix}", how)
    original, before = good.read_bytes(), set(tmp_path.rglob("*"))
    assert main(["measure", str(good), option, target, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("energykernel: error:") and err.count("\n") == 1, err
    assert "would overwrite the input" in err and str(good) in err
    assert good.read_bytes() == original and _no_new_files(tmp_path, before)


@pytest.mark.parametrize("how", ["symlink", "hardlink"])
def test_report_never_writes_over_its_dataset(tmp_path, capsys, how):
    source = tmp_path / "runs.nc"
    source.write_bytes(b"kept as is")
    target = _alias(tmp_path, source, "alias.html", how)
    assert main(["report", str(source), "-o", target]) == 2
    err = capsys.readouterr().err
    assert "would overwrite the input" in err and err.count("\n") == 1, err
    assert source.read_bytes() == b"kept as is"


def test_every_cli_uses_the_one_path_check():
    import importlib

    from energykernel.cli import _paths, simulate

    main_mod = importlib.import_module("energykernel.cli.main")

    assert main_mod.output_file is _paths.output_file is simulate.output_file
    assert main_mod.CliError is _paths.CliError is simulate.CliError


def test_report_carbon_with_and_without_region(tmp_path, estimate_only, capsys):
    """--region sets the report's grid intensity; without it the world average, said so;
    an unknown code is one line, exit 2, nothing written."""
    with ek.measure("t"):
        sum(range(100_000))
    ek.save(tmp_path / "r.nc")
    assert main(["report", str(tmp_path / "r.nc"), "-o", str(tmp_path / "w.html")]) == 0
    world = " ".join(parse_html(tmp_path / "w.html").text)
    assert "gCO2e" in world and "world average" in world and "--region" in world
    assert main(["report", str(tmp_path / "r.nc"), "-o", str(tmp_path / "fr.html"),
                 "--region", "FR"]) == 0
    france = " ".join(parse_html(tmp_path / "fr.html").text)
    assert "France (FRA)" in france and "56.04 gCO2e/kWh" in france and "2023" in france
    capsys.readouterr()
    assert main(["report", str(tmp_path / "r.nc"), "-o", str(tmp_path / "x.html"),
                 "--region", "Atlantis"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--region Atlantis" in err[0]
    assert not (tmp_path / "x.html").exists()


@pytest.mark.slow
def test_measure_twice_keeps_history_flags_regressions_and_profiles_cells(
        tmp_path, estimate_only, capsys):
    """The report names the costliest cell by its source (escaped) with its carbon at the
    region's intensity; a second run of the same notebook shows each cell's previous figure
    and flags the cell whose energy rose beyond both intervals."""
    from energykernel.carbon import intensity_info
    from energykernel.core.units import si

    (tmp_path / "seconds.txt").write_text("0")
    costly = "tag = \"<script>alert('x')</script> & co\"\nimport time\ntime.sleep(0.6)"
    source = write_nb(tmp_path / "hist.ipynb", "x = 1", costly,
                      "import time\ntime.sleep(float(open('seconds.txt').read()))")
    assert main(["measure", str(source), "--no-progress", "--region", "FR"]) == 0
    first = capsys.readouterr().out
    assert "compared with the previous run" not in first
    html = (tmp_path / "hist.energy.html").read_text()
    assert "<script>alert" not in html and "&lt;script&gt;alert" in html
    top = html[html.index('<ol id="top">'):]
    top = top[:top.index("</ol>")]
    assert 'href="#cell-3">cell 3</a>' in top.split("</li>")[0]  # the costliest first
    assert "&lt;script&gt;alert" in top.split("</li>")[0] and "&amp; co" in top
    runs = ek.load(tmp_path / "hist.energy.nc") and ek.runs()
    j = list(runs.task.values).index("cell-2")
    joules = float(runs.energy.sum("component").values[j])
    france = intensity_info("FR")
    grams = si(joules / 3.6e6 * france.value_g_per_kwh, "gCO2e")
    assert grams in top.split("</li>")[0]
    assert f"{france.name} ({france.code})" in html
    assert html.count('id="cell-') == 3 and "sort" in html  # one anchor per cell
    out = nbformat.read(tmp_path / "hist.energy.ipynb", as_version=4)
    meta = out.cells[2].metadata["energykernel"]
    assert list(meta["history"]) == [meta["source_sha"]] and len(meta["history"][
        meta["source_sha"]]) == 1 and "previous" not in meta

    (tmp_path / "seconds.txt").write_text("2")  # the last cell now sleeps 2 s, not 0
    assert main(["measure", str(source), "--no-progress", "--history", "2"]) == 0
    second = capsys.readouterr().out
    assert "compared with the previous run: 3 cell(s); 1 rose beyond their bounds" in second
    assert "cell 4 (cell-3): ▲ energy rose beyond both intervals" in second
    out = nbformat.read(tmp_path / "hist.energy.ipynb", as_version=4)
    meta = out.cells[3].metadata["energykernel"]
    assert len(meta["history"][meta["source_sha"]]) == 2
    assert meta["previous"]["verdict"] == "rose" and meta["previous"]["change_j"] > 0
    lines = [o.get("text", "") for o in out.cells[3].outputs]
    assert any(t.startswith("▲ energy rose beyond both intervals") for t in lines), lines
    assert out.cells[2].metadata["energykernel"]["previous"]["verdict"] == "same"
    html = (tmp_path / "hist.energy.html").read_text()
    assert "Since the previous run" in html and 'class="rose"' in html
    assert "▲ rose" in html

    assert main(["measure", str(source), "--no-progress", "--history", "2"]) == 0
    out = nbformat.read(tmp_path / "hist.energy.ipynb", as_version=4)
    meta = out.cells[3].metadata["energykernel"]
    assert len(meta["history"][meta["source_sha"]]) == 2  # the last N only
    assert main(["measure", str(source), "--history", "-1"]) == 2
