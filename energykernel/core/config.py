"""Process-wide settings: environment variables first, ``configure()`` on top."""

from __future__ import annotations

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
    if not value > 0:
        raise ValueError(f"{name}={raw!r} must be > 0")
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


_settings: Settings | None = None


def settings() -> Settings:
    """The settings in force (read from the environment on first use)."""
    global _settings
    if _settings is None:
        _settings = Settings()
    return _settings


def update(**changes: Any) -> tuple[Settings, Settings]:
    """Validate and apply ``changes``; return (old, new)."""
    from ..counters import KNOWN_BACKENDS

    old = settings()
    known = {f.name for f in fields(Settings)}
    for key, value in changes.items():
        if key not in known:
            raise TypeError(f"configure() got an unknown setting {key!r}; known: {sorted(known)}")
        if key == "backends" and value is not None:
            if isinstance(value, str):
                value = tuple(v.strip() for v in value.split(",") if v.strip())
            value = tuple(str(v).lower() for v in value)
            unknown = [v for v in value if v not in KNOWN_BACKENDS]
            if unknown:
                raise ValueError(
                    f"configure(backends=...): unknown backend {unknown[0]!r}; "
                    f"known: {', '.join(KNOWN_BACKENDS)}"
                )
            if not value:
                raise ValueError("configure(backends=...): give at least one backend")
            changes[key] = value
        elif key in ("sample_interval_s", "cpu_tdp_w") and value is not None:
            number = float(value)
            if not number > 0 or number == float("inf"):
                raise ValueError(f"configure({key}={value!r}): must be a finite number > 0")
            changes[key] = number
        elif key == "log_dir" and value is not None:
            changes[key] = Path(value).expanduser()
        elif key == "read_detail" and not isinstance(value, bool):
            raise ValueError(f"configure(read_detail={value!r}): must be True or False")
        elif key == "instance" and (not isinstance(value, str) or not value):
            raise ValueError(f"configure(instance={value!r}): must be a non-empty string")
    global _settings
    _settings = replace(old, **changes)
    return old, _settings


def reset_settings() -> None:
    """Forget ``configure()`` changes; re-read the environment on next use."""
    global _settings
    _settings = None
