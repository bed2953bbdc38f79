"""Shared machinery of the widgets: debounced, serialised updates and error/caption labels.

ipykernel 7 may handle two widget messages at once, so a widget never draws through
pyplot's global state: each chart is a :class:`matplotlib.figure.Figure` of its own (fresh,
or kept by one widget and redrawn only under its lock: the simulator's
:class:`energykernel.viz.gantt.GanttChart`) rendered to PNG bytes and handed to an
``ipywidgets.Image`` in one assignment, and every update runs under one lock, reading the
fields when it starts — so the last state wins.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable
from typing import Any

ERROR_COLOUR = "#b00020"


class Debouncer:
    """Run ``fn`` once, ``delay_s`` after the last :meth:`trigger`; :meth:`flush` runs it now.

    Runs are serialised by :attr:`lock`. ``delay_s <= 0`` runs synchronously on every
    trigger. An exception escaping ``fn`` goes to ``on_error`` (never to the notebook as a
    traceback from a timer thread).
    """

    def __init__(self, fn: Callable[[], None], delay_s: float = 0.15,
                 on_error: Callable[[BaseException], None] | None = None) -> None:
        self._fn = fn
        self.delay_s = float(delay_s)
        self._on_error = on_error
        self._timer: threading.Timer | None = None
        self._timer_lock = threading.Lock()
        self.lock = threading.RLock()  # re-entrant: a run may trigger a synchronous one

    @property
    def pending(self) -> bool:
        """Whether a delayed run is scheduled and has not started yet."""
        return self._timer is not None

    def trigger(self) -> None:
        """Schedule a run ``delay_s`` from now, replacing any scheduled one."""
        if self.delay_s <= 0:
            self.flush()
            return
        with self._timer_lock:
            if self._timer is not None:
                self._timer.cancel()
            timer = threading.Timer(self.delay_s, self._fire)
            timer.daemon = True
            self._timer = timer
            timer.start()

    def flush(self) -> None:
        """Cancel any scheduled run and run now, in this thread."""
        with self._timer_lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        self._run()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a scheduled run to finish; True when none is left pending."""
        timer = self._timer
        if timer is not None:
            timer.join(timeout)
        with self.lock:  # a run in progress finishes first
            return self._timer is None

    def cancel(self) -> None:
        """Drop a scheduled run."""
        with self._timer_lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _fire(self) -> None:
        with self._timer_lock:
            if self._timer is not threading.current_thread():
                return  # superseded by a later trigger or a flush
            self._timer = None
        self._run()

    def _run(self) -> None:
        with self.lock:
            try:
                self._fn()
            except Exception as exc:  # a widget never shows a traceback
                if self._on_error is not None:
                    self._on_error(exc)


def chart_image(css_class: str) -> tuple[Any, Any]:
    """A chart's ``ipywidgets.Image`` (CSS class ``css_class``) and the caption HTML under
    it (``css_class-caption``)."""
    import ipywidgets as w

    image = w.Image(format="png", layout=w.Layout(max_width="100%", height="auto"))
    image.add_class(css_class)
    caption = w.HTML()
    caption.add_class(f"{css_class}-caption")
    return image, caption


def error_html(message: str | None) -> str:
    """The red message shown next to a field ("" when there is none)."""
    if not message:
        return ""
    return f"<span style='color:{ERROR_COLOUR}'>{html.escape(message)}</span>"


def caption_html(text: str) -> str:
    """A chart's text equivalent, shown under it (set after the picture, so when it shows,
    the picture of the same update has arrived)."""
    return f"<span style='color:#555;font-size:smaller'>{html.escape(text)}</span>"
