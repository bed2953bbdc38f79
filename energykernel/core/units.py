"""Units and names used everywhere: components, methods, joules per kWh, SI formatting."""

from __future__ import annotations

#: The components of the Dataset, in display order.
COMPONENTS: tuple[str, ...] = ("cpu", "gpu", "ram", "storage")

#: The values ``Measurement.method`` may take.
METHODS: tuple[str, ...] = ("rapl", "pyrapl", "nvml", "estimate", "simulated", "hwmon", "amdsmi",
                           "levelzero", "apple")

#: Joules in one kilowatt-hour.
J_PER_KWH = 3.6e6

#: Seconds in one hour.
S_PER_HOUR = 3600.0

#: Hours in a (365-day) year.
HOURS_PER_YEAR = 365.0 * 24.0

_PREFIXES = ((1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"), (1e-6, "µ"),
             (1e-9, "n"))


def si_scale(value: float, smallest: float = 1e-9) -> tuple[float, str]:
    """The SI factor and prefix to write ``value`` with: ``si_scale(1234.5) == (1e3, "k")``.

    Magnitudes below ``smallest`` (a factor, 1e-9 = nano) use the prefix of ``smallest``.
    """
    ladder = [p for p in _PREFIXES if p[0] >= smallest]
    magnitude = abs(value)
    for factor, prefix in ladder:
        if magnitude >= factor:
            return factor, prefix
    return ladder[-1]


def si(value: float, unit: str, digits: int = 3) -> str:
    """``si(1234.5, "J") == "1.23 kJ"``; zero and NaN are written plainly."""
    if value != value:  # NaN
        return f"— {unit}"
    if value == 0:
        return f"0 {unit}"
    value = float(f"{value:.{digits}g}")  # rounded first: 0.9996 is "1 J", not "1e+03 mJ"
    factor, prefix = si_scale(value)
    return f"{value / factor:.{digits}g} {prefix}{unit}"


def j_or_kwh(energy_j: float, digits: int = 3) -> str:
    """Joules as people read them: ``"512 J"``, ``"3.4 kJ"``, and kWh from 1 kWh up."""
    for unit, scale in (("kWh", J_PER_KWH), ("kJ", 1e3)):
        if abs(energy_j) >= scale:
            return f"{energy_j / scale:.{digits}g} {unit}"
    return f"{energy_j:.{digits}g} J"


def number(value: float, spec: str = ".4g", nan: str = "–") -> str:
    """``format(value, spec)``, or ``nan`` (a dash) for NaN: a table cell."""
    return nan if value != value else format(value, spec)


def duration(seconds: float) -> str:
    """``duration(0.25) == "250 ms"``, ``duration(3725) == "62 min 5 s"``."""
    seconds = float(f"{seconds:.3g}") if seconds < 120 else seconds  # 0.9996 s is "1 s"
    if seconds < 1e-3:
        return si(seconds, "s")
    if seconds < 1:
        return f"{seconds * 1e3:.3g} ms"
    if seconds < 120:
        return f"{seconds:.3g} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 120:
        return f"{int(minutes)} min {secs:.0f} s"
    hours, minutes = divmod(minutes, 60)
    return f"{int(hours)} h {int(minutes)} min"


def short_label(text: str, max_chars: int = 48) -> str:
    """``text`` cut to ``max_chars`` with an ellipsis in the middle, for figures and
    tables (the full label stays in the data)."""
    if len(text) <= max_chars:
        return text
    head = (max_chars - 1) * 2 // 3
    return f"{text[:head]}…{text[len(text) - (max_chars - 1 - head):]}"


#: Decimal digits above which :func:`short_repr` writes an integer as its digit count.
_REPR_MAX_DIGITS = 40


def short_repr(value: object, max_chars: int = 60) -> str:
    """``repr(value)`` for an error message: short, and never failing.

    An integer longer than 40 digits is ``"an integer of N digits"`` (``repr`` of one past
    Python's int-string limit raises); anything else is cut to about ``max_chars``, deep or
    huge containers included.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        magnitude = abs(value)
        if magnitude >= 10 ** _REPR_MAX_DIGITS:
            if magnitude.bit_length() < 10_000:  # exact, well inside the int-string limit
                digits = len(str(magnitude))
            else:
                import math

                digits = int(math.log10(magnitude)) + 1
            return f"an integer of {digits} digits"
    import reprlib

    r = reprlib.Repr()
    r.maxlevel, r.maxstring, r.maxother = 3, max_chars, max_chars
    return short_label(r.repr(value), max_chars)


def si_interval(value: float, lo: float, hi: float, unit: str) -> str:
    """A figure with its interval: ``1.23 J`` when the interval is within 2 % of it,
    ``≈ 1.2 J ± 0.1 J`` when within ±50 %, ``8 J (3.3 J–29 J)`` when wider, and ``< 34 mJ``
    when the interval reaches 0 (below resolution)."""
    if lo != lo or hi != hi:  # no interval known
        return si(value, unit)
    if hi - lo <= 0.02 * abs(value):
        return si(value, unit)
    if lo <= 0:  # the interval reaches 0: below resolution
        return f"< {si(hi, unit)}"
    half = max(hi - value, value - lo)
    if half <= 0.5 * abs(value):
        return f"≈ {si(value, unit)} ± {si(half, unit)}"
    return f"{si(value, unit)} ({si(lo, unit)}–{si(hi, unit)})"  # wide: the range itself
