"""energykernel's JupyterLab extension in a real JupyterLab, driven in Chromium.

One notebook: auto mode turned on with the extension's command (a silent execution: not
measured, no execution count), three cells run, three badges checked against each cell's
``metadata["energykernel"]`` and the run the kernel sent; auto mode off again for a fourth
cell (no badge; it counts the kernel's runs: three). Saved, the page reloaded: the badges
come back from the metadata. The status bar shows the server's live power (labelled
estimate) and the notebook's energy, polled at most once a second, and not while the page
is hidden. Auto mode typed by hand in a cell: the toggle and its button follow.
``ENERGYKERNEL_UPDATE_DOCS=1`` refreshes docs/lab-badges.png.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_MS = 90_000


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


LABEXTENSION = Path(sys.prefix) / "share" / "jupyter" / "labextensions" / "energykernel"
NOTEBOOK = "lab-badges.ipynb"
CELLS = [
    "# task: squares\nsum(i * i for i in range(300_000))",
    "# task: nap\nimport time\ntime.sleep(0.4)",
    "# task: sort\nimport energykernel as ek\nek.configure(region='FR')\n"
    "sorted(range(200_000), key=lambda i: -i)[:3]",
    "import energykernel as ek\nlen(ek.runs().run)",
]


@pytest.fixture(scope="module")
def _extension_installed():
    if not (LABEXTENSION / "package.json").is_file():
        why = (f"the JupyterLab extension is not installed at {LABEXTENSION} "
               "(./run setup builds and links it; it needs npm)")
        if _in_ci():
            pytest.fail(why)
        pytest.skip(why)


def _write_notebook(path: Path) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(src) for src in CELLS]
    path.write_text(nbformat.writes(nb))


_APP_READY = """() => {
    const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    return !!(w && w.content && w.content.widgets.length === N_CELLS
              && w.context && w.context.isReady);
}""".replace("N_CELLS", str(len(CELLS)))

_RUN_CELL = """async (i) => {
    const panel = window.jupyterapp.shell.currentWidget;
    panel.content.activeCellIndex = i;
    await window.jupyterapp.commands.execute('notebook:run-cell');
}"""

_CELLS = """() => window.jupyterapp.shell.currentWidget.content.widgets.map(cell => {
    const badge = cell.node.querySelector('.ek-badge');
    const shown = badge && badge.textContent !== '';
    const run = (cell.model.outputs ? cell.model.outputs.toJSON() : [])
        .map(o => o.data && o.data['application/vnd.energykernel.run+json'])
        .filter(d => d && d.status !== 'running');
    return {
        count: cell.model.executionCount,
        metadata: cell.model.getMetadata('energykernel') || null,
        sent: run.length ? run[run.length - 1] : null,
        badge: shown ? {text: badge.innerText, title: badge.title,
                        total_j: parseFloat(badge.dataset.totalJ),
                        estimate: badge.classList.contains('ek-badge-estimate')} : null,
        result: (cell.model.outputs ? cell.model.outputs.toJSON() : [])
            .filter(o => o.output_type === 'execute_result')
            .map(o => o.data['text/plain']),
    };
})"""

_STATUS = """() => {
    const el = document.querySelector('.ek-status');
    return el && {text: el.innerText, polls: parseInt(el.dataset.polls || '0'),
                  power_w: el.dataset.powerW === undefined ? null : parseFloat(el.dataset.powerW),
                  method: el.dataset.method || null,
                  total_j: el.dataset.totalJ === undefined ? null : parseFloat(el.dataset.totalJ)};
}"""

_POWER_REQUESTS = """() => performance.getEntriesByType('resource')
    .filter(e => e.name.includes('/energykernel/power')).map(e => e.startTime)"""

_TOGGLED = "() => window.jupyterapp.commands.isToggled('energykernel:toggle-auto')"

_TYPE_AND_RUN = """async ([source, ms]) => {
    const panel = window.jupyterapp.shell.currentWidget;
    panel.content.activeCellIndex = panel.content.widgets.length - 1;
    await window.jupyterapp.commands.execute('notebook:insert-cell-below');
    panel.content.activeCell.model.sharedModel.setSource(source);
    const run = window.jupyterapp.commands.execute('notebook:run-cell');
    const timeout = new Promise((_, reject) => setTimeout(() => {
        const dialog = document.querySelector('.jp-Dialog');
        reject(new Error('run ' + source + ': no end after ' + ms + ' ms'
                         + (dialog ? '; a dialog is open: ' + dialog.textContent : '')));
    }, ms));
    return await Promise.race([run, timeout]);
}"""


def _open(page, lab) -> None:
    page.goto(lab.notebook_url(NOTEBOOK))
    page.wait_for_function(_APP_READY, timeout=TIMEOUT_MS)


def _check_badge(cell: dict) -> None:
    from energykernel.core.units import duration, si

    meta, badge = cell["metadata"], cell["badge"]
    assert meta is not None and badge is not None, cell
    assert badge["total_j"] == meta["total_j"]
    assert si(meta["total_j"], "J") in badge["text"]
    assert duration(meta["duration_s"]) in badge["text"]
    assert badge["estimate"] and "estimate" in badge["text"]  # the estimate backend
    for comp, joules in meta["energy_j"].items():  # the per-component split
        assert f"{comp}: {si(joules, 'J')}" in badge["title"]


def test_badges_status_bar_and_toggle(_extension_installed, page, lab, kernel_idle,
                                      artifacts):
    _write_notebook(lab.root / "notebooks" / NOTEBOOK)
    _open(page, lab)
    kernel_idle()
    page.evaluate("() => window.jupyterapp.shell.collapseLeft()")

    # Auto mode on from the UI: a silent execution, so no count and no run of its own.
    assert page.evaluate(_TOGGLED) is False
    assert page.evaluate("() => window.jupyterapp.commands.execute("
                         "'energykernel:toggle-auto')") is True
    assert page.evaluate(_TOGGLED) is True
    for i in range(3):
        page.evaluate(_RUN_CELL, i)
        kernel_idle()
    assert page.evaluate("() => window.jupyterapp.commands.execute("
                         "'energykernel:toggle-auto')") is False
    page.evaluate(_RUN_CELL, 3)
    kernel_idle()

    from energykernel.core.units import si

    cells = page.evaluate(_CELLS)
    assert [c["count"] for c in cells] == [1, 2, 3, 4]  # the toggles took no count
    for cell, task in zip(cells[:3], ("squares", "nap", "sort"), strict=True):
        assert cell["metadata"]["task"] == task
        assert cell["metadata"]["run_id"] == cell["sent"]["run_id"]
        assert cell["metadata"]["total_j"] == cell["sent"]["total_j"]
        _check_badge(cell)
    assert cells[1]["metadata"]["duration_s"] >= 0.4
    assert "emissions_g" not in cells[0]["metadata"]  # no region: no carbon
    carbon = cells[2]["metadata"]  # the cell configured a region: its carbon is shown
    assert carbon["region"] == "FR" and carbon["emissions_g"] > 0
    assert f"{si(carbon['emissions_g'], 'gCO2e')} (FR)" in cells[2]["badge"]["text"]
    # the ⚡ line's output is drawn as nothing: the badge stands in for it
    assert page.locator(".energykernel-line").count() == 0
    assert cells[3]["badge"] is None and cells[3]["metadata"] is None  # auto mode off
    assert cells[3]["result"] == ["3"]  # three runs: the toggles were not measured

    # The status bar: live power (estimate) and this notebook's energy, updating.
    total_j = sum(c["metadata"]["total_j"] for c in cells[:3])
    page.wait_for_function("([want]) => { const el = document.querySelector('.ek-status');"
                           " return el && Math.abs(parseFloat(el.dataset.totalJ) - want)"
                           " <= 1e-9 * Math.max(1, want); }", arg=[total_j])
    first = page.evaluate(_STATUS)
    assert first["power_w"] is not None and first["power_w"] > 0, first
    assert first["method"] == "estimate" and "(estimate)" in first["text"], first
    # Request start times as the browser took them (resource timing), over 3.3 s.
    page.evaluate("() => { performance.setResourceTimingBufferSize(10000);"
                  " performance.clearResourceTimings(); }")
    page.wait_for_timeout(3300)
    times = page.evaluate(_POWER_REQUESTS)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(times) >= 2 and min(gaps) >= 900, times  # at most one request a second
    assert page.evaluate(_STATUS)["polls"] > first["polls"]

    # A hidden page stops polling; visible again, it resumes.
    page.evaluate("""() => { Object.defineProperty(document, 'hidden',
        {configurable: true, get: () => true});
        document.dispatchEvent(new Event('visibilitychange')); }""")
    page.wait_for_timeout(1200)  # a request in flight may still end
    page.evaluate("() => performance.clearResourceTimings()")
    page.wait_for_timeout(2500)
    assert page.evaluate(_POWER_REQUESTS) == [], "polled while the page was hidden"
    page.evaluate("""() => { delete document.hidden;
        document.dispatchEvent(new Event('visibilitychange')); }""")
    page.wait_for_function("(n) => parseInt(document.querySelector('.ek-status')"
                           ".dataset.polls) > n", arg=page.evaluate(_STATUS)["polls"])

    _screenshot(page, artifacts)

    # Saved and reloaded: the badges come back from the metadata.
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    page.wait_for_function("() => !window.jupyterapp.shell.currentWidget.context.model.dirty")
    saved = json.loads((lab.root / "notebooks" / NOTEBOOK).read_text())
    assert [c["metadata"].get("energykernel", {}).get("run_id") for c in saved["cells"][:3]] \
        == [c["metadata"]["run_id"] for c in cells[:3]]
    page.reload()
    page.wait_for_function(_APP_READY, timeout=TIMEOUT_MS)
    page.wait_for_function("() => document.querySelectorAll("
                           "'.ek-badge:not(:empty)').length === 3")
    again = page.evaluate(_CELLS)
    for before, after in zip(cells[:3], again[:3], strict=True):
        assert after["metadata"] == before["metadata"]
        assert after["badge"] == before["badge"]
    assert again[3]["badge"] is None

    # Auto mode typed by hand: the command's state and the toolbar button follow it.
    from playwright.sync_api import expect

    kernel_idle()  # the reloaded page has its kernel connection back before a cell runs
    for typed, on in (("%energy auto on", True), ("%energy auto off", False)):
        page.evaluate(_TYPE_AND_RUN, [typed, TIMEOUT_MS])
        kernel_idle()
        page.wait_for_function(f"() => {_TOGGLED[6:]} === {'true' if on else 'false'}")
        # the button is a React widget: its pressed state is drawn on a later frame
        button = page.locator(".ek-auto-button .jp-ToolbarButtonComponent, "
                              ".ek-auto-button button").first
        expect(button).to_have_attribute("aria-pressed", "true" if on else "false")


def _screenshot(page, artifacts: Path) -> None:
    """The notebook with its badges and the status bar, at a picture's size."""
    size = page.viewport_size
    page.set_viewport_size({"width": 1000, "height": 560})
    try:
        page.evaluate("() => window.jupyterapp.shell.currentWidget.content"
                      ".widgets[0].node.scrollIntoView({block: 'start'})")
        page.wait_for_timeout(300)
        path = artifacts / "lab-badges.png"
        page.screenshot(path=str(path), animations="disabled")
        if os.environ.get("ENERGYKERNEL_UPDATE_DOCS") == "1":
            shutil.copyfile(path, REPO / "docs" / "lab-badges.png")
    finally:
        page.set_viewport_size(size)


