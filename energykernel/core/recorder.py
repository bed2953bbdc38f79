"""The append-only record of finished runs: in memory, and a JSON-lines log on disk.

Each finished run is one JSON object on one line of this process's log, written and
flushed before ``measure`` returns, so a kernel that dies keeps every finished run.
One log per process: ``<log_dir>/<instance>-<pid>-<UTC start>.jsonl``.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

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
        self._torn = False  # a failed write may have left part of a line
        #: runs that could not be appended to the log (kept in memory only)
        self.unlogged = 0

    # -- writing ---------------------------------------------------------------------
    @property
    def log_path(self) -> Path | None:
        """This process's log file (None until the first run is recorded)."""
        return self._log_path if self._log_pid == os.getpid() else None

    def _open_log(self) -> int:
        log_dir = settings().log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        path = log_dir / f"{_file_label(settings().instance)}-{os.getpid()}-{stamp}{LOG_SUFFIX}"
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
                if fd is None:
                    fd = self._open_log()
                # after a failed write, start on a new line: the torn one is skipped on load
                _write_all(fd, b"\n" + line if self._torn else line)
                self._torn = False
            except OSError as exc:
                self._torn = fd is not None
                self.unlogged += 1
                # one warning per run (the text differs, so none is swallowed as a repeat)
                warnings.warn(
                    f"energykernel: run {record['task']!r} ({record['id'][:8]}) could not be "
                    f"appended to the run log {self._log_path or settings().log_dir}: {exc}; "
                    f"it is kept in memory only ({self.unlogged} run(s) so far); logging "
                    "resumes when the log can be written again",
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


_MAX_LABEL_IN_NAME = 64


def _file_label(instance: str) -> str:
    """The instance label as a safe, bounded file-name part (long ones keep a hash)."""
    safe = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-_.") else "_"
                   for ch in instance)
    if len(safe) <= _MAX_LABEL_IN_NAME:
        return safe
    digest = hashlib.sha256(instance.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{safe[:_MAX_LABEL_IN_NAME - 13]}-{digest}"


def _jsonable(value: Any) -> Any:
    """What orjson cannot write itself: numpy scalars and arrays, sets."""
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def _line(record: RunRecord) -> bytes:
    """One log line of a run: ``{"kind":"run", …}\\n`` (orjson: ~1 µs, json: ~15 µs)."""
    import orjson  # the first run imports it (~7 ms), not ``import energykernel``

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
    """The valid runs of one JSON-lines log.

    Every line is checked (:func:`~energykernel.core.record.record_from_dict`): a line
    that is not UTF-8, not JSON, or not a valid run is skipped, and one warning names the
    file and each skipped line. A truncated last line (a crash mid-write) is skipped the
    same way. A file with neither a header nor a valid run is a ``ValueError`` (it is not
    an energykernel log).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise OSError(exc.errno, f"cannot read the run log {path}: {exc.strerror}") from None
    records: list[RunRecord] = []
    skipped: list[str] = []
    header = False
    lines = data.split(b"\n")
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    for index, raw in enumerate(lines):
        if not raw.strip():
            continue
        number = index + 1
        try:
            obj = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            skipped.append(f"line {number} (not UTF-8 text)")
            continue
        except (ValueError, RecursionError) as exc:
            why = ("unfinished: the process stopped while writing it" if index == last
                   else f"not JSON: {getattr(exc, 'msg', type(exc).__name__)}")
            skipped.append(f"line {number} ({why})")
            continue
        kind = obj.get("kind") if isinstance(obj, dict) else None
        if kind == "header":
            header = True
        elif kind == "run":
            try:
                records.append(record_from_dict(obj, f"line {number}"))
            except ValueError as exc:
                skipped.append(str(exc))
        elif kind is None:
            skipped.append(f"line {number} (not an energykernel log entry)")
    if not header and not records and skipped:
        raise ValueError(f"{path}: not an energykernel run log ({skipped[0]})")
    if skipped:
        shown = "; ".join(skipped[:5]) + (f"; and {len(skipped) - 5} more" if len(skipped) > 5
                                           else "")
        warnings.warn(f"{path}: skipped {len(skipped)} bad line(s), kept {len(records)} "
                      f"run(s): {shown}", RuntimeWarning, stacklevel=2)
    return records


def read_logs(paths: Iterable[Path]) -> list[RunRecord]:
    """The valid runs of several logs; a file that cannot be read or is not a log is
    skipped with a warning naming it, and the others still load."""
    records: list[RunRecord] = []
    for path in paths:
        try:
            records += read_log(path)
        except (OSError, ValueError) as exc:
            warnings.warn(f"skipped {path}: {exc}", RuntimeWarning, stacklevel=2)
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
