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


class Cell:
    """The reply and outputs of one executed cell."""

    def __init__(self, kc, code: str, timeout: float = 60) -> None:
        self.outputs: list[dict] = []
        self.reply = kc.execute_interactive(code, timeout=timeout, output_hook=self._hook)

    def _hook(self, msg: dict) -> None:
        if msg["msg_type"] in ("execute_result", "display_data", "stream", "error"):
            self.outputs.append({"type": msg["msg_type"], **msg["content"]})

    @property
    def ok(self) -> bool:
        return self.reply["content"]["status"] == "ok"

    @property
    def count(self) -> int:
        return self.reply["content"]["execution_count"]

    def of(self, kind: str) -> list[dict]:
        return [o for o in self.outputs if o["type"] == kind]

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
    assert [len(c.energy_lines()) for c in (plain, marked, captured, labelled)] == [1] * 4


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
