"""The append-only record of finished runs: in memory, and a JSON-lines log on disk.

Each finished run is one JSON object on one line of this process's log, written and
flushed before ``measure`` returns, so a kernel that dies keeps every finished run.
One log per process: ``<log_dir>/<instance>-<pid>-<UTC start>.jsonl``.
"""

from __future__ import annotations

import json
import os
import threading
import time
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from .config import settings
from .record import RunRecord, record_from_dict

LOG_VERSION = 2  # 2: parent_id, pid and extra on every run
LOG_SUFFIX = ".jsonl"


class Recorder:
    """Runs recorded in this process (plus any loaded), and the process's log file."""

    def __init__(self) -> None:
        self._records: list[RunRecord] = []
        self._ids: set[str] = set()
        self._lock = threading.Lock()
        self._fd: int | None = None  # this process's log, opened for appending
        self._log_path: Path | None = None
        self._log_pid: int | None = None

    # -- writing ---------------------------------------------------------------------
    @property
    def log_path(self) -> Path | None:
        """This process's log file (None until the first run is recorded)."""
        return self._log_path if self._log_pid == os.getpid() else None

    def _open_log(self) -> int:
        log_dir = settings().log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        safe_instance = "".join(ch if ch.isalnum() or ch in "-_." else "_"
                                for ch in settings().instance)
        path = log_dir / f"{safe_instance}-{os.getpid()}-{stamp}{LOG_SUFFIX}"
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(path, flags, 0o666)  # the umask applies, as for a plain open()
        header = {"kind": "header", "version": LOG_VERSION, "pid": os.getpid(),
                  "instance": settings().instance, "created_s": time.time()}
        try:
            _write_all(fd, (json.dumps(header) + "\n").encode())
        except OSError:
            os.close(fd)
            raise
        self._fd, self._log_path, self._log_pid = fd, path, os.getpid()
        return fd

    def append(self, record: RunRecord) -> None:
        """Keep ``record`` in memory and append it to the log: the line is in the
        operating system's hands (``write``) before this returns."""
        line = _line(record)
        with self._lock:
            self._records.append(record)
            self._ids.add(record["id"])
            fd = self._fd  # (a forked child starts with None: see _after_fork_in_child)
            try:
                _write_all(fd if fd is not None else self._open_log(), line)
            except OSError as exc:
                warnings.warn(
                    f"energykernel: could not append to the run log {self._log_path}: {exc}; "
                    "this run is kept in memory only",
                    RuntimeWarning,
                    stacklevel=3,
                )

    def add_loaded(self, records: Iterable[RunRecord]) -> int:
        """Add runs read from elsewhere, each once (by id). Returns how many were new."""
        added = 0
        with self._lock:
            for record in records:
                if record["id"] in self._ids:
                    continue
                self._records.append(record)
                self._ids.add(record["id"])
                added += 1
        return added

    # -- reading ---------------------------------------------------------------------
    def records(self) -> list[RunRecord]:
        with self._lock:
            return list(self._records)

    def __len__(self) -> int:
        return len(self._records)

    def reset(self) -> None:
        """Forget runs in memory. The on-disk log is kept, and new runs go on being logged."""
        with self._lock:
            self._records.clear()
            self._ids.clear()

    def close(self) -> None:
        with self._lock:
            if self._fd is not None and self._log_pid == os.getpid():
                os.close(self._fd)
            self._fd = self._log_path = self._log_pid = None


def _jsonable(value: Any) -> Any:
    """What orjson cannot write itself: numpy scalars and arrays, sets."""
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def _line(record: RunRecord) -> bytes:
    """One log line of a run: ``{"kind":"run", …}\\n`` (orjson: ~1 µs, json: ~15 µs)."""
    try:
        body = orjson.dumps(record, default=_jsonable, option=orjson.OPT_SERIALIZE_NUMPY)
    except TypeError:
        body = json.dumps(record, separators=(",", ":"), default=str).encode()
    return b'{"kind":"run",' + body[1:] + b"\n"


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def read_log(path: str | os.PathLike) -> list[RunRecord]:
    """Runs from one JSON-lines log. A truncated last line (a crash mid-write) is skipped
    with a warning; any other bad line is an error naming the file and line."""
    path = Path(path)
    records: list[RunRecord] = []
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    last_nonempty = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            if number - 1 == last_nonempty:
                warnings.warn(f"{path}:{number}: skipping an unfinished last line "
                              "(the process stopped while writing it)", RuntimeWarning,
                              stacklevel=2)
                continue
            raise ValueError(f"{path}:{number}: not a JSON line ({exc.msg})") from None
        if not isinstance(obj, dict) or "kind" not in obj:
            raise ValueError(f"{path}:{number}: not an energykernel log entry")
        if obj["kind"] != "run":
            continue
        records.append(record_from_dict(obj, f"{path}:{number}"))
    return records


def log_files(directory: str | os.PathLike) -> list[Path]:
    """The log files in a directory, oldest first."""
    return sorted(Path(directory).glob(f"*{LOG_SUFFIX}"), key=lambda p: p.stat().st_mtime)


_recorder = Recorder()


def recorder() -> Recorder:
    return _recorder


def _after_fork_in_child() -> None:
    # The child writes its own log; it must not share the parent's file object.
    _recorder._lock = threading.Lock()
    _recorder._fd = None
    _recorder._log_pid = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
