"""nn_calculator(): pure functions and widget wiring, without a browser."""

from __future__ import annotations

import pytest

from energykernel.carbon import intensity, nn_total

pytest.importorskip("ipywidgets")
pytest.importorskip("matplotlib")

from energykernel.widgets.carbon import PRESETS, compute, nn_calculator, sweep


@pytest.fixture(autouse=True)
def _agg(monkeypatch):
    import matplotlib

    matplotlib.use("Agg")


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
