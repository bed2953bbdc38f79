"""What ``energykernel measure`` keeps of each cell across runs: its last runs in the
cell's metadata (keyed by a hash of its source), its number, id and first lines in the
runs' ``extra["cell"]`` (for the report), and how it compares with the previous run of
the same source (a line under the cell when its energy rose beyond both intervals)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..core.record import RunRecord
from ..data.history import entry, source_head, source_sha, update, verdict


@dataclass
class Change:
    """A cell whose source ran before: its energy then and now."""

    number: int  # 1-based position in the notebook
    task: str
    previous: dict[str, Any]  # the history entry of the run before
    now: dict[str, Any]  # this run's entry
    verdict: str  # rose (beyond both intervals: a regression), fell, same, or ""

    @property
    def delta_j(self) -> float:
        return float(self.now["total_j"] - self.previous["total_j"])


def remember(cell: Any, index: int, records: list[RunRecord],
              past: Mapping[str, list[dict[str, Any]]], keep: int, shown: bool
              ) -> Change | None:
    """Keep the cell's run in its history (metadata) and its source in the runs' ``extra``
    (for the report); say how it compares with the previous run of the same source."""
    import nbformat

    meta = cell.metadata["energykernel"]
    sha = source_sha(cell.source)
    now = entry(next(r for r in records if r["id"] == meta["run_id"]))
    kept, previous = update(past, sha, now, keep)
    finished = now["status"] == "ok"  # a cell that raised or was interrupted: no verdict
    meta["source_sha"] = sha
    meta["history"] = {sha: kept}
    head, more = source_head(cell.source)
    where = {"number": index + 1, "id": str(cell.get("id") or "")}
    for r in records:
        extra = r.setdefault("extra", {})
        if r["id"] == meta["run_id"]:
            extra["cell"] = {**where, "source": head, "more": more, "sha": sha, **(
                {"previous": {k: previous[k] for k in ("total_j", "lo_j", "hi_j", "at")
                              if k in previous}} if previous and finished else {})}
        else:
            extra["cell"] = {**where, "nested": True}
    if previous is None:
        return None
    change = Change(index + 1, meta["task"], previous, now,
                    verdict(now.get("lo_j", float("nan")), now.get("hi_j", float("nan")),
                            previous) if finished else "")
    meta["previous"] = {**{k: previous[k] for k in ("total_j", "lo_j", "hi_j", "at", "run_id")
                           if k in previous}, "change_j": change.delta_j,
                        "verdict": change.verdict}
    if change.verdict == "rose" and shown:
        cell.outputs.append(nbformat.v4.new_output("stream", name="stdout",
                                                   text=change_text(change) + "\n"))
    return change


def change_text(change: Change) -> str:
    """One line: the previous figure, the change, and whether it is beyond the bounds."""
    from ..core.units import si

    prev, now = change.previous["total_j"], change.now["total_j"]
    ratio = f", ×{now / prev:.3g}" if prev > 0 else ""
    sign = "+" if change.delta_j > 0 else ""
    flag = {"rose": "▲ energy rose beyond both intervals (a regression)",
            "fell": "▼ energy fell beyond both intervals",
            "same": "within the intervals"}.get(change.verdict, "no verdict (no intervals, "
                                                "or the run did not finish)")
    return (f"{flag}: {si(prev, 'J')} → {si(now, 'J')} ({sign}{si(change.delta_j, 'J')}"
            f"{ratio}) since the run of {change.previous.get('at', '?')}")
