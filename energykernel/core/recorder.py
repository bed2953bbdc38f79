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
        self._log = None
        self._log_path: Path | None = None
        self._log_pid: int | None = None

    # -- writing ---------------------------------------------------------------------
    @property
    def log_path(self) -> Path | None:
        """This process's log file (None until the first run is recorded)."""
        return self._log_path if self._log_pid == os.getpid() else None

    def _open_log(self):
        log_dir = settings().log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        safe_instance = "".join(ch if ch.isalnum() or ch in "-_." else "_"
                                for ch in settings().instance)
        path = log_dir / f"{safe_instance}-{os.getpid()}-{stamp}{LOG_SUFFIX}"
        f = open(path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the process
        header = {"kind": "header", "version": LOG_VERSION, "pid": os.getpid(),
                  "instance": settings().instance, "created_s": time.time()}
        f.write(json.dumps(header) + "\n")
        f.flush()
        self._log, self._log_path, self._log_pid = f, path, os.getpid()
        return f

    def append(self, record: RunRecord) -> None:
        """Keep ``record`` in memory and append it to the log (flushed)."""
        line = json.dumps({"kind": "run", **record}, separators=(",", ":"))
        with self._lock:
            self._records.append(record)
            self._ids.add(record["id"])
            log = self._log if self._log_pid == os.getpid() else None
            try:
                if log is None:
                    log = self._open_log()
                log.write(line + "\n")
                log.flush()
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
            if self._log is not None and self._log_pid == os.getpid():
                self._log.close()
            self._log = self._log_path = self._log_pid = None


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
    _recorder._log = None
    _recorder._log_pid = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
