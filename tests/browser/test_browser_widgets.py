"""The what-if widgets in a real JupyterLab, driven in Chromium like a user would.

Each test opens a notebook, runs all its cells in a real kernel, changes widget fields by
typing and choosing, and checks that the numbers the page shows are those the widget's pure
function computes here, in the test process — the totals, then the chart of the same update
(its caption, sent right after the picture), and that a narrow notebook does not clip the
form. A last test opens an ``energykernel report``
page. Screenshots land in test-artifacts/browser/; ``ENERGYKERNEL_UPDATE_DOCS=1`` also
refreshes docs/widget-nn-calculator.png, docs/widget-simulator.png and docs/report.png.
"""

from __future__ import annotations

import contextlib
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
    text = calc.locator(".ek-nn-total").inner_text()
    return _number(text, r"total ([\d,]+\.\d+) tCO2e")


def _wait_chart(page, widget, caption_class: str, want: str) -> None:
    """Wait until the chart's caption (sent right after its picture) reads ``want`` and
    the picture is decoded: the chart on screen is the one of that update."""
    page.wait_for_function(  # synchronous: wait_for_function does not await a Promise
        """([el, cls, want]) => {
            const cap = el.querySelector('.' + cls);
            const img = cap && cap.previousElementSibling;
            return !!img && img.tagName === 'IMG' && cap.innerText.trim() === want
                && img.complete && img.naturalWidth > 0;
        }""",
        arg=[widget.element_handle(), caption_class, want])
    decoded = widget.evaluate(
        """async (el, cls) => {
            const img = el.querySelector('.' + cls).previousElementSibling;
            await img.decode().catch(() => null);
            return img.naturalWidth > 0;
        }""", caption_class)
    assert decoded, f"chart above .{caption_class} did not decode"


def _expect_total(page, calc, values, sweep_label: str = "training PUE") -> None:
    from energykernel.jupyter.widgets.carbon import chart_description, compute

    result, errors = compute(values)
    assert result is not None, errors
    want = round(float(result.total_g) / 1e6, 3)
    page.wait_for_function(
        """([el, want]) => {
            const t = el.querySelector('.ek-nn-total');
            const m = t && t.innerText.match(/total ([\\d,]+\\.\\d+) tCO2e/);
            return !!m && Math.abs(parseFloat(m[1].replace(/,/g, '')) - want) < 5e-4;
        }""",
        arg=[calc.element_handle(), want])
    assert _shown_total_t(calc) == pytest.approx(want, abs=5e-4)
    _wait_chart(page, calc, "ek-nn-chart-caption", chart_description(result, sweep_label))


_FITS = """el => {
    // every input and chart inside el is whole: within the output area's width and not
    // clipped by any box around it
    const area = el.closest('.jp-OutputArea-output') || el;
    const bad = [];
    for (const x of el.querySelectorAll('input, select, img')) {
        const r = x.getBoundingClientRect();
        const name = (x.labels && x.labels[0] ? x.labels[0].innerText : x.tagName);
        if (r.width < 40) bad.push(name + ': only ' + Math.round(r.width) + ' px wide');
        for (let a = x.parentElement; a && a !== area.parentElement; a = a.parentElement) {
            const clips = getComputedStyle(a).overflowX !== 'visible' || a === area;
            const b = a.getBoundingClientRect();
            if (clips && (r.right > b.right + 1 || r.left < b.left - 1)) {
                bad.push(name + ': ' + Math.round(r.left) + '..' + Math.round(r.right)
                         + ' outside ' + Math.round(b.left) + '..' + Math.round(b.right)
                         + ' (' + a.className.split(' ').slice(0, 2).join(' ') + ')');
                break;
            }
        }
    }
    if (area.scrollWidth > area.clientWidth + 1) bad.push('output area scrolls sideways');
    return bad;
}"""


