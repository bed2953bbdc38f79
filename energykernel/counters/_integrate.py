"""Energy from sampled power: the trapezoid rule between reads (shared by ``nvml``,
``hwmon`` and ``amdsmi``).

A backend whose device gives power, not energy, calls :meth:`PowerIntegral.update` on
every read with the power it just read and the monotonic time of the read; the
cumulative energy is the area under the straight lines joining the samples. A read that
fails is simply not passed in: the next good one integrates across the gap from the last
good sample, so nothing is lost or counted twice. The owner asks the sampler for reads at
least every :data:`POWER_POLL_S` (``poll_interval_s()``) so the integral follows the load.
"""

from __future__ import annotations

#: Read interval asked for while any device is measured by power integration (s).
POWER_POLL_S = 0.2


class PowerIntegral:
    """Cumulative J of one sampled power, plus the highest power it has read."""

    __slots__ = ("last_t", "last_w", "max_power_w", "samples", "total_j")

    def __init__(self, power_w: float, now_s: float) -> None:
        self.last_w = power_w
        self.last_t = now_s
        self.total_j = 0.0
        self.max_power_w = max(power_w, 0.0)
        self.samples = 1

    def update(self, power_w: float, now_s: float) -> float:
        """Add the trapezoid since the last sample; return the cumulative J since the first.

        A sample at the same (or an earlier) time adds nothing but becomes the new end
        point, so concurrent readers cannot count an interval twice.
        """
        elapsed_s = now_s - self.last_t
        if elapsed_s > 0:
            self.total_j += (self.last_w + power_w) / 2 * elapsed_s
            self.last_t = now_s
        self.last_w = power_w
        if power_w > self.max_power_w:
            self.max_power_w = power_w
        self.samples += 1
        return self.total_j
