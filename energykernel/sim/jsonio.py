"""Instances and tasks JSON files (README, "What-if tools"), with errors naming file, entry and field.

Instances: ``{"instances": [{"name", "speed", "idle_power_w", "pue", "intensity_g_per_kwh",
"resources": {"cpu": {"capacity", "cost"}, ...}}]}``; only ``name`` and ``resources`` are
required. Tasks: ``{"tasks": [{"name", "duration_s", "demand": {...}, "after": [...]}]}``;
``demand`` and ``after`` (names of tasks that must end first) may be omitted; a name in
``after`` that no entry has, or a cycle, names the file, the entry and the field (raised by
:meth:`.Workflow.from_json`, which checks the file's tasks as one workflow). Unknown fields
are rejected (a typo must not be silently ignored), and so is a key given twice in one
object (JSON parsers keep the last silently), at any level. Numbers must
lie within the field bounds of :func:`.model._number` (finite, at most 1e15): one beyond the
float range (``1e400``, a 5000-digit integer) is out of range like any other, never a
traceback; nesting too deep for the parser is an error naming the file.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..core._atomic import write_text_atomic
from ..core.units import short_label, short_repr
from .errors import read_input_text
from .model import ComputeInstance, SimulationInputError, Task

INSTANCE_FIELDS = ("name", "speed", "idle_power_w", "pue", "intensity_g_per_kwh", "resources",
                   "intensity_profile")
TASK_FIELDS = ("name", "duration_s", "demand", "after", "energy_band")
#: Top-level fields besides the list: instances' default profile; the workflow's window.
INSTANCES_TOP = ("instances", "intensity_profile")
TASKS_TOP = ("tasks", "start_after_s", "deadline_s")


#: JSON integers with more characters than this are beyond the float range (max ~1.8e308):
#: they are never converted to ``int`` (Python's int-string limit raises deep inside json).
_MAX_INT_CHARS = 310


class _OutOfRange(float):
    """A JSON number beyond the float range (``1e400``, a 5000-digit integer).

    It is ±inf to the field checks, which reject it as out of range and name the field; its
    repr says what the file wrote (clipped).
    """

    text: str

    def __new__(cls, text: str) -> _OutOfRange:
        obj = super().__new__(cls, "-inf" if text.startswith("-") else "inf")
        obj.text = text
        return obj

    def __repr__(self) -> str:
        digits = self.text.lstrip("-")
        if digits.isdigit():
            return f"an integer of {len(digits)} digits"
        return short_label(self.text, 24)


def _parse_int(text: str) -> int | float:
    return int(text) if len(text) <= _MAX_INT_CHARS else _OutOfRange(text)


def _parse_float(text: str) -> float:
    x = float(text)
    return _OutOfRange(text) if math.isinf(x) else x


class _Object(dict):
    """A JSON object that gave some keys more than once (``duplicates``, in file order)."""

    duplicates: list[str]


def _object(pairs: list[tuple[str, Any]], marked_any: list[bool]) -> dict[str, Any]:
    """``object_pairs_hook``: a dict, marked when a key repeats (found after parsing, where
    the entry and field can be named); ``marked_any`` gets an entry when one is."""
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    marked_any.append(True)
    marked = _Object(obj)
    seen: set[str] = set()
    marked.duplicates = []
    for k, _ in pairs:
        if k in seen and k not in marked.duplicates:
            marked.duplicates.append(k)
        seen.add(k)
    return marked


def _first_duplicate(data: Any) -> tuple[tuple[str | int, ...], str] | None:
    """(path, key) of the first repeated key in file order, or None (iterative: no depth
    limit of its own)."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(data, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, _Object):
            return path, value.duplicates[0]
        children: list[tuple[str | int, Any]]
        if isinstance(value, dict):
            children = list(value.items())
        elif isinstance(value, list):
            children = list(enumerate(value))
        else:
            continue
        stack.extend(((v, (*path, k)) for k, v in reversed(children)))
    return None


