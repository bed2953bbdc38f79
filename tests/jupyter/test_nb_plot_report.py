"""Plots (tasks, timeline, instances), the HTML report, and the one-line cell display."""

from __future__ import annotations

import re
import sys
import uuid
from html.parser import HTMLParser

import matplotlib
import pytest

from energykernel.core.engine import Sample
from energykernel.core.window import Measurement
from energykernel.data.schema import cube, timeline
from energykernel.jupyter import display
from energykernel.viz.plot import KINDS, figure_png, plot
from energykernel.viz.report import ReportData, render


def record(task: str, instance: str = "host", method: str = "rapl", cpu: float = 10.0,
           ram: float = 2.0, start: float = 1000.0) -> dict:
    return {"id": uuid.uuid4().hex, "task": task, "instance": instance, "start_s": start,
            "end_s": start + 1.0, "duration_s": 1.0, "energy_j": {"cpu": cpu, "ram": ram},
            "method": {"cpu": method, "ram": "estimate"}, "device_energy_j": {},
            "status": "ok", "scope": "machine"}


@pytest.fixture
def records():
    return [record("load"), record("train", cpu=1500.0), record("train", cpu=1400.0),
            record("eval", instance="gpu-box", method="estimate")]


def test_tasks_plot_stacks_components_and_hatches_estimates(records):
    fig = plot(cube(records), kind="tasks")
    ax = fig.axes[0]
    assert ax.get_ylabel() == "energy (kJ)"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["load", "train", "eval"]
    bars = [p for p in ax.patches if p.get_height() > 0]
    hatched = {(round(p.get_x(), 2), p.get_facecolor()[:3]) for p in bars if p.get_hatch()}
    assert len(bars) == 6 and len(hatched) == 4  # ram everywhere + eval's cpu are estimates
    assert "hatched: estimate" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert figure_png(fig).startswith(b"\x89PNG")


def test_instances_plot_and_drawing_into_given_axes(records):
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.add_subplot()
    assert plot(cube(records), kind="instances", ax=ax) is fig
    assert [t.get_text() for t in ax.get_xticklabels()] == ["host", "gpu-box"]


def test_timeline_shades_and_labels_each_task():
    samples = [Sample(1000.0 + k, 1.0, {"cpu": 20.0 + k, "ram": 3.0}, task)
               for k, task in enumerate(["", "load", "load", "train", "train", "train", ""])]
    fig = plot(timeline(samples, "host"), kind="timeline")
    ax = fig.axes[0]
    assert ax.get_ylabel() == "power (W)"
    labels = [t.get_text() for t in ax.texts]
    assert labels == ["load", "train"]
    assert len(ax.get_lines()) == 2


def test_plot_errors_are_clear(records):
    with pytest.raises(ValueError, match="choose one of"):
        plot(cube(records), kind="pie")
    with pytest.raises(ValueError, match="power over time"):
        plot(cube(records), kind="timeline")
    with pytest.raises(ValueError, match="no samples"):
        plot(timeline([], "host"), kind="timeline")
    assert KINDS == ("tasks", "timeline", "instances")


def test_runs_dataset_is_accepted(records):
    from energykernel.data.schema import runs

    fig = plot(runs(records), kind="tasks")
    assert len(fig.axes[0].get_xticklabels()) == 3


class Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def test_report_is_self_contained_html_with_plots_table_and_methods(records):
    samples = [Sample(1000.0 + k, 1.0, {"cpu": 20.0}, "train") for k in range(3)]
    html = render(ReportData(cube(records), timeline(samples, "host")), title="T <1>",
                  source="x.nc", note="stopped early")
    parser = Collect()
    parser.feed(html)
    parser.close()
    text = " ".join(parser.text)
    assert parser.tags.count("svg") == 3  # tasks, timeline, instances
    assert {"load", "train", "eval"} <= set(text.split())
    assert "T <1>" in text and "&lt;1&gt;" in html  # escaped
    assert "rapl" in text and "estimate" in text and "stopped early" in text
    assert not re.search(r"(src|href)=[\"']https?:", html)  # nothing loaded from outside


def test_display_line_with_and_without_carbon(estimate_only, monkeypatch):
    from energykernel import configure

    m = Measurement(record("fit", method="rapl"))
    data, meta = display.bundle(m)
    assert data["text/plain"] == m.summary()
    assert "<i>ram" in data["text/html"] and "cpu 10 J (rapl)" in data["text/html"]
    assert meta["energykernel"]["total_j"] == 12.0
    configure(region="FR")
    data, _ = display.bundle(m)
    assert "gCO2e" in data["text/plain"] and "(FR)" in data["text/plain"]
    configure(region="Atlantis")
    data, _ = display.bundle(m)
    assert "no carbon figure for region 'Atlantis'" in data["text/plain"]
    monkeypatch.setitem(sys.modules, "energykernel.carbon", None)
    configure(region="FR")
    data, _ = display.bundle(m)
    assert "carbon module is unavailable" in data["text/plain"]


def test_agg_backend_is_enough():
    assert matplotlib.get_backend()  # any backend: figures never go through pyplot


def test_plotting_does_not_use_pyplot(tmp_path):
    """Figures are built object-oriented: no global pyplot state in a user's process."""
    import subprocess

    code = (
        "import sys, energykernel as ek\n"
        "from energykernel.viz.plot import plot\n"
        "with ek.measure('a'):\n    pass\n"
        "plot(ek.dataset(), kind='tasks')\n"
        "print('matplotlib.pyplot' in sys.modules)\n"
    )
    env = {"ENERGYKERNEL_LOG_DIR": str(tmp_path), "ENERGYKERNEL_BACKENDS": "estimate",
           "PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=120, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_huge_labels_are_shortened_in_figures_and_tables(estimate_only, tmp_path):
    """A 1,000,000-character task name (from a file) cannot make the report crawl."""
    from energykernel.core.units import short_label
    from energykernel.data.schema import cube
    from energykernel.viz.report import ReportData, render

    huge = "t" * 1_000_000
    records = [record(huge), record("short")]
    html = render(ReportData(cube(records)), title="x", source="x")
    assert short_label(huge) in html and len(html) < 200_000  # no label is drawn whole
    assert short_label("abc") == "abc" and len(short_label("x" * 100)) == 48


def test_bounds_and_active_energy_reach_the_table_report_and_bars(estimate_only):
    """The interval of each total (whiskers on the bars, ≈/</± in the report) and the
    active energy column appear once the runs carry them."""
    from energykernel.data.schema import cube
    from energykernel.viz.plot import plot
    from energykernel.viz.report import ReportData, render

    runs = []
    for task, cpu in (("fit", 10.0), ("tiny", 0.01)):
        r = record(task, cpu=cpu)
        r["energy_bounds_j"] = {c: [e * 0.9, e * 1.1] if task == "fit" else [0.0, e + 0.05]
                                for c, e in r["energy_j"].items()}
        r["active_energy_j"] = {c: e / 2 for c, e in r["energy_j"].items()}
        runs.append(r)
    table = cube(runs).ek.summary()
    assert table.loc["fit", "lo_j"] == pytest.approx(0.9 * table.loc["fit", "total_j"])
    assert table.loc["fit", "active_j"] == pytest.approx(table.loc["fit", "total_j"] / 2)
    html = render(ReportData(cube(runs)), title="x", source="x")
    assert "<th>active</th>" in html and "≈ " in html and "&lt; " in html
    assert "50%" in html  # the active share
    fig = plot(cube(runs))
    assert any(c.get_label() == "interval" for c in fig.axes[0].containers)
