"""Turning one training step's measured energy into per-layer, per-pass shares.

Pure arithmetic, no torch: the hooks (:mod:`.hooks`) hand over the step's counter delta
per device and the layer calls timed inside it; this module

1. gives each call its *exclusive* time (a sweep over the calls' intervals: every instant
   belongs to the innermost open call, i.e. the one that ends first), so nested selections
   (a block and its sub-layers) never count the same time twice;
2. per device, keeps the energy of calls whose counters were read around them
   (``counter``), and shares the rest of the step's energy among the other calls and
   "outside layers" in proportion to their time (``apportioned``).

For every device the shares add up to the step's measured delta: layers + outside = step.
"""

from __future__ import annotations

import heapq
import itertools
import math
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..core.accounting import energy_bounds
from ..core.record import RunRecord

if TYPE_CHECKING:
    from ..counters.base import BoundTerms

#: Shortest window (s) whose counter reading is trusted, per backend method. RAPL updates
#: about every 1 ms; the estimate reads /proc/stat (10 ms jiffies); NVML's energy counter
#: is refreshed every few tens of ms. Unknown methods use ``DEFAULT_COUNTER_WINDOW_S``.
COUNTER_WINDOW_S: dict[str, float] = {
    "rapl": 0.010,
    "pyrapl": 0.010,
    "estimate": 0.050,
    "nvml": 0.100,
    "amdsmi": 0.100,
    "hwmon": 0.200,
}
DEFAULT_COUNTER_WINDOW_S = 0.010


@dataclass
class CallSpan:
    """One timed layer call: ``key`` = (layer, pass), times in ns (perf counter).

    ``counter``: backends whose counters were read around the call; ``delta_j``: the
    device energy read over the call (None when not read).
    """

    key: tuple[str, str]
    t0_ns: int
    t1_ns: int
    counter: frozenset[str] = frozenset()
    delta_j: Mapping[str, float] | None = None


@dataclass
class StepShares:
    """A step's energy split: per key and for "outside", device → J, plus times."""

    energy_j: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)
    time_s: dict[tuple[str, str], float] = field(default_factory=dict)
    calls: dict[tuple[str, str], int] = field(default_factory=dict)
    counter_calls: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)
    """per key, per backend: how many of its calls were counter-read."""
    outside_j: dict[str, float] = field(default_factory=dict)
    outside_s: float = 0.0


def exclusive_ns(spans: Sequence[tuple[int, int]], lo_ns: int, hi_ns: int) -> list[int]:
    """Exclusive time of each interval within ``[lo_ns, hi_ns]``.

    Every instant covered by some interval goes to the covering interval that ends first
    (the innermost, for nested intervals); uncovered instants go to none. The results add
    up to the length of the union of the (clipped) intervals.
    """
    clipped = [(max(a, lo_ns), min(b, hi_ns)) for a, b in spans]
    out = [0] * len(clipped)
    live = [i for i, (a, b) in enumerate(clipped) if b > a]
    if not live:
        return out
    by_start = sorted(live, key=lambda i: clipped[i][0])
    cuts = sorted({t for i in live for t in clipped[i]})
    heap: list[tuple[int, int]] = []
    nxt = 0
    for seg_start, seg_end in itertools.pairwise(cuts):
        while nxt < len(by_start) and clipped[by_start[nxt]][0] <= seg_start:
            i = by_start[nxt]
            heapq.heappush(heap, (clipped[i][1], i))
            nxt += 1
        while heap and heap[0][0] <= seg_start:
            heapq.heappop(heap)
        if heap:
            out[heap[0][1]] += seg_end - seg_start
    return out


def apportion_step(
    step_j: Mapping[str, float],
    spans: Sequence[CallSpan],
    lo_ns: int,
    hi_ns: int,
    device_backend: Mapping[str, str],
) -> StepShares:
    """Split ``step_j`` (device → J measured over ``[lo_ns, hi_ns]``) among the calls.

    ``device_backend`` names the backend of each device (a call's ``counter`` set holds
    backend names). Energies are non-negative and, per device, layers + outside equal
    ``step_j`` (to float rounding).
    """
    shares = StepShares()
    excl = exclusive_ns([(s.t0_ns, s.t1_ns) for s in spans], lo_ns, hi_ns)
    step_ns = max(0, hi_ns - lo_ns)
    outside_ns = max(0, step_ns - sum(excl))
    shares.outside_s = outside_ns / 1e9
    for span, x in zip(spans, excl, strict=True):
        shares.time_s[span.key] = shares.time_s.get(span.key, 0.0) + x / 1e9
        shares.calls[span.key] = shares.calls.get(span.key, 0) + 1
        shares.energy_j.setdefault(span.key, {})
        counts = shares.counter_calls.setdefault(span.key, {})
        if span.delta_j is not None:
            for b in span.counter:
                counts[b] = counts.get(b, 0) + 1

    for device, total in step_j.items():
        total = max(0.0, float(total))
        backend = device_backend.get(device, "")
        measured: list[tuple[int, float]] = []
        weights: list[tuple[int, int]] = []
        for j, span in enumerate(spans):
            if backend in span.counter and span.delta_j is not None:
                measured.append((j, max(0.0, float(span.delta_j.get(device, 0.0)))))
            else:
                weights.append((j, excl[j]))
        measured_j = math.fsum(e for _, e in measured)
        if measured_j > total:  # counters are monotonic, so only through rounding/skew
            scale = total / measured_j if measured_j > 0 else 0.0
            measured = [(j, e * scale) for j, e in measured]
            measured_j = math.fsum(e for _, e in measured)
        rest = max(0.0, total - measured_j)
        weight_ns = sum(w for _, w in weights) + outside_ns
        given: list[float] = []
        for j, e in measured:
            _add(shares.energy_j[spans[j].key], device, e)
            given.append(e)
        if weight_ns > 0:
            for j, w in weights:
                e = rest * (w / weight_ns)
                _add(shares.energy_j[spans[j].key], device, e)
                given.append(e)
        else:
            for j, _ in weights:
                _add(shares.energy_j[spans[j].key], device, 0.0)
        shares.outside_j[device] = max(0.0, total - math.fsum(given))
    return shares


