"""Runs from an annotated notebook (written by ``energykernel measure``): each measured
cell's run as kept in ``cell.metadata["energykernel"]``, so two annotated notebooks can be
compared like two datasets (``energykernel compare A.energy.ipynb B.energy.ipynb``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..core.record import RunRecord, record_from_dict


def notebook_records(nb: Any, source: str = "notebook") -> list[RunRecord]:
    """One run per measured cell of ``nb`` (an nbformat node or plain dict): its task,
    energy, methods, bounds, duration and status. A damaged entry is a ``ValueError``
    naming ``source`` and the cell; a notebook without any is one too."""
    out = []
    for index, cell in enumerate(nb.get("cells", [])):
        meta = (cell.get("metadata") or {}).get("energykernel")
        if not isinstance(meta, dict) or "energy_j" not in meta:
            continue
        where = f"{source}: cell {index + 1}"
        duration_s = meta.get("duration_s", 0.0)
        obj = {"id": meta.get("run_id") or f"cell-{index + 1}", "task": meta.get("task"),
               "instance": meta.get("instance", "notebook"), "start_s": 0.0,
               "end_s": duration_s, "duration_s": duration_s,
               "energy_j": meta.get("energy_j"), "method": meta.get("method", {}),
               "status": meta.get("status", "ok"), "device_energy_j": {}}
        for key in ("energy_bounds_j", "active_energy_j"):
            if key in meta:
                obj[key] = meta[key]
        out.append(record_from_dict(obj, where))
    if not out:
        raise ValueError(f"{source}: no measured cells (write one with energykernel measure)")
    return out


def open_notebook_cube(path: str | os.PathLike) -> Any:
    """The cube of an annotated notebook file; a file that is not one is a ``ValueError``
    naming it."""
    import nbformat

    from .schema import cube

    try:
        nb = nbformat.read(Path(path), as_version=4)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"{path}: not a Jupyter notebook ({reason[:200]})") from None
    return cube(notebook_records(nb, str(path)))
