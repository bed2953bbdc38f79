"""The what-if widgets in a real JupyterLab, driven in Chromium like a user would.

Each test opens a notebook, runs all its cells in a real kernel, changes widget fields by
typing and choosing, and checks that the numbers the page shows are those the widget's pure
function computes here, in the test process. A last test opens an ``energykernel report``
page. Screenshots land in test-artifacts/browser/; ``ENERGYKERNEL_UPDATE_DOCS=1`` also
refreshes docs/widget-nn-calculator.png, docs/widget-simulator.png and docs/report.png.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _number(text: str, pattern: str) -> float:
    m = re.search(pattern, text)
    assert m, f"{pattern!r} not found in {text!r}"
    return float(m.group(1).replace(",", ""))


# -- NN carbon calculator (notebooks/03-nn-carbon.ipynb) -------------------------------------


def _shown_total_t(calc) -> float:
    """The total tCO2e the calculator shows (3 decimals)."""
    text = calc.locator(".widget-html", has_text=re.compile(r"total .* tCO2e")).inner_text()
    return _number(text, r"total ([\d,]+\.\d+) tCO2e")


def _expect_total(page, calc, values, kernel_idle) -> None:
    from energykernel.widgets.carbon import compute

    result, errors = compute(values)
    assert result is not None, errors
    want = round(float(result.total_g) / 1e6, 3)
    page.wait_for_function(
        """([el, want]) => {
            const m = el.innerText.match(/total ([\\d,]+\\.\\d+) tCO2e/);
            return !!m && Math.abs(parseFloat(m[1].replace(/,/g, '')) - want) < 5e-4;
        }""",
        arg=[calc.element_handle(), want])
    assert _shown_total_t(calc) == pytest.approx(want, abs=5e-4)
    kernel_idle()  # the chart of this update is drawn too


def test_nn_calculator_follows_the_pure_function(page, run_notebook, screenshot, kernel_idle):
    from energykernel.carbon import intensity
    from energykernel.widgets.carbon import PRESETS

    run_notebook("03-nn-carbon.ipynb")
    out = page.locator(".jp-OutputArea-output")
    calc = out.locator(".widget-vbox").filter(has=page.get_by_label("Preset", exact=True)).first
    calc.scroll_into_view_if_needed()
    training = calc.locator(".widget-hbox > .widget-vbox").filter(
        has=page.locator("b", has_text=re.compile(r"^training$")))

    # As loaded: the GPT-3 preset, 553 tCO2e.
    values = {p: {f: repr(v) for f, v in fs.items()}
              for p, fs in PRESETS["GPT-3 (Patterson et al. 2021)"].items()}
    _expect_total(page, calc, values, kernel_idle)
    assert _shown_total_t(calc) == pytest.approx(553.142, abs=1e-3)

    # Type a worse datacentre PUE.
    training.get_by_label("pue", exact=True).fill("1.5")
    values["training"]["pue"] = "1.5"
    _expect_total(page, calc, values, kernel_idle)

    # A region code fills the intensity (France's grid).
    # No Enter here: ipykernel >= 7 may handle its "submit" message concurrently with the
    # value change, and two chart redraws at once can leave a garbled chart (widget issue).
    training.get_by_label("Region", exact=True).fill("FR")
    values["training"]["intensity_g_per_kwh"] = repr(intensity("FR"))
    _expect_total(page, calc, values, kernel_idle)
    shown = training.get_by_label("intensity_g_per_kwh", exact=True).input_value()
    assert float(shown) == pytest.approx(intensity("FR"))
    screenshot(calc, "nn-calculator.png", docs_name="widget-nn-calculator.png")

    # An invalid entry is flagged next to its field, never a traceback.
    hours = training.get_by_label("hours", exact=True)
    hours.fill("-3")
    field_row = training.locator(".widget-hbox").filter(
        has=page.get_by_label("hours", exact=True))
    page.wait_for_function("el => el.innerText.includes('must be a finite number')",
                           arg=field_row.element_handle())
    page.wait_for_function("el => el.innerText.includes('fix the highlighted fields')",
                           arg=calc.element_handle())
    assert "Traceback" not in page.locator(".jp-Notebook").inner_text()
    hours.fill("100")
    values["training"]["hours"] = "100"
    _expect_total(page, calc, values, kernel_idle)

    # Another preset replaces every field.
    calc.get_by_label("Preset", exact=True).select_option("BLOOM-like (Luccioni et al. 2023)")
    values = {p: {f: repr(v) for f, v in fs.items()}
              for p, fs in PRESETS["BLOOM-like (Luccioni et al. 2023)"].items()}
    _expect_total(page, calc, values, kernel_idle)
    screenshot(calc, "nn-calculator-bloom.png")


# -- workflow simulator (notebooks/02-what-if-simulation.ipynb) ------------------------------

_TOTALS = """el => {
    const table = el.querySelector('table');
    if (!table) return null;
    const rows = {};
    for (const tr of table.querySelectorAll('tr')) {
        const td = [...tr.querySelectorAll('td')].map(c => c.innerText.trim());
        if (td.length === 4) rows[td[0]] = {
            kwh: td[1], makespan: td[2], emissions: td[3],
            bold: (tr.getAttribute('style') || '').includes('bold')};
    }
    return rows;
}"""


def _expected_totals(instances=None) -> dict[str, dict[str, float]]:
    """The three modes' totals, from the widget's pure function, for the notebook's fleet."""
    from energykernel.sim import ComputeEnvironment, Workflow
    from energykernel.widgets.simulator import compute

    examples = Path(__file__).resolve().parents[2] / "examples"
    env = ComputeEnvironment.from_json(examples / "instances.json")
    workflow = Workflow.from_json(examples / "tasks.json")
    out = compute(env, workflow, mode="monitor", instances=instances or {})
    assert not out["errors"], out["errors"]
    return {m: {"kwh": r.energy_j / 3.6e6, "makespan": r.makespan_s, "emissions": r.emissions_g}
            for m, r in out["results"].items()}