def _dotted(parts: Sequence[str | int]) -> str:
    """``("resources", "cpu", "cost")`` → ``resources.cpu.cost``; list indices as ``[k]``."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _duplicate_error(p: Path, key: str, data: Any, path: tuple[str | int, ...],
                     dup: str) -> SimulationInputError:
    why = "duplicate key (a JSON object may give each key once)"
    if len(path) >= 2 and path[0] == key and isinstance(path[1], int):
        label = _entry_label(p, key, path[1], data[key][path[1]])
        return SimulationInputError(f"{label}: field {short_repr(_dotted([*path[2:], dup]))}: {why}")
    where = _dotted(path) if path else "the top-level object"
    return SimulationInputError(f"{p}: {where}: key {short_repr(dup)}: {why}")


def _read(path: str | os.PathLike, key: str) -> list[Any]:
    return _read_doc(path, key)[key]


def _read_doc(path: str | os.PathLike, key: str) -> dict[str, Any]:
    """The file's top-level object (with a list under ``key``), validated."""
    p, text = read_input_text(path)
    marked_any: list[bool] = []
    try:
        data = json.loads(text, object_pairs_hook=lambda pairs: _object(pairs, marked_any),
                          parse_int=_parse_int, parse_float=_parse_float)
    except json.JSONDecodeError as exc:
        raise SimulationInputError(
            f"{p}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except RecursionError:
        raise SimulationInputError(
            f"{p}: not a {key} file: arrays or objects nested too deeply") from None
    found = _first_duplicate(data) if marked_any else None
    if found is not None:
        raise _duplicate_error(p, key, data, *found)
    if not isinstance(data, dict) or key not in data:
        raise SimulationInputError(f"{p}: expected an object with a {key!r} list")
    entries = data[key]
    if not isinstance(entries, list):
        raise SimulationInputError(f"{p}: field {key!r} must be a list")
    allowed = INSTANCES_TOP if key == "instances" else TASKS_TOP
    for f in data:
        if f not in allowed:
            raise SimulationInputError(
                f"{p}: field {short_repr(f)}: unknown top-level field (expected "
                f"{', '.join(allowed)})")
    return data


def _entry_label(path: str | os.PathLike, key: str, k: int, entry: Any) -> str:
    name = entry.get("name") if isinstance(entry, dict) else None
    return f"{Path(path)}: {key}[{k}]" + (f" ({short_repr(name)})" if isinstance(name, str) else "")


def _build(path, key: str, k: int, entry: Any, fields: Sequence[str], required: Sequence[str],
           make) -> Any:
    label = _entry_label(path, key, k, entry)
    if not isinstance(entry, dict):
        raise SimulationInputError(f"{label}: entry must be an object, got {short_repr(entry)}")
    for f in entry:
        if f not in fields:
            raise SimulationInputError(
                f"{label}: field {short_repr(f)}: unknown field (expected {', '.join(fields)})")
    for f in required:
        if f not in entry:
            raise SimulationInputError(f"{label}: field {f!r}: missing")
    try:
        return make(entry)
    except SimulationInputError as exc:
        field_, _, msg = str(exc).partition(": ")
        raise SimulationInputError(f"{label}: field {field_!r}: {msg}") from None
    except TypeError as exc:  # pragma: no cover - defensive
        raise SimulationInputError(f"{label}: {exc}") from None


def _instance(entry: dict, base: Path | None = None, default: Any = None) -> ComputeInstance:
    from .model import _profile

    kwargs = {k: v for k, v in entry.items() if k != "intensity_g_per_kwh" or v is not None}
    if not isinstance(kwargs.get("resources"), dict):
        raise SimulationInputError(
            f"resources: must be an object, got {short_repr(kwargs.get('resources'))}")
    prof = kwargs.get("intensity_profile", default)
    if isinstance(prof, str):  # a file named relative to the instances file
        prof = _profile(prof, base)
    kwargs["intensity_profile"] = prof
    return ComputeInstance(**kwargs)


def _task(entry: dict) -> Task:
    if "demand" in entry and not isinstance(entry["demand"], dict):
        raise SimulationInputError(f"demand: must be an object, got {short_repr(entry['demand'])}")
    if "after" in entry and not isinstance(entry["after"], list):
        raise SimulationInputError(
            f"after: must be a list of task names, got {short_repr(entry['after'])}")
    if "energy_band" in entry and not isinstance(entry["energy_band"], list):
        raise SimulationInputError(
            f"energy_band: must be [lo, hi], got {short_repr(entry['energy_band'])}")
    return Task(**entry)


def load_instances(path: str | os.PathLike) -> list[ComputeInstance]:
    """Validated instances from a JSON file; duplicate names are an error."""
    from .model import _profile

    p = Path(path)
    default = _read_doc(p, "instances").get("intensity_profile")
    if default is not None:
        try:
            default = _profile(default, p.parent)
        except SimulationInputError as exc:
            raise SimulationInputError(f"{p}: field {exc}") from None
    out = _load_named(path, "instances", INSTANCE_FIELDS, ("name", "resources"),
                      lambda e: _instance(e, p.parent, default))
    if not out:
        raise SimulationInputError(f"{Path(path)}: 'instances' is empty")
    return out


def load_window(path: str | os.PathLike) -> dict[str, Any]:
    """The workflow window of a tasks file: ``start_after_s`` and ``deadline_s`` if given."""
    from .model import _number

    data = _read_doc(path, "tasks")
    out: dict[str, Any] = {}
    for f in ("start_after_s", "deadline_s"):
        if f in data:
            try:
                out[f] = _number(data[f], f, strict=f == "deadline_s")
            except SimulationInputError as exc:
                raise SimulationInputError(f"{Path(path)}: field {exc}") from None
    if out.get("deadline_s", math.inf) <= out.get("start_after_s", 0.0):
        raise SimulationInputError(f"{Path(path)}: field deadline_s: must be after start_after_s")
    return out


def load_tasks(path: str | os.PathLike) -> list[Task]:
    """Validated tasks from a JSON file, in file order; duplicate names are an error."""
    return _load_named(path, "tasks", TASK_FIELDS, ("name", "duration_s"), _task)


def _load_named(path: str | os.PathLike, key: str, fields: Any, required: tuple[str, ...],
                build: Any) -> list:
    """The entries of ``key`` built in file order; a repeated ``name`` names both entries."""
    out: list = []
    seen: dict[str, int] = {}
    for k, entry in enumerate(_read(path, key)):
        item = _build(path, key, k, entry, fields, required, build)
        if item.name in seen:
            raise SimulationInputError(
                f"{_entry_label(path, key, k, entry)}: field 'name': duplicate of "
                f"{key}[{seen[item.name]}]")
        seen[item.name] = k
        out.append(item)
    return out


def _write(obj: dict, path: str | os.PathLike) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2) + "\n")


def save_instances(instances: Sequence[ComputeInstance], path: str | os.PathLike) -> None:
    """Write instances as an instances JSON file (atomically)."""
    _write({"instances": [i.to_dict() for i in instances]}, path)


def save_tasks(tasks: Sequence[Task], path: str | os.PathLike,
               window: dict[str, float] | None = None) -> None:
    """Write tasks (and a workflow window) as a tasks JSON file (atomically)."""
    _write({"tasks": [t.to_dict() for t in tasks], **(window or {})}, path)