def test_power_endpoint_needs_the_token(_extension_installed, lab):
    url = f"{lab.url}/energykernel/power"
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(url, timeout=10)
    assert denied.value.code == 403
    with urllib.request.urlopen(f"{url}?token={lab.token}", timeout=10) as reply:
        power = json.loads(reply.read())
    assert power["label"] == "estimate" and power["power_w"] > 0
    assert set(power["method"].values()) == {"estimate"}


def test_badges_of_a_cli_annotated_notebook_need_no_kernel_run(_extension_installed, page,
                                                               lab):
    """``energykernel measure`` writes the cell metadata only (this shape): opened in
    JupyterLab, its cells show their badges without running anything; counters' figures
    are not marked as estimates."""
    import nbformat

    from energykernel.core.units import duration, si

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    meta = {"task": "train", "energy_j": {"cpu": 41.25, "ram": 2.5}, "total_j": 43.75,
            "method": {"cpu": "rapl", "ram": "rapl"}, "duration_s": 3.02, "status": "ok",
            "run_id": "r-1"}
    cell = nbformat.v4.new_code_cell("model.fit(X, y)", execution_count=1)
    cell.metadata["energykernel"] = meta
    nb.cells = [cell, nbformat.v4.new_code_cell("x = 1")]
    (lab.root / "notebooks" / "annotated.ipynb").write_text(nbformat.writes(nb))
    page.goto(lab.notebook_url("annotated.ipynb"))
    page.wait_for_function("() => document.querySelectorAll('.ek-badge:not(:empty)')"
                           ".length === 1")
    badge = page.locator(".ek-badge:not(:empty)")
    text = badge.inner_text()
    assert si(43.75, "J") in text and duration(3.02) in text and "rapl" in text
    assert "estimate" not in text and "ek-badge-estimate" not in badge.get_attribute("class")
    assert "cpu: 41.2 J" in badge.get_attribute("title")