def _assert_fits_when_narrow(page, widget, width: int) -> None:
    """At ``width`` px the widget reflows: nothing clipped, nothing scrolled sideways."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.set_viewport_size({"width": width, "height": 1800})
    # give the layout a moment; the assertion below names what does not fit
    with contextlib.suppress(PlaywrightTimeout):
        page.wait_for_function(f"el => ({_FITS})(el).length === 0",
                               arg=widget.element_handle(), timeout=10_000)
    assert widget.evaluate(_FITS) == []


def test_nn_calculator_follows_the_pure_function(page, run_notebook, screenshot):
    from energykernel.carbon import intensity
    from energykernel.jupyter.widgets.carbon import PRESETS

    run_notebook("03-nn-carbon.ipynb")
    out = page.locator(".jp-OutputArea-output")
    calc = out.locator(".widget-vbox").filter(has=page.get_by_label("Preset", exact=True)).first
    calc.scroll_into_view_if_needed()
    training = calc.locator(".widget-hbox > .widget-vbox").filter(
        has=page.locator("b", has_text=re.compile(r"^training$")))

    # As loaded: the GPT-3 preset, 553 tCO2e.
    values = {p: {f: repr(v) for f, v in fs.items()}
              for p, fs in PRESETS["GPT-3 (Patterson et al. 2021)"].items()}
    _expect_total(page, calc, values)
    assert _shown_total_t(calc) == pytest.approx(553.142, abs=1e-3)

    # Type a worse datacentre PUE.
    training.get_by_label("PUE (×)", exact=True).fill("1.5")
    values["training"]["pue"] = "1.5"
    _expect_total(page, calc, values)

    # A region code fills the intensity (France's grid). Enter too: ipykernel >= 7 may
    # handle its "submit" message at the same time as the value change; updates are
    # serialised, so the chart is whole and the last state wins.
    region = training.get_by_label("Region", exact=True)
    region.fill("FR")
    region.press("Enter")
    values["training"]["intensity_g_per_kwh"] = repr(intensity("FR"))
    _expect_total(page, calc, values)
    shown = training.get_by_label("Grid intensity (gCO2e/kWh)", exact=True).input_value()
    assert float(shown) == pytest.approx(intensity("FR"))
    screenshot(calc, "nn-calculator.png", docs_name="widget-nn-calculator.png")

    # The sweep plot can follow training hours instead of PUE.
    calc.get_by_label("Sweep", exact=True).select_option("training hours")
    _expect_total(page, calc, values, "training hours")

    # An invalid entry is flagged next to its field, never a traceback.
    hours = training.get_by_label("Duration (hours)", exact=True)
    hours.fill("-3")
    field_row = training.locator(".widget-hbox").filter(
        has=page.get_by_label("Duration (hours)", exact=True))
    page.wait_for_function("el => el.innerText.includes('hours must be >= 0')",
                           arg=field_row.element_handle())
    page.wait_for_function("el => el.innerText.includes('fix the highlighted fields')",
                           arg=calc.element_handle())
    assert "Traceback" not in page.locator(".jp-Notebook").inner_text()
    # the chart still shows the last valid inputs, faded and said so
    page.wait_for_function("el => el.querySelector('.ek-nn-chart.ek-stale') !== null && "
                           "getComputedStyle(el.querySelector('.ek-nn-chart')).opacity < 0.5",
                           arg=calc.element_handle())
    assert "out of date" in calc.locator(".ek-nn-chart-caption").inner_text()
    screenshot(calc, "nn-calculator-invalid.png")
    hours.fill("100")
    values["training"]["hours"] = "100"
    _expect_total(page, calc, values, "training hours")

    # Another preset replaces every field.
    calc.get_by_label("Preset", exact=True).select_option("BLOOM-like (Luccioni et al. 2023)")
    values = {p: {f: repr(v) for f, v in fs.items()}
              for p, fs in PRESETS["BLOOM-like (Luccioni et al. 2023)"].items()}
    _expect_total(page, calc, values, "training hours")
    screenshot(calc, "nn-calculator-bloom.png")

    # In a narrow notebook the form reflows instead of clipping its inputs.
    _assert_fits_when_narrow(page, calc, 820)
    screenshot(calc, "nn-calculator-narrow.png")


# -- workflow simulator (notebooks/02-what-if-simulation.ipynb) ------------------------------

_TOTALS = """el => {
    const table = el.querySelector('table');
    if (!table) return null;
    const rows = {};
    for (const tr of table.querySelectorAll('tr')) {
        const td = [...tr.querySelectorAll('td')].map(c => c.innerText.trim());
        if (td.length >= 4) rows[td[0]] = {
            kwh: td[1], makespan: td[2], emissions: td[3],
            bold: (tr.getAttribute('style') || '').includes('bold')};
    }
    return rows;
}"""


def _expected(instances=None, mode: str = "monitor", **workload) -> tuple[dict, str]:
    """The three modes' totals and the chart caption, from the widget's pure functions,
    for the notebook's fleet and workflow."""
    from energykernel.jupyter.widgets.simulation import chart_description, compute
    from energykernel.sim import ComputeEnvironment, Workflow

    examples = Path(__file__).resolve().parents[2] / "examples"
    env = ComputeEnvironment.from_json(examples / "instances.json")
    workflow = Workflow.from_json(examples / "tasks-dag.json")  # as the notebook's widget
    out = compute(env, workflow, mode=mode, instances=instances or {},
                  profile="synthetic-solar-day", **workload)
    assert not out["errors"], out["errors"]
    totals = {m: {"kwh": t["energy_kwh"], "makespan": t["makespan_s"],
                  "emissions": t["emissions_g"]} for m, t in out["totals"].items()}
    return totals, chart_description(out, mode)


