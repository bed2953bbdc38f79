"""Where a campaign's prompts are kept: the per-prompt Dataset and the campaign log.

A row is one prompt: the fields of :data:`FIELDS`, plus ``energy_j`` and ``method`` (dicts
by component) and ``start_s``. :func:`build_dataset` makes the Dataset (dim ``prompt``) of
rows, :func:`save_prompts` / :func:`load_prompts` write and read it, and
:class:`CampaignLog` appends one JSON line per finished prompt to
``<log_dir>/llm-<instance>-<pid>-<time>.jsonl``. Reading a log back validates every line:
one that is damaged (not UTF-8, not JSON, fields of the wrong type) is skipped with a
warning naming the file and line, and the others still load.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

from ..core._atomic import write_netcdf_atomic
from ..core.config import settings
from ..core.units import COMPONENTS
from .client import MAX_COUNT, clean_text

if TYPE_CHECKING:
    import xarray as xr

CAMPAIGN_LOG_PREFIX = "llm-"
SCHEMA_VERSION = 1
MAX_WARNED_LINES = 20  # bad lines warned about one by one, per file
_MAX_START_S = 2.0**33  # the year 2242: a later start time is damage, not a date
_MAX_FLOAT = 1e300  # larger numbers (and infinities) in a log are damage

# Per-prompt fields: name -> (dtype, fill, attrs)
FIELDS: dict[str, tuple[Any, Any, dict[str, str]]] = {
    "prompt_text": (object, "", {"long_name": "last user message"}),
    "messages": (object, "", {"long_name": "the whole conversation sent, as JSON"}),
    "response_text": (object, "", {"long_name": "the service's answer"}),
    "task_type": (object, "", {}),
    "model": (object, "", {}),
    "service": (object, "", {"long_name": "base_url without credentials or query"}),
    "energy_scope": (object, "", {"long_name": "machine (service on this host) or "
                                               "client-only (remote service, not seen)"}),
    "status": (object, "", {"long_name": "ok or error"}),
    "error": (object, "", {}),
    "finish_reason": (object, "", {}),
    "notes": (object, "", {"long_name": "what the service sent that could not be used "
                                        "(e.g. a token count out of range)"}),
    "token_source": (object, "", {"long_name": "usage (from the service) or approx "
                                               "(ceil(chars / 4))"}),
    "prompt_tokens": (np.int64, 0, {"units": "tokens"}),
    "response_tokens": (np.int64, 0, {"units": "tokens"}),
    "attempts": (np.int64, 0, {"long_name": "requests sent (1 + retries used)"}),
    "duration": (np.float64, np.nan, {"units": "s", "long_name": "measured window"}),
    "ttft": (np.float64, np.nan, {"units": "s", "long_name": "time to first token "
                                                            "(streaming only)"}),
    "run_id": (object, "", {"long_name": "id of the run in ek.runs()"}),
    "prompt_key": (object, "", {"long_name": "hash of model and messages, #occurrence"}),
    "resumed": (bool, False, {"long_name": "copied from the resume= dataset"}),
}


def build_dataset(rows: list[dict[str, Any]], attrs: dict[str, Any] | None = None
                  ) -> xr.Dataset:
    """The per-prompt Dataset from rows (see the module docstring)."""
    import xarray as xr

    n = len(rows)
    comps = [c for c in COMPONENTS if any(c in r.get("energy_j", {}) for r in rows)]
    energy = np.full((n, len(comps)), np.nan)
    method = np.full((n, len(comps)), "", dtype=object)
    for j, r in enumerate(rows):
        for k, c in enumerate(comps):
            if c in r.get("energy_j", {}):
                energy[j, k] = r["energy_j"][c]
                method[j, k] = r.get("method", {}).get(c, "")
    data: dict[str, Any] = {}
    for name, (dtype, fill, a) in FIELDS.items():
        vals = [r.get(name, fill) for r in rows]
        vals = [fill if v is None else v for v in vals]
        data[name] = ("prompt", np.array(vals, dtype=dtype), dict(a))
    data["energy"] = (("prompt", "component"), energy, {"units": "J"})
    data["method"] = (("prompt", "component"), method,
                      {"long_name": "how energy was obtained (rapl, nvml, estimate, …)"})
    total = np.where(np.isnan(energy).all(axis=1), np.nan, np.nansum(energy, axis=1)) if comps \
        else np.full(n, np.nan)
    data["energy_total"] = ("prompt", total, {"units": "J", "long_name": "sum over components"})
    start = np.array([r.get("start_s", np.nan) for r in rows], dtype=np.float64) * 1e9
    start = np.where(np.isnan(start), np.iinfo(np.int64).min, start).astype(np.int64)
    data["start"] = ("prompt", start.astype("datetime64[ns]"), {"long_name": "start time (UTC)"})
    base = {"title": "energykernel LLM prompt campaign", "energykernel_llm_schema":
            SCHEMA_VERSION, "token_approximation": "ceil(characters / 4) where token_source "
            "is 'approx'"}
    return xr.Dataset(data, coords={"prompt": np.arange(n),
                                    "component": np.array(comps, dtype=object)},
                      attrs={**base, **(attrs or {})})


def rows_of(ds: xr.Dataset) -> list[dict[str, Any]]:
    """The rows of a prompt Dataset (the inverse of :func:`build_dataset`)."""
    comps = [str(c) for c in ds.component.values]
    start = ds.start.values.astype("datetime64[ns]").astype(np.int64) / 1e9
    rows = []
    for j in range(ds.sizes["prompt"]):
        r: dict[str, Any] = {n: ds[n].values[j].item() if hasattr(ds[n].values[j], "item")
                             else ds[n].values[j] for n in FIELDS if n in ds}
        e = ds.energy.values[j]
        r["energy_j"] = {c: float(e[k]) for k, c in enumerate(comps) if not np.isnan(e[k])}
        r["method"] = {c: str(ds.method.values[j, k]) for k, c in enumerate(comps)
                       if not np.isnan(e[k])}
        r["start_s"] = float(start[j])
        rows.append(r)
    return rows


def save_prompts(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write a prompt Dataset to NetCDF (atomically); read it back with :func:`load_prompts`."""
    path = Path(path)
    if path.suffix.lower() not in (".nc", ".nc4"):
        raise ValueError(f"save_prompts({str(path)!r}): use a file name ending in .nc")
    if not path.parent.exists():
        raise FileNotFoundError(f"save_prompts({str(path)!r}): directory does not exist")
    return write_netcdf_atomic(ds, path)


