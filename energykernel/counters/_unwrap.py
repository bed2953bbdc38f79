"""Wraparound-safe accumulation of RAPL energy counters (shared by ``rapl`` and ``pyrapl``).

A powercap ``energy_uj`` counter runs from 0 up to ``max_energy_range_uj`` *inclusive*
and then starts again at 0, so it counts modulo ``max_energy_range_uj + 1``. Between two
reads ``last`` and ``raw`` the energy is therefore::

    raw - last                              if raw >= last
    (max_energy_range_uj + 1) - last + raw  if raw <  last   (one wrap)

(The hardware counter is 32 bits of an energy unit of ~15–61 µJ; the kernel reports it
truncated to whole µJ, so the true modulus is within one energy unit of ``range + 1`` —
an error of < 61 µJ per wrap, i.e. < 3e-10 of the energy between wraps.)

Two wraps between reads cannot be told apart from one, so the owner must read at least
every :meth:`WrapCounter.safe_interval_s`; the backends expose it as ``poll_interval_s()``
and the sampler honours it. Totals are kept in integer µJ, so they are exact.
"""

from __future__ import annotations

from .base import BoundTerms

#: Shortest poll interval we ever ask for (a counter that wraps faster is not RAPL).
MIN_POLL_S = 0.001
#: Longest poll interval we ever ask for (the sampler reads more often anyway).
MAX_POLL_S = 60.0
#: Power assumed when neither a constraint nor an observation gives one (W). Larger
#: than any single CPU package or DRAM domain today, so the interval errs short.
UNKNOWN_POWER_W = 1000.0
#: Observed power is only measured over at least this long (s): RAPL counters update
#: about every millisecond, so two reads microseconds apart would exaggerate it.
POWER_WINDOW_S = 0.05
#: RAPL energy status unit (J): the largest in use, 1/2^14 J (Intel's default energy
#: status unit, MSR_RAPL_POWER_UNIT; many server parts and AMD use the finer 1/2^16 J).
RAPL_ENERGY_UNIT_J = 2.0 ** -14
#: RAPL energy status update period (s): about 1 ms (Intel SDM Vol. 3B, §15.10.1).
RAPL_UPDATE_S = 1e-3


class WrapCounter:
    """Cumulative µJ of one wrapping counter, plus the highest power seen on it.

    ``range_uj`` is ``max_energy_range_uj``; ``None`` or 0 means unknown: a backwards
    step then counts only ``raw`` (energy is never negative, but may be undercounted).
    """

    __slots__ = (
        "last_uj",
        "max_power_w",
        "modulus_uj",
        "range_uj",
        "ref_t",
        "ref_uj",
        "total_uj",
        "wraps",
    )

    def __init__(
        self, first_uj: int, range_uj: int | None, now_s: float, max_power_w: float = 0.0
    ) -> None:
        self.range_uj = range_uj if range_uj and range_uj > 0 else None
        self.modulus_uj = self.range_uj + 1 if self.range_uj else None
        self.last_uj = first_uj
        self.total_uj = 0
        self.wraps = 0
        self.max_power_w = max_power_w
        self.ref_t = now_s
        self.ref_uj = 0

    def update(self, raw_uj: int, now_s: float) -> int:
        """Account for a new raw reading; return the cumulative µJ since the first."""
        last = self.last_uj
        if raw_uj >= last:
            self.total_uj += raw_uj - last
        else:
            self.wraps += 1
            self.total_uj += (self.modulus_uj - last + raw_uj) if self.modulus_uj else raw_uj
        self.last_uj = raw_uj
        elapsed_s = now_s - self.ref_t
        if elapsed_s >= POWER_WINDOW_S:
            power_w = (self.total_uj - self.ref_uj) / elapsed_s * 1e-6
            if power_w > self.max_power_w:
                self.max_power_w = power_w
            self.ref_t = now_s
            self.ref_uj = self.total_uj
        return self.total_uj

    def safe_interval_s(self) -> float | None:
        """Half the time the counter needs to wrap at the highest known power.

        ``None`` when the range is unknown (no interval would help).
        """
        if self.range_uj is None:
            return None
        power_w = self.max_power_w if self.max_power_w > 0 else UNKNOWN_POWER_W
        interval_s = self.range_uj * 1e-6 / power_w / 2
        return min(MAX_POLL_S, max(MIN_POLL_S, interval_s))


def rapl_bound_terms(counters: list[tuple[str, WrapCounter]]) -> dict[str, BoundTerms]:
    """The :class:`BoundTerms` of RAPL zones: one energy unit plus the energy of one update
    period at the highest power known for the zone (observed, else its power limit, else
    :data:`UNKNOWN_POWER_W`)."""
    out = {}
    for name, counter in counters:
        power_w = counter.max_power_w if counter.max_power_w > 0 else UNKNOWN_POWER_W
        out[name] = BoundTerms(RAPL_ENERGY_UNIT_J + power_w * RAPL_UPDATE_S,
                               source=f"RAPL unit {RAPL_ENERGY_UNIT_J * 1e6:.3g} µJ + "
                                      f"{power_w:.4g} W × {RAPL_UPDATE_S * 1e3:g} ms update")
    return out
