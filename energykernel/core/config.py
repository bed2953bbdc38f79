"""Process-wide settings: environment variables first, ``configure()`` on top."""

from __future__ import annotations

import math
import os
import socket
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

ENV_BACKENDS = "ENERGYKERNEL_BACKENDS"
ENV_LOG_DIR = "ENERGYKERNEL_LOG_DIR"
ENV_INSTANCE = "ENERGYKERNEL_INSTANCE"
ENV_POWERCAP_ROOT = "ENERGYKERNEL_POWERCAP_ROOT"
ENV_SAMPLE_INTERVAL = "ENERGYKERNEL_SAMPLE_INTERVAL_S"
ENV_REGION = "ENERGYKERNEL_REGION"
ENV_READ_DETAIL = "ENERGYKERNEL_READ_DETAIL"


def _env_backends() -> tuple[str, ...] | None:
    raw = os.environ.get(ENV_BACKENDS, "").strip()
    if not raw:
        return None
    return tuple(name.strip().lower() for name in raw.split(",") if name.strip())


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name}={raw!r} must be a finite number > 0")
    return value


def _env_bool(name: str) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"{name}={raw!r}: use 1/0, true/false, yes/no or on/off")


def default_log_dir() -> Path:
    """``ENERGYKERNEL_LOG_DIR``, else the per-user data directory."""
    raw = os.environ.get(ENV_LOG_DIR)
    if raw:
        return Path(raw).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("energykernel", appauthor=False)) / "logs"


@dataclass(frozen=True)
class Settings:
    """What ``ek.configure`` can change. ``None`` means "decide from the machine"."""

    backends: tuple[str, ...] | None = field(default_factory=_env_backends)
    sample_interval_s: float = field(default_factory=lambda: _env_float(ENV_SAMPLE_INTERVAL, 1.0))
    cpu_tdp_w: float | None = None
    region: str | None = field(default_factory=lambda: os.environ.get(ENV_REGION) or None)
    instance: str = field(
        default_factory=lambda: os.environ.get(ENV_INSTANCE) or socket.gethostname()
    )
    log_dir: Path = field(default_factory=default_log_dir)
    #: Read detail-only devices (RAPL psys, core, uncore, MMIO copies) at every window's
    #: start and end, so each run has them in ``device_energy_j``. Off by default: they
    #: count toward no component, and reading them would slow every measured block.
    read_detail: bool = field(default_factory=lambda: _env_bool(ENV_READ_DETAIL))

    def __post_init__(self) -> None:
        from .record import label_problem

        problem = label_problem(self.instance)
        if problem is not None:
            raise ValueError(f"{ENV_INSTANCE}={self.instance[:60]!r}: the instance label "
                             f"{problem}")


_settings: Settings | None = None


def settings() -> Settings:
    """The settings in force (read from the environment on first use)."""
    global _settings
    if _settings is None:
        _settings = Settings()
    return _settings


def update(**changes: Any) -> tuple[Settings, Settings]:
    """Validate and apply ``changes``; return (old, new)."""

    old = settings()
    known = {f.name for f in fields(Settings)}
    for key, value in changes.items():
        if key not in known:
            raise TypeError(f"configure() got an unknown setting {key!r}; known: {sorted(known)}")
        changes[key] = _checked(key, value)
    global _settings
    _settings = replace(old, **changes)
    return old, _settings


def _checked(key: str, value: Any) -> Any:
    """``value`` as setting ``key`` holds it, or an error naming the setting and value."""
    from ..counters import KNOWN_BACKENDS
    from .record import check_label

    where = f"configure({key}={value!r})"
    if key == "backends":
        if value is None:
            return None
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise TypeError(f"{where}: give backend names, e.g. 'rapl,estimate' or "
                            "['rapl', 'estimate']")
        names = tuple(v.lower() for v in value)
        unknown = [v for v in names if v not in KNOWN_BACKENDS]
        if unknown:
            raise ValueError(f"configure(backends=...): unknown backend {unknown[0]!r}; "
                             f"known: {', '.join(KNOWN_BACKENDS)}")
        if not names:
            raise ValueError("configure(backends=...): give at least one backend")
        return names
    if key in ("sample_interval_s", "cpu_tdp_w"):
        if value is None and key == "cpu_tdp_w":
            return None  # decide from the processor
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{where}: must be a number")
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(f"{where}: must be a finite number > 0")
        return float(value)
    if key == "log_dir":
        if not isinstance(value, (str, os.PathLike)) or not str(value):
            raise TypeError(f"{where}: must be a directory path")
        return Path(value).expanduser()
    if key == "read_detail":
        if not isinstance(value, bool):
            raise TypeError(f"{where}: must be True or False")
        return value
    if key == "instance":
        return check_label(value, "configure(instance)")
    if key == "region":
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise TypeError(f"{where}: must be a region code such as 'FR', or None")
        return value
    return value


def reset_settings() -> None:
    """Forget ``configure()`` changes; re-read the environment on next use."""
    global _settings
    _settings = None
