"""``%%energy`` / ``%energy`` semantics in a real, in-process IPython ``InteractiveShell``."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import energykernel
from energykernel.core.recorder import recorder
from energykernel.jupyter import magics

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(scope="module")
def _shell():
    shell = InteractiveShell.instance()
    shell.colors = "nocolor"
    return shell


@pytest.fixture
def shell(_shell, estimate_only):
    """The shell with energykernel loaded; unloaded (and auto mode off) afterwards."""
    _shell.run_cell("%load_ext energykernel")
    yield _shell
    _shell.run_cell("%unload_ext energykernel")


def run(shell, source: str):
    """Run a cell as a frontend does: (ExecutionResult, captured output)."""
    with capture_output() as cap:
        result = shell.run_cell(source, store_history=True)
    return result, cap


def tasks() -> list[tuple[str, str]]:
    return [(r["task"], r["status"]) for r in recorder().records()]


def energy_lines(cap) -> list:
    return [o for o in cap.outputs if "energykernel" in (o.metadata or {})]


def test_last_expression_becomes_out_and_one_run_is_recorded(shell):
    result, cap = run(shell, "%%energy -t answer\nx = 41\nx + 1")
    assert result.success and result.result == 42
    assert shell.user_ns["Out"][result.execution_count] == 42
    assert tasks() == [("answer", "ok")]
    (line,) = energy_lines(cap)
    assert line.data["text/plain"].startswith("⚡ answer:")
    assert "estimate" in line.data["text/plain"] and "<b>answer</b>" in line.data["text/html"]
    meta = line.metadata["energykernel"]
    assert meta["task"] == "answer" and meta["status"] == "ok" and meta["total_j"] >= 0


def test_trailing_semicolon_silences_the_value(shell):
    result, _ = run(shell, "%%energy\n1 + 1;")
    assert result.success and result.result is None
    assert result.execution_count not in shell.user_ns["Out"]
    assert len(tasks()) == 1


def test_top_level_await(shell):
    result, _ = run(shell, "%%energy -t aw\nimport asyncio\nawait asyncio.sleep(0.01)\n7")
    assert result.success and result.result == 7
    assert tasks() == [("aw", "ok")]


def test_nested_line_magics_run(shell):
    result, _ = run(shell, "%%energy -t nested\n%time y = 3\ny * 2")
    assert result.result == 6 and tasks() == [("nested", "ok")]


def test_error_propagates_with_the_right_line_and_is_recorded(shell):
    result, cap = run(shell, "%%energy -t boom\nx = 1\n1 / 0")
    assert isinstance(result.error_in_exec, ZeroDivisionError)
    assert tasks() == [("boom", "error")]
    assert recorder().records()[0]["error"].startswith("ZeroDivisionError")
    assert "line 3" in ANSI.sub("", cap.stdout)  # the marker line still counts
    assert "[error]" in energy_lines(cap)[0].data["text/plain"]


def test_keyboard_interrupt_is_recorded_as_interrupted(shell):
    result, _ = run(shell, "%%energy -t stop\nraise KeyboardInterrupt")
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    assert tasks() == [("stop", "interrupted")]


def test_task_from_first_line_comment_else_execution_count(shell):
    run(shell, "%%energy\n# task: load data\nz = 1")
    result, _ = run(shell, "%%energy\nz = 2")
    run(shell, '%%energy -t "two words"\n# task: ignored, -t wins\nz = 3')
    assert tasks() == [("load data", "ok"), (f"cell-{result.execution_count}", "ok"),
                       ("two words", "ok")]


def test_output_variable_and_quiet(shell):
    result, cap = run(shell, "%%energy -q -o m -i box -c cpu,ram\nsum(range(1000))")
    assert result.result == 499500
    assert energy_lines(cap) == []
    m = shell.user_ns["m"]
    assert isinstance(m, energykernel.Measurement)
    assert m.instance == "box" and set(m.energy_j) == {"cpu", "ram"}
    assert m.task == f"cell-{result.execution_count}"


@pytest.mark.parametrize("options", ["--nope", "-c cpu,bogus", "-t ''", "-t \" \"", "-o 1x", "-t"])
def test_bad_options_raise_usage_error_and_do_not_run(shell, options):
    result, _ = run(shell, f"%%energy {options}\nran = True")
    assert result.error_in_exec is not None
    assert type(result.error_in_exec).__name__ == "UsageError"
    assert "ran" not in shell.user_ns
    assert tasks() == []


def test_capture_stacked_above_is_measured_once_and_captures_the_line(shell):
    result, cap = run(shell, "%%capture captured\n%%energy -t inner\nprint('hi')")
    assert result.success
    assert shell.user_ns["captured"].stdout == "hi\n"
    assert tasks() == [("inner", "ok")]
    assert energy_lines(cap) == []  # %%capture captures it, as it captures %%time's output
    assert len(energy_lines(shell.user_ns["captured"])) == 1


def test_cell_magic_below_the_marker_still_works(shell):
    result, _ = run(shell, "%%energy -t below\n%%capture inner\nprint('x')")
    assert result.success and shell.user_ns["inner"].stdout == "x\n"
    assert tasks() == [("below", "ok")]


def test_time_stacked_above_is_measured_once(shell):
    run(shell, "%%time\n%%energy -t timed\nw = 1")
    assert shell.user_ns["w"] == 1 and tasks() == [("timed", "ok")]


def test_fallback_cell_magic_measures_once_and_reraises(shell):
    result, _ = run(shell, "get_ipython().run_cell_magic('energy', '-t fb', 'v = 5')")
    assert result.success and shell.user_ns["v"] == 5
    result, _ = run(shell, "get_ipython().run_cell_magic('energy', '-t fb2', '1/0')")
    assert isinstance(result.error_in_exec, ZeroDivisionError)
    assert tasks() == [("fb", "ok"), ("fb2", "error")]


def test_auto_mode_measures_every_cell_once(shell):
    run(shell, "%energy auto on")
    first, _ = run(shell, "a = 1")
    run(shell, "%%energy -t marked\nb = 2")
    run(shell, "%%capture\n%%energy -t captured\nc = 3")
    run(shell, "# task: labelled\nd = 4")
    run(shell, "get_ipython().run_cell_magic('energy', '-t called', 'e = 5')")
    run(shell, "")  # an empty cell: post_run_cell without pre_run_cell
    run(shell, "%energy auto off")
    run(shell, "f = 6")
    assert tasks() == [(f"cell-{first.execution_count}", "ok"), ("marked", "ok"),
                       ("captured", "ok"), ("labelled", "ok"), ("called", "ok")]


def test_quiet_auto_mode_records_without_a_line(shell):
    run(shell, "%energy auto on quiet")
    _, quiet = run(shell, "a = 1")
    _, marked = run(shell, "%%energy -t shown\nb = 2")  # an explicit marker still shows it
    run(shell, "%energy auto on")
    _, loud = run(shell, "c = 3")
    run(shell, "%energy auto off")
    assert [t for t, _ in tasks()][1:] == ["shown", tasks()[2][0]]
    assert len(tasks()) == 3
    assert energy_lines(quiet) == [] and len(energy_lines(loud)) == 1
    assert len(energy_lines(marked)) == 1
    bad, _ = run(shell, "%energy auto on loudly")
    assert bad.error_in_exec is not None and "on quiet" in str(bad.error_in_exec)


def test_auto_mode_records_errors(shell):
    run(shell, "%energy auto on")
    result, _ = run(shell, "raise ValueError('bad')")
    run(shell, "%energy auto off")
    assert tasks() == [(f"cell-{result.execution_count}", "error")]


def test_unload_removes_everything_and_load_is_idempotent(_shell, estimate_only):
    def snapshot():
        return ({k: list(v) for k, v in _shell.events.callbacks.items()},
                list(_shell.input_transformers_cleanup),
                {k: dict(v) for k, v in _shell.magics_manager.magics.items()},
                dict(_shell.magics_manager.registry))

    before = snapshot()
    magics.load_ipython_extension(_shell)
    loaded = snapshot()
    magics.load_ipython_extension(_shell)  # a second load adds nothing
    assert snapshot() == loaded
    assert len(loaded[0]["pre_run_cell"]) == len(before[0]["pre_run_cell"]) + 1
    assert "energy" in loaded[2]["cell"] and "energy" in loaded[2]["line"]
    magics.unload_ipython_extension(_shell)
    assert snapshot() == before
    result, _ = run(_shell, "%%energy\nq = 1")  # no longer a known magic
    assert result.error_in_exec is not None and tasks() == []


def test_line_magic_commands(shell, tmp_path):
    run(shell, "%%energy -t work\nsum(range(10_000))")
    result, _ = run(shell, "%energy summary")
    assert list(result.result.index) == ["work"]
    result, _ = run(shell, "%energy plot")
    assert type(result.result).__name__ == "Figure"
    path = tmp_path / "runs.nc"
    result, cap = run(shell, f"%energy save {path}")
    assert result.success and path.exists() and "saved 1 runs" in cap.stdout
    result, cap = run(shell, "%energy backends")
    assert "estimate: available" in cap.stdout
    assert "run log: " in cap.stdout and ".jsonl" in cap.stdout
    from energykernel.core.recorder import recorder

    recorder().unlogged = 2  # as after two failed appends (tested in tests/core)
    result, cap = run(shell, "%energy backends")
    assert "2 run(s) could not be written" in cap.stdout
    recorder().unlogged = 0
    for bad in ("%energy frobnicate", "%energy auto maybe", f"%energy save {tmp_path}/x.txt",
                "%energy plot pie"):
        result, _ = run(shell, bad)
        assert type(result.error_in_exec).__name__ == "UsageError", bad
    result, cap = run(shell, "%energy")
    assert "auto mode is off" in cap.stdout


def test_magic_help_text(shell):
    assert "-t TASK" in magics.EnergyMagics.energy_cell.__doc__
    assert "auto on|off" in magics.EnergyMagics.energy_line.__doc__


def test_loading_and_measuring_imports_no_xarray_or_matplotlib(tmp_path):
    code = (
        "import sys\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "sh = InteractiveShell.instance()\n"
        "sh.run_cell('%load_ext energykernel')\n"
        "sh.run_cell('%energy auto on')\n"
        "sh.run_cell('x = 1')\n"
        "sh.run_cell('%%energy -t t\\ny = 2')\n"
        "import energykernel as ek\n"
        "assert len(ek.runs().run) == 2 if False else True\n"
        "print(sorted(m for m in ('xarray', 'pandas', 'matplotlib') if m in sys.modules))\n"
    )
    env = {"ENERGYKERNEL_BACKENDS": "estimate", "ENERGYKERNEL_LOG_DIR": str(tmp_path),
           "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_marker_body_is_cleaned_up_as_ipython_cleans_a_cell():
    assert magics.blank_marker(["%%energy -t x\n", "    a = 1\n", "    a"]) == [
        "\n", "a = 1\n", "a"]
    assert magics.blank_marker(["%%energy\n", "\n", "%%capture c\n", "print(1)"]) == [
        "%%capture c\n", "print(1)"]
    assert magics.blank_marker(["%%energy\n", "\n", "b = 2\n"]) == ["\n", "\n", "b = 2\n"]
    assert magics.blank_marker(["%%energy --bogus\n", "c"]) == ["%%energy --bogus\n", "c"]
    assert magics.blank_marker(["%%writefile f\n", "%%energy\n"]) == [
        "%%writefile f\n", "%%energy\n"]


def test_reload_keeps_auto_mode_and_a_lone_marker_takes_no_count(shell):
    run(shell, "%energy auto on")
    run(shell, "%reload_ext energykernel")
    first, _ = run(shell, "a = 1")
    lone, cap = run(shell, "%%energy")
    assert lone.success and energy_lines(cap) == []
    after, _ = run(shell, "b = 2")
    run(shell, "%energy auto off")
    assert after.execution_count == first.execution_count + 1
    assert shell.user_ns["In"][after.execution_count] == "b = 2"
    assert tasks() == [(f"cell-{first.execution_count}", "ok"),
                       (f"cell-{after.execution_count}", "ok")]


def test_comment_cells_are_measured_in_auto_mode(shell):
    run(shell, "%energy auto on")
    run(shell, "# task: notes\n# nothing but comments")
    run(shell, "# setup\n%energy backends")  # energykernel's own commands: not measured
    run(shell, "%energy auto off")
    assert tasks() == [("notes", "ok")]