def load_prompts(path: str | os.PathLike) -> xr.Dataset:
    """A prompt Dataset from a ``.nc`` file, a campaign log (``llm-*.jsonl``) or a directory
    of them (every finished prompt of every campaign logged there). Damaged log lines are
    skipped with a RuntimeWarning naming file and line."""
    import xarray as xr

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"load_prompts({str(path)!r}): no such file or directory")
    if path.is_dir() or path.suffix == ".jsonl":
        files = sorted(path.glob(f"{CAMPAIGN_LOG_PREFIX}*.jsonl")) if path.is_dir() else [path]
        rows: list[dict[str, Any]] = []
        for f in files:
            rows += read_campaign_log(f, named=not path.is_dir())
        return build_dataset(rows)
    try:
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            ds.load()
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable prompt dataset ({exc})") from None
    if "prompt_key" not in ds:
        raise ValueError(f"{path}: not an energykernel prompt dataset (no 'prompt_key')")
    return ds


# -- the campaign log -------------------------------------------------------------------------

def read_campaign_log(path: Path, *, named: bool = True) -> list[dict[str, Any]]:
    """The valid prompt rows of one campaign log; each bad line skipped with a warning.
    A ``named`` file none of whose lines is a campaign line is a ValueError instead."""
    lines = path.read_bytes().split(b"\n")
    rows: list[dict[str, Any]] = []
    bad: list[str] = []
    good = 0
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw.decode("utf-8"))
            kind = obj.get("kind") if isinstance(obj, dict) else None
            if kind == "llm_prompt":
                rows.append(check_row(obj))
            elif kind != "llm_campaign":
                raise ValueError(f"not a campaign log line (kind={str(kind)[:40]!r})")
            good += 1
        except UnicodeDecodeError:
            bad.append(f"{path}:{number}: not UTF-8 text")
        except (ValueError, RecursionError) as exc:
            cut = number == len(lines) and isinstance(exc, json.JSONDecodeError)
            bad.append(f"{path}:{number}: " + ("incomplete last line (cut short by a crash?)"
                                                if cut else str(exc)[:200]))
    if named and bad and not good:
        raise ValueError(f"{path}: not an energykernel campaign log (first line: {bad[0]})")
    for note in bad[:MAX_WARNED_LINES]:
        warnings.warn(f"energykernel: {note}; line skipped", RuntimeWarning, stacklevel=3)
    if len(bad) > MAX_WARNED_LINES:
        warnings.warn(f"energykernel: {path}: {len(bad) - MAX_WARNED_LINES} more bad lines "
                      "skipped", RuntimeWarning, stacklevel=3)
    return rows


