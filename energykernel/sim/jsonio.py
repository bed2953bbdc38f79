"""Instances and tasks JSON files (README, "What-if tools"), with errors naming file, entry and field.

Instances: ``{"instances": [{"name", "speed", "idle_power_w", "pue", "intensity_g_per_kwh",
"resources": {"cpu": {"capacity", "cost"}, ...}}]}``; only ``name`` and ``resources`` are
required. Tasks: ``{"tasks": [{"name", "duration_s", "demand": {...}}]}``; ``demand`` may be
omitted. Unknown fields are rejected (a typo must not be silently ignored).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..core._atomic import write_text_atomic
from .model import ComputeInstance, SimulationInputError, Task

INSTANCE_FIELDS = ("name", "speed", "idle_power_w", "pue", "intensity_g_per_kwh", "resources")
TASK_FIELDS = ("name", "duration_s", "demand")


def _read(path: str | os.PathLike, key: str) -> list[Any]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SimulationInputError(f"{p}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SimulationInputError(f"{p}: cannot read ({exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SimulationInputError(
            f"{p}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    if not isinstance(data, dict) or key not in data:
        raise SimulationInputError(f"{p}: expected an object with a {key!r} list")
    entries = data[key]
    if not isinstance(entries, list):
        raise SimulationInputError(f"{p}: field {key!r} must be a list")
    return entries


def _entry_label(path: str | os.PathLike, key: str, k: int, entry: Any) -> str:
    name = entry.get("name") if isinstance(entry, dict) else None
    return f"{Path(path)}: {key}[{k}]" + (f" ({name!r})" if isinstance(name, str) else "")


def _build(path, key: str, k: int, entry: Any, fields: Sequence[str], required: Sequence[str],
           make) -> Any:
    label = _entry_label(path, key, k, entry)
    if not isinstance(entry, dict):
        raise SimulationInputError(f"{label}: entry must be an object, got {entry!r}")
    for f in entry:
        if f not in fields:
            raise SimulationInputError(
                f"{label}: field {f!r}: unknown field (expected {', '.join(fields)})")
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


def _instance(entry: dict) -> ComputeInstance:
    kwargs = {k: v for k, v in entry.items() if k != "intensity_g_per_kwh" or v is not None}
    if not isinstance(kwargs.get("resources"), dict):
        raise SimulationInputError(f"resources: must be an object, got {kwargs.get('resources')!r}")
    return ComputeInstance(**kwargs)


def _task(entry: dict) -> Task:
    if "demand" in entry and not isinstance(entry["demand"], dict):
        raise SimulationInputError(f"demand: must be an object, got {entry['demand']!r}")
    return Task(**entry)


def load_instances(path: str | os.PathLike) -> list[ComputeInstance]:
    """Validated instances from a JSON file; duplicate names are an error."""
    out = _load_named(path, "instances", INSTANCE_FIELDS, ("name", "resources"), _instance)
    if not out:
        raise SimulationInputError(f"{Path(path)}: 'instances' is empty")
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


def save_tasks(tasks: Sequence[Task], path: str | os.PathLike) -> None:
    """Write tasks as a tasks JSON file (atomically)."""
    _write({"tasks": [t.to_dict() for t in tasks]}, path)