def _matches(shown, want) -> bool:
    """Shown (formatted: kWh to 4 decimals, s and g to 1) equals the pure function's numbers."""
    if not shown or set(shown) != set(want):
        return False
    tol = {"kwh": 5.1e-5, "makespan": 0.051, "emissions": 0.051}
    return all(abs(float(shown[m][k].replace(",", "")) - want[m][k]) <= tol[k]
               for m in want for k in tol)


def _wait_totals(page, sim, want, selected: str, caption: str | None = None) -> dict:
    """Wait for the totals table (and then the chart of the same update) to show ``want``."""
    totals = sim.locator(".widget-html.ek-sim-totals")
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
    if caption is not None:
        _wait_chart(page, sim, "ek-sim-chart-caption", caption)
    return shown


def _commit(field, text: str) -> None:
    """Type into a numeric/text field and commit it with Enter, like a user."""
    field.fill(text)
    field.press("Enter")


def test_simulator_follows_the_pure_function(page, run_notebook, screenshot):
    run_notebook("02-what-if-simulation.ipynb")
    out = page.locator(".jp-OutputArea-output")
    sim = out.locator(".widget-vbox").filter(has=page.get_by_label("mode", exact=True)).first
    sim.scroll_into_view_if_needed()

    # As displayed: optimize selected, all three modes side by side.
    base, caption = _expected(mode="optimize")
    assert base["optimal"]["kwh"] <= base["optimize"]["kwh"] + 1e-9
    _wait_totals(page, sim, base, "optimize", caption)

    # Switch the mode: the selected row (and the Gantt chart) follow; the totals stay.
    sim.get_by_label("mode", exact=True).select_option("monitor")
    _wait_totals(page, sim, base, "monitor", _expected(mode="monitor")[1])

    # Cheaper GPUs on the A100 server: type a new W/unit, commit with Enter.
    a100 = sim.locator(".widget-vbox").filter(
        has=page.locator("b", has_text=re.compile(r"^gpu-a100x4$"))).last
    cost = a100.get_by_label("gpu power (W/unit)", exact=True)
    _commit(cost, "250")
    fleet = {"gpu-a100x4": {"gpu.cost": 250.0}}
    cheaper, caption = _expected(fleet)
    assert cheaper["monitor"]["kwh"] < base["monitor"]["kwh"]
    _wait_totals(page, sim, cheaper, "monitor", caption)

    # A bigger, more varied workload: 16 tasks, durations ±30 % (seeded), demand as is.
    _commit(sim.get_by_label("tasks", exact=True), "16")
    _commit(sim.get_by_label("duration spread", exact=True), "0.3")
    workload = {"n_tasks": 16, "duration_spread": 0.3}
    bigger, caption = _expected(fleet, **workload)
    assert bigger["monitor"]["kwh"] > cheaper["monitor"]["kwh"]
    _wait_totals(page, sim, bigger, "monitor", caption)
    breakdown = sim.locator(".widget-html.ek-sim-breakdown").inner_text()
    assert "gpu-a100x4" in breakdown and "gCO2e" in breakdown
    # the workflow's dependencies and the carbon saved by waiting for greener hours
    assert "wait for others" in sim.locator(".widget-html.ek-sim-deps").inner_text()
    assert "saved" in sim.locator(".widget-html.ek-sim-shift").inner_text()
    screenshot(sim, "simulator.png", docs_name="widget-simulator.png")

    # The optimal schedule, with the changed fleet and workload.
    sim.get_by_label("mode", exact=True).select_option("optimal")
    _wait_totals(page, sim, bigger, "optimal", _expected(fleet, mode="optimal", **workload)[1])
    screenshot(sim, "simulator-optimal.png")

    # A negative cost is flagged next to the field; the last valid totals stay.
    field = a100.locator(".widget-vbox").filter(has=page.get_by_label("gpu power (W/unit)", exact=True))
    assert "must be" not in field.inner_text()
    _commit(cost, "-5")
    page.wait_for_function("el => el.innerText.includes('must be')",
                           arg=field.element_handle())
    _wait_totals(page, sim, bigger, "optimal")
    # So is a workload entry out of range.
    spread = sim.get_by_label("duration spread", exact=True)
    _commit(spread, "2")
    spread_box = sim.locator(".widget-vbox").filter(
        has=page.get_by_label("duration spread", exact=True)).last
    page.wait_for_function("el => el.innerText.includes('must be')",
                           arg=spread_box.element_handle())
    assert "Traceback" not in page.locator(".jp-Notebook").inner_text()

    # In a narrow notebook the controls reflow instead of clipping.
    _assert_fits_when_narrow(page, sim, 820)


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
