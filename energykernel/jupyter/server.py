"""A jupyter_server extension: the machine's live power for JupyterLab's status bar.

``GET {base_url}energykernel/power`` (authenticated like every server API) answers
``{"power_w", "components_w", "method", "label", "interval_s", "time_s"}``: the mean power
per component since the previous reading, read through the same backends as a measured
cell (``ENERGYKERNEL_BACKENDS`` applies), with each component's method; ``label`` is
``"estimate"`` when any component is estimated. A kernel cannot answer while a cell runs,
the server can. Readings closer together than ``MIN_INTERVAL_S`` return the last figure,
so many open pages cost one counter read per interval.

Enabled by ``etc/jupyter/jupyter_server_config.d/energykernel.json``, which the wheel
installs (``jpserver_extensions``).
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

#: Readings closer together than this return the previous figure.
MIN_INTERVAL_S = 0.5

ROUTE = "energykernel/power"


class Meter:
    """Power from two successive cumulative readings of the selected backends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._engine: Any = None
        self._last: tuple[float, dict[str, float]] | None = None
        self._figure: dict[str, Any] | None = None
        self._error: str | None = None

    def _open(self) -> Any:
        if self._engine is None and self._error is None:
            from ..core.config import settings
            from ..core.engine import Engine

            try:
                self._engine = Engine(settings().backends)
            except Exception as exc:  # the status bar says why, the server keeps running
                self._error = f"energykernel could not open its backends: {exc}"
        return self._engine

    def power(self) -> dict[str, Any]:
        """The latest figure (``power_w`` None, with ``reason``, until two readings)."""
        with self._lock:
            engine = self._open()
            if engine is None:
                return {"power_w": None, "reason": self._error, "components_w": {},
                        "method": {}, "label": ""}
            now_t = time.monotonic()
            if self._last is not None and now_t - self._last[0] < MIN_INTERVAL_S \
                    and self._figure is not None:
                return self._figure
            from ..core.accounting import device_delta

            now = engine.read(detail=False)
            if self._last is None:
                self._last = (now_t, now)
                time.sleep(0.05)  # a first figure at once: a short first interval
                now_t, now = time.monotonic(), engine.read(detail=False)
            last_t, last = self._last
            dt = now_t - last_t
            energy = engine.component_energy(device_delta(last, now), engine.components)
            watts = {c: e / dt for c, e in energy.items()} if dt > 0 else {}
            methods = {c: engine.component_method[c] for c in watts}
            self._last = (now_t, now)
            self._figure = {
                "power_w": sum(watts.values()) if watts else None,
                "components_w": watts,
                "method": methods,
                "label": "estimate" if "estimate" in methods.values()
                         else "+".join(sorted(set(methods.values()))),
                "interval_s": dt,
                "time_s": time.time(),
            }
            if not watts:
                self._figure["reason"] = "no backend measures any component here"
            return self._figure


def _handler_class() -> Any:
    import tornado.web
    from jupyter_server.base.handlers import APIHandler

    class PowerHandler(APIHandler):
        """``GET``: the machine's power now (see the module)."""

        meter: Meter

        @tornado.web.authenticated
        def get(self) -> None:
            self.set_header("Cache-Control", "no-store")
            self.finish(json.dumps(self.meter.power()))

    return PowerHandler


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "energykernel.jupyter.server"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    from jupyter_server.utils import url_path_join

    handler = _handler_class()
    handler.meter = Meter()
    web_app = serverapp.web_app
    route = url_path_join(web_app.settings["base_url"], ROUTE)
    web_app.add_handlers(".*$", [(route, handler)])
    serverapp.log.info("energykernel: live power at %s", route)
