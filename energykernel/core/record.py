"""The run record: one finished window, as logged, kept in memory and saved.

:class:`RunRecord` is the one shape every producer builds (``measure``, the Dask cluster
window, PyTorch layer attribution, the simulator) and every consumer reads (the recorder's
log, the Datasets, the report). It is a plain ``dict`` at run time, so recording costs no
more than building the dict and writing one JSON line; its keys are typed here.
:class:`Measurement` is the frozen, documented view users get back.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, TypedDict

from .units import COMPONENTS, duration, si

#: Run statuses: finished, raised an Exception, or stopped by KeyboardInterrupt/exit.
STATUSES: tuple[str, ...] = ("ok", "error", "interrupted")

#: Fields every record has (the log and the Datasets rely on them).
CORE_FIELDS: tuple[str, ...] = ("id", "task", "instance", "start_s", "end_s", "duration_s",
                                "energy_j", "method", "device_energy_j", "status", "scope",
                                "pid", "parent_id")


class _RunCore(TypedDict):
    id: str  # unique (uuid4 hex, or "sim-<n>")
    task: str
    instance: str
    start_s: float  # Unix time, UTC
    end_s: float
    duration_s: float  # monotonic-clock duration
    energy_j: dict[str, float]  # component → J
    method: dict[str, str]  # component → rapl | pyrapl | nvml | estimate | simulated
    device_energy_j: dict[str, float]  # device (cpu:package-0, gpu:0, …) → J
    status: str  # one of STATUSES
    scope: str  # machine | process
    pid: int  # process that measured
    parent_id: str  # id of the enclosing window, "" for a top-level run


class RunRecord(_RunCore, total=False):
    """One run. Optional keys: ``error`` (text of the exception), ``cpu_share`` (the
    process-tree share of busy CPU time, ``scope="process"``), and ``extra``: fields an
    integration adds (Dask ``workers``/``coverage``/``partial``/``note``, PyTorch
    ``attribution``/``meta``, …), JSON values that survive the log, ``ek.runs()``,
    ``ek.save`` and ``ek.load`` unchanged."""

    error: str
    cpu_share: float
    extra: dict[str, Any]


def exit_status(exc: BaseException | None) -> tuple[str, str | None]:
    """(status, error) of a run that ended with ``exc``: ``ok``, ``error`` for an
    Exception, ``interrupted`` for KeyboardInterrupt and other BaseExceptions."""
    if exc is None:
        return "ok", None
    if isinstance(exc, Exception):
        return "error", f"{type(exc).__name__}: {exc}"[:500]
    return "interrupted", type(exc).__name__


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


class Measurement:
    """The result of one measured window (one run); a read-only view of its record.

    Attributes: ``task``, ``instance``, ``start``/``end`` (UTC datetimes), ``duration_s``,
    ``energy_j`` and ``method`` (dicts keyed by component), ``total_j``, ``status``
    (``"ok"``, ``"error"``, ``"interrupted"``), ``device_energy_j``, ``scope``, ``id``,
    ``parent_id`` (the enclosing window's ``id``, or ``""``), ``error``, ``extra``
    (integration fields). Every dict returned is a copy.
    """

    __slots__ = ("_record",)
    _record: RunRecord

    def __init__(self, record: RunRecord) -> None:
        object.__setattr__(self, "_record", record)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Measurement is read-only (cannot set {name!r})")

    task = property(lambda self: self._record["task"], doc="Run label.")
    instance = property(lambda self: self._record["instance"], doc="Machine label.")
    duration_s = property(lambda self: self._record["duration_s"], doc="Duration in s.")
    energy_j = property(lambda self: dict(self._record["energy_j"]), doc="Component → J.")
    method = property(lambda self: dict(self._record["method"]), doc="Component → method.")
    device_energy_j = property(lambda self: dict(self._record["device_energy_j"]),
                               doc="Device → J (detail devices included).")
    status = property(lambda self: self._record["status"], doc="ok, error or interrupted.")
    scope = property(lambda self: self._record["scope"], doc="machine or process.")
    id = property(lambda self: self._record["id"], doc="Unique run id.")
    parent_id = property(lambda self: self._record.get("parent_id", ""),
                         doc="Id of the enclosing window, '' at top level.")
    error = property(lambda self: self._record.get("error"), doc="The exception, if any.")
    extra = property(lambda self: dict(self._record.get("extra", {})),
                     doc="Fields an integration added (JSON values).")

    @property
    def start(self) -> datetime:
        """Start, a timezone-aware UTC datetime."""
        return _utc(self._record["start_s"])

    @property
    def end(self) -> datetime:
        """End, a timezone-aware UTC datetime."""
        return _utc(self._record["end_s"])

    @property
    def total_j(self) -> float:
        """Energy of every component, in J."""
        return float(sum(self._record["energy_j"].values()))

    @property
    def estimated(self) -> bool:
        """True if any component's figure is an estimate rather than a counter reading."""
        return "estimate" in self._record["method"].values()

    def to_dict(self) -> RunRecord:
        """A copy of the record (nested dicts copied too)."""
        import copy

        return copy.deepcopy(self._record)

    def summary(self, emissions_g: float | None = None) -> str:
        """One line: ``⚡ train: 12.3 J in 1.20 s — cpu 10.1 J (rapl) · ram 2.2 J (estimate)``."""
        parts = [f"{comp} {si(self.energy_j[comp], 'J')} ({self.method[comp]})"
                 for comp in COMPONENTS if comp in self._record["energy_j"]]
        line = f"⚡ {self.task}: {si(self.total_j, 'J')} in {duration(self.duration_s)}"
        if parts:
            line += " — " + " · ".join(parts)
        if emissions_g is not None:
            line += f" — {si(emissions_g, 'gCO2e')}"
        if self.status != "ok":
            line += f" [{self.status}]"
        return line

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Measurement) and other._record["id"] == self._record["id"]

    def __hash__(self) -> int:
        return hash(self._record["id"])

    def __repr__(self) -> str:
        parts = ", ".join(f"{c}={e:.3g} J ({self.method[c]})" for c, e in self.energy_j.items())
        return (f"<Measurement task={self.task!r} instance={self.instance!r} "
                f"{self.total_j:.3g} J in {self.duration_s:.3g} s [{parts}] {self.status}>")


