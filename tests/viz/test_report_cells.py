"""The report as a profile of the notebook: sources, bars, sorting, totals, methods once."""

from __future__ import annotations

import re
import uuid

import pytest

from energykernel.carbon import intensity_info
from energykernel.core.units import si
from energykernel.data.schema import cube, runs
from energykernel.viz.plot import plot
from energykernel.viz.report import ReportData, render


def _run(task, cpu, number=None, source="", parent="", run_id=None, method="estimate",
         start=1000.0, previous=None, nested=False):
    r = {"id": run_id or uuid.uuid4().hex, "task": task, "instance": "h", "start_s": start,
         "end_s": start + 1, "duration_s": 1.0, "energy_j": {"cpu": cpu, "ram": cpu / 10},
         "method": {"cpu": method, "ram": "estimate"}, "device_energy_j": {},
         "status": "ok", "scope": "machine", "pid": 1, "parent_id": parent,
         "energy_bounds_j": {"cpu": [0.9 * cpu, 1.1 * cpu], "ram": [0.09 * cpu, 0.11 * cpu]},
         "active_energy_j": {"cpu": cpu / 2, "ram": cpu / 20}}
    if number is not None:
        cell = {"number": number, "id": f"id-{number}", "source": source}
        if nested:
            cell = {"number": number, "id": f"id-{number}", "nested": True}
        if previous is not None:
            cell["previous"] = previous
        r["extra"] = {"cell": cell}
    return r


def _html(records, **kwargs):
    return render(ReportData(cube(records), None, runs(records)), title="t", source="s",
                  **kwargs)


RECORDS = [
    _run("cell-1", 1.0, 2, "import numpy as np", run_id="c1", start=1000),
    _run("cell-2", 50.0, 3, "x = '<script>alert(1)</script>' & y\nfor i in x:\n    pass",
         run_id="c2", start=1001),
    _run("inner", 20.0, 3, parent="c2", start=1001.5, nested=True),
    _run("cell-3", 4e-5, 4, "1 + 1", run_id="c3", start=1003, method="rapl"),
]


def test_each_cell_with_its_source_escaped_linked_and_sortable():
    html = _html(RECORDS)
    assert "<script>alert" not in html and "&lt;script&gt;alert" in html  # escaped
    assert html.count("<script>") == 1  # only the sort toggle's own script
    assert 'id="cell-3"' in html and 'href="#cell-3"' in html and "id-3" in html
    rows = re.findall(r'<tr(?: id="([^"]*)")?[^>]* data-energy="([^"]+)" data-order="([^"]+)"',
                      html)
    energies = [float(e) for _, e, _ in rows]
    assert energies == sorted(energies, reverse=True)  # by energy first
    order = {anchor: float(o) for anchor, _, o in rows if anchor}
    assert order["cell-2"] < order["cell-3"] < order["cell-4"]  # notebook order for the toggle
    assert "in notebook order" in html and "by energy" in html
    assert 'class="src"' in html and 'class="k"' in html  # highlighted (Pygments)
    assert not re.search(r"(src|href)=[\"']https?:", html)  # self-contained


def test_totals_each_joule_once_si_units_and_carbon_per_cell():
    html = _html(RECORDS, region="FR")
    own = 1.1 + 55.0 - 22.0 + 22.0 + 4.4e-5  # the block inside cell 2 counted once
    foot = html[html.index("<tfoot>"):html.index("</tfoot>")]
    assert si(own, "J") in foot
    assert not re.search(r"\d\.?\d*e[-+]?\d", re.sub(r"<style>.*?</style>|<svg.*?</svg>|"
                                                       r'data-\w+="[^"]*"', "", html,
                                                       flags=re.S))  # never 4.2e-05
    assert "44 µJ" in html  # the tiny cell, in SI
    france = intensity_info("FR")
    assert si(55.0 / 3.6e6 * france.value_g_per_kwh, "gCO2e") in html
    assert "<th>self</th>" in html and "<th>active</th>" in html


def test_top_cells_first_and_methods_stated_once():
    html = _html(RECORDS)
    top = html[html.index('<ol id="top">'):html.index("</ol>")]
    first = top.split("</li>")[0]
    assert 'href="#cell-3">cell 3</a>' in first and "&lt;script&gt;" in first
    assert html.index("Where the energy went") < html.index('<table id="cells"')
    assert html.count("cpu:estimate") == 0  # no per-row method list
    measured = html[html.index('id="measured-by"'):]
    assert measured.startswith('id="measured-by">Measured by: cpu estimate, ram estimate')
    assert html.count('class="odd"') == 1 and "cpu: rapl" in html  # the one that differs


def test_previous_run_and_regression_flag():
    prev = {"total_j": 10.0, "lo_j": 9.0, "hi_j": 11.0, "at": "2026-01-01T00:00:00+00:00"}
    same = {"total_j": 1.05, "lo_j": 0.95, "hi_j": 1.2}
    records = [_run("cell-1", 1.0, 2, "a = 1", start=1000, previous=same),
               _run("cell-2", 50.0, 3, "b = 2", start=1001, previous=prev)]
    html = _html(records)
    assert "Since the previous run" in html and "▲ rose" in html
    assert 'class="rose"' in html and html.count('class="rose"') == 1
    assert "was 10 J<br>+45 J (×5.5)" in html and "None moved" not in html
    assert "cell 3 (10 J → 55 J)" in html


def test_a_dataset_without_cell_sources_shows_its_tasks():
    records = [_run("load", 1.0), _run("train", 3.0)]
    html = render(ReportData(cube(records)), title="t", source="s")
    assert "load" in html and "train" in html and 'class="src"' not in html
    assert "Since the previous run" not in html


@pytest.mark.parametrize("n", [5, 200])
def test_tasks_chart_reads_at_5_and_200_tasks(n):
    records = [_run(f"cell-{k}", float(k + 1), k + 1, f"x = {k}", start=1000 + k)
               for k in range(n)]
    fig = plot(cube(records), kind="tasks")
    ax = fig.axes[0]
    if n <= 8:
        labels = [t.get_text() for t in ax.get_xticklabels()]
        assert labels == [f"cell-{k}" for k in range(n)]
    else:
        labels = [t.get_text() for t in ax.get_yticklabels()]
        assert len(labels) == 20 and labels[0] == f"cell-{n - 1}"  # largest on top
        assert labels[-1] == f"other ({n - 19} tasks)"  # the rest summed, last
        rest_j = sum(k + 1 for k in range(n - 19)) * 1.1  # cpu + ram of the smallest
        assert ax.get_xlabel() == "energy (kJ)"
        other = sum(p.get_width() for p in ax.patches
                    if abs(p.get_y() + p.get_height() / 2 - 19) < 1e-9)
        assert other == pytest.approx(rest_j / 1e3)
        assert "the other 181 summed" in ax.get_title()
    html = _html(records)
    assert html.count("<tr ") == n  # every task in the table, none dropped
