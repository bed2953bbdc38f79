"""What-if simulation of workflows on compute instances ("Dynamic Tagging").

>>> from energykernel.sim import ComputeEnvironment, ComputeInstance, Resource, Task, Workflow
>>> env = ComputeEnvironment([ComputeInstance("a", {"cpu": Resource(8, 5.0)})])
>>> env.run(Workflow([Task("t", 10, {"cpu": 4})]), mode="monitor").energy_j
200.0

Pure Python/numpy/scipy: xarray and pandas are imported only when a Dataset or a table is
asked for; no IPython, ipywidgets or matplotlib here (see ``energykernel.jupyter.widgets``).
"""

from __future__ import annotations

from .calibrate import tasks_from_runs
from .model import (
    MODES,
    ComputeEnvironment,
    ComputeInstance,
    Resource,
    SimulationInputError,
    Task,
    UnschedulableError,
    Workflow,
)
from .profile import IntensityProfile, load_profile, named_profiles
from .result import SimulationResult
from .tracking import DataProduct, TagTracker, execute_tracking, tag_tracker

__all__ = [
    "MODES",
    "ComputeEnvironment",
    "ComputeInstance",
    "DataProduct",
    "IntensityProfile",
    "Resource",
    "SimulationInputError",
    "SimulationResult",
    "TagTracker",
    "Task",
    "UnschedulableError",
    "Workflow",
    "execute_tracking",
    "load_profile",
    "named_profiles",
    "tag_tracker",
    "tasks_from_runs",
]
