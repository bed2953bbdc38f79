"""nn_calculator(): pure functions and widget wiring, without a browser."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from energykernel.carbon import intensity, nn_total

pytest.importorskip("ipywidgets")
pytest.importorskip("matplotlib")

from energykernel.jupyter.widgets.carbon import (
    CUSTOM,
    FIELDS,
    PRESETS,
    SWEEPS,
    compute,
    nn_calculator,
    region_code,
    sweep,
    sweep_points,
)


def gpt3():
    return {p: {k: str(v) for k, v in f.items()}
            for p, f in PRESETS["GPT-3 (Patterson et al. 2021)"].items()}


def test_compute_gpt3_preset():
    r, errors = compute(gpt3())
    assert errors == {}
    assert r.training_kwh / 1000 == pytest.approx(1289.4, rel=1e-3)
    assert r.total_g / 1e6 == pytest.approx(553.1, rel=1e-3)


def test_compute_reports_errors_per_field():
    vals = gpt3()
    vals["training"]["pue"] = "abc"
    vals["inference"]["hours"] = "-3"
    r, errors = compute(vals)
    assert r is None
    assert set(errors) == {"training.pue", "inference.hours"}


def test_error_labels_are_the_calculators_value_errors():
    """The widget's labels come from the carbon package's own checks (one per parameter)."""
    vals = gpt3()
    vals["training"]["pue"] = "0.5"
    vals["embodied"]["transport_factor"] = "0"
    vals["inference"]["hours"] = "soon"
    _, errors = compute(vals)
    with pytest.raises(ValueError) as pue:
        nn_total(training={**PRESETS["GPT-3 (Patterson et al. 2021)"]["training"], "pue": 0.5})
    assert errors["training.pue"] == str(pue.value)
    assert errors["embodied.transport_factor"] == "transport_factor must be > 0 (it divides), got 0"
    assert errors["inference.hours"] == "hours must be a number, got the string 'soon'"


def test_sweep_is_linear_in_pue():
    totals = sweep(gpt3(), "training", "pue", [1.0, 2.0])
    assert totals[1] == pytest.approx(2 * totals[0])


def test_widget_wiring(capsys):
    calc = nn_calculator()
    assert calc.result is not None
    assert calc.result.total_g == pytest.approx(
        nn_total(**{p: dict(v) for p, v in PRESETS["GPT-3 (Patterson et al. 2021)"].items()}
                 ).total_g)
    calc.set(training__hours="710.4")
    assert calc.result.training_kwh / 1000 == pytest.approx(2 * 1289.376, rel=1e-6)
    calc.set(training__pue="0.5")
    assert calc.result is None
    assert "pue" in calc._errs["training.pue"].value
    assert "fix" in calc.total.value
    calc.set(training__pue="1.1")
    assert calc.result is not None and calc._errs["training.pue"].value == ""
    calc._region("training", "FR")
    assert float(calc._inputs["training.intensity_g_per_kwh"].value) == intensity("FR")
    calc._region("training", "Narnia")
    assert "unknown region" in calc._errs["training.intensity_g_per_kwh"].value
    calc.preset.value = "BLOOM-like (Luccioni et al. 2023)"
    assert calc.result.training_kwh == pytest.approx(384 * 400 * 2820.3 / 1000)


def test_sweep_points():
    vals = gpt3()
    assert sweep_points(vals, "training", "pue") == pytest.approx([1 + k / 10 for k in range(11)])
    hours = sweep_points(vals, "training", "hours", n=5)
    assert hours == pytest.approx([0, 177.6, 355.2, 532.8, 710.4])
    assert sweep_points(vals, "inference", "hours", n=3) == pytest.approx([0, 50, 100])
    assert sweep_points({"training": {"hours": "abc"}}, "training", "hours", n=2)[-1] == 100
    for label, (phase, field) in SWEEPS.items():
        assert field in dict.fromkeys(("pue", "hours", "intensity_g_per_kwh")), label
        assert phase == "training"


def test_chart_is_a_png_with_a_text_equivalent():
    calc = nn_calculator()
    assert bytes(calc.chart.value[:8]) == b"\x89PNG\r\n\x1a\n"
    assert "training 553.142 t" in calc.caption.value
    calc.sweep.value = "training hours"
    calc.update()
    assert "total vs training hours" in calc.caption.value


def test_no_pyplot():
    """Charts are drawn without pyplot's global state (safe under concurrent updates)."""
    code = ("import sys; from energykernel.jupyter.widgets import nn_calculator; "
            "c = nn_calculator(); c.set(training__pue='1.3'); "
            "assert len(c.chart.value) > 1000; "
            "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120,
                   env={**os.environ, "MPLBACKEND": "Agg"})


