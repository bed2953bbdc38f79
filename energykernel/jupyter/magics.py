"""The IPython layer: ``%%energy``, ``%energy …`` and auto mode (see README, "In Jupyter").

``%%energy`` is a *marker*, not a wrapper. Three small pieces keep every native behaviour
of the cell body (``await``, ``Out[n]``, a trailing ``;``, nested magics, exceptions):

- an input transformer (``input_transformers_cleanup``, which runs before magics are
  parsed) turns a valid ``%%energy …`` first line into an empty line, so the body runs as
  an ordinary cell and traceback line numbers stay right;
- the ``pre_run_cell`` hook reads the options from the raw cell (``%%energy`` may sit
  among stacked cell magics, e.g. under ``%%capture``) and opens a window;
- the ``post_run_cell`` hook closes it with the cell's outcome, shows the one-line
  summary and stores ``-o VAR``.

Auto mode is the same machinery with default options. Only the outermost cell of a
nesting (``%%capture`` runs its body as a nested cell) opens a window, so a cell is
measured once. The registered ``%%energy`` cell magic is the fallback for a body that
reaches it un-transformed (``get_ipython().run_cell_magic("energy", …)``, or options
that do not parse: it raises the ``UsageError`` and the body is not run).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from ..core.record import exit_status
from ..core.window import Window, check_components

if TYPE_CHECKING:
    from ..dask.window import ClusterWindow

_STATE_ATTR = "_energykernel_state"
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


def parse_options(line: str) -> Any:
    """Parse ``%%energy`` options; ``UsageError`` naming what is wrong."""
    args = parse_argstring(EnergyMagics.energy_cell, line)
    args.task, args.instance = _unquote(args.task), _unquote(args.instance)
    if args.task is not None and not args.task.strip():
        raise UsageError("%%energy -t: the task name is empty")
    if args.instance is not None and not args.instance.strip():
        raise UsageError("%%energy -i: the instance name is empty")
    if args.components is not None:
        try:
            args.components = check_components(args.components)
        except ValueError as exc:
            raise UsageError(f"%%energy -c: {exc}") from None
        if not args.components:
            raise UsageError("%%energy -c: give at least one component")
    if args.cluster is not None and not args.cluster.isidentifier():
        raise UsageError(f"%%energy --cluster: {args.cluster!r} is not a variable name")
    if args.output is not None and not args.output.isidentifier():
        raise UsageError(f"%%energy -o: {args.output!r} is not a valid variable name")
    return args


def _unquote(value: str | None) -> str | None:
    """``-t "my task"`` means ``my task`` (IPython's argument splitting keeps quotes)."""
    if value is not None and len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _valid(line: str) -> bool:
    try:
        parse_options(line)
    except UsageError:
        return False
    return True


def blank_marker(lines: list[str]) -> list[str]:
    """Input transformer: a valid ``%%energy`` first line becomes an empty line."""
    if lines:
        options = _marker_options(lines[0]) if lines[0].startswith("%%") else None
        if options is not None and _valid(options):
            if len(lines) > 1 and lines[1].startswith("%%"):
                return lines[1:]  # a cell magic must stay first; its body keeps its lines
            return ["\n", *lines[1:]]
    return lines


def cell_status(result: Any) -> tuple[str, str | None]:
    """(status, error) of a cell from its ``ExecutionResult`` (None: cancelled)."""
    if result is None:
        return "interrupted", "KeyboardInterrupt"
    return exit_status(result.error_before_exec or result.error_in_exec)


def _is_control_cell(raw: str) -> bool:
    """Cells made only of energykernel's own commands are not auto-measured."""
    return all(_CONTROL_LINE.match(line) for line in raw.splitlines())


class CellWatch:
    """The ``pre_run_cell`` / ``post_run_cell`` hooks and auto mode of one shell."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
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
                args = parse_options(marker)
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


@magics_class
class EnergyMagics(Magics):
    """``%%energy`` and ``%energy``."""

    def __init__(self, shell: Any, watch: CellWatch) -> None:
        super().__init__(shell)
        self.watch = watch

    @magic_arguments("energy")
    @argument("-t", "--task", default=None, help="task label (default: a first-line "
              "comment '# task: NAME', else cell-<execution count>)")
    @argument("-i", "--instance", default=None, help="instance label (default: host name)")
    @argument("-c", "--components", default=None,
              help="comma list of components to report: cpu,gpu,ram,storage")
    @argument("-q", "--quiet", action="store_true", help="do not show the one-line summary")
    @argument("-o", "--output", default=None, metavar="VAR",
              help="store the Measurement in this variable")
    @argument("--cluster", default=None, metavar="CLIENT",
              help="name of a dask.distributed Client: measure every worker's host")
    @cell_magic("energy")
    def energy_cell(self, line: str, cell: str) -> None:
        """Measure the energy of this cell; a one-line summary is shown after it.

        The body runs as an ordinary cell: its last expression is displayed, ``await``
        works, exceptions propagate (the run is recorded with status "error").
        """
        args = parse_options(line)
        watch = self.watch
        if watch.marker_pending or watch.measuring():  # this cell is measured already
            watch.marker_pending = False
            watch.retarget(args)
            self._run_body(cell)
            return
        options = CellOptions(args.task or f"cell-{self.shell.execution_count - 1}",
                              args.instance, args.components, args.quiet, args.output,
                              args.cluster)
        window = _open(options, self.shell.user_ns)
        if window is None:
            self._run_body(cell)
            return
        watch.magic_depth += 1
        try:
            result = self._run_body(cell, raise_error=False)
        except BaseException as exc:
            window.stop(*cell_status(_Failed(exc)))
            raise
        finally:
            watch.magic_depth -= 1
        status, error = cell_status(result)
        watch.finish(window.stop(status=status, error=error), options)
        result.raise_error()

    def _run_body(self, cell: str, raise_error: bool = True) -> Any:
        result = self.shell.run_cell(cell, store_history=False)
        if raise_error:
            result.raise_error()
        return result

    @magic_arguments("energy")
    @argument("command", nargs="?", default=None,
              help="auto on [quiet]|off, summary, plot [KIND], save PATH, backends")
    @argument("rest", nargs="*", help="arguments of the command")
    @line_magic("energy")
    def energy_line(self, line: str) -> Any:
        """energykernel commands:

        %energy auto on|off      measure every following cell
        %energy auto on quiet    … recording each run without showing its line
        %energy summary          table of tasks × components
        %energy plot [KIND]      tasks (default), timeline or instances
        %energy save PATH        write every recorded run to a NetCDF file
        %energy backends         what can be read here, and why not
        """
        args = parse_argstring(self.energy_line, line)
        command, rest = args.command, args.rest
        if command is None:
            print(f"auto mode is {'on' if self.watch.auto else 'off'}\n{_usage()}")
            return None
        if command == "auto":
            if rest not in (["on"], ["on", "quiet"], ["off"]):
                raise UsageError("%energy auto: say 'on', 'on quiet' or 'off'")
            if rest == ["off"] and self.watch.held:
                print("energykernel: auto mode stays on (held by energykernel measure)")
                return None
            self.watch.auto = rest[0] == "on"
            self.watch.auto_quiet = rest == ["on", "quiet"]
            return None
        handler = getattr(self, f"_cmd_{command}", None)
        if handler is None:
            raise UsageError(f"%energy: unknown command {command!r}\n{_usage()}")
        return handler(rest)

    def _cmd_summary(self, rest: list[str]) -> Any:
        from ..core import api

        if rest:
            raise UsageError("%energy summary takes no arguments")
        from ..data import accessor  # noqa: F401  (registers ds.ek)

        ds = api.dataset()
        if ds.sizes.get("task", 0) == 0:
            print("energykernel: nothing measured yet")
            return None
        return ds.ek.summary()

    def _cmd_plot(self, rest: list[str]) -> Any:
        from ..core import api
        from ..viz.plot import KINDS, plot

        if len(rest) > 1 or (rest and rest[0] not in KINDS):
            raise UsageError(f"%energy plot [KIND]: KIND is one of {', '.join(KINDS)}")
        kind = rest[0] if rest else "tasks"
        ds = api.timeline() if kind == "timeline" else api.dataset()
        try:
            return plot(ds, kind=kind)
        except ValueError as exc:
            raise UsageError(f"%energy plot: {exc}") from None

    def _cmd_save(self, rest: list[str]) -> None:
        from ..core import api
        from ..core.recorder import recorder

        if len(rest) != 1:
            raise UsageError("%energy save PATH: give one file name ending in .nc")
        try:
            path = api.save(rest[0])
        except (OSError, ValueError) as exc:
            raise UsageError(f"%energy save: {exc}") from None
        print(f"energykernel: saved {len(recorder())} runs to {path}")

    def _cmd_backends(self, rest: list[str]) -> None:
        from ..counters import statuses

        for status in statuses():
            print(status)


def _usage() -> str:
    doc = EnergyMagics.energy_line.__doc__ or ""
    lines = (line.strip() for line in doc.splitlines())
    return "\n".join(x for x in lines if x.startswith("%energy ") and "[command]" not in x)


class _Failed:
    """A stand-in ExecutionResult for an exception raised around the body."""

    def __init__(self, exc: BaseException) -> None:
        self.error_before_exec, self.error_in_exec = None, exc


def load_ipython_extension(shell: Any) -> None:
    """Register the magics, the marker transformer and the cell hooks (once per shell)."""
    if getattr(shell, _STATE_ATTR, None) is not None:
        return
    watch = CellWatch(shell)
    magics = EnergyMagics(shell, watch)
    shell.register_magics(magics)
    shell.input_transformers_cleanup.append(blank_marker)
    shell.events.register("pre_run_cell", watch.pre_run_cell)
    shell.events.register("post_run_cell", watch.post_run_cell)
    setattr(shell, _STATE_ATTR, (watch, magics))


def hold_auto(shell: Any) -> None:
    """Auto mode on for good: ``%energy auto off`` cannot turn it off (``energykernel measure``)."""
    load_ipython_extension(shell)
    watch = getattr(shell, _STATE_ATTR)[0]
    watch.auto = watch.held = True


def unload_ipython_extension(shell: Any) -> None:
    """Remove exactly what loading added: hooks, transformer, magics."""
    state = getattr(shell, _STATE_ATTR, None)
    if state is None:
        return
    watch, magics = state
    watch.close_all()
    for event, callback in (("pre_run_cell", watch.pre_run_cell),
                            ("post_run_cell", watch.post_run_cell)):
        if callback in shell.events.callbacks[event]:
            shell.events.unregister(event, callback)
    while blank_marker in shell.input_transformers_cleanup:
        shell.input_transformers_cleanup.remove(blank_marker)
    manager = shell.magics_manager
    for kind in ("line", "cell"):
        if getattr(manager.magics[kind].get("energy"), "__self__", None) is magics:
            del manager.magics[kind]["energy"]
    if manager.registry.get(type(magics).__name__) is magics:
        del manager.registry[type(magics).__name__]
    delattr(shell, _STATE_ATTR)
