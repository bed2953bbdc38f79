"""energykernel: energy and carbon of notebook cells and code blocks, from hardware counters.

>>> import energykernel as ek
>>> with ek.measure("train") as m:
...     ...
>>> m.result.energy_j

Heavy libraries (xarray, pandas, matplotlib) are imported only when a Dataset or a plot is
asked for.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, overload

from .core.api import backends, configure, dataset, load, reset, runs, save, timeline
from .core.idle import IdlePower, calibrate_idle, idle_power
from .core.record import Measurement, RunRecord
from .core.window import Window, last, track

if TYPE_CHECKING:
    from .dask.window import ClusterWindow

__version__ = "0.1.0"

__all__ = [
    "IdlePower",
    "Measurement",
    "RunRecord",
    "Window",
    "__version__",
    "backends",
    "calibrate_idle",
    "configure",
    "dataset",
    "idle_power",
    "last",
    "load",
    "load_ipython_extension",
    "measure",
    "reset",
    "runs",
    "save",
    "timeline",
    "track",
    "unload_ipython_extension",
]


@overload
def measure(task: str = "block", instance: str | None = None,
            components: Iterable[str] | str | None = None, scope: str = "machine",
            *, cluster: None = None) -> Window: ...
@overload
def measure(task: str = "block", instance: str | None = None,
            components: Iterable[str] | str | None = None, scope: str = "machine",
            *, cluster: Any) -> ClusterWindow: ...


def measure(task: str = "block", instance: str | None = None,
            components: Iterable[str] | str | None = None, scope: str = "machine",
            *, cluster: Any = None) -> Window | ClusterWindow:
    """A window measuring a block: ``with ek.measure("train") as m: ...``; ``m.result``.

    ``task``, ``instance``, ``components`` and ``scope`` are those of
    :class:`~energykernel.core.window.Window`. ``cluster`` (keyword only): a
    ``distributed.Client``, for one window over every worker's machine (a
    :class:`~energykernel.dask.window.ClusterWindow`, whose ``result`` lists one
    Measurement per machine).
    """
    if cluster is not None:
        from .dask.window import ClusterWindow

        return ClusterWindow(cluster, task, instance=instance, components=components,
                             scope=scope)
    return Window(task, instance, components, scope)


def load_ipython_extension(ipython) -> None:
    """``%load_ext energykernel``: the ``%%energy`` / ``%energy`` magics."""
    from .jupyter.magics import load_ipython_extension as _load

    _load(ipython)


def unload_ipython_extension(ipython) -> None:
    """``%unload_ext energykernel``: removes every hook and magic that loading added."""
    from .jupyter.magics import unload_ipython_extension as _unload

    _unload(ipython)


def __getattr__(name: str):
    # Importing the accessor registers ``ds.ek``; it needs xarray, so only on demand.
    if name in ("sim", "carbon", "widgets", "torch", "llm", "dask", "accessor"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'energykernel' has no attribute {name!r}")
