"""The live view: a power sparkline under a measured cell, updated while the cell runs.

``%%energy --live`` (one cell) or ``%energy live on`` (every measured cell, until ``%energy
live off``) shows one display with a display id when the cell's window opens; a daemon
thread updates it in place at most ``UPDATES_PER_S`` times a second from the sampler's
timeline (the samples the measuring engine takes anyway), and once more when the cell
ends. Nothing runs on the measured path: the thread only reads the timeline's newest
samples, and sends an update only when a new sample came. It is an ordinary display
(SVG in text/html, a text/plain line), so it works in every frontend that shows outputs
(JupyterLab, VS Code, Colab, classic Notebook) with no widget manager; nbconvert keeps its
last state.
"""

from __future__ import annotations

import contextvars
import threading
import time
import uuid
from html import escape
from typing import Any

from ..core.engine import TIMELINE, Sample
from ..core.units import duration, si

#: Updates of one live view per second, at most.
UPDATES_PER_S = 2.0
#: Samples drawn (the newest; at the default 1 s period, two minutes).
MAX_POINTS = 120
_WIDTH, _HEIGHT = 240, 36


def _recent(since_s: float, limit: int = MAX_POINTS) -> list[Sample]:
    """The timeline's newest samples that end after ``since_s`` (oldest first); reads
    only the deque's right end, so its cost does not grow with the timeline."""
    n = len(TIMELINE)
    out: list[Sample] = []
    for i in range(n - 1, max(n - 1 - limit, -1), -1):
        try:
            sample = TIMELINE[i]
        except IndexError:  # the sampler appended meanwhile (a full deque shifts)
            break
        if sample.time_s <= since_s:
            break
        out.append(sample)
    out.reverse()
    return out


def sparkline_svg(values_w: list[float], width: int = _WIDTH, height: int = _HEIGHT) -> str:
    """An inline SVG polyline of ``values_w`` (W), scaled from 0 to the peak."""
    peak = max(values_w, default=0.0) or 1.0
    if len(values_w) == 1:
        values_w = values_w * 2
    step = width / max(len(values_w) - 1, 1)
    points = " ".join(f"{i * step:.1f},{height - 2 - (v / peak) * (height - 4):.1f}"
                      for i, v in enumerate(values_w))
    line = (f'<polyline fill="none" stroke="#e8a200" stroke-width="1.5" points="{points}"/>'
            if values_w else "")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" style="vertical-align:middle;'
            f'background:#fafafa;border:1px solid #ddd">{line}</svg>')


def view_bundle(task: str, samples: list[Sample], elapsed_s: float, done: bool,
                methods: dict[str, str]) -> dict[str, str]:
    """The live view's mime bundle (text/plain and text/html)."""
    totals = [sum(s.power_w.values()) for s in samples]
    estimate = "estimate" in methods.values()
    label = " (estimate)" if estimate else ""
    state = "ran" if done else "running"
    if totals:
        now = samples[-1].power_w
        split = ", ".join(f"{c} {si(w, 'W')}" for c, w in now.items())
        text = (f"⚡ {task} {state} {duration(elapsed_s)}: {si(totals[-1], 'W')}{label} "
                f"({split}), peak {si(max(totals), 'W')}, {len(totals)} samples")
    else:
        text = (f"⚡ {task} {state} {duration(elapsed_s)}: no power sample yet "
                f"(the sampler reads every {_period_note()})")
    html = (f'<div class="energykernel-live" style="font-family:monospace;font-size:85%;'
            f'color:#555;margin:2px 0;display:flex;gap:8px;align-items:center">'
            f'{sparkline_svg(totals)}<span>{escape(text)}</span></div>')
    return {"text/plain": text, "text/html": html}


def _period_note() -> str:
    from ..core.config import settings

    return f"{settings().sample_interval_s:g} s; ENERGYKERNEL_SAMPLE_INTERVAL_S sets it"


