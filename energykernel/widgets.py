"""The what-if widgets under their public name; they live in :mod:`energykernel.jupyter.widgets`."""

from __future__ import annotations

from .jupyter.widgets import nn_calculator, simulator

__all__ = ["nn_calculator", "simulator"]
