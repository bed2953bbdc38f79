"""Execute a notebook in a real kernel with every code cell measured (``energykernel measure``).

It runs as plain ``nbclient`` does (the same execution counts, empty cells skipped, the
kernel's ``language_info`` and the widget state saved in the notebook), plus one ⚡ line
per cell. The kernel gets a private ``ENERGYKERNEL_LOG_DIR``; a hidden, silent setup
request loads the extension and holds auto mode on (the notebook itself is never modified,
and its own ``%load_ext energykernel`` stays silent). After each cell the runs the kernel
appended to its log are read back and attached to that cell, so a failing cell or a dying
kernel still leaves every finished run. A cell that runs past the timeout is interrupted,
as a user would, and recorded ``interrupted``. Only IPython kernels can be measured.
"""

from __future__ import annotations

import ast
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.record import RunRecord
from ..core.recorder import log_files, read_log
from ..data.history import DEFAULT_RUNS, collect
from .cell_history import Change, remember
from .cells import _head
from .magics import UNLOADED_ATTR

SETUP_CODE = ("import energykernel.jupyter.magics as _ek_magics\n"
              "_ek_magics.hold_auto(get_ipython())\n"
              "del _ek_magics")
METADATA_KEY = "energykernel"
_WHY = {
    "quiet": "`%%energy -q`",
    "auto off": "`%energy auto off`",
    "auto quiet": "`%energy auto on quiet`",
}


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
    timed_out: bool = False  # the failing cell ran past the timeout and was interrupted
    unloaded: str | None = None  # the notebook unloaded energykernel: cells ran unmeasured
    notes: list[str] = field(default_factory=list)  # what the notebook asked, honoured
    changes: list[Change] = field(default_factory=list)  # cells that ran before, same source


def _new_records(log_dir: Path, seen: set[str]) -> list[RunRecord]:
    out = []
    for path in log_files(log_dir):
        for record in read_log(path):
            if record["id"] not in seen:
                seen.add(record["id"])
                out.append(record)
    return out


def _line_text(record: RunRecord) -> str:
    from ..core.units import duration, si

    return (f"⚡ {record['task']}: {si(sum(record['energy_j'].values()), 'J')} in "
            f"{duration(record['duration_s'])} [{record['status']}]")


def _lines(cell: Any) -> list[Any]:
    return [out for out in cell.get("outputs", []) if METADATA_KEY in out.get("metadata", {})]


def _annotate(cell: Any, records: list[RunRecord]) -> dict[str, Any] | None:
    """Put the cell's run in its metadata and keep its ⚡ line where the notebook shows it;
    return the line's note when the notebook itself would not show it."""
    import nbformat

    lines = _lines(cell)
    shown = {out["metadata"][METADATA_KEY].get("run_id") for out in lines}
    top = [r for r in records if not r.get("parent_id")] or records  # the cell's own run
    record = next((r for r in reversed(records) if r["id"] in shown), top[-1])
    energy = record["energy_j"]
    meta = {
        "task": record["task"],
        "instance": record["instance"],
        "energy_j": dict(energy),
        "total_j": float(sum(energy.values())),
        "method": dict(record["method"]),
        "duration_s": record["duration_s"],
        "status": record["status"],
        "run_id": record["id"],
    }
    for key in ("energy_bounds_j", "active_energy_j"):
        if record.get(key):
            meta[key] = dict(record[key])  # type: ignore[literal-required]
    hidden = next((out["metadata"][METADATA_KEY] for out in lines
                   if out["metadata"][METADATA_KEY].get("shown") is False), None)
    if hidden is not None:  # what the notebook asked: no line (the run stays in metadata)
        cell.outputs = [out for out in cell.outputs if out not in lines]
        meta.update(shown=False, why=hidden.get("why"))
    cell.metadata[METADATA_KEY] = meta
    if hidden is not None:
        return dict(hidden)
    for out in lines:  # a line that was never updated (the kernel stopped answering)
        if out["metadata"][METADATA_KEY].get("status") == "running":
            out["data"] = {"text/plain": _line_text(record)}
            out["metadata"][METADATA_KEY] = dict(meta)
    if record["id"] not in shown and not any(
            out["metadata"][METADATA_KEY].get("status") == "running" for out in lines):
        cell.outputs.append(nbformat.v4.new_output("stream", name="stdout",
                                                   text=_line_text(record) + "\n"))
    return None


def _unrecorded(cell: Any, why: str) -> None:
    """A cell whose run never finished: its "measuring…" line says so."""
    for out in _lines(cell):
        if out["metadata"][METADATA_KEY].get("status") == "running":
            task = out["metadata"][METADATA_KEY].get("task", "")
            out["data"] = {"text/plain": f"⚡ {task}: not recorded ({why})"}


