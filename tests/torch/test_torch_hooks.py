"""LayerEnergy's hooks: registered and removed, reuse, naming, no_grad, errors, records."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import energykernel as ek  # noqa: E402
from energykernel.torch import OUTSIDE, LayerEnergy, select_layers  # noqa: E402

pytestmark = pytest.mark.usefixtures("estimate_only")

HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
              "_forward_hooks_with_kwargs", "_forward_pre_hooks_with_kwargs")


def hook_count(model: nn.Module) -> int:
    return sum(len(getattr(m, d, {})) for m in model.modules() for d in HOOK_DICTS)


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
                         nn.Linear(32, 4))


def train(model: nn.Module, le: LayerEnergy, steps: int = 3) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(8, 16), torch.randn(8, 4)
    for _ in range(steps):
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        le.step(loss)


def check_sums(le: LayerEnergy) -> None:
    """Per step and component: layers + outside = measured step energy; all >= 0."""
    ds = le.dataset()
    assert (ds.layer_energy.values >= 0).all() and (ds.outside_energy.values >= 0).all()
    parts = ds.layer_energy.sum(("layer", "pass")) + ds.outside_energy
    for s in range(ds.sizes["step"]):
        for c in ds.component.values:
            assert float(parts.sel(step=s, component=c)) == pytest.approx(
                float(ds.step_energy.sel(step=s, component=c)), rel=1e-12, abs=1e-15)


@pytest.mark.filterwarnings("ignore:Full backward hook is firing")
@pytest.mark.parametrize("backward", ["graph", "module", None])
def test_hooks_registered_then_removed(backward):
    model = mlp()
    assert hook_count(model) == 0
    with LayerEnergy(model, backward=backward) as le:
        for m in le.layers.values():
            assert len(m._forward_pre_hooks) == 1 and len(m._forward_hooks) == 1
            expected = 1 if backward == "module" else 0
            assert len(m._backward_pre_hooks) == expected
            assert len(m._backward_hooks) == expected
        assert model._forward_hooks == {}  # the container is not a leaf
        train(model, le, steps=2)
    assert hook_count(model) == 0
    assert not le.attached
    le.detach()  # idempotent
    check_sums(le)
    if backward is None:
        assert int(le.dataset().calls.sel({"pass": "backward"}).sum()) == 0
    else:
        assert (le.dataset().calls.sel({"pass": "backward"}).values == 2).all()


def test_attach_twice_is_an_error_and_detach_allows_reattach():
    model = mlp()
    le = LayerEnergy(model).attach()
    with pytest.raises(RuntimeError, match="already attached"):
        le.attach()
    le.detach()
    assert hook_count(model) == 0
    le.attach()
    model(torch.randn(2, 16))
    le.detach()
    assert hook_count(model) == 0 and len(le.steps) == 1


class Boom(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 4)

    def forward(self, x):
        x = self.a(x)
        raise ValueError("bad batch")


def test_model_raising_mid_forward_leaves_no_hooks():
    model = Boom()
    with pytest.raises(ValueError, match="bad batch"), LayerEnergy(model):
        model(torch.randn(2, 4))
    assert hook_count(model) == 0
    runs = ek.runs()
    tasks = set(runs.task.values)
    assert "torch/a/forward" in tasks and "torch/b/forward" not in tasks
    assert set(runs.status.values) == {"error"}


def test_raise_without_context_manager_then_continue():
    """Attached by hand, a failed forward leaves stale state that the next step discards."""
    model = Boom()
    le = LayerEnergy(model).attach()
    with pytest.raises(ValueError):
        model(torch.randn(2, 4))
    le.step()
    model.a(torch.randn(2, 4)).sum().backward()
    le.step()
    le.detach()
    assert hook_count(model) == 0
    ds = le.dataset()
    assert int(ds.calls.sel(layer="a", **{"pass": "forward"})) == 2
    check_sums(le)


class Reuse(nn.Module):
    """Calls the same Linear twice in one forward."""

    def __init__(self) -> None:
        super().__init__()
        self.shared = nn.Linear(8, 8)
        self.act = nn.Tanh()

    def forward(self, x):
        return self.shared(self.act(self.shared(x)))


def test_reused_module_counts_each_call():
    model = Reuse()
    with LayerEnergy(model) as le:
        for _ in range(3):
            model(torch.randn(4, 8)).sum().backward()
            le.step()
    ds = le.dataset()
    assert ds.calls.sel(layer="shared").values.tolist() == [6, 6]
    assert ds.calls.sel(layer="act").values.tolist() == [3, 3]
    assert set(ds.layer.values) == {"shared", "act"}
    check_sums(le)


def test_same_class_layers_kept_apart_by_name():
    model = mlp()
    with LayerEnergy(model) as le:
        train(model, le, steps=2)
    ds = le.dataset()
    assert list(ds.layer.values) == ["0", "1", "2", "3", "4"]
    assert list(ds.layer_type.values) == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert ds.params.values.tolist() == [16 * 32 + 32, 0, 32 * 32 + 32, 0, 32 * 4 + 4]
    tasks = set(ek.runs().task.values)
    for name in ("0", "2", "4"):
        assert {f"torch/{name}/forward", f"torch/{name}/backward"} <= tasks


def test_no_grad_inference_is_forward_only():
    model = mlp()
    with torch.no_grad(), LayerEnergy(model, prefix="infer") as le:
        for _ in range(4):
            model(torch.randn(8, 16))
            le.step()
    ds = le.dataset()
    assert ds.sizes["step"] == 4
    assert int(ds.calls.sel({"pass": "backward"}).sum()) == 0
    assert (ds.calls.sel({"pass": "forward"}).values == 4).all()
    tasks = set(ek.runs().task.values)
    assert all(t.endswith(("/forward", "/other")) for t in tasks)
    assert f"infer/{OUTSIDE}/other" in tasks
    check_sums(le)


def test_inplace_ops_and_residuals_train_in_graph_mode():
    """Full backward hooks break on in-place ops on a layer's output; graph hooks do not."""

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)
            self.relu = nn.ReLU(inplace=True)

        def forward(self, x):
            y = self.conv(x)
            y += x
            return self.relu(y)

    model = nn.Sequential(Block(), nn.Flatten(), nn.Linear(3 * 8 * 8, 2))
    with LayerEnergy(model) as le:
        for _ in range(2):
            model(torch.randn(2, 3, 8, 8)).sum().backward()
            le.step()
    assert hook_count(model) == 0
    ds = le.dataset()
    assert (ds.calls.sel({"pass": "backward"}).values == 2).all()
    check_sums(le)


