"""The live view's drawing and its reading of the timeline (no kernel)."""

from __future__ import annotations

import time

from energykernel.core.engine import TIMELINE, Sample
from energykernel.jupyter import live


def test_sparkline_scales_to_the_peak():
    svg = live.sparkline_svg([0.0, 5.0, 10.0], width=100, height=20)
    assert svg.startswith("<svg") and 'points="0.0,18.0 50.0,10.0 100.0,2.0"' in svg
    assert "<polyline" not in live.sparkline_svg([])  # no sample: an empty frame


def test_recent_reads_only_the_newest_samples(monkeypatch):
    monkeypatch.setattr(live, "TIMELINE", type(TIMELINE)(maxlen=1000))
    now = time.time()
    for k in range(500):
        live.TIMELINE.append(Sample(now - 500 + k, 1.0, {"cpu": float(k)}, "t"))
    recent = live._recent(now - 10.5)
    assert [s.power_w["cpu"] for s in recent] == [float(k) for k in range(490, 500)]
    assert len(live._recent(0.0)) == live.MAX_POINTS


def test_view_bundle_labels_estimates_and_says_when_there_is_no_sample():
    samples = [Sample(1.0, 1.0, {"cpu": 20.0, "ram": 2.0}, "t")]
    data = live.view_bundle("train", samples, 3.0, True, {"cpu": "estimate", "ram": "estimate"})
    assert data["text/plain"].startswith("⚡ train ran 3 s: 22 W (estimate) (cpu 20 W, ram 2 W)")
    empty = live.view_bundle("train", [], 0.5, False, {"cpu": "rapl"})
    assert "no power sample yet" in empty["text/plain"] and "(estimate)" not in empty["text/plain"]