def _client_class() -> Any:
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError

    class Client(NotebookClient):
        """nbclient, interrupting a cell at its timeout (once; then it gives up)."""

        timed_out_cell: Any = None

        async def _async_handle_timeout(self, timeout: int, cell: Any = None) -> Any:
            if cell is not None and cell is self.timed_out_cell:
                raise CellTimeoutError.error_from_timeout_and_cell(
                    "Cell execution timed out and did not stop when interrupted", timeout,
                    cell)
            self.timed_out_cell = cell
            return await super()._async_handle_timeout(timeout, cell)

    return Client


def _only_ipython(name: str, given: bool, what: str) -> RunError:
    who = "--kernel" if given else "the notebook"
    return RunError(f"only IPython kernels can be measured, and {who} asks for kernel "
                    f"{name!r} ({what})")


def _check_kernelspec(name: str, given: bool) -> None:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(name)
    except (NoSuchKernel, OSError, ValueError):
        return  # said when it does not start
    language = (spec.language or "").strip()
    if language and language.lower() != "python":
        raise _only_ipython(name, given, f"{spec.display_name}, language {language}")


def run_notebook(nb: Any, *, cwd: Path, kernel_name: str | None = None,
                 timeout_s: float | None = None, progress: bool = True,
                 env: dict[str, str] | None = None, history: int = DEFAULT_RUNS,
                 past: Mapping[str, list[dict[str, Any]]] | None = None) -> NotebookRun:
    """Execute ``nb`` (an nbformat node, modified in place) with every code cell measured.

    Each measured cell keeps its last ``history`` runs in its metadata, keyed by a hash of
    its source; ``past``: earlier entries by source hash (default: those ``nb`` carries).
    """
    from jupyter_core.utils import run_sync
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    from .progress import progress_bar

    run = NotebookRun(nb)
    past = collect(nb.cells) if past is None else past
    given = kernel_name is not None
    kernel_name = kernel_name or nb.metadata.get("kernelspec", {}).get("name") or "python3"
    _check_kernelspec(kernel_name, given)
    client = _client_class()(nb, kernel_name=kernel_name, timeout=timeout_s,
                             interrupt_on_timeout=True,
                             resources={"metadata": {"path": str(cwd)}})
    scratch = tempfile.TemporaryDirectory(prefix="energykernel-measure-")
    log_dir = Path(scratch.name) / "logs"
    kernel_env = {**os.environ, **(env or {}), "ENERGYKERNEL_LOG_DIR": str(log_dir)}
    seen: set[str] = set()
    code_cells = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    hidden: list[tuple[int, dict[str, Any]]] = []
    answering = True  # False once the kernel died or ignores an interrupt
    try:
        with client.setup_kernel(env=kernel_env, cwd=str(cwd)):
            _kernel_info(client, run_sync, kernel_name, given)
            _setup(client, run_sync)
            bar = progress_bar(code_cells, desc="measuring", unit="cell", disable=not progress,
                       leave=False)
            for index in bar:
                cell, where = nb.cells[index], f"cell {index + 1} of {len(nb.cells)}"
                head = _head(cell.source)
                if head.top is not None and head.empty:
                    continue  # an %%energy line alone is an empty cell: nbclient skips it
                try:
                    client.execute_cell(cell, index,
                                        execution_count=client.code_cells_executed + 1)
                except CellTimeoutError:
                    run.failure = (f"{where} timed out after {timeout_s:g} s and did not "
                                   "stop when interrupted")
                    run.timed_out, answering = True, False
                except DeadKernelError:
                    run.failure = f"the kernel died while running {where}"
                    answering = False
                except CellExecutionError as exc:
                    if client.timed_out_cell is cell:
                        run.failure = f"{where} timed out after {timeout_s:g} s (interrupted)"
                        run.timed_out = True
                    else:
                        run.failure = f"{where} raised {exc.ename}: {exc.evalue}"
                new = _new_records(log_dir, seen)
                if new:
                    note = _annotate(cell, new)
                    if note is not None:
                        hidden.append((index, note))
                    change = remember(cell, index, new, past, history, shown=note is None)
                    if change is not None:
                        run.changes.append(change)
                    run.records.extend(new)
                else:
                    _unrecorded(cell, run.failure or "no run was recorded")
                if run.timed_out and METADATA_KEY in cell.metadata:
                    cell.metadata[METADATA_KEY]["timed_out_s"] = timeout_s
                run.cells_run += 1
                if run.failure:
                    run.failed_cell = index
                    break
            bar.close()
            if run.failure is None:
                client.set_widgets_metadata()  # as nbclient does after the last cell
            if answering:
                run.dataset_file, unloaded_at = _finish_in_kernel(client, run_sync,
                                                                  Path(scratch.name))
                run.unloaded = _unloaded(nb, code_cells, unloaded_at, run.failed_cell)
    except RunError:
        scratch.cleanup()
        raise
    except Exception as exc:
        if not run.records and run.cells_run == 0:
            scratch.cleanup()
            raise RunError(f"could not run kernel {kernel_name!r}: {exc}") from exc
        run.failure = run.failure or f"the kernel stopped: {exc}"
    run.records.extend(_new_records(log_dir, seen) if log_dir.exists() else [])
    run.notes = _notes(nb, hidden)
    run._scratch = scratch  # type: ignore[attr-defined]  # kept alive with the run
    return run


