"""energykernel: energy and carbon of notebook cells and code blocks, from hardware counters.

>>> import energykernel as ek
>>> with ek.measure("train") as m:
...     ...
>>> m.result.energy_j

Heavy libraries (xarray, pandas, matplotlib) are imported only when a Dataset or a plot is
asked for.
"""

from __future__ import annotations

from . import backends
from .api import configure, dataset, load, reset, runs, save, timeline
from .window import Measurement, last, measure, track

__version__ = "0.1.0"

__all__ = [
    "Measurement",
    "__version__",
    "backends",
    "configure",
    "dataset",
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


def load_ipython_extension(ipython) -> None:
    """``%load_ext energykernel``: the ``%%energy`` / ``%energy`` magics."""
    from .magics import load_ipython_extension as _load

    _load(ipython)


def unload_ipython_extension(ipython) -> None:
    """``%unload_ext energykernel``: removes every hook and magic that loading added."""
    from .magics import unload_ipython_extension as _unload

    _unload(ipython)


def __getattr__(name: str):
    # Importing the accessor registers ``ds.ek``; it needs xarray, so only on demand.
    if name in ("sim", "carbon", "widgets", "torch", "llm", "dask", "accessor"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'energykernel' has no attribute {name!r}")