def test_field_changes_are_debounced_until_update():
    calc = nn_calculator(debounce_s=60)
    before = calc.result
    calc._inputs["training.hours"].value = "710.4"  # as typed in the browser
    assert calc.pending and calc.result is before
    assert calc.preset.value == CUSTOM  # an edited form is no longer the preset
    calc.update()
    assert not calc.pending
    assert calc.result.training_kwh / 1000 == pytest.approx(2 * 1289.376, rel=1e-6)


def test_debounced_change_applies_on_its_own():
    calc = nn_calculator(debounce_s=0.01)
    calc._inputs["training.pue"].value = "2.2"
    assert calc.wait(timeout=30)
    assert calc.result.training_kwh / 1000 == pytest.approx(2 * 1289.376, rel=1e-6)


def test_unknown_region_error_stays_until_the_region_changes():
    calc = nn_calculator()
    calc._region("training", "Narnia")
    calc.set(training__hours="100")  # a later update keeps the region's message
    assert "unknown region" in calc._errs["training.intensity_g_per_kwh"].value
    calc._region("training", "FR")
    calc.update()
    assert calc._errs["training.intensity_g_per_kwh"].value == ""


def test_form_reflows_in_a_narrow_notebook():
    calc = nn_calculator()
    outer, phases = calc.widget.children[0], calc.widget.children[1]
    for box in (outer, phases):
        assert box.layout.flex_flow == "row wrap"
    for col in phases.children:
        assert col.layout.flex.startswith("1 1") and col.layout.min_width
    for text in calc._inputs.values():
        assert text.layout.width == "100%" and text.layout.min_width == "0"
    assert calc.chart.layout.max_width == "100%"


def test_an_overflowing_total_is_shown_not_hidden():
    """Every field valid, their total beyond the float range: the form says why."""
    calc = nn_calculator()
    calc.set(training__hardware_power_w="1e300", training__intensity_g_per_kwh="1e300")
    assert calc.result is None and set(calc.errors) == {"form"}
    assert "result is not finite" in calc.errors["form"]
    assert "result is not finite" in calc.total.value and "fix the" not in calc.total.value
    calc.set(training__hardware_power_w="330", training__intensity_g_per_kwh="429")
    assert calc.result is not None


def test_sweep_with_the_swept_field_invalid_still_sweeps():
    vals = gpt3()
    vals["training"]["pue"] = "0.5"
    totals = sweep(vals, "training", "pue", [1.0, 2.0])
    assert totals[1] == pytest.approx(2 * totals[0])
    vals["training"]["hours"] = "soon"
    assert all(t != t for t in sweep(vals, "training", "pue", [1.0, 2.0]))


def test_fields_are_words_with_units_and_name_their_parameter():
    calc = nn_calculator()
    labels = {key: box.description for key, box in calc._inputs.items()}
    assert labels["training.hardware_power_w"] == "Power per accelerator (W)"
    assert labels["training.intensity_g_per_kwh"] == "Grid intensity (gCO2e/kWh)"
    assert labels["embodied.production_energy_kwh"] == "Production energy (kWh each)"
    for key, box in calc._inputs.items():
        phase, field = key.split(".")
        assert "_" not in box.description, key  # never a raw parameter name
        assert f"parameter {field} of" in box.tooltip and f"{phase}=" in box.tooltip
    assert sum(len(f) for f in FIELDS.values()) == len(labels)


def test_region_field_offers_names_and_codes_grouped():
    from energykernel.carbon import region_choices

    calc = nn_calculator()
    region = calc.widget.children[1].children[0].children[1].children[0]
    assert region.description == "Region"
    options = list(region.options)
    assert options == list(region_choices())
    france = next(o for o in options if "France" in o)
    assert france.startswith("country · France (FR)") and "g/kWh" in france
    kinds = [o.split(" · ")[0].split(" (")[0] for o in options]
    # grouped: every country, then every state, then every cloud region
    assert kinds == sorted(kinds, key=["country", "state", "cloud"].index)
    assert any(o.startswith("cloud · AWS eu-north-1") for o in options)
    # a chosen suggestion, a typed code and a typed name give the same intensity
    for text in (france, "FR", "France", "fra"):
        calc._region("training", text)
        assert float(calc._inputs["training.intensity_g_per_kwh"].value) == intensity("FR")
    assert region_code(france) == "FR"
    assert region_code(" aws:eu-north-1 ") == "aws:eu-north-1"


def test_invalid_fields_mark_the_chart_stale_until_fixed():
    calc = nn_calculator()
    assert calc.chart.value and not calc.stale
    before = calc.chart.value
    calc.set(training__hours="-3")
    assert calc.result is None and calc.stale
    assert calc.chart.value == before  # the last valid chart, marked, not a blank
    assert "out of date" in calc.caption.value
    calc.set(training__hours="100")
    assert not calc.stale and "out of date" not in calc.caption.value