def attribution_label(counter_calls: int, calls: int) -> str:
    """``counter`` if every call was counter-read, ``apportioned`` if none, else both."""
    if calls > 0 and counter_calls >= calls:
        return "counter"
    return "counter+apportioned" if counter_calls > 0 else "apportioned"


def _add(target: dict[str, float], device: str, joules: float) -> None:
    target[device] = target.get(device, 0.0) + joules


def counter_backends(mean_call_s: float, backend_methods: Mapping[str, str],
                     window_s: float | Mapping[str, float] | None) -> frozenset[str]:
    """Backends whose counters resolve a call of ``mean_call_s`` (mean of the last step).

    ``window_s``: None → :data:`COUNTER_WINDOW_S` by method; a number → that for every
    backend (0 → always read); a mapping → by method, defaults for the rest.
    """
    out = set()
    for backend, method in backend_methods.items():
        if window_s is None:
            need = COUNTER_WINDOW_S.get(method, DEFAULT_COUNTER_WINDOW_S)
        elif isinstance(window_s, Mapping):
            need = window_s.get(method, COUNTER_WINDOW_S.get(method, DEFAULT_COUNTER_WINDOW_S))
        else:
            need = float(window_s)
        if need <= 0 or mean_call_s >= need:
            out.add(backend)
    return frozenset(out)


@dataclass
class StepResult:
    """One closed step: energies by component (J), times (s), per (layer, pass)."""

    index: int
    start_s: float
    duration_s: float
    status: str
    step_j: dict[str, float]
    layer_j: dict[tuple[str, str], dict[str, float]]
    layer_s: dict[tuple[str, str], float]
    calls: dict[tuple[str, str], int]
    attribution: dict[tuple[str, str], dict[str, str]]
    outside_j: dict[str, float]
    outside_s: float
    loss: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class RunBuffer:
    """Sums per-step shares into runs (one per task) until :meth:`flush` records them."""

    def __init__(self, prefix: str, parent_id: str = "") -> None:
        self.prefix = prefix
        self.parent_id = parent_id
        self.pending: dict[tuple[str, str], dict[str, Any]] = {}
        self.status = "ok"

    def add(self, key: tuple[str, str], step: int, start_s: float, end_s: float,
            duration_s: float, energy: dict[str, float], device: dict[str, float],
            calls: int, counter_calls: dict[str, int]) -> None:
        """Add one step's share of ``key`` = (layer, pass)."""
        run = self.pending.get(key)
        if run is None:
            self.pending[key] = {
                "start_s": start_s, "end_s": end_s, "duration_s": duration_s,
                "energy_j": dict(energy), "device_energy_j": dict(device), "calls": calls,
                "counter_calls": dict(counter_calls), "steps": [step, step, 1]}
            return
        run["start_s"] = min(run["start_s"], start_s)
        run["end_s"] = max(run["end_s"], end_s)
        run["duration_s"] += duration_s
        run["calls"] += calls
        run["steps"][1] = step
        run["steps"][2] += 1
        for target, source in ((run["energy_j"], energy), (run["device_energy_j"], device),
                               (run["counter_calls"], counter_calls)):
            for name, value in source.items():
                target[name] = target.get(name, 0) + value

    def flush(self, method: dict[str, str], instance: str, outside: str,
              terms: Mapping[str, BoundTerms] | None = None) -> list[RunRecord]:
        """The pending runs as recorder records (task ``<prefix>/<layer>/<pass>``).

        ``terms``: the engine's bound terms per component; a run over ``n`` steps gets
        ``n`` step readings' resolution (each layer the whole step's, which covers its
        share), so its interval bounds the counter error, not the split by time that
        ``attribution`` names.
        """
        pending, self.pending = self.pending, {}
        out = []
        for (layer, pass_), run in pending.items():
            first, last, n = run["steps"]
            meta = {"prefix": self.prefix, "layer": layer, "pass": pass_, "step": first,
                    "last_step": last, "steps": n}
            if layer == outside:
                attribution = dict.fromkeys(method, "apportioned")
            else:
                attribution = {c: attribution_label(run["counter_calls"][c], run["calls"])
                               for c in method}
                meta["calls"] = run["calls"]
            out.append({
                "id": uuid.uuid4().hex, "task": f"{self.prefix}/{layer}/{pass_}",
                "instance": instance, "start_s": run["start_s"], "end_s": run["end_s"],
                "duration_s": run["duration_s"], "energy_j": run["energy_j"],
                "method": dict(method), "device_energy_j": run["device_energy_j"],
                "status": self.status, "scope": "machine", "pid": os.getpid(),
                "parent_id": self.parent_id,
                "extra": {"attribution": attribution, "meta": meta},
            })
            if terms is not None:
                per_run = {c: replace(t, abs_j=t.abs_j * n) for c, t in terms.items()}
                out[-1]["energy_bounds_j"] = energy_bounds(run["energy_j"], per_run,
                                                           run["duration_s"])
        return out
