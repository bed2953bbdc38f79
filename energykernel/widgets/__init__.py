"""What-if widgets (ipywidgets): thin views over pure functions.

``simulator(env=None, workflow=None)`` — workflows on compute instances (energykernel.sim).
``nn_calculator()`` — neural-network carbon calculators (energykernel.carbon).

Each widget keeps its latest numbers in ``.result``; every number it shows comes from a
pure function that is tested without a browser.
"""

from __future__ import annotations


def simulator(env=None, workflow=None):
    """The workflow simulator widget: mode, instance costs and speeds → totals and chart."""
    from .simulator import simulator as _simulator

    return _simulator(env=env, workflow=workflow)


def nn_calculator(**kwargs):
    """The neural-network carbon calculator widget (embodied, training, inference, total)."""
    from .carbon import nn_calculator as _nn_calculator

    return _nn_calculator(**kwargs)


__all__ = ["nn_calculator", "simulator"]
