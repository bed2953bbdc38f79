"""The IPython layer: ``%%energy``, ``%energy …`` and loading (see README, "In Jupyter").

``%%energy`` is a *marker*, not a wrapper: an input transformer
(``input_transformers_cleanup``, which runs before magics are parsed) turns a valid
``%%energy …`` first line into an empty line, so the body runs as an ordinary cell with
every native behaviour (``await``, ``Out[n]``, a trailing ``;``, nested magics,
exceptions, traceback line numbers), while the cell hooks of
:mod:`energykernel.jupyter.cells` open and close its window. The marker counts where
IPython would parse a cell magic: the first line of a cell (blank lines and indentation
before it are IPython's to remove, as for any cell), or the first line of the body of a
cell magic that runs its body as a cell (``%%capture``, ``%%time``); the body below the
marker is cleaned up as IPython cleans a cell (its common indentation removed). The
registered ``%%energy`` cell magic is the fallback for a body that reaches it
un-transformed (``get_ipython().run_cell_magic("energy", …)``, or options that do not
parse: it raises the ``UsageError`` and the body is not run).

Loading is idempotent; ``%reload_ext energykernel`` (an unload and a load within one cell)
keeps auto mode and the windows of the running cell; an unload from a cell takes effect
when that cell ends (its own run is still recorded).
"""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError
from IPython.core.inputtransformer2 import classic_prompt, ipython_prompt, leading_indent
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from ..core.window import check_components
from .cells import CellOptions, CellWatch, _marker_options, _open, cell_status

_STATE_ATTR = "_energykernel_state"
_UNLOADING_ATTR = "_energykernel_unloading"  # a watch unloaded by the cell still running
UNLOADED_ATTR = "_energykernel_unloaded_at"  # under measure: the count of the unloading cell
_BODY_CLEANUP = (leading_indent, classic_prompt, ipython_prompt)


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
    """Input transformer: a valid ``%%energy`` first line becomes an empty line.

    The body is cleaned up as IPython cleans a cell (blank lines kept, so traceback line
    numbers stay those of the cell; common indentation and pasted prompts removed); a cell
    magic below the marker stays first, as IPython requires.
    """
    if not lines or not lines[0].startswith("%%"):
        return lines
    options = _marker_options(lines[0])
    if options is None or not _valid(options):
        return lines
    _tell_watch(options)
    if "--live" in options:
        _want_live(options)
    body = lines[1:]
    k = next((i for i, line in enumerate(body) if line.strip()), len(body))
    rest = body[k:]
    for transform in _BODY_CLEANUP:
        rest = transform(rest)
    if rest and rest[0].startswith("%%"):
        return rest  # a cell magic must stay first; its body keeps its lines
    return ["\n"] * (1 + k) + rest


def _tell_watch(options: str) -> None:
    """Tell the running cell's watch that IPython parsed an ``%%energy`` line."""
    from IPython import get_ipython

    state = getattr(get_ipython(), _STATE_ATTR, None)
    if state is not None:
        state[0].on_marker(options)


def _want_live(options: str) -> None:
    """An ``%%energy --live`` line: the live view's hooks, before the cell's hooks run
    (IPython transforms a cell before its ``pre_run_cell``); below another cell magic, the
    view starts at once (:meth:`~.live.LiveHooks.marker`)."""
    from IPython import get_ipython

    shell = get_ipython()
    state = getattr(shell, _STATE_ATTR, None)
    if state is not None and parse_options(options).live:
        from .live import live_hooks

        live_hooks(shell, state[0], parse_options).marker()


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
    @argument("--live", action="store_true",
              help="show a power sparkline under the cell, updated while it runs")
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
                              args.cluster, explicit=True)
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
              help="auto on [quiet]|off, live on|off, summary, plot [KIND], save PATH, "
                   "backends")
    @argument("rest", nargs="*", help="arguments of the command")
    @line_magic("energy")
    def energy_line(self, line: str) -> Any:
        """energykernel commands:

        %energy auto on|off      measure every following cell
        %energy auto on quiet    … recording each run without showing its line
        %energy live on|off      a live power sparkline under every measured cell
        %energy summary          table of tasks × components
        %energy plot [KIND]      tasks (default), timeline or instances
        %energy save PATH        write every recorded run to a NetCDF file
        %energy backends         what can be read here, and why not
        """
        args = parse_argstring(self.energy_line, line)
        command, rest = args.command, args.rest
        watch = self.watch
        if command is None:
            on = watch.asked[0] != "off" if watch.held else watch.auto
            print(f"auto mode is {'on' if on else 'off'}\n{_usage()}")
            return None
        if command == "auto":
            if rest not in (["on"], ["on", "quiet"], ["off"]):
                raise UsageError("%energy auto: say 'on', 'on quiet' or 'off'")
            if watch.held:  # energykernel measure measures every cell; the wish is noted
                wish = "quiet" if rest == ["on", "quiet"] else rest[0]
                watch.asked = (wish, watch.current_count())
                return None
            watch.auto = rest[0] == "on"
            watch.auto_quiet = rest == ["on", "quiet"]
            return None
        handler = getattr(self, f"_cmd_{command}", None)
        if handler is None:
            raise UsageError(f"%energy: unknown command {command!r}\n{_usage()}")
        return handler(rest)

    def _cmd_live(self, rest: list[str]) -> None:
        if rest not in ([], ["on"], ["off"]):
            raise UsageError("%energy live: say 'on' or 'off' (bare 'live' is 'on')")
        from .live import live_hooks

        watch = getattr(self.shell, _STATE_ATTR)[0]
        live_hooks(self.shell, watch, parse_options).all_cells = rest != ["off"]

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
        from ..core.recorder import recorder
        from ..counters import statuses

        for status in statuses():
            print(status)
        rec = recorder()
        print(f"run log: {rec.log_path or '(none yet)'}"
              + (f" — {rec.unlogged} run(s) could not be written to it (kept in memory; "
                 "ek.save them)" if rec.unlogged else ""))