def check_row(obj: dict[str, Any]) -> dict[str, Any]:
    """A logged prompt line as a row, or a ValueError naming the first bad field. Missing
    fields (an older log) are filled by :func:`build_dataset`; unknown ones are dropped."""
    for name in ("prompt_key", "status"):
        if not isinstance(obj.get(name), str) or not obj[name]:
            raise ValueError(f"field {name!r}: missing or not a string")
    row = {name: _field(name, obj[name], dtype) for name, (dtype, _, _) in FIELDS.items()
           if obj.get(name) is not None}
    for name, kind in (("energy_j", float), ("method", str)):
        value = obj.get(name, {})
        if not isinstance(value, dict) or not set(value) <= set(COMPONENTS):
            raise ValueError(f"field {name!r}: expected an object keyed by {COMPONENTS}")
        row[name] = {c: _field(f"{name}.{c}", v, kind) for c, v in value.items()}
    start_s = obj.get("start_s")
    if start_s is not None:
        row["start_s"] = _field("start_s", start_s, float)
        if not 0 <= row["start_s"] < _MAX_START_S:
            raise ValueError(f"field 'start_s': {start_s!r} is not a time in seconds")
    return row


def _field(name: str, value: Any, dtype: Any) -> Any:
    """``value`` as a value of ``dtype`` (str, bool, count or float), else ValueError."""
    if dtype is object or dtype is str:
        if isinstance(value, str):
            return clean_text(value)
        raise ValueError(f"field {name!r}: expected a string, got {type(value).__name__}")
    if dtype is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"field {name!r}: expected true or false, got {str(value)[:40]!r}")
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if dtype is np.int64:
        if number and 0 <= value <= MAX_COUNT and float(value).is_integer():
            return int(value)
        raise ValueError(f"field {name!r}: expected an integer in 0..2**53, got "
                         f"{str(value)[:40]!r}")
    if number and (value != value or -_MAX_FLOAT <= value <= _MAX_FLOAT):  # NaN, or finite
        return float(value)
    raise ValueError(f"field {name!r}: expected a finite number, got {str(value)[:40]!r}")


class CampaignLog:
    """One JSON line per finished prompt, flushed (opened on the first line)."""

    def __init__(self, header: dict[str, Any]) -> None:
        self.header, self.failed = header, False
        self._f: TextIO | None = None

    def write(self, row: dict[str, Any]) -> None:
        try:
            self._write(row)
        except OSError as exc:
            if not self.failed:
                warnings.warn(f"energykernel: cannot write the LLM campaign log ({exc}); prompt "
                              "texts are kept in memory only (runs are still logged)",
                              RuntimeWarning, stacklevel=3)
            self.failed = True

    def _write(self, row: dict[str, Any]) -> None:
        if self.failed:
            return
        if self._f is None:
            log_dir = settings().log_dir
            log_dir.mkdir(parents=True, exist_ok=True)
            inst = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in settings().instance)
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            path = log_dir / f"{CAMPAIGN_LOG_PREFIX}{inst}-{os.getpid()}-{stamp}-{id(self):x}.jsonl"
            self._f = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
            self._f.write(json.dumps({"kind": "llm_campaign", **self.header}) + "\n")
        self._f.write(json.dumps({"kind": "llm_prompt", **row}, ensure_ascii=False) + "\n")
        self._f.flush()

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
