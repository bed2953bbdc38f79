"""Per-layer forward/backward energy of PyTorch models (``pip install energykernel[torch]``).

>>> from energykernel.torch import LayerEnergy
>>> with LayerEnergy(model) as le:
...     for x, y in batches:
...         loss = loss_fn(model(x), y); loss.backward(); opt.step(); opt.zero_grad()
...         le.step(loss)
>>> le.dataset()          # (layer, pass, component) + per-step energy, duration, loss
>>> le.plot("all")        # per layer, violin, loss vs energy, total

Runs are recorded as tasks ``<prefix>/<layer>/<pass>`` plus ``<prefix>/(outside)/other``,
so ``ek.dataset()`` sums over them to the measured energy of the steps.
"""

from __future__ import annotations

from .analysis import Hotspot, hotspots, loss_energy
from .attribution import COUNTER_WINDOW_S, StepResult
from .hooks import OUTSIDE, PASSES, select_layers
from .layer_energy import LayerEnergy

__all__ = [
    "COUNTER_WINDOW_S",
    "OUTSIDE",
    "PASSES",
    "Hotspot",
    "LayerEnergy",
    "StepResult",
    "hotspots",
    "loss_energy",
    "select_layers",
]
