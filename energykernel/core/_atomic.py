"""Atomic file writes: a temporary file beside the target, renamed over it on success.

A reader never sees a half-written file, and a failed write (a full disk included) leaves
the old file as it was and no temporary behind, with an ``OSError`` naming the target.
Content is built in memory and written with ``os.write``, so no third-party writer runs
against the disk. Temporaries are named ``.<name>.<pid>.<random>.tmp``; those left by a
process that no longer runs (a killed save) are removed by the next write of the same
target. The file ends with the mode a plain ``open()`` would give it.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _umask() -> int:
    # The process umask can only be read by setting it; set it straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _final_mode(path: Path) -> int:
    """The mode a plain ``open(path, "w")`` would leave: an existing file keeps its mode,
    a new one gets 0o666 less the umask."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return 0o666 & ~_umask()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Remove temporaries of ``path`` left by processes that no longer run."""
    removed = []
    prefix = f".{path.name}."
    with contextlib.suppress(OSError):
        for entry in os.scandir(path.parent):
            name = entry.name
            if not (name.startswith(prefix) and name.endswith(".tmp")):
                continue
            pid_text = name[len(prefix):].split(".", 1)[0]
            pid = int(pid_text) if pid_text.isdigit() else None
            if pid is not None and (pid == os.getpid() or _alive(pid)):
                continue  # a write in progress (ours in another thread, or another process's)
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def _temporary(path: Path) -> tuple[int, Path]:
    remove_stale_temporaries(path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.",
                                suffix=".tmp")
    return fd, Path(name)


def _named(exc: OSError, path: Path) -> OSError:
    """``exc`` as an OSError of the same errno whose message names ``path``."""
    return type(exc)(exc.errno, f"could not write {path}: {exc.strerror or exc}")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s directory; rename it to ``path`` on success."""
    path = Path(path)
    fd, tmp = _temporary(path)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, _final_mode(path))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: str | os.PathLike, data: bytes | memoryview) -> Path:
    """Write ``data`` to ``path`` atomically (written, fsync'ed, then renamed)."""
    path = Path(path)
    fd, tmp = _temporary(path)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, _final_mode(path))
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _named(exc, path) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_netcdf_atomic(ds: Any, path: str | os.PathLike) -> Path:
    """Write an xarray Dataset to NetCDF4 (h5netcdf) at ``path`` atomically.

    The file is built in memory first: the HDF5 library never writes to the disk itself
    (on a full disk it can crash the process instead of raising).
    """
    from ..data.schema import NETCDF_ENGINE

    return write_bytes_atomic(path, ds.to_netcdf(engine=NETCDF_ENGINE))
