"""The progress bar: tqdm's notebook widget inside a kernel with ipywidgets, else plain."""

from __future__ import annotations

import sys
import types

import pytest
from tqdm import std

from energykernel.jupyter import progress


def _fake_kernel(monkeypatch, kernel=True):
    import IPython

    shell = types.SimpleNamespace(kernel=object() if kernel else None)
    monkeypatch.setattr(IPython, "get_ipython", lambda: shell)
    monkeypatch.setitem(sys.modules, "ipykernel", sys.modules.get("ipykernel")
                        or types.ModuleType("ipykernel"))


def test_terminal_gets_plain_tqdm(monkeypatch):
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    assert not progress.in_kernel()
    assert progress.bar_class() is std.tqdm
    bar = progress.progress_bar(range(3), disable=True)
    assert type(bar) is std.tqdm
    bar.close()


def test_kernel_with_ipywidgets_gets_the_notebook_bar(monkeypatch):
    pytest.importorskip("ipywidgets")
    from tqdm import notebook

    _fake_kernel(monkeypatch)
    assert progress.in_kernel()
    assert progress.bar_class() is notebook.tqdm
    assert progress.bar_class(disable=True) is std.tqdm  # --no-progress
    _fake_kernel(monkeypatch, kernel=False)  # a terminal IPython: no kernel
    assert not progress.in_kernel() and progress.bar_class() is std.tqdm


def test_kernel_without_ipywidgets_falls_back_to_plain_tqdm(monkeypatch):
    _fake_kernel(monkeypatch)
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # import fails
    assert progress.bar_class() is std.tqdm


@pytest.mark.slow
def test_in_a_real_kernel_the_bar_is_the_widget(tmp_path):
    """What JupyterLab gets: run in a real IPython kernel, the bar is tqdm's widget."""
    pytest.importorskip("ipywidgets")
    import nbformat
    from nbclient import NotebookClient
    from nbformat.v4 import new_code_cell, new_notebook

    nb = new_notebook(cells=[new_code_cell(
        "from energykernel.jupyter.progress import progress_bar\n"
        "bar = progress_bar(range(3), desc='measuring')\n"
        "for _ in bar: pass\nprint(type(bar).__module__)")])
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = nb.cells[0].outputs
    printed = "".join(o.get("text", "") for o in outputs if o.output_type == "stream"
                      and o.name == "stdout")
    assert printed.strip() == "tqdm.notebook"
    widgets = [o for o in outputs if o.output_type == "display_data"
               and "application/vnd.jupyter.widget-view+json" in o.data]
    assert widgets  # a widget view, not text on stderr
    assert not any(o.output_type == "stream" and o.name == "stderr" for o in outputs)
    nbformat.validate(nb)
