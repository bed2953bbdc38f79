"""Plain Jupyter, plus one ⚡ line per cell: real notebooks, and edge cases, in real kernels.

A notebook run by ``energykernel measure``, or with ``%load_ext energykernel`` and
``%energy auto on`` added in front, must give what plain nbclient gives, cell by cell
(text, streams, errors, display counts and mime types, execution counts; addresses,
timings and ids masked), the ⚡ line being the only difference. The notebooks are in
``corpus/`` (written by others; sources and licences in ``corpus/README.md``).
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbformat.v4 import new_code_cell, new_notebook

from energykernel.cli.main import main

pytestmark = pytest.mark.slow

CORPUS = sorted((Path(__file__).resolve().parent / "corpus").glob("*.ipynb"))
AUTO_CELL = "%load_ext energykernel\n%energy auto on"
KEY = "energykernel"

_MASKS = [
    (re.compile(r"The slowest run took [^\n]*\n"), ""),  # %timeit, when a run was slow
    (re.compile(r"0x[0-9a-fA-F]+"), "0x…"),  # object addresses
    (re.compile(r"\b[0-9a-f]{32}\b"), "<id>"),  # widget model ids, display ids
    (re.compile(r"[-+]?\d+(\.\d+)?(e[-+]?\d+)?\s*(ns|µs|μs|us|ms|s)\b"), "<time>"),
    (re.compile(r"\s*%%?energy\b"), ""),  # %lsmagic lists the extension's own magics
    (re.compile(r"/tmp/\S*?/(plain|auto|measure)\b"), "<cwd>"),
]


def mask(text: str) -> str:
    for pattern, repl in _MASKS:
        text = pattern.sub(repl, text)
    return text


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def is_line(output) -> bool:
    """The ⚡ line (a display carrying the run in its metadata, or the stream fallback)."""
    return (KEY in output.get("metadata", {})
            or (output.get("output_type") == "stream" and _text(output.get("text", ""))
                .startswith("⚡")))


def normal(output) -> tuple:
    kind = output["output_type"]
    if kind == "stream":
        return (kind, output["name"], mask(_text(output["text"])))
    if kind == "error":
        return (kind, output["ename"], mask(output["evalue"]))
    data = output.get("data", {})
    return (kind, tuple(sorted(data)), mask(_text(data.get("text/plain", ""))),
            mask(_text(data.get("text/html", ""))))


def cells_of(nb, skip: int = 0) -> list[dict]:
    """Each code cell: its execution count and normalised outputs, the ⚡ line apart."""
    out = []
    for cell in [c for c in nb.cells if c.cell_type == "code"][skip:]:
        outputs, lines, merged = cell.get("outputs", []), [], []
        for o in outputs:
            if is_line(o):
                lines.append(o)
                continue
            if (merged and o["output_type"] == "stream" and merged[-1][0] == "stream"
                    and merged[-1][1] == o["name"]):  # what the ⚡ line split, joined
                merged[-1] = (*merged[-1][:2], merged[-1][2] + mask(_text(o["text"])))
                continue
            merged.append(normal(o))
        out.append({"count": cell.get("execution_count"), "outputs": merged,
                    "lines": len(lines), "source": cell.source})
    return out


def widget_models(nb) -> list[str]:
    state = nb.metadata.get("widgets", {}).get(
        "application/vnd.jupyter.widget-state+json", {}).get("state", {})
    return sorted(model.get("model_name", "") for model in state.values())


def _copy(path: Path, where: Path) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(path, where / path.name))


def run_plain(path: Path, where: Path, first: str | None = None):
    """Plain nbclient (stopping at a failing cell, as it does), in its own directory."""
    local = _copy(path, where)
    nb = nbformat.read(local, as_version=4)
    if first is not None:
        nb.cells.insert(0, new_code_cell(first))
    client = NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(where)}})
    with contextlib.suppress(CellExecutionError):  # nbclient stops at a failing cell
        client.execute()
    return nb


def run_measure(path: Path, where: Path, *args: str):
    """``energykernel measure``: (exit code, annotated notebook)."""
    local = _copy(path, where)
    out = where / "out.ipynb"
    code = main(["measure", str(local), "-o", str(out), "--no-progress", *args])
    return code, nbformat.read(out, as_version=4)


@pytest.fixture
def corpus_env(monkeypatch, estimate_only, tmp_path):
    monkeypatch.setenv("ENERGYKERNEL_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.delenv("ENERGYKERNEL_REGION", raising=False)
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_corpus_notebook_runs_as_plainly_plus_one_line_per_cell(path, tmp_path, corpus_env):
    with ThreadPoolExecutor(3) as pool:  # three kernels at once: the runs mostly wait
        plain_run = pool.submit(run_plain, path, tmp_path / "plain")
        auto_run = pool.submit(run_plain, path, tmp_path / "auto", first=AUTO_CELL)
        code, measured_nb = run_measure(path, tmp_path / "measure")
        plain_nb, auto_nb = plain_run.result(), auto_run.result()
    plain, auto, measured = cells_of(plain_nb), cells_of(auto_nb, skip=1), cells_of(measured_nb)
    stopped = any(o["output_type"] == "error" for c in plain_nb.cells
                  for o in c.get("outputs", []))
    assert code == (1 if stopped else 0)
    assert len(plain) == len(auto) == len(measured)
    for p, a, m in zip(plain, auto, measured, strict=True):
        where = f"{path.name}: cell {p['source'][:60]!r}"
        assert m["outputs"] == p["outputs"], where
        assert a["outputs"] == p["outputs"], where
        assert m["count"] == p["count"], where
        assert a["count"] == (None if p["count"] is None else p["count"] + 1), where
        ran = p["count"] is not None
        assert m["lines"] == a["lines"] == (1 if ran else 0), where
    assert measured_nb.metadata.get("language_info") == plain_nb.metadata.get("language_info")
    assert widget_models(measured_nb) == widget_models(plain_nb) == widget_models(auto_nb)


# The cases of energykernel measure (the kernel-side ones are in test_nb_kernel.py).

def _notebook(path: Path, *sources: str, kernelspec: dict | None = None) -> Path:
    nb = new_notebook(cells=[new_code_cell(s) for s in sources])
    if kernelspec is not None:
        nb.metadata["kernelspec"] = kernelspec
    nbformat.write(nb, path)
    return path


def test_case4_clear_output_wait_at_the_end_of_a_cell_keeps_its_output(tmp_path,
                                                                         corpus_env):
    source = _notebook(tmp_path / "clear.ipynb",
                       "from IPython.display import clear_output\nprint('keep')\n"
                       "clear_output(wait=True)",
                       "for i in range(3):\n    clear_output(wait=True)\n    print(i)")
    plain = cells_of(run_plain(source, tmp_path / "plain"))
    code, measured_nb = run_measure(source, tmp_path / "measure")
    measured = cells_of(measured_nb)
    assert code == 0
    assert [c["outputs"] for c in measured] == [c["outputs"] for c in plain] == [
        [("stream", "stdout", "keep\n")], [("stream", "stdout", "2\n")]]
    assert [c["lines"] for c in measured] == [1, 1]


def test_case5_language_info_and_widget_state_are_saved_as_nbclient_does(tmp_path,
                                                                          corpus_env):
    source = _notebook(tmp_path / "w.ipynb", "import ipywidgets as w\ns = w.IntSlider(3)\ns",
                       "s.value = 7")
    plain = run_plain(source, tmp_path / "plain")
    code, measured = run_measure(source, tmp_path / "measure")
    assert code == 0
    assert measured.metadata["language_info"] == plain.metadata["language_info"]
    assert measured.metadata["language_info"]["name"] == "python"
    assert widget_models(measured) == widget_models(plain) != []
    state = measured.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]
    assert 7 in [m["state"].get("value") for m in state["state"].values()]


def test_case6_a_cell_past_the_timeout_is_interrupted_and_reported(tmp_path, corpus_env,
                                                                   capsys):
    source = _notebook(tmp_path / "slow.ipynb", "x = 1", "import time\ntime.sleep(30)",
                       "print('never')")
    started = time.monotonic()
    code, nb = run_measure(source, tmp_path / "measure", "--timeout", "3")
    assert time.monotonic() - started < 25  # not the 30 s of the sleep
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and "cell 2 of 3 timed out after 3 s (interrupted)" in err
    meta = nb.cells[1].metadata[KEY]
    assert meta["status"] == "interrupted" and meta["timed_out_s"] == 3
    assert meta["duration_s"] < 10
    assert [o.get("ename") for o in nb.cells[1].outputs if o["output_type"] == "error"] == [
        "KeyboardInterrupt"]
    assert nb.cells[2].outputs == [] and nb.metadata[KEY]["complete"] is False
    assert "timed out" in nb.metadata[KEY]["stopped"]
    html = (tmp_path / "measure" / "out.energy.html").read_text()
    assert "timed out after 3 s" in html


def test_case7_unload_under_measure_is_reported(tmp_path, corpus_env, capsys):
    source = _notebook(tmp_path / "unload.ipynb", "%load_ext energykernel", "a = 1",
                       "%reload_ext energykernel", "b = 2", "%unload_ext energykernel",
                       "c = 3", "d = 4")
    code, nb = run_measure(source, tmp_path / "measure")
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    assert "cell 5 of 7 ran %unload_ext energykernel" in err and "2 code cell(s)" in err
    assert [KEY in c.metadata for c in nb.cells] == [False, True, False, True, False,
                                                     False, False]
    assert nb.metadata[KEY]["complete"] is False and "cell 5" in nb.metadata[KEY]["unloaded"]
    html = (tmp_path / "measure" / "out.energy.html").read_text()
    assert "Measurement stopped: cell 5 of 7 ran %unload_ext energykernel" in html


def test_case8_the_notebooks_own_requests_are_silent_and_honoured(tmp_path, corpus_env):
    source = _notebook(tmp_path / "asks.ipynb", "%load_ext energykernel", "a = 1",
                       "%%energy -q\nb = 2", "%energy auto off", "c = 3\nc",
                       "%energy auto on", "d = 4")
    plain = cells_of(run_plain(source, tmp_path / "plain"))
    code, nb = run_measure(source, tmp_path / "measure")
    measured = cells_of(nb)
    assert code == 0
    assert [c["outputs"] for c in measured] == [c["outputs"] for c in plain]
    assert measured[0]["outputs"] == [] and measured[3]["outputs"] == []  # no messages
    assert [c["lines"] for c in measured] == [0, 1, 0, 0, 0, 0, 1]
    assert [c.metadata.get(KEY, {}).get("task") for c in nb.cells] == [
        None, "cell-2", "cell-3", None, "cell-5", None, "cell-7"]  # measured all the same
    assert nb.cells[2].metadata[KEY]["why"] == "quiet"
    assert nb.cells[4].metadata[KEY]["why"] == "auto off"
    notes = nb.metadata[KEY]["notes"]
    assert any("cell 3" in n and "%%energy -q" in n for n in notes)
    assert any("cell 5" in n and "%energy auto off" in n and "(cell 4)" in n for n in notes)
    html = (tmp_path / "measure" / "out.energy.html").read_text()
    assert "%%energy -q" in html and "%energy auto off" in html


def test_case10_comment_cells_are_measured_and_a_lone_marker_is_an_empty_cell(tmp_path,
                                                                             corpus_env):
    source = _notebook(tmp_path / "c.ipynb", "# a comment only", "%%energy", "x = 1\nx")
    plain_source = _notebook(tmp_path / "p.ipynb", "# a comment only", "", "x = 1\nx")
    plain = cells_of(run_plain(plain_source, tmp_path / "plain"))
    code, nb = run_measure(source, tmp_path / "measure")
    measured = cells_of(nb)
    assert code == 0
    assert [(c["count"], c["outputs"]) for c in measured] == [
        (c["count"], c["outputs"]) for c in plain]
    assert [c["count"] for c in measured] == [1, None, 2]
    assert [c["lines"] for c in measured] == [1, 0, 1]
    assert nb.cells[0].metadata[KEY]["task"] == "cell-1"


def _fake_kernel(tmp_path: Path, monkeypatch, language: str) -> str:
    """A kernel that is not IPython (like bash_kernel): its spec says ``language``."""
    module = tmp_path / "echo_kernel.py"
    module.write_text(
        "from ipykernel.kernelbase import Kernel\n"
        "class Echo(Kernel):\n"
        "    implementation = 'echo'\n    implementation_version = '1'\n"
        f"    language_info = {{'name': {language!r}, 'mimetype': 'text/plain',"
        " 'file_extension': '.txt'}\n"
        "    banner = 'echo'\n"
        "    async def do_execute(self, code, silent, store_history=True,"
        " user_expressions=None, allow_stdin=False, **kwargs):\n"
        "        return {'status': 'error', 'execution_count': self.execution_count,"
        " 'ename': '', 'evalue': '127', 'traceback': []}\n"
        "if __name__ == '__main__':\n"
        "    from ipykernel.kernelapp import IPKernelApp\n"
        "    IPKernelApp.launch_instance(kernel_class=Echo)\n")
    name = f"fake-{language}"
    spec = tmp_path / "jupyter" / "kernels" / name
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, str(module), "-f", "{connection_file}"],
        "display_name": f"Fake {language}", "language": language}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return name


@pytest.mark.parametrize("language", ["bash", "python"])
def test_case12_only_ipython_kernels_can_be_measured(tmp_path, corpus_env, monkeypatch,
                                                     capsys, language):
    name = _fake_kernel(tmp_path, monkeypatch, language)
    source = _notebook(tmp_path / "other.ipynb", "echo hi", kernelspec={
        "name": name, "display_name": f"Fake {language}", "language": language})
    before = set(tmp_path.rglob("*"))
    code = main(["measure", str(source), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "only IPython kernels can be measured" in err
    assert f"the notebook asks for kernel {name!r}" in err
    assert (f"language {language}" in err) and ("127" not in err)
    assert set(tmp_path.rglob("*")) - before == set()  # nothing written
