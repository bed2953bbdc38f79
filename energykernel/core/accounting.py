"""From counter readings to component energy: the one place this arithmetic lives.

Every producer of runs (``measure``, the Dask worker snapshots, PyTorch layer steps, the
sampler's timeline) turns two cumulative readings per device into a run's energy the same
way: :func:`device_delta` (never negative), then :func:`component_energy` (each component
is the sum of the devices that count toward it; detail-only devices such as RAPL ``psys``
or ``core`` count toward none, so nested domains are never added twice), then, for
``scope="process"``, :func:`scale_to_share` by :func:`process_share` (CPU and RAM) and
:func:`gpu_process_share` (each GPU NVML reports processes for).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..counters.base import BoundTerms

#: Components whose machine-wide counters are scaled by the process share
#: (``scope="process"``); a GPU or disk counter is not shared by CPU time.
SHARED_BY_CPU_TIME: tuple[str, ...] = ("cpu", "ram")


def device_delta(before: Mapping[str, float], after: Mapping[str, float],
                 keep: Collection[str] | None = None) -> dict[str, float]:
    """Joules per device between two cumulative readings (J), never negative.

    ``keep`` limits the devices (default: every device read ``after``); a device missing
    from ``before`` counts from zero.
    """
    if keep is None:
        return {d: max(0.0, v - before.get(d, 0.0)) for d, v in after.items()}
    return {d: max(0.0, v - before.get(d, 0.0)) for d, v in after.items() if d in keep}


def component_energy(device_j: Mapping[str, float], device_component: Mapping[str, str | None],
                     components: Iterable[str]) -> dict[str, float]:
    """Sum device energies (J) into ``components``.

    ``device_component`` maps each device to the component it counts toward, or ``None``
    for detail-only devices; a device not in it counts toward nothing. Every requested
    component is in the result (0.0 when no device of it was read).
    """
    out = dict.fromkeys(components, 0.0)
    for device, joules in device_j.items():
        comp = device_component.get(device)
        if comp is not None and comp in out:
            out[comp] += joules
    return out


def process_share(process_cpu_s: float, machine_busy_s: float) -> float:
    """A process tree's share (0…1) of the machine's busy CPU seconds over one window.

    Both arguments are differences over the window. With no busy time on the machine the
    share is 1 if the process itself ran (the machine's tick counter is coarser than the
    process clock), else 0.
    """
    if machine_busy_s <= 0:
        return 1.0 if process_cpu_s > 0 else 0.0
    return min(1.0, max(0.0, process_cpu_s / machine_busy_s))


#: How a GPU share was obtained (``RunRecord["gpu_share_basis"]``), by
#: :func:`gpu_process_share`; the last two leave the share uncertain: bounds [0, device].
GPU_SHARE_BASES: tuple[str, ...] = ("sm_utilization", "only_compute_processes",
                                    "no_compute_process", "memory_share")


def gpu_process_share(sm_util: Mapping[int, float] | None,
                      compute: Mapping[int, int | None],
                      ours: Collection[int]) -> tuple[float, str]:
    """A process tree's share (0…1) of one GPU over a window, and how it was obtained.

    ``sm_util``: SM utilisation summed per pid over the GPU's samples in the window
    (``None``: none); ``compute``: the compute processes on it (pid → bytes of GPU memory,
    ``None`` unknown); ``ours``: the pids of the tree. With utilisation samples, the share
    is the tree's SM utilisation over everyone's (``sm_utilization``). Without: 1 when
    only the tree has compute processes on the GPU (``only_compute_processes``); otherwise
    the share is not known from NVML — 0 when the tree has none there
    (``no_compute_process``), else the tree's share of the processes' GPU memory
    (``memory_share``, by count where memory is unknown) — and the bounds widen to
    [0, the device's energy].
    """
    if sm_util:
        total = sum(sm_util.values())
        if total > 0:
            ours_util = sum(v for p, v in sm_util.items() if p in ours)
            return min(1.0, ours_util / total), GPU_SHARE_BASES[0]
    mine = [p for p in compute if p in ours]
    if mine and len(mine) == len(compute):
        return 1.0, GPU_SHARE_BASES[1]
    if not mine:
        return 0.0, GPU_SHARE_BASES[2]
    memory = {p: m for p, m in compute.items() if m is not None and m >= 0}
    if len(memory) == len(compute) and sum(memory.values()) > 0:
        return sum(memory[p] for p in mine) / sum(memory.values()), GPU_SHARE_BASES[3]
    return len(mine) / len(compute), GPU_SHARE_BASES[3]


def scale_to_share(energy_j: dict[str, float], share: float) -> dict[str, float]:
    """Scale the CPU-time-shared components of ``energy_j`` (in place) by ``share``."""
    for comp in SHARED_BY_CPU_TIME:
        if comp in energy_j:
            energy_j[comp] *= share
    return energy_j


def scale_bounds_to_share(bounds_j: dict[str, list[float]], share: float
                          ) -> dict[str, list[float]]:
    """Scale the ``[lo, hi]`` of the CPU-time-shared components (in place) by ``share``."""
    for comp in SHARED_BY_CPU_TIME:
        if comp in bounds_j:
            bounds_j[comp] = [bounds_j[comp][0] * share, bounds_j[comp][1] * share]
    return bounds_j


def terms_to_json(terms: Mapping[str, BoundTerms]) -> dict[str, list[float | None]]:
    """Bound terms per component as JSON-safe lists ``[abs_j, low, high, cap_w]`` (what a
    Dask worker sends with its readings)."""
    return {c: [t.abs_j, t.low, t.high, t.cap_w] for c, t in terms.items()}


def terms_from_json(data: Mapping[str, list[float | None]]) -> dict[str, BoundTerms]:
    """The inverse of :func:`terms_to_json` (entries that are not 4 numbers are dropped)."""
    from ..counters.base import BoundTerms

    out = {}
    for comp, v in data.items():
        try:
            abs_j, low, high, cap_w = v
            out[comp] = BoundTerms(abs_j=float(abs_j), low=float(low), high=float(high),  # type: ignore[arg-type]
                                   cap_w=None if cap_w is None else float(cap_w))
        except (TypeError, ValueError):
            continue
    return out


def add_bounds(total: dict[str, list[float]], part: Mapping[str, list[float]]
               ) -> dict[str, list[float]]:
    """Add ``part``'s ``[lo, hi]`` per component into ``total`` (in place): the interval of
    a sum of independently bounded pieces."""
    for comp, (lo, hi) in part.items():
        have = total.setdefault(comp, [0.0, 0.0])
        have[0] += lo
        have[1] += hi
    return total


def combine_terms(terms: Iterable[BoundTerms]) -> BoundTerms | None:
    """The terms of a sum of devices: resolutions and caps add, spreads take the widest."""
    from ..counters.base import BoundTerms

    terms = list(terms)
    if not terms:
        return None
    caps = [t.cap_w for t in terms if t.cap_w is not None]
    return BoundTerms(abs_j=sum(t.abs_j for t in terms), low=min(t.low for t in terms),
                      high=max(t.high for t in terms),
                      cap_w=sum(caps) if len(caps) == len(terms) else None,
                      source="; ".join(t.source for t in terms if t.source))


def cap_to_model(energy_j: dict[str, float], terms: Mapping[str, BoundTerms],
                 duration_s: float) -> None:
    """Clamp, in place, each component whose model has a cap to ``cap_w × duration``: a
    cumulative estimate read across a short window can take in a whole clock tick of busy
    time (``/proc/stat`` counts in ticks) that mostly fell outside it."""
    for comp, joules in energy_j.items():
        term = terms.get(comp)
        if term is not None and term.cap_w is not None:
            energy_j[comp] = min(joules, term.cap_w * duration_s)


def energy_bounds(energy_j: Mapping[str, float], terms: Mapping[str, BoundTerms],
                  duration_s: float) -> dict[str, list[float]]:
    """``[lo, hi]`` in J per component: where the true energy of the window lies, given
    each component's :class:`~energykernel.counters.base.BoundTerms` (exact where it has
    none). Never below 0; ``hi`` never above the model's cap × duration."""
    out = {}
    for comp, joules in energy_j.items():
        term = terms.get(comp)
        if term is None:
            out[comp] = [joules, joules]
            continue
        hi = joules * term.high + term.abs_j
        if term.cap_w is not None:
            hi = min(hi, term.cap_w * duration_s)
        out[comp] = [max(0.0, min(joules * term.low - term.abs_j, hi)), hi]
    return out
