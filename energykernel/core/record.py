"""The run record: one finished window, as logged, kept in memory and saved.

:class:`RunRecord` is the one shape every producer builds (``measure``, the Dask cluster
window, PyTorch layer attribution, the simulator) and every consumer reads (the recorder's
log, the Datasets, the report). It is a plain ``dict`` at run time, so recording costs no
more than building the dict and writing one JSON line; its keys are typed here.
:class:`Measurement` is the frozen, documented view users get back.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, TypedDict

from .units import COMPONENTS, duration, si, si_interval

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
    process-tree share of busy CPU time, ``scope="process"``), ``gpu_share`` and
    ``gpu_share_basis`` (the tree's share of the GPUs' energy and how it was obtained,
    ``scope="process"`` with NVML), ``energy_bounds_j``
    (component → ``[lo, hi]`` in J, where the true energy lies), ``idle_power_w`` and
    ``active_energy_j`` (where an idle power was known), and ``extra``: fields an
    integration adds (Dask ``workers``/``coverage``/``partial``/``note``, PyTorch
    ``attribution``/``meta``, …), JSON values that survive the log, ``ek.runs()``,
    ``ek.save`` and ``ek.load`` unchanged."""

    error: str
    cpu_share: float
    gpu_share: float
    gpu_share_basis: str  # comma list of accounting.GPU_SHARE_BASES (+ "unavailable")
    extra: dict[str, Any]
    energy_bounds_j: dict[str, list[float]]  # component → [lo, hi] J
    idle_power_w: dict[str, float]  # component → idle W known when the run ended
    active_energy_j: dict[str, float]  # component → energy − idle × duration, ≥ 0


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
    def energy_bounds_j(self) -> dict[str, tuple[float, float]]:
        """Component → ``(lo, hi)`` in J: where the true energy lies, from the counter's
        resolution and update period or the estimate's tick and model spread
        (``(nan, nan)`` for a run recorded without bounds)."""
        known = self._record.get("energy_bounds_j", {})
        nan = float("nan")
        return {c: (tuple(known[c]) if c in known else (nan, nan))  # type: ignore[misc]
                for c in self._record["energy_j"]}

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
    def active_energy_j(self) -> dict[str, float]:
        """Component → energy less idle power × duration (J, ≥ 0), where idle power was
        known when the run ended (see ``ek.idle_power()``)."""
        return dict(self._record.get("active_energy_j", {}))

    @property
    def total_bounds_j(self) -> tuple[float, float]:
        """``(lo, hi)`` of :attr:`total_j` in J (sums of the components' bounds)."""
        bounds = self.energy_bounds_j.values()
        return (float(sum(b[0] for b in bounds)), float(sum(b[1] for b in bounds)))

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
        bounds = self.energy_bounds_j
        parts = [f"{comp} {si_interval(self.energy_j[comp], *bounds[comp], 'J')} "
                 f"({self.method[comp]})"
                 for comp in COMPONENTS if comp in self._record["energy_j"]]
        lo, hi = self.total_bounds_j
        line = f"⚡ {self.task}: {si_interval(self.total_j, lo, hi, 'J')}"
        active = self._record.get("active_energy_j")
        if active:
            line += f" (active {si(sum(active.values()), 'J')})"
        line += f" in {duration(self.duration_s)}"
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
        parts = ", ".join(f"{c}={si(e, 'J')} ({self.method[c]})" for c, e in self.energy_j.items())
        return (f"<Measurement task={self.task!r} instance={self.instance!r} "
                f"{si(self.total_j, 'J')} in {duration(self.duration_s)} [{parts}] "
                f"{self.status}>")


#: Longest task or instance label accepted (characters); figures and tables shorten more.
MAX_LABEL_CHARS = 4096
_CONTROL = {chr(c) for c in range(32)} | {"\x7f"}
_SCOPES = ("machine", "process")
_OPTIONAL = ("kind", "error", "cpu_share", "gpu_share", "gpu_share_basis", "extra",
             "energy_bounds_j", "idle_power_w", "active_energy_j")
_DEFAULTS: dict[str, Any] = {"method": {}, "device_energy_j": {}, "status": "ok",
                             "scope": "machine", "pid": 0, "parent_id": ""}


def label_problem(value: object, *, empty_ok: bool = False) -> str | None:
    """Why ``value`` is not a usable label (task, instance, id), or None if it is.

    A label is a string of at most :data:`MAX_LABEL_CHARS` characters, without control
    characters (NUL, newlines, …) and encodable as UTF-8 (no lone surrogates), so that
    every log, NetCDF file, figure and table can hold it.
    """
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    if not value and not empty_ok:
        return "must be a non-empty string"
    if len(value) > MAX_LABEL_CHARS:
        return f"is {len(value):,} characters long (at most {MAX_LABEL_CHARS:,})"
    if not _CONTROL.isdisjoint(value):
        return "contains a control character (NUL, newline, tab, …)"
    if _unencodable(value):
        return "contains a lone surrogate (not encodable as UTF-8)"
    return None


def check_label(value: object, name: str) -> str:
    """``value`` if it is a usable label, else a ``ValueError`` naming ``name``."""
    problem = label_problem(value)
    if problem is not None:
        shown = repr(value) if not isinstance(value, str) or len(value) <= 60 else (
            repr(value[:40]) + "…")
        raise ValueError(f"{name}={shown}: {problem}")
    return value  # type: ignore[return-value]


def _number(value: object) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and abs(value) < 1e300)


