"""Carbon intensity over time: an hourly (or other fixed-step) series in gCO2e/kWh.

A profile is a series of values, one per ``resolution_s`` (default one hour), starting at
hour 0 of its own clock; it repeats after its end (a day's profile holds every day). The
carbon of power *P(t)* over [t0, t1] is ``∫ P(t) × intensity(t) dt`` — for constant power,
``P × (F(t1) − F(t0))`` with ``F`` the cumulative integral (piecewise linear), which is
what :meth:`IntensityProfile.integral` returns.

Sources: a CSV file (a column ``intensity_g_per_kwh``, optionally ``hour``; lines starting
with ``#`` are comments), a JSON file (``{"intensity_g_per_kwh": [...], "resolution_s": 3600}``
or a bare list), a list of numbers, or the name of a profile shipped in
``energykernel/sim/data/profiles`` (:func:`named_profiles`; their files state source and
licence — the shipped ones are *synthetic*, and say so in their name). Bad input raises
:class:`~energykernel.sim.SimulationInputError` naming the file, the entry and the field.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ..core.units import short_repr
from .errors import SimulationInputError, read_input_text
from .fields import MAX_VALUE

DATA_DIR = Path(__file__).with_name("data") / "profiles"
FIELD = "intensity_g_per_kwh"


@dataclass(frozen=True, eq=False)
class IntensityProfile:
    """Grid carbon intensity (gCO2e/kWh) per step of ``resolution_s`` seconds from hour 0;
    ``name``, ``source`` and ``licence`` say where it comes from."""

    values_g_per_kwh: Sequence[float]
    resolution_s: float = 3600.0
    name: str = ""
    source: str = ""
    licence: str = ""
    synthetic: bool = False
    _arr: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        vals = self.values_g_per_kwh
        if isinstance(vals, (str, bytes)) or not hasattr(vals, "__len__"):
            raise SimulationInputError(
                f"{FIELD}: must be a list of numbers, got {short_repr(vals)}")
        out = [_value(v, f"{FIELD}[{j}]") for j, v in enumerate(vals)]
        if not out:
            raise SimulationInputError(f"{FIELD}: empty (one value per hour expected)")
        res = self.resolution_s
        if (isinstance(res, bool) or not isinstance(res, (int, float))
                or not math.isfinite(res) or not 0 < res <= MAX_VALUE):
            raise SimulationInputError(f"resolution_s: must be a number > 0 s, got "
                                       f"{short_repr(res)}")
        object.__setattr__(self, "values_g_per_kwh", tuple(out))
        object.__setattr__(self, "resolution_s", float(res))
        object.__setattr__(self, "_arr", np.asarray(out, dtype=float))

    @property
    def period_s(self) -> float:
        """Length of the series (s); it repeats after it."""
        return len(self._arr) * self.resolution_s

    @property
    def mean_g_per_kwh(self) -> float:
        return float(self._arr.mean())

    @cached_property
    def _cum(self) -> np.ndarray:
        return np.concatenate([[0.0], np.cumsum(self._arr * self.resolution_s)])

    def at(self, t_s: Any) -> np.ndarray:
        """Intensity at time(s) ``t_s`` (s from hour 0; the series repeats)."""
        j = (np.floor(np.asarray(t_s, dtype=float) / self.resolution_s) % len(self._arr))
        return self._arr[j.astype(np.int64)]

    def integral(self, t_s: Any) -> np.ndarray:
        """``F(t) = ∫_0^t intensity`` in gCO2e/kWh × s (vectorised; the series repeats)."""
        t = np.asarray(t_s, dtype=float)
        period = self.period_s
        cycles = np.floor(t / period)
        rest = t - cycles * period
        grid = np.arange(len(self._cum)) * self.resolution_s
        return cycles * self._cum[-1] + np.interp(rest, grid, self._cum)

    def mean(self, t0_s: Any, t1_s: Any) -> np.ndarray:
        """Mean intensity over [t0, t1] (the value at t0 where t1 == t0)."""
        t0 = np.asarray(t0_s, dtype=float)
        t1 = np.asarray(t1_s, dtype=float)
        span = t1 - t0
        with np.errstate(invalid="ignore", divide="ignore"):
            out = (self.integral(t1) - self.integral(t0)) / span
        return np.where(span > 0, out, self.at(t0))

    def label(self) -> str:
        """``name`` with "(synthetic)" where it is."""
        name = self.name or "profile"
        return f"{name} (synthetic)" if self.synthetic and "synthetic" not in name else name

    def to_json(self) -> Any:
        """How an instances file writes it: the shipped name, else the values."""
        if self.name and (DATA_DIR / f"{self.name}.csv").is_file():
            return self.name
        return list(self.values_g_per_kwh)

    def __repr__(self) -> str:
        return (f"<IntensityProfile {self.label()}: {len(self._arr)} × {self.resolution_s:g} s, "
                f"mean {self.mean_g_per_kwh:.4g} gCO2e/kWh>")


def _value(v: Any, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.number)):
        raise SimulationInputError(f"{what}: must be a number, got {short_repr(v)}")
    x = float(v)
    if not (math.isfinite(x) and 0 <= x <= MAX_VALUE):
        raise SimulationInputError(f"{what}: must be a finite number ≥ 0, got {short_repr(v)}")
    return x


def named_profiles() -> list[str]:
    """Names of the profiles shipped with energykernel."""
    return sorted(p.stem for p in DATA_DIR.glob("*.csv"))


def _parse_csv(text: str, where: str) -> tuple[list[float], dict[str, str]]:
    """Values and ``# key: value`` metadata of a profile CSV."""
    meta: dict[str, str] = {}
    body: list[tuple[int, str]] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith("#"):
            key, sep, val = line.lstrip()[1:].partition(":")
            if sep:
                meta[key.strip().lower()] = val.strip()
        elif line.strip():
            body.append((n, line))
    if not body:
        raise SimulationInputError(f"{where}: no header line (expected a column {FIELD!r})")
    header_line, header = body[0]
    cols = [c.strip() for c in next(csv.reader(io.StringIO(header)))]
    if FIELD not in cols:
        raise SimulationInputError(f"{where}: line {header_line}: no column {FIELD!r} "
                                   f"(columns: {', '.join(map(repr, cols))})")
    for c in cols:
        if c not in (FIELD, "hour"):
            raise SimulationInputError(f"{where}: line {header_line}: column {c!r}: unknown "
                                       f"(expected hour, {FIELD})")
    at = cols.index(FIELD)
    hour_at = cols.index("hour") if "hour" in cols else None
    values: list[float] = []
    for n, line in body[1:]:
        row = [c.strip() for c in next(csv.reader(io.StringIO(line)))]
        if len(row) != len(cols):
            raise SimulationInputError(f"{where}: line {n}: {len(row)} fields, expected {len(cols)}")
        if hour_at is not None:
            try:
                hour = float(row[hour_at])
            except ValueError:
                hour = math.nan
            if hour != len(values):
                raise SimulationInputError(
                    f"{where}: line {n}: field 'hour': expected {len(values)} (consecutive "
                    f"hours from 0), got {short_repr(row[hour_at])}")
        try:
            x = float(row[at])
        except ValueError:
            raise SimulationInputError(
                f"{where}: line {n}: field {FIELD!r}: must be a number, got "
                f"{short_repr(row[at])}") from None
        try:
            values.append(_value(x, f"field {FIELD!r}"))
        except SimulationInputError as exc:
            raise SimulationInputError(f"{where}: line {n}: {exc}") from None
    return values, meta


