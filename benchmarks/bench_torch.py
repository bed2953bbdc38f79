"""Training-step slowdown with ``LayerEnergy`` attached, on CPU models.

Run: ``.venv/bin/python benchmarks/bench_torch.py [--steps N] [--trials N] [--threads N]``.

For each model, plain steps and steps under ``LayerEnergy`` are timed in alternating
trials (so background load hits both alike); the figure is the median over trials of the
per-step ratio, plus the cost per hooked call in µs. Prints figures; asserts nothing.
Target: ≤ 15 % on a model whose layers take ≥ 1 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("ENERGYKERNEL_LOG_DIR", tempfile.mkdtemp(prefix="ek-bench-torch-"))

import torch
from torch import nn


def big_mlp() -> tuple[nn.Module, torch.Tensor]:
    """4 × Linear(1024, 1024): each call takes milliseconds on one core."""
    layers = []
    for _ in range(4):
        layers += [nn.Linear(1024, 1024), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(1024, 10)), torch.randn(256, 1024)


def cnn() -> tuple[nn.Module, torch.Tensor]:
    """A small CNN on 32×32 images (conv calls of about a millisecond and up)."""
    model = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 8 * 8, 128), nn.ReLU(), nn.Linear(128, 10))
    return model, torch.randn(64, 3, 32, 32)


def small_mlp() -> tuple[nn.Module, torch.Tensor]:
    """8 × Linear(64, 64): calls of a few µs, where per-call hook cost dominates."""
    layers = []
    for _ in range(8):
        layers += [nn.Linear(64, 64), nn.ReLU()]
    return nn.Sequential(*layers), torch.randn(32, 64)


MODELS = {"big-mlp (layers >= 1 ms)": big_mlp, "cnn": cnn, "small-mlp (µs layers)": small_mlp}


def time_steps(model: nn.Module, x: torch.Tensor, steps: int, le=None) -> float:
    """Mean seconds per training step."""
    opt = torch.optim.SGD(model.parameters(), lr=1e-4)
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = model(x).float().pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if le is not None:
            le.step(loss)
    return (time.perf_counter() - t0) / steps


def bench(name: str, factory, steps: int, trials: int, **options) -> dict[str, float]:
    from energykernel.torch import LayerEnergy

    torch.manual_seed(0)
    model, x = factory()
    time_steps(model, x, 3)  # warm-up
    plain, hooked = [], []
    for _ in range(trials):
        plain.append(time_steps(model, x, steps))
        with LayerEnergy(model, **options) as le:
            hooked.append(time_steps(model, x, steps, le))
    calls = sum(int(v) for v in le.dataset().calls.values.ravel()) / len(le.steps)
    ratios = [h / p for h, p in zip(hooked, plain, strict=True)]
    plain_s, hooked_s = statistics.median(plain), statistics.median(hooked)
    return {
        "plain_ms": plain_s * 1e3,
        "hooked_ms": hooked_s * 1e3,
        "slowdown_pct": (statistics.median(ratios) - 1) * 100,
        "calls_per_step": calls,
        "us_per_call": (hooked_s - plain_s) / max(calls, 1) * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="steps per trial")
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from energykernel.core.engine import get_engine

    methods = {c: b.method for c, b in get_engine().component_backend.items()}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), measured by "
          f"{methods}; {args.trials} trials × {args.steps} steps, load {os.getloadavg()[0]:.1f}")
    variants = {
        "default": {},
        "forward only": {"backward": None},
        "runs every step": {"record_interval_s": 0},
        "module hooks": {"backward": "module"},
    }
    header = f"{'model':<26}{'variant':<17}{'plain ms':>10}{'hooked ms':>11}{'slowdown':>10}" \
             f"{'calls':>7}{'µs/call':>9}"
    print(header)
    print("-" * len(header))
    for name, factory in MODELS.items():
        for variant, options in variants.items():
            if variant == "module hooks" and "inplace" in repr(factory()[0]):
                continue  # full backward hooks cannot handle in-place ops on outputs
            r = bench(name, factory, args.steps, args.trials, **options)
            print(f"{name:<26}{variant:<17}{r['plain_ms']:>10.2f}{r['hooked_ms']:>11.2f}"
                  f"{r['slowdown_pct']:>9.1f}%{r['calls_per_step']:>7.0f}"
                  f"{r['us_per_call']:>9.1f}", flush=True)


if __name__ == "__main__":
    main()
