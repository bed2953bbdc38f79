"""Execute a notebook in a real kernel with every code cell measured (``energykernel measure``).

The kernel gets a private ``ENERGYKERNEL_LOG_DIR``; a hidden, silent setup request loads the
extension and turns auto mode on (the notebook itself is never modified). After each cell
the runs the kernel appended to its log are read back and attached to that cell, so a
failing cell or a dying kernel still leaves every finished run.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.record import RunRecord
from ..core.recorder import log_files, read_log

SETUP_CODE = ("%load_ext energykernel\n"
              "import energykernel.jupyter.magics as _ek_magics\n"
              "_ek_magics.hold_auto(get_ipython())\n"
              "del _ek_magics")
METADATA_KEY = "energykernel"


class RunError(Exception):
    """A problem before any cell ran (the kernel did not start, setup failed)."""


@dataclass
class NotebookRun:
    """What ``run_notebook`` produced."""

    nb: Any  # nbformat.NotebookNode, cells annotated
    records: list[RunRecord] = field(default_factory=list)
    dataset_file: Path | None = None  # the kernel's own ek.save (runs + power timeline)
    failure: str | None = None  # why the run stopped early, None if every cell ran
    failed_cell: int | None = None  # index of the cell that stopped it
    cells_run: int = 0


def _new_records(log_dir: Path, seen: set[str]) -> list[RunRecord]:
    out = []
    for path in log_files(log_dir):
        for record in read_log(path):
            if record["id"] not in seen:
                seen.add(record["id"])
                out.append(record)
    return out


def _annotate(cell: Any, records: list[RunRecord]) -> None:
    """Put the cell's run in its metadata, and a visible line if it has none yet."""
    import nbformat

    from ..core.units import duration, si

    shown = {out.get("metadata", {}).get(METADATA_KEY, {}).get("run_id")
             for out in cell.get("outputs", [])}
    top = [r for r in records if not r.get("parent_id")] or records  # the cell's own run
    record = next((r for r in reversed(records) if r["id"] in shown), top[-1])
    energy = record["energy_j"]
    cell.metadata[METADATA_KEY] = {
        "task": record["task"],
        "energy_j": dict(energy),
        "total_j": float(sum(energy.values())),
        "method": dict(record["method"]),
        "duration_s": record["duration_s"],
        "status": record["status"],
        "run_id": record["id"],
    }
    if not any(METADATA_KEY in out.get("metadata", {}) for out in cell.get("outputs", [])):
        line = (f"⚡ {record['task']}: {si(sum(energy.values()), 'J')} in "
                f"{duration(record['duration_s'])} [{record['status']}]\n")
        cell.outputs.append(nbformat.v4.new_output("stream", name="stdout", text=line))


def run_notebook(nb: Any, *, cwd: Path, kernel_name: str | None = None,
                 timeout_s: float | None = None, progress: bool = True,
                 env: dict[str, str] | None = None) -> NotebookRun:
    """Execute ``nb`` (an nbformat node, modified in place) with every code cell measured."""
    from jupyter_core.utils import run_sync
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
    from tqdm import tqdm

    run = NotebookRun(nb)
    kernel_name = kernel_name or nb.metadata.get("kernelspec", {}).get("name") or "python3"
    client = NotebookClient(nb, kernel_name=kernel_name, timeout=timeout_s,
                            resources={"metadata": {"path": str(cwd)}})
    scratch = tempfile.TemporaryDirectory(prefix="energykernel-measure-")
    log_dir = Path(scratch.name) / "logs"
    kernel_env = {**os.environ, **(env or {}), "ENERGYKERNEL_LOG_DIR": str(log_dir)}
    seen: set[str] = set()
    code_cells = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    try:
        with client.setup_kernel(env=kernel_env, cwd=str(cwd)):
            _setup(client, run_sync)
            bar = tqdm(code_cells, desc="measuring", unit="cell", disable=not progress,
                       leave=False)
            for index in bar:
                cell, where = nb.cells[index], f"cell {index + 1} of {len(nb.cells)}"
                try:
                    client.execute_cell(cell, index)
                except CellTimeoutError:
                    run.failure = f"{where} timed out after {timeout_s:g} s"
                except DeadKernelError:
                    run.failure = f"the kernel died while running {where}"
                except CellExecutionError as exc:
                    run.failure = f"{where} raised {exc.ename}: {exc.evalue}"
                new = _new_records(log_dir, seen)
                if new:
                    _annotate(cell, new)
                    run.records.extend(new)
                run.cells_run += 1
                if run.failure:
                    run.failed_cell = index
                    break
            bar.close()
            if run.failure is None or "died" not in run.failure:
                run.dataset_file = _save_in_kernel(client, run_sync, Path(scratch.name))
    except RunError:
        scratch.cleanup()
        raise
    except Exception as exc:
        if not run.records and run.cells_run == 0:
            scratch.cleanup()
            raise RunError(f"could not run kernel {kernel_name!r}: {exc}") from exc
        run.failure = run.failure or f"the kernel stopped: {exc}"
    run.records.extend(_new_records(log_dir, seen) if log_dir.exists() else [])
    run._scratch = scratch  # type: ignore[attr-defined]  # kept alive with the run
    return run


def _silent(client: Any, run_sync: Any, code: str, timeout_s: float = 60) -> dict:
    reply = run_sync(client.kc.execute_interactive)(
        code, silent=True, store_history=False, timeout=timeout_s,
        output_hook=lambda msg: None)
    return reply["content"]


def _setup(client: Any, run_sync: Any) -> None:
    content = _silent(client, run_sync, SETUP_CODE)
    if content.get("status") != "ok":
        raise RunError("could not load energykernel in the kernel: "
                       f"{content.get('ename')}: {content.get('evalue')}")


def _save_in_kernel(client: Any, run_sync: Any, scratch: Path) -> Path | None:
    """Have the kernel write its runs and power timeline; None if it could not."""
    path = scratch / "kernel.nc"
    try:
        content = _silent(client, run_sync,
                          f"import energykernel as _ek\n_ek.save({str(path)!r})\ndel _ek")
    except Exception:
        return None
    return path if content.get("status") == "ok" and path.exists() else None


