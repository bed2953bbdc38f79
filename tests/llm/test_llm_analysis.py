"""Correlations, forecast and comparison on data with a known relation."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from energykernel.llm import compare, correlations, forecast
from energykernel.llm.analysis import plot_correlations
from energykernel.llm.campaign import build_dataset
from energykernel.viz.llm import plot_correlations as viz_plot_correlations

# energy_j = intercept + slope × prompt_tokens, by task type
TRUTH = {"classify": (0.2, 0.001), "summarize": (1.0, 0.01), "write": (6.0, 0.002)}


def synthetic(n_per_type: int = 12, seed: int = 0, model: str = "m", j_per_token: float = 0.02,
              noise_j: float = 0.05) -> object:
    rng = np.random.default_rng(seed)
    rows = []
    for tt, (a, b) in TRUTH.items():
        for _ in range(n_per_type):
            pt = int(rng.integers(10, 400))
            resp = {"classify": 3, "summarize": pt // 3, "write": 200}[tt]
            energy = a + b * pt + rng.normal(0, noise_j)
            rows.append({"prompt_text": "x" * (4 * pt), "task_type": tt, "model": model,
                         "service": "http://127.0.0.1:1/v1", "energy_scope": "machine",
                         "status": "ok", "prompt_tokens": pt, "response_tokens": resp,
                         "duration": energy / 10, "ttft": 0.01 + pt * 1e-4,
                         "energy_j": {"cpu": energy * j_per_token / 0.02 * 0.8,
                                      "ram": energy * j_per_token / 0.02 * 0.2},
                         "method": {"cpu": "estimate", "ram": "estimate"},
                         "token_source": "usage", "attempts": 1, "start_s": 1.7e9})
    rows.append({**rows[0], "status": "error", "energy_j": {"cpu": 99.0}, "response_tokens": 0})
    return build_dataset(rows, {"model": model})


def test_forecast_recovers_task_type_relation_and_beats_length_only():
    ds = synthetic()
    f = forecast(ds, by="task_type", k=5)
    for tt, (a, b) in TRUTH.items():
        fa, fb = f.groups[tt]
        assert fa == pytest.approx(a, abs=0.25) and fb == pytest.approx(b, abs=0.001)  # pooled
    cv = f.cv
    assert list(cv.index) == ["by task_type + length", "length only"]
    assert cv["mae_j"].iloc[0] < 0.2 * cv["mae_j"].iloc[1]
    assert f.gain > 0.8 and cv["r2"].iloc[0] > 0.95
    assert f.tokens_per_char == pytest.approx(0.25)
    assert set(f.table.index) == set(TRUTH) and (f.table.prompts == 12).all()
    assert f.table.loc["write", "response_tokens_mean"] == 200
    assert "gain" in repr(f)

    new = pd.DataFrame({"prompt": ["y" * 400, "y" * 400, "y" * 400, "y" * 40],
                        "task_type": ["classify", "summarize", "write", "translate"]})
    pred = f.predict(new)
    truth = [TRUTH[t][0] + TRUTH[t][1] * 100 for t in ("classify", "summarize", "write")]
    np.testing.assert_allclose(pred.energy_j[:3], truth, atol=0.15)
    assert pred.model_used[3].startswith("length only")
    assert pred.energy_j[3] == pytest.approx(pred.energy_j_length_only[3])
    assert f.predict(["z" * 40], group="write").energy_j[0] == pytest.approx(6.02, abs=0.15)


def test_forecast_needs_data_and_a_known_label():
    with pytest.raises(ValueError, match="at least 4"):
        forecast(synthetic(n_per_type=1))
    with pytest.raises(ValueError, match="by='colour'"):
        forecast(synthetic(), by="colour")
    with pytest.raises(ValueError, match="prompt Dataset"):
        forecast(pd.DataFrame().to_xarray())


def test_correlations_matrix_and_plot(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)  # bare Figures, no pyplot
    ds = synthetic()
    corr = correlations(ds)
    names = ["energy", "duration", "ttft", "prompt_tokens", "response_tokens"]
    assert list(corr.quantity.values) == names and corr.dims == ("quantity", "quantity_2")
    np.testing.assert_allclose(np.diag(corr.values), 1.0)
    np.testing.assert_allclose(corr.values, corr.values.T)
    assert corr.sel(quantity="energy", quantity_2="duration") == pytest.approx(1.0)
    assert corr.sel(quantity="ttft", quantity_2="prompt_tokens") == pytest.approx(1.0)
    assert corr.attrs["prompts"] == 36  # the error row is left out
    no_ttft = ds.assign(ttft=ds.ttft * np.nan)
    assert "ttft" not in correlations(no_ttft).quantity.values
    assert correlations(ds, plot=True).shape == (5, 5)
    ax = plot_correlations(corr)
    assert len(ax.texts) == 25
    from matplotlib.figure import Figure

    assert isinstance(ax.figure, Figure) and len(ax.figure.axes) == 2  # heatmap, colour bar
    assert plot_correlations is viz_plot_correlations


def test_compare_energy_per_token():
    a, b = synthetic(model="small"), synthetic(model="big", j_per_token=0.04)
    table = compare(a, b)
    assert list(table.index) == ["small @ http://127.0.0.1:1/v1", "big @ http://127.0.0.1:1/v1"]
    assert table.energy_j_per_token_vs_first.iloc[1] == pytest.approx(2.0)
    assert list(table.errors) == [1, 1] and list(table.prompts) == [37, 37]
    assert (table.method == "estimate").all() and (table.energy_scope == "machine").all()
    by_type = compare(a, b, labels=["A", "B"], by="task_type")
    assert by_type.index.names == ["label", "task_type"] and len(by_type) == 6
    with pytest.raises(ValueError, match="labels"):
        compare(a, b, labels=["only one"])