def load_profile(path: str | os.PathLike) -> IntensityProfile:
    """A profile from a CSV or JSON file (module docstring)."""
    p, text = read_input_text(path)
    if p.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise SimulationInputError(f"{p}: not valid JSON ({exc})") from None
        if isinstance(data, list):
            data = {FIELD: data}
        if not isinstance(data, dict) or FIELD not in data:
            raise SimulationInputError(f"{p}: expected a list or an object with {FIELD!r}")
        extra = set(data) - {FIELD, "resolution_s", "name", "source", "licence", "synthetic"}
        if extra:
            raise SimulationInputError(f"{p}: field {sorted(extra)[0]!r}: unknown field")
        try:
            return IntensityProfile(data[FIELD], data.get("resolution_s", 3600.0),
                                    str(data.get("name", p.stem)), str(data.get("source", "")),
                                    str(data.get("licence", "")), bool(data.get("synthetic")))
        except SimulationInputError as exc:
            raise SimulationInputError(f"{p}: {exc}") from None
    values, meta = _parse_csv(text, str(p))
    try:
        res = float(meta.get("resolution_s", 3600))
    except ValueError:
        raise SimulationInputError(f"{p}: '# resolution_s': must be a number") from None
    return IntensityProfile(values, res, meta.get("name", p.stem), meta.get("source", ""),
                            meta.get("licence", ""),
                            meta.get("synthetic", "").lower() in ("yes", "true"))


def as_profile(value: Any, base: Path | None = None) -> IntensityProfile:
    """``value`` as a profile: a profile, a list of numbers, a shipped name, or a path
    (relative to ``base``, the directory of the file that named it)."""
    if isinstance(value, IntensityProfile):
        return value
    if isinstance(value, (str, os.PathLike)):
        text = os.fspath(value)
        if text in named_profiles():
            return load_profile(DATA_DIR / f"{text}.csv")
        p = Path(text)
        if base is not None and not p.is_absolute():
            p = base / p
        if not p.exists():
            raise SimulationInputError(
                f"intensity_profile: {text!r}: neither a file nor a shipped profile "
                f"(shipped: {', '.join(named_profiles())})")
        return load_profile(p)
    if isinstance(value, (Sequence, np.ndarray)):
        return IntensityProfile(list(value))
    raise SimulationInputError(f"intensity_profile: must be a profile, a list of numbers, a "
                               f"file or a shipped name, got {short_repr(value)}")
