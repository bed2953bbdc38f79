"""The magics in a real ipykernel (jupyter_client), and crash safety of the per-kernel log."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from jupyter_client import KernelManager

import energykernel as ek
from energykernel.core.recorder import log_files, read_log

pytestmark = pytest.mark.slow


def start_kernel(log_dir: Path) -> tuple[KernelManager, object]:
    env = {**os.environ, "ENERGYKERNEL_BACKENDS": "estimate",
           "ENERGYKERNEL_LOG_DIR": str(log_dir), "ENERGYKERNEL_SAMPLE_INTERVAL_S": "0.2"}
    km = KernelManager(kernel_name="python3")
    km.start_kernel(env=env)
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    return km, kc


def render(messages: list[dict]) -> list[dict]:
    """The outputs a frontend (JupyterLab, nbclient) makes of a cell's iopub messages:
    display updates in place, ``clear_output(wait=True)`` at the next output, adjacent
    streams merged."""
    outs: list[dict] = []
    ids: dict[str, list[int]] = {}
    pending = False
    for msg in messages:
        kind, content = msg["msg_type"], msg["content"]
        if kind == "clear_output":
            if content.get("wait"):
                pending = True
            else:
                outs.clear()
                ids.clear()
            continue
        display_id = (content.get("transient") or {}).get("display_id")
        if kind == "update_display_data":
            for k in ids.get(display_id, []):
                outs[k] = {"type": "display_data", **content}
            continue
        if kind not in ("execute_result", "display_data", "stream", "error"):
            continue
        if pending:
            outs.clear()
            ids.clear()
            pending = False
        if (kind == "stream" and outs and outs[-1]["type"] == "stream"
                and outs[-1]["name"] == content["name"]):
            outs[-1] = {**outs[-1], "text": outs[-1]["text"] + content["text"]}
            continue
        if display_id:
            ids.setdefault(display_id, []).append(len(outs))
        outs.append({"type": kind, **content})
    return outs


class Cell:
    """The reply, iopub messages and (rendered) outputs of one executed cell."""

    def __init__(self, kc, code: str, timeout: float = 60, linger: float = 0) -> None:
        self.messages: list[dict] = []
        self.reply = kc.execute_interactive(code, timeout=timeout,
                                            output_hook=self.messages.append)
        deadline = time.monotonic() + linger  # output that the cell's threads print later
        parent = self.reply["parent_header"]["msg_id"]
        while time.monotonic() < deadline:
            try:
                msg = kc.get_iopub_msg(timeout=max(0.01, deadline - time.monotonic()))
            except Exception:  # queue.Empty
                continue
            if msg["parent_header"].get("msg_id") == parent:
                self.messages.append(msg)

    @property
    def outputs(self) -> list[dict]:
        return render(self.messages)

    @property
    def ok(self) -> bool:
        return self.reply["content"]["status"] == "ok"

    @property
    def count(self) -> int:
        return self.reply["content"]["execution_count"]

    def of(self, kind: str) -> list[dict]:
        return [o for o in self.outputs if o["type"] == kind]

    def text(self, name: str = "stdout") -> str:
        return "".join(o["text"] for o in self.of("stream") if o["name"] == name)

    def value(self) -> str:
        return self.of("execute_result")[0]["data"]["text/plain"]

    def energy_lines(self) -> list[dict]:
        return [o["metadata"]["energykernel"] for o in self.of("display_data")
                if "energykernel" in o.get("metadata", {})]


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    """One kernel for the magic tests: (client, its log directory)."""
    log_dir = tmp_path_factory.mktemp("kernel-logs")
    km, kc = start_kernel(log_dir)
    assert Cell(kc, "%load_ext energykernel").ok
    yield kc, log_dir
    kc.stop_channels()
    km.shutdown_kernel(now=True)


def logged(log_dir: Path) -> list[dict]:
    return [r for f in log_files(log_dir) for r in read_log(f)]


def test_await_last_value_and_summary_line(kernel):
    kc, log_dir = kernel
    cell = Cell(kc, "%%energy -t waiting\nimport asyncio\nawait asyncio.sleep(0.05)\n6 * 7")
    assert cell.ok
    assert [o["data"]["text/plain"] for o in cell.of("execute_result")] == ["42"]
    (line,) = cell.energy_lines()
    assert line["task"] == "waiting" and line["status"] == "ok"
    assert line["duration_s"] >= 0.05
    assert logged(log_dir)[-1]["task"] == "waiting"


def test_error_stops_the_cell_and_is_recorded(kernel):
    kc, log_dir = kernel
    cell = Cell(kc, "%%energy -t boom\nx = 1\n1 / 0")
    assert cell.reply["content"]["status"] == "error"
    assert cell.reply["content"]["ename"] == "ZeroDivisionError"
    record = logged(log_dir)[-1]
    assert (record["task"], record["status"]) == ("boom", "error")
    assert cell.energy_lines()[0]["status"] == "error"


def test_bad_options_are_a_usage_error_in_the_kernel(kernel):
    kc, log_dir = kernel
    before = len(logged(log_dir))
    cell = Cell(kc, "%%energy --bogus\nran = True")
    assert not cell.ok and cell.reply["content"]["ename"] == "UsageError"
    assert Cell(kc, "'ran' in dir()").of("execute_result")[0]["data"]["text/plain"] == "False"
    assert len(logged(log_dir)) == before


def test_auto_mode_counts_each_cell_once(kernel):
    kc, log_dir = kernel
    before = len(logged(log_dir))
    assert Cell(kc, "%energy auto on").ok
    plain = Cell(kc, "a = sum(range(1000))\na")
    marked = Cell(kc, "%%energy -t marked\nb = 2")
    captured = Cell(kc, "%%capture out\n%%energy -t captured\nprint('hidden')")
    labelled = Cell(kc, "# task: labelled\nimport asyncio\nawait asyncio.sleep(0)")
    failing = Cell(kc, "raise KeyError('k')")
    assert Cell(kc, "%energy auto off").ok
    assert Cell(kc, "c = 3").ok
    new = [(r["task"], r["status"]) for r in logged(log_dir)[before:]]
    assert new == [(f"cell-{plain.count}", "ok"), ("marked", "ok"), ("captured", "ok"),
                   ("labelled", "ok"), (f"cell-{failing.count}", "error")]
    assert plain.of("execute_result")[0]["data"]["text/plain"] == "499500"
    assert not any("hidden" in o.get("text", "") for o in captured.of("stream"))
    # %%capture above the marker captures its line too, as it captures %%time's output
    assert [len(c.energy_lines()) for c in (plain, marked, captured, labelled)] == [1, 1, 0, 1]
    kept = Cell(kc, "[(o.update, o.metadata['energykernel']['status']) for o in out.outputs"
                    " if 'energykernel' in o.metadata]").value()
    assert kept == "[(False, 'running'), (True, 'ok')]"  # its line, updated in place


def test_kernel_killed_mid_cell_keeps_every_finished_run(tmp_path):
    log_dir = tmp_path / "crash-logs"
    km, kc = start_kernel(log_dir)
    try:
        assert Cell(kc, "%load_ext energykernel\n%energy auto on").ok
        assert Cell(kc, "# task: first\nx = sum(range(10_000))").ok
        assert Cell(kc, "%%energy -t second\ny = x * 2").ok
        msg_id = kc.execute("# task: never finishes\nimport time\ntime.sleep(60)")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # wait until the kernel is running the cell
            msg = kc.get_iopub_msg(timeout=30)
            if (msg["parent_header"].get("msg_id") == msg_id
                    and msg["msg_type"] == "execute_input"):
                break
        time.sleep(0.2)
        os.kill(km.provisioner.pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while km.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not km.is_alive()
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    cube = ek.load(log_dir)
    assert sorted(cube.task.values.tolist()) == ["first", "second"]
    assert int(cube.runs.sum()) == 2


# One test per case of "plain Jupyter, plus one ⚡ line per cell" (the measure-side cases
# are in test_nb_transparency.py).

def test_case1_indented_body_runs_as_it_does_plainly(kernel):
    kc, log_dir = kernel
    plain = Cell(kc, "    x = 1\n    x")
    cell = Cell(kc, "%%energy -t indented\n    x = 1\n    x")
    assert plain.ok and cell.ok, cell.outputs
    assert cell.value() == plain.value() == "1"
    assert logged(log_dir)[-1]["task"] == "indented"
    failing = Cell(kc, "%%energy\n    y = 1\n    1 / 0")  # line numbers stay the cell's
    assert "line 3" in "".join(failing.of("error")[0]["traceback"])


def test_case2_blank_line_before_another_cell_magic(kernel):
    kc, log_dir = kernel
    cell = Cell(kc, "%%energy -t blank\n\n%%capture cap\nprint(1)")
    assert cell.ok, cell.outputs
    assert Cell(kc, "cap.stdout").value() == repr("1\n")
    assert logged(log_dir)[-1]["task"] == "blank" and len(cell.energy_lines()) == 1


def test_case3_marker_below_a_verbatim_magic_is_text_with_a_warning(kernel, tmp_path):
    kc, log_dir = kernel
    before = len(logged(log_dir))
    target = tmp_path / "t.txt"
    cell = Cell(kc, f"%%writefile {target}\n%%energy\nhello")
    assert cell.ok
    assert target.read_text() == "%%energy\nhello\n"  # what IPython itself does
    warning = cell.text("stderr")
    assert "%%energy on line 2 reached %%writefile as text" in warning
    assert "first line" in warning and cell.energy_lines() == []
    bash = Cell(kc, "%%bash\n%%energy\necho hi")
    assert "reached %%bash as text" in bash.text("stderr")
    html = Cell(kc, "%%html\n%%energy\n<b>hi</b>")
    assert "reached %%html as text" in html.text("stderr")
    assert len(logged(log_dir)) == before  # not measured: IPython did not parse the marker
    timed = Cell(kc, "%%time\n%%energy -t under-time\nw = 1")  # %%time parses its body
    assert timed.ok and "warning" not in timed.text("stderr")
    assert [r["task"] for r in logged(log_dir)[before:]] == ["under-time"]


def test_case9_capture_above_the_marker_captures_its_line(kernel):
    kc, log_dir = kernel
    cell = Cell(kc, "%%capture cap9\n%%energy -t captured9\nprint('inside')")
    assert cell.ok and cell.outputs == []
    kept = Cell(kc, "[o.metadata['energykernel'].get('task') for o in cap9.outputs"
                    " if 'energykernel' in o.metadata]").value()
    assert "captured9" in kept and Cell(kc, "cap9.stdout").value() == repr("inside\n")
    assert logged(log_dir)[-1]["task"] == "captured9"


def test_case10_comment_cells_are_measured_and_a_lone_marker_is_an_empty_cell(kernel):
    kc, log_dir = kernel
    before = Cell(kc, "1")
    lone = Cell(kc, "%%energy")
    after = Cell(kc, "2")
    plain_empty = Cell(kc, "   ")
    later = Cell(kc, "3")
    assert lone.ok and lone.outputs == [] and plain_empty.outputs == []
    assert lone.count == before.count and plain_empty.count == after.count  # as "   "
    assert (after.count, later.count) == (before.count + 1, before.count + 2)
    assert Cell(kc, f"In[{after.count}], In[{later.count}]").value() == "('2', '3')"
    n_runs = len(logged(log_dir))
    assert Cell(kc, "%energy auto on").ok
    comment = Cell(kc, "# task: only-a-comment\n# nothing else")
    assert Cell(kc, "%energy auto off").ok
    assert [r["task"] for r in logged(log_dir)[n_runs:]] == ["only-a-comment"]
    assert len(comment.energy_lines()) == 1


def test_case11_the_line_is_the_cells_first_display_updated_in_place(kernel):
    kc, _ = kernel
    code = ("%%energy -t threaded\nimport threading\nprint('in the cell')\n"
            "threading.Timer(0.3, lambda: print('from the thread')).start()")
    cell = Cell(kc, code, linger=1.5)
    kinds = [m["msg_type"] for m in cell.messages
             if m["msg_type"] in ("display_data", "update_display_data", "stream")]
    assert kinds[0] == "display_data" and "update_display_data" in kinds
    first = next(m for m in cell.messages if m["msg_type"] == "display_data")
    update = next(m for m in cell.messages if m["msg_type"] == "update_display_data")
    assert first["content"]["transient"]["display_id"] == \
        update["content"]["transient"]["display_id"]
    out = cell.outputs  # the ⚡ line first; the cell's and the thread's output after it,
    assert out[0]["metadata"]["energykernel"]["status"] == "ok"  # one stream as plainly
    assert [o["type"] for o in out] == ["display_data", "stream"]
    assert out[1]["text"] == "in the cell\nfrom the thread\n"


def test_case4_clear_output_wait_at_the_end_keeps_the_cells_output(kernel):
    kc, _ = kernel
    code = "from IPython.display import clear_output\nprint('keep')\nclear_output(wait=True)"
    plain = Cell(kc, code)
    cell = Cell(kc, "%%energy -t cleared\n" + code)
    assert plain.text() == cell.text() == "keep\n"
    assert [line["status"] for line in cell.energy_lines()] == ["ok"]
    loop = Cell(kc, "%%energy -t loop\nfor i in range(3):\n"
                    "    clear_output(wait=True)\n    print(i)")
    assert loop.text() == "2\n" and len(loop.energy_lines()) == 1  # shown again after it
    wiped = Cell(kc, "%%energy -t wiped\nprint('gone')\nclear_output()\nprint('new')")
    assert wiped.text() == "new\n" and len(wiped.energy_lines()) == 1


def test_case7_reload_keeps_auto_mode_and_unload_from_a_cell_records_it(tmp_path):
    log_dir = tmp_path / "reload-logs"
    km, kc = start_kernel(log_dir)
    try:
        assert Cell(kc, "%load_ext energykernel\n%energy auto on").ok
        reloading = Cell(kc, "# task: reloading\n%reload_ext energykernel\nr = 1")
        assert reloading.ok and len(reloading.energy_lines()) == 1
        after = Cell(kc, "# task: after-reload\ns = 2")
        assert len(after.energy_lines()) == 1
        assert "auto mode is on" in Cell(kc, "%energy").text()
        unloading = Cell(kc, "# task: unloading\nt = 3\n%unload_ext energykernel")
        assert unloading.ok and len(unloading.energy_lines()) == 1
        gone = Cell(kc, "u = 4")
        assert gone.outputs == []
        assert Cell(kc, "%energy").reply["content"]["ename"] == "UsageError"
        assert Cell(kc, "len(get_ipython().events.callbacks['post_run_cell'])").value() \
            == Cell(kc, "len(get_ipython().events.callbacks['pre_run_cell'])").value()
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    tasks = [(r["task"], r["status"]) for r in logged(log_dir)]
    assert tasks == [("reloading", "ok"), ("after-reload", "ok"), ("unloading", "ok")]
