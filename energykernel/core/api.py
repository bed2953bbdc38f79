"""The process-wide functions of the public API (``ek.dataset()``, ``ek.save()``, …)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import config
from .engine import TIMELINE, shutdown_engine
from .recorder import log_files, read_log, read_logs, recorder

if TYPE_CHECKING:
    import xarray as xr

    from ..counters.base import BackendStatus


def backends() -> list[BackendStatus]:
    """Every known backend: whether it can be read here, and if not, why (and the fix)."""
    from ..counters import statuses

    return statuses()


def configure(**settings: Any) -> config.Settings:
    """Change settings: ``backends``, ``sample_interval_s``, ``cpu_tdp_w``, ``region``,
    ``instance``, ``log_dir``, ``read_detail``. Returns the settings now in force.

    Changing backends, the interval or the TDP restarts the measuring engine (runs already
    recorded are kept).
    """
    old, new = config.update(**settings)
    if (old.backends, old.sample_interval_s, old.cpu_tdp_w, old.read_detail) != (
        new.backends, new.sample_interval_s, new.cpu_tdp_w, new.read_detail
    ):
        shutdown_engine()
    if old.log_dir != new.log_dir or old.instance != new.instance:
        recorder().close()
    return new


def dataset() -> xr.Dataset:
    """The task × instance × component cube of everything recorded in this process."""
    from ..data import schema as _ds

    return _ds.cube(recorder().records())


def runs() -> xr.Dataset:
    """One entry per recorded run (dim ``run``)."""
    from ..data import schema as _ds

    return _ds.runs(recorder().records())


def timeline() -> xr.Dataset:
    """Sampled power over time (dims ``time`` × ``component``), labelled by task."""
    from ..data import schema as _ds

    return _ds.timeline(list(TIMELINE), config.settings().instance)


def save(path: str | os.PathLike) -> Path:
    """Write every recorded run and the power timeline to a NetCDF file."""
    from ..data import schema as _ds

    return _ds.save(recorder().records(), list(TIMELINE), config.settings().instance, path)


def load(path: str | os.PathLike) -> xr.Dataset:
    """Read a saved dataset, one log file, or a log directory (every log in it).

    The runs read are added to this process's record, each once, and the cube of
    everything recorded is returned.
    """
    from ..data import schema as _ds

    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"load(path={path!r}): give a file or directory path")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"load({str(path)!r}): no such file or directory")
    if path.is_dir():
        files = log_files(path)
        if not files:
            raise ValueError(f"load({str(path)!r}): no energykernel logs (*.jsonl) in it")
        records = read_logs(files)
    elif path.suffix == ".jsonl":
        records = read_log(path)
    else:
        records = _ds.open_runs_file(path)
    recorder().add_loaded(records)
    return dataset()


def reset() -> None:
    """Forget what was recorded in memory (the on-disk log is kept)."""
    recorder().reset()
    TIMELINE.clear()
