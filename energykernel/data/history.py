"""Energy of notebook cells across runs (pure functions, no heavy imports).

``energykernel measure`` keeps, in each annotated cell's metadata, the last few runs of
that cell keyed by a hash of its source (``history: {sha: [entry, ...]}``), so a later
run of the same source can say what it cost before and whether it rose beyond both
intervals (a regression: the new lower bound above the previous upper bound).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

#: Runs kept per cell by default (``energykernel measure --history N``).
DEFAULT_RUNS = 5
#: Lines of a cell's source a report shows, and the characters of each.
HEAD_LINES, HEAD_CHARS = 3, 160


def source_sha(source: str) -> str:
    """The key of a cell's history: 16 hex digits of the SHA-256 of its source."""
    return hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def source_head(source: str) -> tuple[str, bool]:
    """The first :data:`HEAD_LINES` lines of ``source`` (leading blank lines skipped, each
    cut to :data:`HEAD_CHARS`), and whether the source goes on past them."""
    lines = source.strip("\n").splitlines()
    while lines and not lines[0].strip():
        lines.pop(0)
    head = [ln if len(ln) <= HEAD_CHARS else ln[: HEAD_CHARS - 1] + "…"
            for ln in lines[:HEAD_LINES]]
    return "\n".join(head), len(lines) > HEAD_LINES


def entry(record: Mapping[str, Any]) -> dict[str, Any]:
    """One history entry of a run: its id, end time (ISO, UTC), total energy and its
    bounds (J, NaN-free: bounds are left out when the run has none), duration."""
    energy = record["energy_j"]
    out: dict[str, Any] = {
        "run_id": record["id"],
        "at": datetime.fromtimestamp(record["end_s"], tz=timezone.utc)
        .isoformat(timespec="seconds"),
        "total_j": float(sum(energy.values())),
        "duration_s": float(record["duration_s"]),
        "status": record.get("status", "ok"),
    }
    bounds = record.get("energy_bounds_j") or {}
    if energy and all(c in bounds for c in energy):
        out["lo_j"] = float(sum(bounds[c][0] for c in energy))
        out["hi_j"] = float(sum(bounds[c][1] for c in energy))
    return out


def collect(cells: Iterable[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Every history entry in ``cells`` (annotated notebook cells), by source hash, each
    run once, oldest first. Malformed metadata is skipped."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for cell in cells:
        meta = (cell.get("metadata") or {}).get("energykernel")
        history = meta.get("history") if isinstance(meta, Mapping) else None
        if not isinstance(history, Mapping):
            continue
        for sha, entries in history.items():
            if not isinstance(entries, list):
                continue
            for e in entries:
                if (isinstance(e, Mapping) and isinstance(e.get("run_id"), str)
                        and isinstance(e.get("total_j"), (int, float))):
                    out.setdefault(str(sha), {})[e["run_id"]] = dict(e)
    return {sha: sorted(runs.values(), key=lambda e: str(e.get("at", "")))
            for sha, runs in out.items()}


def verdict(lo: float, hi: float, previous: Mapping[str, Any]) -> str:
    """``rose`` when the new interval lies wholly above the previous one (new lo >
    previous hi: a regression), ``fell`` when wholly below, ``same`` when they overlap,
    ``""`` when either has no bounds."""
    plo, phi = previous.get("lo_j", float("nan")), previous.get("hi_j", float("nan"))
    if not all(isinstance(v, (int, float)) and v == v for v in (lo, hi, plo, phi)):
        return ""
    return "rose" if lo > phi else "fell" if hi < plo else "same"


def update(past: Mapping[str, list[dict[str, Any]]], sha: str, new: dict[str, Any],
           keep: int) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The cell's history after ``new`` (the last ``keep`` runs of this source, oldest
    first) and the last run before it that finished (status ``ok``; None if none did)."""
    before = [e for e in past.get(sha, []) if e.get("run_id") != new["run_id"]]
    finished = [e for e in before if e.get("status", "ok") == "ok"]
    previous = finished[-1] if finished else None
    return [*before, new][-keep:] if keep > 0 else [], previous
