"""The cell machinery behind ``%%energy`` and auto mode: one window per measured cell.

The ``pre_run_cell`` hook reads a cell's options (an ``%%energy`` line among its leading
cell magics, else auto mode's defaults) and opens a window; ``post_run_cell`` closes it
with the cell's outcome, shows the one-line summary and stores ``-o VAR``. Only the
outermost cell of a nesting (``%%capture`` runs its body as a nested cell) opens one, so a
cell is measured once. Cell windows are *ambient*: windows that the cell's code opens in
other threads nest in the cell's run. The IPython syntax (options, the marker line, the
magics) is :mod:`energykernel.jupyter.magics`.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from ..core.record import exit_status
from ..core.window import Window

if TYPE_CHECKING:
    from ..dask.window import ClusterWindow

_TASK_COMMENT = re.compile(r"^\s*#\s*task:\s*(\S.*?)\s*$")
_CONTROL_LINE = re.compile(
    r"^\s*(%energy(\s.*)?|%(load|unload|reload)_ext\s+energykernel\s*|#.*)?$"
)


@dataclass
class CellOptions:
    """Options of one measured cell."""

    task: str
    instance: str | None = None
    components: tuple[str, ...] | None = None
    quiet: bool = False
    var: str | None = None
    cluster: str | None = None  # name of a distributed.Client in the user's namespace


@dataclass
class _Frame:
    """One ``pre_run_cell`` waiting for its ``post_run_cell``."""

    info: Any
    count: int
    window: Window | ClusterWindow | None = None
    options: CellOptions | None = None


def _marker_options(line: str) -> str | None:
    """The option string if ``line`` is an ``%%energy`` line, else None."""
    stripped = line.strip()
    if stripped == "%%energy" or stripped.startswith(("%%energy ", "%%energy\t")):
        return stripped[len("%%energy"):].strip()
    return None


def _header(raw: str) -> tuple[str | None, str | None]:
    """(options of an ``%%energy`` line among the leading cell magics, first body line)."""
    options = None
    for line in raw.lstrip("\r\n").splitlines():
        if line.lstrip().startswith("%%"):
            found = _marker_options(line)
            if found is not None and options is None:
                options = found
            continue
        return options, line
    return options, None


def _is_control_cell(raw: str) -> bool:
    """Cells made only of energykernel's own commands are not auto-measured."""
    return all(_CONTROL_LINE.match(line) for line in raw.splitlines())


def cell_status(result: Any) -> tuple[str, str | None]:
    """(status, error) of a cell from its ``ExecutionResult`` (None: cancelled)."""
    if result is None:
        return "interrupted", "KeyboardInterrupt"
    return exit_status(result.error_before_exec or result.error_in_exec)


class CellWatch:
    """The ``pre_run_cell`` / ``post_run_cell`` hooks and auto mode of one shell."""

    def __init__(self, shell: Any, parse: Callable[[str], Any]) -> None:
        self.shell = shell
        self.parse = parse  # the %%energy option parser (raises UsageError)
        self.auto = False
        self.auto_quiet = False  # %energy auto on quiet: record every cell, show no line
        self.held = False  # auto mode held on (energykernel measure)
        self.stack: list[_Frame] = []
        self.marker_pending = False  # a hook window was opened for an %%energy line
        self.magic_depth = 0  # fallback cell magic windows open

    def measuring(self) -> bool:
        return self.magic_depth > 0 or any(f.window is not None for f in self.stack)

    def _options(self, raw: str, count: int) -> CellOptions | None:
        marker, first = _header(raw)
        if marker is not None:
            try:
                args = self.parse(marker)
            except UsageError:
                return None  # the cell magic raises it; the body does not run
            self.marker_pending = True
        elif self.auto and not _is_control_cell(raw):
            args = None
        else:
            return None
        label = _TASK_COMMENT.match(first) if first is not None else None
        task = (args.task if args is not None and args.task else None) or (
            label.group(1) if label else f"cell-{count}")
        if args is None:
            return CellOptions(task, quiet=self.auto_quiet)
        return CellOptions(task, args.instance, args.components, args.quiet, args.output,
                           args.cluster)

    def pre_run_cell(self, info: Any) -> None:
        if self.stack:
            count = self.stack[0].count
        else:
            count = self.shell.execution_count - (1 if info.store_history else 0)
        frame = _Frame(info, count)
        if not self.measuring():
            frame.options = self._options(info.raw_cell or "", count)
            if frame.options is not None:
                frame.window = _open(frame.options, self.shell.user_ns)
        self.stack.append(frame)

    def post_run_cell(self, result: Any) -> None:
        frame = self._pop(result)
        if not self.stack:
            self.marker_pending = False
        if frame is None or frame.window is None:
            return
        status, error = cell_status(result)
        self.finish(frame.window.stop(status=status, error=error), frame.options)

    def _pop(self, result: Any) -> _Frame | None:
        if not self.stack:
            return None
        info = getattr(result, "info", None)
        k = next((k for k in range(len(self.stack) - 1, -1, -1) if self.stack[k].info is info),
                 None)
        if k is None:
            raw = getattr(info, "raw_cell", None)
            if result is not None and (raw is None or raw.strip() == ""
                                       or raw != self.stack[-1].info.raw_cell):
                return None  # a post_run_cell without pre_run_cell (empty cell)
            k = len(self.stack) - 1
        frame, stale = self.stack[k], self.stack[k + 1:]
        del self.stack[k:]
        for lost in stale:  # frames whose post_run_cell never came
            if lost.window is not None:
                lost.window.stop(status="interrupted", error="the cell ended abnormally")
        return frame

    def finish(self, m: Any, options: CellOptions | None) -> None:
        """After a measured cell: ``-o VAR``, then the one-line summary unless ``-q``."""
        if options is not None and options.var:
            self.shell.user_ns[options.var] = m
        if options is None or not options.quiet:
            from .display import show

            for one in m if isinstance(m, list) else [m]:  # a cluster window: one per host
                show(one)

    def retarget(self, args: Any) -> None:
        """Apply the options of a nested ``%%energy`` call to the window already open."""
        frame = next((f for f in self.stack if f.window is not None), None)
        if frame is None or frame.options is None:
            return
        if args.task:
            frame.window.relabel(args.task)
            frame.options.task = args.task
        if args.instance:
            frame.window.instance = frame.options.instance = args.instance
        frame.options.quiet = frame.options.quiet or args.quiet
        frame.options.var = args.output or frame.options.var

    def close_all(self) -> None:
        """Close every open window (the extension is being unloaded)."""
        for frame in self.stack:
            if frame.window is not None:
                frame.window.stop(status="interrupted", error="energykernel was unloaded")
        self.stack.clear()


def _open(options: CellOptions, namespace: dict) -> Window | ClusterWindow | None:
    try:
        cluster = None
        if options.cluster is not None:
            cluster = namespace.get(options.cluster)
            if cluster is None:
                raise NameError(f"--cluster {options.cluster}: no such variable")
        if cluster is not None:
            from ..dask.window import ClusterWindow

            return ClusterWindow(cluster, options.task, instance=options.instance,
                                 components=options.components).start()
        # ambient: windows that the cell's code opens in other threads nest in the cell's
        return Window(options.task, instance=options.instance, components=options.components,
                      ambient=True).start()
    except Exception as exc:  # measuring must never stop the user's cell
        warnings.warn(f"energykernel: could not measure this cell: {exc}", RuntimeWarning,
                      stacklevel=2)
        return None
