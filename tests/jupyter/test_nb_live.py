"""The kernel side of the JupyterLab extension and the live view, in a real ipykernel.

- ``%%energy --live`` / ``%energy live on``: one display under the cell, updated in place
  from a thread while the cell runs (at most twice a second), routed to the running cell.
- The ⚡ line carries the run as ``application/vnd.energykernel.run+json`` (JSON-safe,
  valid nbformat, harmless to nbconvert).
- The extension's toggle is a silent execution: no execution count, no run recorded.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import time
from pathlib import Path

import pytest
from jupyter_client import KernelManager

from energykernel.jupyter.display import RUN_MIME

pytestmark = pytest.mark.slow

STATE = "(lambda s: bool(s and s[0].auto))(getattr(get_ipython(), '_energykernel_state', None))"


@pytest.fixture(scope="module")
def kc(tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("ek-live-logs")
    env = {**os.environ, "ENERGYKERNEL_BACKENDS": "estimate",
           "ENERGYKERNEL_LOG_DIR": str(log_dir), "ENERGYKERNEL_SAMPLE_INTERVAL_S": "0.2"}
    env.pop("ENERGYKERNEL_REGION", None)
    km = KernelManager(kernel_name="python3")
    km.start_kernel(env=env)
    client = km.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        yield client
    finally:
        client.stop_channels()
        km.shutdown_kernel(now=True)


def run(kc, code: str, **kwargs) -> tuple[dict, list[dict]]:
    messages: list[dict] = []
    reply = kc.execute_interactive(code, timeout=60, output_hook=messages.append, **kwargs)
    return reply, messages


def _live(messages: list[dict]) -> tuple[list[dict], list[dict]]:
    """(display_data, update_display_data) messages of live views."""
    def is_live(m: dict) -> bool:
        return str((m["content"].get("transient") or {}).get("display_id", "")
                   ).startswith("energykernel-live-")
    shown = [m for m in messages if m["msg_type"] == "display_data" and is_live(m)]
    updates = [m for m in messages if m["msg_type"] == "update_display_data" and is_live(m)]
    return shown, updates


def _when(msg: dict) -> float:
    date = msg["header"]["date"]
    if isinstance(date, str):
        date = dt.datetime.fromisoformat(date)
    return date.timestamp()


def test_toggle_is_silent_and_unmeasured(kc):
    reply, _ = run(kc, "1", store_history=True)
    count = reply["content"]["execution_count"]
    reply, messages = run(kc, "%load_ext energykernel\n%energy auto on", silent=True,
                          store_history=False, user_expressions={"auto": STATE})
    assert reply["content"]["status"] == "ok"
    assert reply["content"]["user_expressions"]["auto"]["data"]["text/plain"] == "True"
    assert [m for m in messages if m["msg_type"] in ("display_data", "stream")] == []
    reply, messages = run(kc, "import energykernel as ek\nlen(ek.runs().run)")
    assert reply["content"]["execution_count"] == count + 1  # the toggle took no count
    result = [m for m in messages if m["msg_type"] == "execute_result"]
    assert result[0]["content"]["data"]["text/plain"] == "0"  # and recorded no run
    reply, _ = run(kc, "%energy auto off", silent=True, store_history=False,
                   user_expressions={"auto": STATE})
    assert reply["content"]["user_expressions"]["auto"]["data"]["text/plain"] == "False"


def test_run_mime_is_json_safe_and_nbconvert_keeps_the_line(kc, tmp_path: Path):
    import nbformat
    from nbconvert import HTMLExporter, MarkdownExporter

    run(kc, "%load_ext energykernel")
    _, messages = run(kc, "%%energy -t mimed\nsum(range(10_000))")
    lines = [m for m in messages if m["msg_type"] in ("display_data", "update_display_data")
             and RUN_MIME in m["content"]["data"]]
    assert lines[0]["content"]["data"][RUN_MIME] == {"task": "mimed", "status": "running"}
    final = lines[-1]["content"]["data"][RUN_MIME]
    assert final["task"] == "mimed" and final["status"] == "ok"
    assert final["total_j"] == pytest.approx(sum(final["energy_j"].values()))
    assert set(final["energy_bounds_j"]) == set(final["energy_j"])
    assert final["method"] == {c: "estimate" for c in final["energy_j"]}

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("%%energy -t mimed\nsum(range(10_000))")
    cell.outputs = [nbformat.v4.output_from_msg(m) for m in messages
                    if m["msg_type"] in ("display_data", "execute_result")]
    cell.outputs[0]["data"] = lines[-1]["content"]["data"]  # as the frontend keeps it
    nb.cells = [cell]
    nbformat.validate(nb)
    path = tmp_path / "mimed.ipynb"
    nbformat.write(nb, path)
    nb = nbformat.read(path, as_version=4)
    html, _ = HTMLExporter().from_notebook_node(nb)
    assert "energykernel-line" in html and "mimed" in html
    markdown, _ = MarkdownExporter().from_notebook_node(nb)
    assert "mimed" in markdown


def test_live_cell_updates_while_it_runs(kc):
    run(kc, "%load_ext energykernel")
    start = time.monotonic()
    reply, messages = run(kc, "%%energy --live -t napping\nimport time\ntime.sleep(2.2)")
    elapsed = time.monotonic() - start
    assert reply["content"]["status"] == "ok"
    parent = reply["parent_header"]["msg_id"]
    shown, updates = _live(messages)
    assert len(shown) == 1 and shown[0]["parent_header"]["msg_id"] == parent
    assert len(updates) >= 3, [u["content"]["data"]["text/plain"] for u in updates]
    assert all(u["parent_header"]["msg_id"] == parent for u in updates)
    during = updates[:-1]  # the last is the final state, sent when the cell ends
    assert len(during) <= 2 * elapsed + 1  # at most twice a second
    gaps = [_when(b) - _when(a) for a, b in itertools.pairwise(during)]
    assert all(g >= 0.45 for g in gaps), gaps
    final = updates[-1]["content"]["data"]
    assert final["text/plain"].startswith("⚡ napping ran ")
    assert "W (estimate)" in final["text/plain"] and "<svg" in final["text/html"]
    assert "<polyline" in final["text/html"]
    # the ⚡ line is still there, before the live view
    kinds = [m for m in messages if m["msg_type"] == "display_data"]
    assert RUN_MIME in kinds[0]["content"]["data"] and kinds[1] is shown[0]


def test_live_on_for_every_measured_cell_then_off(kc):
    run(kc, "%load_ext energykernel\n%energy auto on\n%energy live on")
    _, messages = run(kc, "import time\ntime.sleep(0.8)")
    shown, updates = _live(messages)
    assert len(shown) == 1 and updates, "no live view under an auto-mode cell"
    run(kc, "%energy live off")
    _, messages = run(kc, "import time\ntime.sleep(0.3)")
    assert _live(messages) == ([], [])
    run(kc, "%energy auto off")
    _, messages = run(kc, "%energy live on")
    _, messages = run(kc, "x = 1")  # not measured: no live view
    assert _live(messages) == ([], [])
    reply, _ = run(kc, "%energy live sideways")
    assert reply["content"]["status"] == "error"
    run(kc, "%energy live off")


def test_live_below_another_cell_magic(kc):
    # %%time transforms its body only when it runs: the %%energy line is parsed after the
    # cell's hooks, and the view starts then, for the window it opened.
    run(kc, "%load_ext energykernel")
    reply, messages = run(kc, "%%time\n%%energy --live -t buried\nimport time\ntime.sleep(1.3)")
    assert reply["content"]["status"] == "ok"
    shown, updates = _live(messages)
    assert len(shown) == 1 and updates, [m["msg_type"] for m in messages]
    assert updates[-1]["content"]["data"]["text/plain"].startswith("⚡ buried ran ")
    _, messages = run(kc, "%%time\nx = 1")  # no %%energy: no view
    assert _live(messages) == ([], [])
