"""The cell machinery behind ``%%energy`` and auto mode: one window per measured cell.

The ``pre_run_cell`` hook reads a cell's options (an ``%%energy`` first line, else auto
mode's defaults) and opens a window; ``post_run_cell`` closes it with the cell's outcome,
shows the ⚡ line and stores ``-o VAR``. Only the outermost cell of a nesting (``%%capture``
runs its body as a nested cell) opens one, so a cell is measured once. An ``%%energy`` line
below another cell magic counts only where IPython would parse a cell magic: when that
magic runs its body as a cell (``%%capture``, ``%%time``, …) the marker transformer sees it
and says so (:meth:`CellWatch.on_marker`); a magic that takes its body as text
(``%%writefile``, ``%%bash``, …) gets the line, and the cell ends with a warning. Cell
windows are *ambient*: windows that the cell's code opens in other threads nest in the
cell's run. The IPython syntax (options, the marker line, the magics) is
:mod:`energykernel.jupyter.magics`; the ⚡ line is :mod:`energykernel.jupyter.display`.
"""

from __future__ import annotations

import re
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from ..core.record import exit_status
from ..core.window import Window
from .display import CellLine, OutputTracker

if TYPE_CHECKING:
    from ..dask.window import ClusterWindow

_TASK_COMMENT = re.compile(r"^\s*#\s*task:\s*(\S.*?)\s*$")
_COMMAND_LINE = re.compile(r"^\s*(%energy(\s.*)?|%(load|unload|reload)_ext\s+energykernel\s*)$")
_NEUTRAL_LINE = re.compile(r"^\s*(#.*)?$")


@dataclass
class CellOptions:
    """Options of one measured cell."""

    task: str
    instance: str | None = None
    components: tuple[str, ...] | None = None
    quiet: bool = False
    var: str | None = None
    cluster: str | None = None  # name of a distributed.Client in the user's namespace
    explicit: bool = False  # from an %%energy line (not auto mode)


@dataclass
class _Frame:
    """One ``pre_run_cell`` waiting for its ``post_run_cell``."""

    info: Any
    count: int
    window: Window | ClusterWindow | None = None
    options: CellOptions | None = None
    line: CellLine | None = None
    first: str | None = None  # first body line (for '# task: NAME')
    buried: str | None = None  # options of an %%energy line below another cell magic
    buried_line: int = 0
    buried_magic: str = ""
    recognised: bool = False  # IPython parsed that line as a cell magic
    empty: bool = False  # an %%energy line with nothing below it: an empty cell


@dataclass
class _Head:
    """Where a cell's ``%%energy`` line is, as IPython's cleanup would see it."""

    top: str | None = None  # options of an %%energy first line
    buried: str | None = None  # options of an %%energy line below other cell magics
    line: int = 0  # its line number
    magic: str = ""  # the cell magic right above it
    empty: bool = False  # the first-line marker has no body
    first: str | None = None  # the first line of the body


def _marker_options(line: str) -> str | None:
    """The option string if ``line`` is an ``%%energy`` line, else None."""
    stripped = line.strip()
    if stripped == "%%energy" or stripped.startswith(("%%energy ", "%%energy\t")):
        return stripped[len("%%energy"):].strip()
    return None


def _next_code(lines: list[str], k: int) -> int:
    while k < len(lines) and not lines[k].strip():
        k += 1
    return k


def _first_body(lines: list[str], k: int) -> str | None:
    k = _next_code(lines, k)
    while k < len(lines) and lines[k].lstrip().startswith("%%"):
        k = _next_code(lines, k + 1)
    return lines[k] if k < len(lines) else None


