"""The ``ds.ek`` accessor on energykernel Datasets: one line per method, over pure functions."""

from __future__ import annotations

import xarray as xr

from . import summary as _summary


@xr.register_dataset_accessor("ek")
class EnergyAccessor:
    """``ds.ek.summary()``, ``to_dataframe()``, ``carbon(...)``, ``plot(...)``,
    ``compare(other)``, ``to_if_manifest(...)``."""

    def __init__(self, ds: xr.Dataset) -> None:
        self._ds = ds

    def summary(self, by: str = "task"):
        """A tidy table (pandas DataFrame) of energy per task × component, with totals."""
        return _summary.summary_table(self._ds, by=by)

    def to_dataframe(self):
        """A tidy table (pandas DataFrame): one row per task × instance × component."""
        from .export import to_dataframe

        return to_dataframe(self._ds)

    def carbon(self, intensity=None, pue: float = 1.0, embodied=None) -> xr.Dataset:
        """A copy with ``emissions`` in gCO2e; ``intensity`` in gCO2e/kWh or a region code."""
        from ..carbon import carbon_dataset

        return carbon_dataset(self._ds, intensity=intensity, pue=pue, embodied=embodied)

    def plot(self, kind: str = "tasks", **kwargs):
        """Matplotlib figure: ``kind="tasks"`` (stacked by component), ``"timeline"``,
        ``"instances"``."""
        from ..viz.plot import plot

        return plot(self._ds, kind=kind, **kwargs)

    def compare(self, other: xr.Dataset) -> xr.Dataset:
        """``other`` against this one, per task: energy of both, delta, ratio, changed."""
        from .compare import compare

        return compare(self._ds, other)

    def to_if_manifest(self, path, **kwargs):
        """Write an Impact Framework manifest that recomputes these numbers."""
        from ..carbon import to_if_manifest

        return to_if_manifest(self._ds, path, **kwargs)
