"""What-if widgets (ipywidgets): thin views over pure functions.

``simulator(env=None, workflow=None)`` — workflows on compute instances (energykernel.sim),
implemented in :mod:`energykernel.jupyter.widgets.simulation`.
``nn_calculator()`` — neural-network carbon calculators (energykernel.carbon), implemented
in :mod:`energykernel.jupyter.widgets.carbon`.

Each widget keeps its latest numbers in ``.result``; every number it shows comes from a
pure function that is tested without a browser. No submodule is named like an entry point,
so importing one never replaces the function of the same name on this package.
"""

from __future__ import annotations

from typing import Any


def simulator(env: Any = None, workflow: Any = None, **kwargs: Any) -> Any:
    """The workflow simulator widget: mode, instances and workload → totals and charts.

    See :class:`energykernel.jupyter.widgets.simulation.Simulator` (``chart``, ``debounce_s``,
    ``seed``).
    """
    from .simulation import simulator as _simulator

    return _simulator(env=env, workflow=workflow, **kwargs)


def nn_calculator(**kwargs: Any) -> Any:
    """The neural-network carbon calculator widget (embodied, training, inference, total)."""
    from .carbon import nn_calculator as _nn_calculator

    return _nn_calculator(**kwargs)


__all__ = ["nn_calculator", "simulator"]