_DEFAULTS: dict[str, Any] = {"method": {}, "device_energy_j": {}, "status": "ok",
                             "scope": "machine", "pid": 0, "parent_id": ""}
_OPTIONAL = ("error", "cpu_share", "extra")


def record_from_dict(obj: dict[str, Any], where: str) -> RunRecord:
    """A :class:`RunRecord` from a dict read back (a log line, a saved file).

    Missing optional core fields get their defaults (logs written before they existed);
    keys this version does not know move into ``extra`` so nothing is dropped. A missing
    or mistyped required field is a ``ValueError`` naming ``where`` and the field.
    """
    for key in ("id", "task", "instance"):
        if not isinstance(obj.get(key), str):
            raise ValueError(f"{where}: run entry field {key!r} is missing or not a string")
    for key in ("start_s", "end_s"):
        if not isinstance(obj.get(key), (int, float)) or isinstance(obj.get(key), bool):
            raise ValueError(f"{where}: run entry field {key!r} is missing or not a number")
    if not isinstance(obj.get("energy_j"), dict):
        raise ValueError(f"{where}: run entry field 'energy_j' is missing or not an object")
    record: dict[str, Any] = {k: obj[k] for k in CORE_FIELDS if k in obj}
    record.setdefault("duration_s", float(obj["end_s"]) - float(obj["start_s"]))
    for key, default in _DEFAULTS.items():
        record.setdefault(key, type(default)(default) if isinstance(default, dict) else default)
    for key, value in record["energy_j"].items():
        if key not in COMPONENTS or not isinstance(value, (int, float)):
            raise ValueError(f"{where}: run entry field 'energy_j' has a bad entry {key!r}")
    extra = dict(obj.get("extra") or {})
    for key, value in obj.items():
        if key in _OPTIONAL:
            if key != "extra":
                record[key] = value
        elif key not in CORE_FIELDS and key != "kind":
            extra[key] = value
    if extra:
        record["extra"] = extra
    return record  # type: ignore[return-value]