def _usage() -> str:
    doc = EnergyMagics.energy_line.__doc__ or ""
    lines = (line.strip() for line in doc.splitlines())
    return "\n".join(x for x in lines if x.startswith("%energy ") and "[command]" not in x)


class _Failed:
    """A stand-in ExecutionResult for an exception raised around the body."""

    def __init__(self, exc: BaseException) -> None:
        self.error_before_exec, self.error_in_exec = None, exc


def load_ipython_extension(shell: Any) -> None:
    """Register the magics, the marker transformer and the cell hooks (once per shell).

    Within the cell that unloaded it (``%reload_ext``), the same watch comes back: auto
    mode, its hold and the running cell's window are kept.
    """
    if getattr(shell, _STATE_ATTR, None) is not None:
        return
    watch = shell.__dict__.pop(_UNLOADING_ATTR, None)
    if watch is not None:
        _unregister(shell, "post_run_cell", watch.after_unload)
    else:
        watch = CellWatch(shell, parse_options)
    magics = EnergyMagics(shell, watch)
    shell.register_magics(magics)
    shell.input_transformers_cleanup.append(blank_marker)
    shell.events.register("pre_run_cell", watch.pre_run_cell)
    shell.events.register("post_run_cell", watch.post_run_cell)
    setattr(shell, _STATE_ATTR, (watch, magics))


def hold_auto(shell: Any) -> None:
    """Auto mode on for good (``energykernel measure``): the notebook's own ``%load_ext``,
    ``%energy auto off`` and ``-q`` are silent; what it asked is noted in each line's
    metadata for the annotated copy."""
    load_ipython_extension(shell)
    watch = getattr(shell, _STATE_ATTR)[0]
    watch.auto = watch.held = True


def _unregister(shell: Any, event: str, callback: Any) -> None:
    if callback in shell.events.callbacks[event]:
        shell.events.unregister(event, callback)


def unload_ipython_extension(shell: Any) -> None:
    """Remove exactly what loading added: hooks, transformer, magics.

    From a running cell, that cell's window closes when it ends (its run is recorded as
    usual), unless the extension is loaded again first (``%reload_ext``).
    """
    state = getattr(shell, _STATE_ATTR, None)
    if state is None:
        return
    watch, magics = state
    for event, callback in (("pre_run_cell", watch.pre_run_cell),
                            ("post_run_cell", watch.post_run_cell)):
        _unregister(shell, event, callback)
    from .live import remove_live

    remove_live(shell)
    while blank_marker in shell.input_transformers_cleanup:
        shell.input_transformers_cleanup.remove(blank_marker)
    manager = shell.magics_manager
    for kind in ("line", "cell"):
        if getattr(manager.magics[kind].get("energy"), "__self__", None) is magics:
            del manager.magics[kind]["energy"]
    if manager.registry.get(type(magics).__name__) is magics:
        del manager.registry[type(magics).__name__]
    delattr(shell, _STATE_ATTR)
    if watch.held:
        watch.unloaded_at = watch.current_count()
    if watch.stack:
        watch.after_unload = _AfterUnload(shell, watch)
        shell.events.register("post_run_cell", watch.after_unload)
        setattr(shell, _UNLOADING_ATTR, watch)
    else:
        _release(shell, watch)


def _release(shell: Any, watch: CellWatch) -> None:
    watch.close_all()
    if watch.held and watch.unloaded_at is not None:
        setattr(shell, UNLOADED_ATTR, watch.unloaded_at)


class _AfterUnload:
    """``post_run_cell`` of a watch unloaded by the running cell: finish it, then release."""

    def __init__(self, shell: Any, watch: CellWatch) -> None:
        self.shell, self.watch = shell, watch

    def __call__(self, result: Any) -> None:
        self.watch.post_run_cell(result)
        if self.watch.stack:
            return
        _unregister(self.shell, "post_run_cell", self)
        if self.shell.__dict__.get(_UNLOADING_ATTR) is self.watch:
            del self.shell.__dict__[_UNLOADING_ATTR]
        _release(self.shell, self.watch)