class LiveView:
    """One cell's sparkline: ``start()`` shows it and starts its thread, ``stop()`` ends
    the thread and draws the final state."""

    def __init__(self, task: str, methods: dict[str, str] | None = None,
                 updates_per_s: float = UPDATES_PER_S) -> None:
        self.task = task
        self.methods = methods or {}
        self.period_s = 1.0 / updates_per_s
        self.id = f"energykernel-live-{uuid.uuid4().hex}"
        self.started_s = 0.0
        self.started_t = 0.0
        self.updates = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_sample_s = -1.0

    def _draw(self, done: bool = False) -> dict[str, str]:
        samples = _recent(self.started_s - 1.0)
        if samples:
            self._last_sample_s = samples[-1].time_s
        return view_bundle(self.task, samples, time.monotonic() - self.started_t, done,
                           self.methods)

    def start(self) -> None:
        from IPython.display import display

        self.started_s, self.started_t = time.time(), time.monotonic()
        display(self._draw(), raw=True, display_id=self.id)
        context = contextvars.copy_context()  # the cell's parent header: its output
        self._thread = threading.Thread(target=context.run, args=(self._loop,),
                                        name="energykernel-live", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        from IPython.display import update_display

        while not self._stop.wait(self.period_s):
            newest = TIMELINE[-1].time_s if TIMELINE else -1.0
            if newest == self._last_sample_s:
                continue  # nothing new to draw
            try:
                update_display(self._draw(), raw=True, display_id=self.id)
            except Exception:  # the view must never disturb the cell
                return
            self.updates += 1

    def stop(self) -> None:
        from IPython.display import update_display

        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        update_display(self._draw(done=True), raw=True, display_id=self.id)


class LiveHooks:
    """Cell hooks that give measured cells a live view: every one (``%energy live on``)
    or those whose ``%%energy`` line says ``--live``. Registered after the cell watch's
    hooks, so the cell's window is open when a view starts and closed when it ends."""

    def __init__(self, watch: Any, parse: Any) -> None:
        self.watch = watch
        self.parse = parse
        self.all_cells = False
        self.view: LiveView | None = None
        self.depth = 0

    def _wants(self, raw: str) -> bool:
        if self.all_cells:
            return True
        if "--live" not in raw:
            return False
        from .cells import _head

        options = _head(raw).top
        if options is None:
            return False
        try:
            return bool(self.parse(options).live)
        except Exception:
            return False

    def pre_run_cell(self, info: Any) -> None:
        self.depth += 1
        if self.depth > 1 or self.view is not None:
            return
        if not self.watch.measuring() or not self._wants(info.raw_cell or ""):
            return
        self._start_view()

    def marker(self) -> None:
        """An ``%%energy --live`` line parsed while its cell already runs — below another
        cell magic, which transforms its body only then: the view starts now, the cell's
        window being open (at the top of a cell, the line is parsed before its hooks and
        :meth:`pre_run_cell` starts the view)."""
        if self.view is None and self.watch.measuring():
            self._start_view()

    def _start_view(self) -> None:
        frame = next((f for f in self.watch.stack if f.window is not None), None)
        task = frame.options.task if frame is not None and frame.options else "cell"
        from ..core.engine import get_engine

        self.view = LiveView(task, dict(get_engine().component_method))
        try:
            self.view.start()
        except Exception:
            self.view = None

    def post_run_cell(self, result: Any) -> None:
        self.depth = max(self.depth - 1, 0)
        if self.depth == 0 and self.view is not None:
            view, self.view = self.view, None
            view.stop()

    def close(self) -> None:
        """Unloaded: stop the running view's thread (its last state stays shown)."""
        self.depth = 0
        if self.view is not None:
            self.view._stop.set()
            self.view = None


_HOOKS_ATTR = "_energykernel_live"


def live_hooks(shell: Any, watch: Any, parse: Any) -> LiveHooks:
    """The shell's live-view hooks, registered on first use (after the cell watch's): a
    shell that never asks for a live view runs no hook of it."""
    hooks = shell.__dict__.get(_HOOKS_ATTR)
    if hooks is None:
        hooks = LiveHooks(watch, parse)
        shell.events.register("pre_run_cell", hooks.pre_run_cell)
        shell.events.register("post_run_cell", hooks.post_run_cell)
        shell.__dict__[_HOOKS_ATTR] = hooks
    return hooks


def remove_live(shell: Any) -> None:
    """``%unload_ext``: the live view's hooks go too (the running view stops)."""
    hooks = shell.__dict__.pop(_HOOKS_ATTR, None)
    if hooks is None:
        return
    for event, callback in (("pre_run_cell", hooks.pre_run_cell),
                            ("post_run_cell", hooks.post_run_cell)):
        if callback in shell.events.callbacks[event]:
            shell.events.unregister(event, callback)
    hooks.close()