def _head(raw: str) -> _Head:
    """Find the marker: the first line (after blank lines and indentation, which IPython
    removes), or the first line of the body of a chain of cell magics."""
    lines = raw.splitlines()
    i = _next_code(lines, 0)
    if i == len(lines):
        return _Head()
    top = _marker_options(lines[i])
    if top is not None:
        return _Head(top=top, empty=_next_code(lines, i + 1) == len(lines),
                     first=_first_body(lines, i + 1))
    while lines[i].strip().startswith("%%"):
        magic = lines[i].strip()[2:].split(maxsplit=1)
        i = _next_code(lines, i + 1)
        if i == len(lines):
            return _Head()
        found = _marker_options(lines[i])
        if found is not None:
            return _Head(buried=found, line=i + 1, magic=magic[0] if magic else "",
                         first=_first_body(lines, i + 1))
    return _Head(first=lines[i])


def _is_control_cell(raw: str) -> bool:
    """Cells made only of energykernel's own commands (and comments) are not auto-measured;
    a cell of comments alone is an ordinary cell."""
    lines = raw.splitlines()
    return (any(_COMMAND_LINE.match(line) for line in lines)
            and all(_COMMAND_LINE.match(line) or _NEUTRAL_LINE.match(line) for line in lines))


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
        self.asked: tuple[str, int | None] = ("on", None)  # while held: the notebook's wish
        self.stack: list[_Frame] = []
        self.marker_pending = False  # a hook window was opened for an %%energy line
        self.magic_depth = 0  # fallback cell magic windows open
        self.tracker = OutputTracker.for_shell(shell)
        self.unloaded_at: int | None = None  # while held: the count of the unloading cell
        self.after_unload: Any = None  # the post_run_cell that finishes an unload

    def measuring(self) -> bool:
        return self.magic_depth > 0 or any(f.window is not None for f in self.stack)

    def current_count(self) -> int:
        """The execution count of the cell running now (the outermost one)."""
        return self.stack[0].count if self.stack else self.shell.execution_count - 1

    def _parse(self, options: str | None) -> Any:
        if options is None:
            return None
        try:
            return self.parse(options)
        except UsageError:
            return None  # the cell magic raises it; the body does not run

    def _options(self, args: Any, first: str | None, count: int) -> CellOptions:
        label = _TASK_COMMENT.match(first) if first is not None else None
        task = (args.task if args is not None and args.task else None) or (
            label.group(1) if label else f"cell-{count}")
        if args is None:
            return CellOptions(task, quiet=self.auto_quiet and not self.held)
        return CellOptions(task, args.instance, args.components, args.quiet, args.output,
                           args.cluster, explicit=True)

    def _start(self, frame: _Frame, options: CellOptions, show: bool = True) -> None:
        frame.options = options
        frame.window = _open(options, self.shell.user_ns)
        if frame.window is None:
            return
        frame.line = CellLine(self.tracker, options.task, self._note(options))
        if show and (self.held or not options.quiet):
            frame.line.begin()

    def pre_run_cell(self, info: Any) -> None:
        raw = info.raw_cell or ""
        nested = bool(self.stack)
        if nested:
            count = self.stack[0].count
        else:
            count = self.shell.execution_count - (1 if info.store_history else 0)
        frame = _Frame(info, count)
        head = _head(raw)
        frame.first = head.first
        if head.top is not None:
            args = self._parse(head.top)
            if args is not None:
                self.marker_pending = True
                if head.empty and not nested and info.store_history:
                    frame.empty = True
                    self._as_empty_cell()
                else:
                    self._marked(frame, args)
        elif not self.measuring():
            auto = self.auto and not _is_control_cell(raw)
            buried = self._parse(head.buried)
            if buried is not None:
                frame.buried, frame.buried_line = head.buried, head.line
                frame.buried_magic = head.magic
            if auto:
                self._start(frame, self._options(buried, head.first, count),
                            show=buried is None)
        self.stack.append(frame)

    def _marked(self, frame: _Frame, args: Any) -> None:
        """A cell whose first line is a valid ``%%energy`` line."""
        owner = next((f for f in self.stack if f.recognised and f.window is not None), None)
        if owner is not None:  # the body of a cell magic above the marker: it owns the line
            frame.window, frame.options, frame.line = owner.window, owner.options, owner.line
            owner.window = owner.line = None
        elif not self.measuring():
            self._start(frame, self._options(args, frame.first, frame.count))
        else:
            self.retarget(args)

    def on_marker(self, options: str) -> None:
        """The marker transformer blanked an ``%%energy`` line while a cell runs."""
        frame = next((f for f in reversed(self.stack)
                      if f.buried is not None and not f.recognised), None)
        if frame is None:
            return
        frame.recognised = True
        args = self._parse(options)
        if frame.window is None:
            if not self.measuring():
                self._start(frame, self._options(args, frame.first, frame.count))
        elif frame.line is not None and frame.options is not None and (
                self.held or not frame.options.quiet):
            frame.line.begin()

    def post_run_cell(self, result: Any) -> None:
        frame = self._pop(result)
        if not self.stack:
            self.marker_pending = False
        if frame is None:
            return
        if frame.empty:
            self._restore_history()
            return
        if frame.buried is not None and not frame.recognised:
            self._unrecognised(frame)
        if frame.window is None:
            return
        status, error = cell_status(result)
        self.finish(frame.window.stop(status=status, error=error), frame.options, frame.line)

    def _unrecognised(self, frame: _Frame) -> None:
        """An %%energy line that a cell magic took as text: say so; measure as auto would."""
        magic = f"%%{frame.buried_magic}"
        what = ("the cell was measured as an ordinary cell" if frame.window is not None
                else "the cell was not measured")
        print(f"energykernel: %%energy on line {frame.buried_line} reached {magic} as text "
              f"({magic} takes the lines below it as its input, so the marker is part of "
              f"that input); {what}. Put %%energy on the first line of the cell.",
              file=sys.stderr)
        if frame.window is not None:
            default = self._options(None, frame.first, frame.count)
            if isinstance(frame.window, Window):
                frame.window.relabel(default.task)
            frame.options = default
            if frame.line is not None:
                frame.line.task, frame.line.note = default.task, self._note(default)

    def _as_empty_cell(self) -> None:
        """An ``%%energy`` line alone is an empty cell: it takes no execution count."""
        self.shell.execution_count -= 1
        history = getattr(self.shell, "history_manager", None)
        if history is not None:
            def skip(*args: Any, **kwargs: Any) -> None:
                history.__dict__.pop("store_inputs", None)

            history.store_inputs = skip

    def _restore_history(self) -> None:
        history = getattr(self.shell, "history_manager", None)
        if history is not None:
            history.__dict__.pop("store_inputs", None)

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

    def _note(self, options: CellOptions) -> dict[str, Any] | None:
        """While held: why the notebook itself would not show this cell's line."""
        if not self.held:
            return None
        if options.explicit:
            return {"shown": False, "why": "quiet"} if options.quiet else None
        asked, at = self.asked
        if asked == "on":
            return None
        return {"shown": False, "why": f"auto {asked}", "asked_in": at}

    def finish(self, m: Any, options: CellOptions | None, line: CellLine | None = None) -> None:
        """After a measured cell: ``-o VAR``, then the ⚡ line unless ``-q``."""
        if options is not None and options.var:
            self.shell.user_ns[options.var] = m
        hidden = options is not None and options.quiet and not self.held
        runs = m if isinstance(m, list) else [m]  # a cluster window: one per host
        if hidden or not runs:
            if line is not None:
                line.cancel()
            return
        from .display import show

        note = self._note(options) if options is not None else None
        if line is None:
            line = CellLine(None, runs[0].task)
        line.note = note
        line.end(runs[0])
        for one in runs[1:]:
            show(one, note=note)

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
        frame.options.explicit = True

    def close_all(self) -> None:
        """Close every open window and stop watching output (the extension is unloaded)."""
        for frame in self.stack:
            if frame.window is not None:
                frame.window.stop(status="interrupted", error="energykernel was unloaded")
            if frame.line is not None:
                frame.line.cancel()
        self.stack.clear()
        self._restore_history()
        if self.tracker is not None:
            self.tracker.uninstall()


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