def _joules(obj: object, field: str, where: str, keys: Callable[[str], bool]) -> dict[str, float]:
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: field {field!r} must be an object, not {type(obj).__name__}")
    out = {}
    for key, value in obj.items():
        if not keys(key) or label_problem(key) is not None:
            raise ValueError(f"{where}: field {field!r} has an unknown key {str(key)[:40]!r}")
        if not _number(value) or value < 0:
            raise ValueError(f"{where}: field {field!r}[{key!r}] must be a finite number ≥ 0, "
                             f"not {str(value)[:40]!r}")
        out[key] = float(value)
    return out


def record_from_dict(obj: dict[str, Any], where: str) -> RunRecord:
    """A valid :class:`RunRecord` from a dict read back (a log line, a saved file).

    Every field is checked, so a damaged or foreign entry can never poison the record
    of the process: a wrong type, an unknown component, a non-finite number or a label no
    file can hold is a ``ValueError`` naming ``where`` and the field. Optional core fields
    that are missing get their defaults (logs written before they existed); keys this
    version does not know move into ``extra``, so nothing is dropped.
    """
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: a run entry must be an object")
    for key in ("id", "task", "instance"):
        problem = label_problem(obj.get(key)) if key in obj else "is missing"
        if problem is not None:
            raise ValueError(f"{where}: field {key!r} {problem}")
    for key in ("start_s", "end_s"):
        if not _number(obj.get(key)):
            raise ValueError(f"{where}: field {key!r} is missing or not a finite number")
    start_s, end_s = float(obj["start_s"]), float(obj["end_s"])
    duration_s = obj.get("duration_s", max(0.0, end_s - start_s))
    if not _number(duration_s) or duration_s < 0:
        raise ValueError(f"{where}: field 'duration_s' must be a finite number ≥ 0")
    energy = _joules(obj.get("energy_j"), "energy_j", where, COMPONENTS.__contains__)
    device = _joules(obj.get("device_energy_j", {}), "device_energy_j", where, lambda k: True)
    method = obj.get("method", {})
    if not isinstance(method, dict) or not all(
            k in COMPONENTS and isinstance(v, str) and label_problem(v, empty_ok=True) is None
            for k, v in method.items()):
        raise ValueError(f"{where}: field 'method' must map components to method names")
    status = obj.get("status", "ok")
    if status not in STATUSES:
        raise ValueError(f"{where}: field 'status' must be one of {STATUSES}, not "
                         f"{str(status)[:40]!r}")
    scope = obj.get("scope", "machine")
    if scope not in _SCOPES:
        raise ValueError(f"{where}: field 'scope' must be one of {_SCOPES}")
    pid = obj.get("pid", 0)
    if not isinstance(pid, int) or isinstance(pid, bool) or not 0 <= pid < 2**31:
        raise ValueError(f"{where}: field 'pid' must be a process id")
    parent = obj.get("parent_id", "")
    if label_problem(parent, empty_ok=True) is not None:
        raise ValueError(f"{where}: field 'parent_id' {label_problem(parent, empty_ok=True)}")
    record: dict[str, Any] = {
        "id": obj["id"], "task": obj["task"], "instance": obj["instance"],
        "start_s": start_s, "end_s": end_s, "duration_s": float(duration_s),
        "energy_j": energy, "method": dict(method), "device_energy_j": device,
        "status": status, "scope": scope, "pid": pid, "parent_id": parent,
    }
    if obj.get("error") is not None:
        error = obj["error"]
        if not isinstance(error, str) or _unencodable(error):
            raise ValueError(f"{where}: field 'error' must be UTF-8 text")
        record["error"] = error[:2000]
    for key in ("cpu_share", "gpu_share"):
        if obj.get(key) is not None:
            share = obj[key]
            if not _number(share) or not 0 <= share <= 1:
                raise ValueError(f"{where}: field {key!r} must be a number in [0, 1]")
            record[key] = float(share)
    if obj.get("gpu_share_basis"):
        basis = obj["gpu_share_basis"]
        if not isinstance(basis, str) or label_problem(basis) is not None or len(basis) > 200:
            raise ValueError(f"{where}: field 'gpu_share_basis' must be a short label")
        record["gpu_share_basis"] = basis
    if obj.get("energy_bounds_j") is not None:
        record["energy_bounds_j"] = _bounds(obj["energy_bounds_j"], energy, where)
    for key in ("idle_power_w", "active_energy_j"):
        if obj.get(key) is not None:
            record[key] = _joules(obj[key], key, where, energy.__contains__)
    extra = obj.get("extra") or {}
    if not isinstance(extra, dict):
        raise ValueError(f"{where}: field 'extra' must be an object")
    extra = dict(extra)
    for key, value in obj.items():
        if key not in CORE_FIELDS and key not in _OPTIONAL:
            extra[key] = value  # a field of another version: kept, not dropped
    if extra:
        import orjson  # (imported here: it is not needed to import energykernel)

        try:  # JSON values only, UTF-8 encodable, not absurdly nested
            orjson.dumps(extra)
        except (TypeError, orjson.JSONEncodeError) as exc:
            raise ValueError(f"{where}: field 'extra' is not storable ({exc})") from None
        record["extra"] = extra
    return record  # type: ignore[return-value]


def _unencodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _bounds(obj: object, energy: dict[str, float], where: str) -> dict[str, list[float]]:
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: field 'energy_bounds_j' must be an object")
    out = {}
    for comp, pair in obj.items():
        if (comp not in energy or not isinstance(pair, (list, tuple)) or len(pair) != 2
                or not all(_number(v) and v >= 0 for v in pair) or pair[0] > pair[1]):
            raise ValueError(f"{where}: field 'energy_bounds_j'[{str(comp)[:40]!r}] must be "
                             "[lo, hi] with 0 ≤ lo ≤ hi for a measured component")
        out[comp] = [float(pair[0]), float(pair[1])]
    return out