def _matches(shown, want) -> bool:
    """Shown (formatted: kWh to 4 decimals, s and g to 1) equals the pure function's numbers."""
    if not shown or set(shown) != set(want):
        return False
    tol = {"kwh": 5.1e-5, "makespan": 0.051, "emissions": 0.051}
    return all(abs(float(shown[m][k].replace(",", "")) - want[m][k]) <= tol[k]
               for m in want for k in tol)


def _wait_totals(page, sim, want, selected: str) -> dict:
    totals = sim.locator(".widget-html").filter(has=page.locator("table")).last
    handle = totals.element_handle()
    page.wait_for_function(
        """([el, want, selected, tol]) => {
            const t = (""" + _TOTALS + """)(el);
            if (!t) return false;
            for (const m of Object.keys(want)) {
                if (!t[m] || t[m].bold !== (m === selected)) return false;
                for (const k of Object.keys(tol))
                    if (Math.abs(parseFloat(t[m][k].replace(/,/g, '')) - want[m][k]) > tol[k])
                        return false;
            }
            return true;
        }""",
        arg=[handle, want, selected, {"kwh": 5.1e-5, "makespan": 0.051, "emissions": 0.051}])
    shown = totals.evaluate(_TOTALS)
    assert _matches(shown, want), (shown, want)
    assert [m for m, row in shown.items() if row["bold"]] == [selected]
    return shown


