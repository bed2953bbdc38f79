"""The ⚡ line of a measured cell: HTML in Jupyter, plain text in a terminal.

In ipykernel it is one display with a display id, shown when the cell starts and updated
in place when it ends (:class:`CellLine`); elsewhere it is shown after the cell.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import uuid
from typing import Any

from ..core.config import settings
from ..core.record import Measurement
from ..core.units import COMPONENTS, duration, si, si_interval

#: Key of the run summary in the display's metadata (read back by ``energykernel measure``).
METADATA_KEY = "energykernel"

#: Mime type of the run next to the ⚡ line's text/html: what the JupyterLab extension
#: reads to write the cell's ``metadata["energykernel"]`` and draw its badge. Frontends
#: without the extension show the text/html (or text/plain) line instead.
RUN_MIME = "application/vnd.energykernel.run+json"


_METHOD_NOTE = {
    "estimate": "estimated from a model, not read from a counter",
    "simulated": "simulated, not measured",
}


def measurement_html(m: Measurement, emissions_g: float | None = None,
                     note: str | None = None) -> str:
    """The one-line summary as compact HTML; estimated components are set in italics."""
    from html import escape

    parts = []
    bounds = m.energy_bounds_j
    for comp in COMPONENTS:
        if comp not in m.energy_j:
            continue
        method = m.method[comp]
        title = _METHOD_NOTE.get(method, f"read from {method} counters")
        shown = si_interval(m.energy_j[comp], *bounds[comp], "J")
        text = f"{comp} {escape(shown)} ({escape(method)})"
        if method in _METHOD_NOTE:
            text = f"<i>{text}</i>"
        parts.append(f'<span title="{escape(title)}">{text}</span>')
    html = (f"⚡ <b>{escape(m.task)}</b>: "
            f"<b>{escape(si_interval(m.total_j, *m.total_bounds_j, 'J'))}</b> ")
    active = m.active_energy_j
    if active:
        html += (f'<span title="energy above the idle power over the run">(active '
                 f"{escape(si(sum(active.values()), 'J'))})</span> ")
    html += f"in {escape(duration(m.duration_s))}"
    if parts:
        html += " — " + " · ".join(parts)
    if emissions_g is not None:
        html += f" — <b>{escape(si(emissions_g, 'gCO2e'))}</b>"
    if note:
        html += f' <span style="color:#a60">({escape(note)})</span>'
    if m.status != "ok":
        html += f' <span style="color:#b00">[{escape(m.status)}]</span>'
    return ('<div class="energykernel-line" style="font-family:monospace;font-size:85%;'
            f'color:#555;margin:2px 0">{html}</div>')


def carbon(energy_j: float) -> tuple[float | None, str | None]:
    """(gCO2e, None) when a region is configured; (None, why not) if it cannot be had."""
    region = settings().region
    if not region:
        return None, None
    try:
        from ..carbon import emissions, intensity
    except ImportError as exc:
        return None, f"no carbon figure: the carbon module is unavailable ({exc})"
    try:
        grams = float(emissions(energy_j, intensity=intensity(region)))
    except (LookupError, ValueError, TypeError) as exc:
        return None, f"no carbon figure for region {region!r}: {exc}"
    return grams, None


def run_metadata(m: Measurement) -> dict[str, Any]:
    """What a notebook cell's metadata keeps of its run."""
    return {
        "task": m.task,
        "instance": m.instance,
        "energy_j": m.energy_j,
        "total_j": m.total_j,
        "method": m.method,
        "duration_s": m.duration_s,
        "status": m.status,
        "run_id": m.id,
    }


def _finite(value: float) -> float | None:
    """JSON has no NaN or infinity: None instead."""
    value = float(value)
    return value if value == value and value not in (float("inf"), float("-inf")) else None


def run_data(m: Measurement, emissions_g: float | None = None) -> dict[str, Any]:
    """The run as the JupyterLab extension keeps it (``RUN_MIME``): the cell metadata's
    keys plus each component's interval and, when a region is configured, the carbon."""
    meta = run_metadata(m)
    data: dict[str, Any] = {
        **meta,
        "energy_j": {c: _finite(v) for c, v in meta["energy_j"].items()},
        "total_j": _finite(meta["total_j"]),
        "duration_s": _finite(meta["duration_s"]),
        "energy_bounds_j": {c: [_finite(lo), _finite(hi)]
                            for c, (lo, hi) in m.energy_bounds_j.items()},
    }
    if emissions_g is not None:
        data["emissions_g"] = _finite(emissions_g)
        data["region"] = settings().region
    return data


def bundle(m: Measurement) -> tuple[dict[str, Any], dict[str, Any]]:
    """(mime bundle, metadata) of the one-line summary of ``m``."""
    grams, note = carbon(m.total_j)
    text = m.summary(emissions_g=grams)
    if grams is not None:
        text += f" ({settings().region})"
    if note:
        text += f" ({note})"
    html = measurement_html(m, emissions_g=grams, note=note)
    return ({"text/plain": text, "text/html": html, RUN_MIME: run_data(m, grams)},
            {METADATA_KEY: run_metadata(m)})


def show(m: Measurement, display_id: str | None = None,
         note: dict[str, Any] | None = None) -> None:
    """Display the one-line summary of ``m`` in the current cell's output."""
    from IPython.display import display

    data, metadata = bundle(m)
    if note:
        metadata[METADATA_KEY].update(note)
    display(data, raw=True, metadata=metadata, display_id=display_id)