def test_nested_selection_does_not_double_count():
    model = nn.Sequential(nn.Sequential(nn.Linear(8, 8), nn.ReLU()), nn.Linear(8, 2))
    names = ["0", "0.0", "1"]
    with LayerEnergy(model, layers=names) as le:
        for _ in range(3):
            model(torch.randn(4, 8)).sum().backward()
            le.step()
    ds = le.dataset()
    assert list(ds.layer.values) == names
    assert (ds.calls.values == 3).all()
    check_sums(le)
    total_s = float(ds.duration.sum() + ds.outside_duration.sum())
    assert total_s == pytest.approx(float(ds.step_duration.sum()), rel=1e-9)


def test_layer_selection():
    model = nn.Sequential(nn.Sequential(nn.Linear(2, 2), nn.ReLU()), nn.Linear(2, 2))
    assert list(select_layers(model, "leaf")) == ["0.0", "0.1", "1"]
    assert list(select_layers(model, ["1", "0"])) == ["0", "1"]
    assert list(select_layers(model, lambda n, m: isinstance(m, nn.Linear))) == ["0.0", "1"]
    assert list(select_layers(nn.Linear(2, 2), "leaf")) == ["(model)"]
    with pytest.raises(ValueError, match="no module named 'nope'"):
        select_layers(model, ["nope"])
    with pytest.raises(ValueError, match="'leaf'"):
        select_layers(model, "all")
    with pytest.raises(ValueError, match="matched no module"):
        select_layers(model, lambda n, m: False)
    with pytest.raises(ValueError, match="unknown component"):
        LayerEnergy(model, components=["gpu", "flux"])
    with pytest.raises(TypeError):
        LayerEnergy(object())  # type: ignore[arg-type]


def test_runs_land_in_ek_dataset_with_record_format():
    model = mlp()
    with LayerEnergy(model, components="cpu,ram", record_interval_s=0) as le:
        train(model, le, steps=2)
    from energykernel.core.recorder import recorder

    records = recorder().records()
    for r in records:
        for key in ("id", "task", "instance", "start_s", "end_s", "duration_s", "energy_j",
                    "method", "device_energy_j", "status", "scope"):
            assert key in r
        assert set(r["energy_j"]) == {"cpu", "ram"}
        assert set(r["method"].values()) == {"estimate"}
        assert set(r["extra"]["attribution"].values()) <= {"counter", "apportioned", "counter+apportioned"}
        assert r["extra"]["meta"]["step"] in (0, 1)
    cube = ek.dataset()
    total = float(cube.energy.sel(component=["cpu", "ram"]).sum())
    assert total == pytest.approx(float(le.dataset().step_energy.sum()), rel=1e-9)
    # durations of one step's runs add up to the step's duration
    step0 = [r for r in records if r["extra"]["meta"]["step"] == 0]
    assert math.fsum(r["duration_s"] for r in step0) == pytest.approx(le.steps[0].duration_s,
                                                                     rel=1e-9)


def test_log_loss_before_or_after_step():
    model = mlp()
    x = torch.randn(2, 16)
    with LayerEnergy(model) as le:
        model(x)
        le.log_loss(torch.tensor(3.0))  # step in progress → step 0
        le.step()
        le.log_loss(2.0)  # nothing ran since: the step just closed (0)
        model(x)
        le.step(loss=1.5)  # step 1
        le.log_loss(0.5, step=5)
    ds = le.dataset()
    assert ds.loss.values.tolist() == [2.0, 1.5]
    with pytest.raises(ValueError):
        le.log_loss(1.0, step=-1)
    with pytest.raises(RuntimeError, match="not attached"):
        le.step()


def test_runs_aggregate_steps_within_the_record_interval():
    model = mlp()
    with LayerEnergy(model, record_interval_s=3600) as le:
        train(model, le, steps=4)
    runs = ek.runs()
    assert runs.sizes["run"] == 2 * 5 + 1  # one run per (layer, pass), plus outside
    from energykernel.core.recorder import recorder

    for r in recorder().records():
        assert (r["extra"]["meta"]["step"], r["extra"]["meta"]["last_step"], r["extra"]["meta"]["steps"]) == (0, 3, 4)
        if r["extra"]["meta"]["layer"] != OUTSIDE:
            assert r["extra"]["meta"]["calls"] == 4
    assert float(runs.duration.sum()) == pytest.approx(
        sum(st.duration_s for st in le.steps), rel=1e-9)
    assert float(runs.energy.sum()) == pytest.approx(float(le.dataset().step_energy.sum()),
                                                     rel=1e-9)
    with pytest.raises(ValueError, match="record_interval_s"):
        LayerEnergy(model, record_interval_s=-1)
