"""Suggestions (hotspots, energy per loss improvement), plots and TensorBoard export."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from energykernel.torch import LayerEnergy, hotspots, loss_energy  # noqa: E402

pytestmark = pytest.mark.usefixtures("estimate_only")


def synthetic(energy_by_layer, params, step_j, loss):
    """A minimal LayerEnergy-shaped Dataset."""
    import xarray as xr

    layers = [f"l{i}" for i in range(len(params))]
    e = np.zeros((len(layers), 2, 1))
    e[:, 0, 0] = energy_by_layer
    return xr.Dataset(
        {
            "energy": (("layer", "pass", "component"), e),
            "params": ("layer", np.array(params)),
            "step_energy": (("step", "component"), np.array(step_j, dtype=float)[:, None]),
            "loss": ("step", np.array(loss, dtype=float)),
        },
        coords={"layer": layers, "pass": ["forward", "backward"], "component": ["cpu"],
                "step": np.arange(len(step_j))},
    )


def test_hotspots_flag_energy_heavy_layers():
    ds = synthetic([60.0, 10.0, 30.0, 0.5], [10, 80, 10, 0], [1.0], [1.0])
    found = hotspots(ds, ratio=2.0, min_share=0.05)
    assert [h.layer for h in found] == ["l0", "l2"]
    assert found[0].energy_share == pytest.approx(60 / 100.5)
    assert found[0].param_share == pytest.approx(0.1)
    assert "energy" in found[0].reason
    # a parameterless layer above min_share is flagged too
    ds = synthetic([50.0, 50.0], [100, 0], [1.0], [1.0])
    assert [(h.layer, h.ratio) for h in hotspots(ds)] == [("l1", math.inf)]
    assert hotspots(synthetic([0.0], [1], [1.0], [1.0])) == []


def test_loss_energy_marks_where_training_stops_paying_off():
    steps = 40
    loss = [1.0 / (1 + k) if k < 20 else 0.05 for k in range(steps)]  # plateau from step 20
    ds = synthetic([1.0], [1], [2.0] * steps, loss)
    curve = loss_energy(ds, window=3, factor=5.0)
    assert curve.cumulative_energy.values[-1] == pytest.approx(2.0 * steps)
    stop = curve.attrs["stop_step"]
    assert 10 <= stop <= 24
    assert np.all(np.diff(curve.loss_smoothed.values) <= 0)
    assert curve.marginal_energy_per_loss.values[-1] > 100 * curve.energy_per_loss.values[-1]
    # unlogged steps are skipped but their energy still counts
    loss_gaps = [np.nan if k % 2 else v for k, v in enumerate(loss)]
    gaps = loss_energy(synthetic([1.0], [1], [2.0] * steps, loss_gaps), window=3)
    assert list(gaps.step.values[:3]) == [0, 2, 4]
    assert gaps.cumulative_energy.values[1] == pytest.approx(6.0)
    with pytest.raises(ValueError, match="window"):
        loss_energy(ds, window=0)


@pytest.fixture
def trained():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x = torch.randn(32, 8)
    y = x.sum(dim=1, keepdim=True)
    with LayerEnergy(model) as le:
        for _ in range(6):
            loss = nn.functional.mse_loss(model(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad()
            le.step(loss)
    return le


@pytest.fixture
def no_pyplot(monkeypatch):
    """Importing pyplot fails while the test runs: plots are bare Figures."""
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)


@pytest.mark.parametrize("kind", ["layers", "violin", "loss", "total", "all"])
def test_plots(trained, kind, no_pyplot):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    fig = trained.plot(kind)
    assert isinstance(fig, Figure) and fig.axes
    if kind == "total":  # SI units, as everywhere: never 3.4e-06 kWh
        import re

        title = fig.axes[0].get_title()
        assert re.match(r"Total [\d.]+ [nµmkMG]?J \([\d.]+ [nµmkMG]?Wh\), ", title), title
        assert "e-0" not in title and "e+0" not in title


def test_plot_rejects_unknown_kind(trained):
    pytest.importorskip("matplotlib")
    with pytest.raises(ValueError, match="kind"):
        trained.plot("pie")


def test_plots_survive_a_single_step_and_no_loss(no_pyplot):
    pytest.importorskip("matplotlib")
    model = nn.Linear(4, 2)
    with LayerEnergy(model) as le:
        model(torch.randn(2, 4))
    assert le.plot("all").axes


def test_tensorboard_export_reads_back(trained, tmp_path):
    pytest.importorskip(
        "tensorboard",
        reason="tensorboard is not installed: add 'tensorboard' to the 'torch' extra to test "
               "the TensorBoard export",
    )
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    log_dir = trained.to_tensorboard(tmp_path / "tb")
    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    scalars = set(acc.Tags()["scalars"])
    assert {"energy/step_j", "energy/cumulative_j", "loss", "energy/0/forward_j",
            "energy/2/backward_j", "energy/outside_j"} <= scalars
    steps = [e.step for e in acc.Scalars("energy/step_j")]
    assert steps == list(range(6))
    values = [e.value for e in acc.Scalars("energy/step_j")]
    expected = trained.dataset().step_energy.sum("component").values
    assert values == pytest.approx(expected.tolist(), rel=1e-5)
    assert {"energy/figure/layers", "energy/figure/violin", "energy/figure/loss",
            "energy/figure/total"} <= set(acc.Tags()["images"])