def placeholder(task: str, note: dict[str, Any] | None = None
                ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(mime bundle, metadata) of the line shown while ``task`` runs."""
    from html import escape

    html = (f'<div class="energykernel-line" style="font-family:monospace;font-size:85%;'
            f'color:#555;margin:2px 0">⚡ <b>{escape(task)}</b>: measuring…</div>')
    return ({"text/plain": f"⚡ {task}: measuring…", "text/html": html,
             RUN_MIME: {"task": task, "status": "running"}},
            {METADATA_KEY: {"task": task, "status": "running", **(note or {})}})


class OutputTracker:
    """Follows a kernel's outgoing messages to know whether a cell's ⚡ line is on screen.

    One wrapper around ``Session.send`` (every iopub message of ipykernel goes through
    it): a ``clear_output`` of the cell removes the line, with ``wait=True`` at the
    cell's next output. Only ipykernel shells have one; elsewhere the line is shown at
    the end of the cell.
    """

    _OUTPUTS = frozenset({"stream", "display_data", "execute_result", "error"})

    def __init__(self, sessions: list[Any]) -> None:
        self.sessions = sessions
        self.lines: dict[str, dict[str, Any]] = {}  # display id -> state of that line
        self.lock = threading.Lock()
        self.originals: list[tuple[Any, Any]] = []

    @classmethod
    def for_shell(cls, shell: Any) -> OutputTracker | None:
        """A tracker installed on ``shell``'s kernel session(s); None outside ipykernel."""
        session = getattr(getattr(shell, "kernel", None), "session", None)
        if session is None or not callable(getattr(session, "send", None)):
            return None
        found: dict[int, Any] = {id(session): session}
        for owner in (shell.display_pub, getattr(shell, "displayhook", None),
                      sys.stdout, sys.stderr):
            other = getattr(owner, "session", None)
            if other is not None and callable(getattr(other, "send", None)):
                found.setdefault(id(other), other)
        tracker = cls(list(found.values()))
        tracker.install()
        return tracker

    def install(self) -> None:
        for session in self.sessions:
            original = session.send

            def send(stream: Any, msg: Any, *args: Any, _original: Any = original,
                     **kwargs: Any) -> Any:
                with contextlib.suppress(Exception):  # watching must never break a send
                    self.seen(msg)
                return _original(stream, msg, *args, **kwargs)

            send._energykernel = True  # type: ignore[attr-defined]
            session.send = send
            self.originals.append((session, original))

    def uninstall(self) -> None:
        for session, original in self.originals:
            if getattr(session.send, "_energykernel", False):
                if getattr(original, "__self__", None) is session:
                    delattr(session, "send")  # back to the class's method
                else:
                    session.send = original
        self.originals.clear()

    def watch(self, display_id: str) -> None:
        with self.lock:
            self.lines[display_id] = {"parent": None, "intact": False, "pending": False}

    def forget(self, display_id: str) -> dict[str, Any] | None:
        with self.lock:
            return self.lines.pop(display_id, None)

    def seen(self, msg: Any) -> None:
        if not isinstance(msg, dict) or not self.lines:
            return
        kind = msg.get("header", {}).get("msg_type") or msg.get("msg_type")
        parent = (msg.get("parent_header") or {}).get("msg_id")
        content = msg.get("content") or {}
        with self.lock:
            if kind == "display_data":
                shown = str((content.get("transient") or {}).get("display_id"))
                line = self.lines.get(shown)
                if line is not None and line["parent"] is None:
                    line.update(parent=parent, intact=True, pending=False)
                    return
            for line in self.lines.values():
                if line["parent"] is None or line["parent"] != parent:
                    continue
                if kind == "clear_output":
                    if content.get("wait"):
                        line["pending"] = True
                    else:
                        line.update(intact=False, pending=False)
                elif kind in self._OUTPUTS and line["pending"]:
                    line.update(intact=False, pending=False)


class CellLine:
    """The ⚡ line of one measured cell: one display, with a display id.

    In ipykernel it is shown when the cell's window opens ("measuring…") and updated in
    place when it closes, so the cell's own outputs, and output that its threads print
    later, all come after it, and a ``clear_output(wait=True)`` at the end of the cell is
    not triggered by it. If the cell cleared it, a new one is shown at the end.
    """

    def __init__(self, tracker: OutputTracker | None, task: str,
                 note: dict[str, Any] | None = None) -> None:
        self.tracker = tracker
        self.task = task
        self.note = note
        self.id = f"energykernel-{uuid.uuid4().hex}"
        self.begun = False

    def begin(self) -> None:
        """Show the "measuring…" line (ipykernel only)."""
        if self.tracker is None or self.begun:
            return
        from IPython.display import display

        self.tracker.watch(self.id)
        data, metadata = placeholder(self.task, self.note)
        display(data, raw=True, metadata=metadata, display_id=self.id)
        self.begun = True

    def end(self, m: Measurement) -> None:
        """Show the final line: in place of the placeholder where it is still shown."""
        if not self.begun or self.tracker is None:
            show(m, self.id, self.note)
            return
        from IPython.display import update_display

        for stream in (sys.stdout, sys.stderr):  # what the cell printed reaches the tracker
            with contextlib.suppress(Exception):
                stream.flush()
        state = self.tracker.forget(self.id)
        if state is not None and state["parent"] is not None and not state["intact"] \
                and not state["pending"]:
            show(m, self.id, self.note)  # the cell cleared its output: a new line
            return
        data, metadata = bundle(m)  # shown (or captured): update it in place
        if self.note:
            metadata[METADATA_KEY].update(self.note)
        update_display(data, raw=True, metadata=metadata, display_id=self.id)

    def cancel(self) -> None:
        """The cell is not measured after all (an unrecognised marker, a quiet cell)."""
        if self.tracker is not None:
            self.tracker.forget(self.id)
        if self.begun:
            from IPython.display import update_display

            update_display({"text/plain": ""}, raw=True, display_id=self.id)
