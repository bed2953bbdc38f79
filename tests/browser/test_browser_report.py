"""The HTML report in Chromium: the sort toggle reorders the rows, nothing errs, nothing
is fetched; a screenshot goes to the test artifacts."""

from __future__ import annotations

import uuid

from energykernel.data.schema import cube, runs
from energykernel.viz.report import ReportData, render


def _run(k: int, joules: float) -> dict:
    return {"id": uuid.uuid4().hex, "task": f"cell-{k}", "instance": "h",
            "start_s": 1000.0 + k, "end_s": 1001.0 + k, "duration_s": 1.0,
            "energy_j": {"cpu": joules}, "method": {"cpu": "estimate"}, "device_energy_j": {},
            "status": "ok", "scope": "machine", "pid": 1, "parent_id": "",
            "energy_bounds_j": {"cpu": [0.9 * joules, 1.1 * joules]},
            "extra": {"cell": {"number": k + 1, "id": f"c{k}",
                               "source": f"x = '<b>{k}</b>' & {k}"}}}


def test_sort_toggle_in_chromium(browser, artifacts, tmp_path):
    records = [_run(k, j) for k, j in enumerate([3.0, 50.0, 0.2, 9.0])]
    path = tmp_path / "report.html"
    path.write_text(render(ReportData(cube(records), None, runs(records)), title="t",
                           source="s"), encoding="utf-8")
    page = browser.new_page(viewport={"width": 1180, "height": 900})
    errors, requests = [], []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri())
    rows = "[...document.querySelectorAll('#cells tbody tr')].map(r => r.id)"
    assert page.evaluate(rows) == ["cell-2", "cell-4", "cell-1", "cell-3"]  # by energy
    page.click("text=in notebook order")
    assert page.evaluate(rows) == ["cell-1", "cell-2", "cell-3", "cell-4"]
    assert page.get_attribute(".sort button[data-key=order]", "aria-pressed") == "true"
    page.click("text=by energy")
    assert page.evaluate(rows) == ["cell-2", "cell-4", "cell-1", "cell-3"]
    assert "<b>1</b>" in page.inner_text("#cell-2")  # the source shown as text, not markup
    page.screenshot(path=str(artifacts / "report-sorted.png"), full_page=True)
    page.close()
    assert errors == [] and requests == [path.as_uri()]