def test_simulator_follows_the_pure_function(page, run_notebook, screenshot, kernel_idle):
    run_notebook("02-what-if-simulation.ipynb")
    out = page.locator(".jp-OutputArea-output")
    sim = out.locator(".widget-vbox").filter(has=page.get_by_label("mode", exact=True)).first
    sim.scroll_into_view_if_needed()

    # As displayed: optimize selected, all three modes side by side.
    base = _expected_totals()
    assert base["optimal"]["kwh"] <= base["optimize"]["kwh"] + 1e-9
    _wait_totals(page, sim, base, "optimize")

    # Switch the mode: the selected row (and the Gantt chart) follow; the totals stay.
    sim.get_by_label("mode", exact=True).select_option("monitor")
    _wait_totals(page, sim, base, "monitor")
    kernel_idle()

    # Cheaper GPUs on the A100 server: type a new W/unit, commit with Enter.
    a100 = sim.locator(".widget-vbox").filter(
        has=page.locator("b", has_text=re.compile(r"^gpu-a100x4$"))).last
    cost = a100.get_by_label("gpu W/unit", exact=True)
    cost.fill("250")
    cost.press("Enter")
    cheaper = _expected_totals({"gpu-a100x4": {"gpu.cost": 250.0}})
    assert cheaper["monitor"]["kwh"] < base["monitor"]["kwh"]
    _wait_totals(page, sim, cheaper, "monitor")
    kernel_idle()  # the Gantt chart of this update is drawn too
    screenshot(sim, "simulator.png", docs_name="widget-simulator.png")

    # The optimal schedule, with the changed fleet.
    sim.get_by_label("mode", exact=True).select_option("optimal")
    _wait_totals(page, sim, cheaper, "optimal")
    kernel_idle()
    screenshot(sim, "simulator-optimal.png")

    # A negative cost is flagged next to the field; the last valid totals stay.
    field = a100.locator(".widget-vbox").filter(has=page.get_by_label("gpu W/unit", exact=True))
    assert "must be" not in field.inner_text()
    cost.fill("-5")
    cost.press("Enter")
    page.wait_for_function("el => el.innerText.includes('must be')",
                           arg=field.element_handle())
    _wait_totals(page, sim, cheaper, "optimal")
    assert "Traceback" not in page.locator(".jp-Notebook").inner_text()


# -- the HTML report (energykernel report) ------------------------------------------------------

_MEASURE = """
import sys
import numpy as np
import energykernel as ek

ek.configure(sample_interval_s=0.1)  # a few timeline samples even for short tasks
rng = np.random.default_rng(0)
for task, n in [("load", 300_000), ("train", 1_200_000), ("evaluate", 400_000)]:
    with ek.measure(task):
        x = rng.random(n)
        for _ in range(25):
            x = np.sort(x)
ek.save(sys.argv[1])
"""


def test_report_renders_in_chromium(page, tmp_path, screenshot):
    """``energykernel report`` output is one self-contained page whose plots render."""
    env = {**os.environ, "ENERGYKERNEL_BACKENDS": "estimate",
           "ENERGYKERNEL_LOG_DIR": str(tmp_path / "logs"), "MPLBACKEND": "Agg"}
    html = tmp_path / "report.html"
    subprocess.run([sys.executable, "-c", _MEASURE, "runs.nc"], env=env, cwd=tmp_path,
                   check=True, timeout=120)
    subprocess.run([sys.executable, "-m", "energykernel", "report", "runs.nc", "-o",
                    "report.html"], env=env, cwd=tmp_path, check=True, timeout=120)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.set_viewport_size({"width": 1000, "height": 1200})
    page.goto(html.as_uri())
    assert page.locator("h1").inner_text()
    figures = page.locator(".fig svg")  # tasks, plus timeline/instances when there are any
    assert page.locator("#plot-tasks svg").count() == 1
    for k in range(figures.count()):
        box = figures.nth(k).bounding_box()
        assert box and box["width"] > 100 and box["height"] > 100, box
    body = page.locator("body").inner_text()
    for task in ("load", "train", "evaluate"):
        assert task in body
    assert "estimate" in body
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []  # no network
    screenshot(page.locator("body"), "report.png", docs_name="report.png")