def _cell_of_count(nb: Any, count: int | None) -> str:
    for index, cell in enumerate(nb.cells):
        if count is not None and cell.get("execution_count") == count:
            return f"cell {index + 1}"
    return f"In [{count}]"


def _notes(nb: Any, hidden: list[tuple[int, dict[str, Any]]]) -> list[str]:
    """One note per request of the notebook that the annotated copy honours."""
    groups: dict[tuple[str, Any], list[int]] = {}
    for index, note in hidden:
        groups.setdefault((note.get("why", ""), note.get("asked_in")), []).append(index + 1)
    out = []
    for (why, asked_in), cells in groups.items():
        which = ("cell " if len(cells) == 1 else "cells ") + ", ".join(map(str, cells))
        asked = _WHY.get(why, why)
        if asked_in is not None:
            asked += f" ({_cell_of_count(nb, asked_in)})"
        out.append(f"{which}: measured, but no ⚡ line is shown, as the notebook asks with "
                   f"{asked} (energykernel measure measures every cell)")
    return out


def _unloaded(nb: Any, code_cells: list[int], count: int | None,
              failed: int | None) -> str | None:
    """Where the notebook unloaded energykernel, and how many cells ran unmeasured."""
    if count is None:
        return None
    index = next((i for i in code_cells if nb.cells[i].get("execution_count") == count), None)
    where = f"cell {index + 1} of {len(nb.cells)}" if index is not None else f"In [{count}]"
    last = failed if failed is not None else len(nb.cells)
    after = [i for i in code_cells if (index is None or i > index) and i <= last
             and nb.cells[i].get("execution_count") is not None
             and METADATA_KEY not in nb.cells[i].metadata]
    return (f"{where} ran %unload_ext energykernel: the {len(after)} code cell(s) after it "
            "ran unmeasured")


def _silent(client: Any, run_sync: Any, code: str, timeout_s: float = 60,
            expressions: dict[str, str] | None = None) -> dict:
    reply = run_sync(client.kc.execute_interactive)(
        code, silent=True, store_history=False, timeout=timeout_s,
        user_expressions=expressions or {}, output_hook=lambda msg: None)
    return reply["content"]


def _kernel_info(client: Any, run_sync: Any, name: str, given: bool) -> None:
    """The kernel's ``language_info`` into the notebook (as nbclient does); IPython only."""
    from jupyter_core.utils import ensure_async

    async def ask() -> Any:
        msg_id = await ensure_async(client.kc.kernel_info())
        return await client.async_wait_for_reply(msg_id)

    content = (run_sync(ask)() or {}).get("content", {})
    if "language_info" in content:
        client.nb.metadata["language_info"] = content["language_info"]
    implementation = content.get("implementation", "")
    if implementation != "ipython":
        language = content.get("language_info", {}).get("name", "?")
        raise _only_ipython(name, given, f"implementation {implementation or '?'}, "
                            f"language {language}")


def _setup(client: Any, run_sync: Any) -> None:
    content = _silent(client, run_sync, SETUP_CODE)
    if content.get("status") != "ok":
        raise RunError("could not load energykernel in the kernel: "
                       f"{content.get('ename')}: {content.get('evalue')}")


def _finish_in_kernel(client: Any, run_sync: Any, scratch: Path
                      ) -> tuple[Path | None, int | None]:
    """Have the kernel write its runs and power timeline, and say whether the notebook
    unloaded energykernel (the count of that cell)."""
    path = scratch / "kernel.nc"
    try:
        content = _silent(client, run_sync,
                          f"import energykernel as _ek\n_ek.save({str(path)!r})\ndel _ek",
                          expressions={"unloaded": f"get_ipython().__dict__.get("
                                                   f"{UNLOADED_ATTR!r})"})
    except Exception:
        return None, None
    unloaded = None
    value = content.get("user_expressions", {}).get("unloaded", {})
    if value.get("status") == "ok":
        try:
            unloaded = ast.literal_eval(value["data"]["text/plain"])
        except (KeyError, ValueError, SyntaxError):
            unloaded = None
    saved = path if content.get("status") == "ok" and path.exists() else None
    return saved, unloaded if isinstance(unloaded, int) else None
