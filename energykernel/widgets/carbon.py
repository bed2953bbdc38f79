"""``nn_calculator()``: an ipywidgets view over :func:`energykernel.carbon.nn_total`.

All numbers come from the pure functions :func:`compute` and :func:`sweep`, testable
without a browser; the widget only reads fields, shows errors next to them and draws.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from energykernel.carbon import NNBreakdown, intensity, nn_total, regions

FIELDS: dict[str, tuple[str, ...]] = {
    "training": ("hardware_count", "hardware_power_w", "server_count", "server_power_w",
                 "hours", "pue", "intensity_g_per_kwh", "transport_factor"),
    "inference": ("server_count", "server_power_w", "hours", "pue", "intensity_g_per_kwh",
                  "transport_factor"),
    "embodied": ("device_count", "production_energy_kwh", "intensity_g_per_kwh",
                 "transport_factor"),
}

_OFF = {"inference": dict(server_count=0, server_power_w=0, hours=0, pue=1.0,
                          intensity_g_per_kwh=0, transport_factor=1.0),
        "embodied": dict(device_count=0, production_energy_kwh=0, intensity_g_per_kwh=0,
                         transport_factor=1.0)}
PRESETS: dict[str, dict[str, dict[str, float]]] = {
    # Patterson et al. 2021, Table 4: 10,000 V100 at 330 W, 14.8 days, PUE 1.10, 429 g/kWh.
    "GPT-3 (Patterson et al. 2021)": {
        "training": dict(hardware_count=10_000, hardware_power_w=330, server_count=0,
                         server_power_w=0, hours=355.2, pue=1.10, intensity_g_per_kwh=429,
                         transport_factor=1.0),
        **_OFF},
    # Luccioni et al. 2023: 384 A100 at 400 W, 1,082,990 GPU-hours, French grid 57 g/kWh.
    "BLOOM-like (Luccioni et al. 2023)": {
        "training": dict(hardware_count=384, hardware_power_w=400, server_count=0,
                         server_power_w=0, hours=2820.3, pue=1.0, intensity_g_per_kwh=57,
                         transport_factor=1.0),
        **_OFF},
}


def compute(values: Mapping[str, Mapping[str, Any]]) -> tuple[NNBreakdown | None, dict[str, str]]:
    """Breakdown for ``values`` (phase -> field -> value) and errors keyed ``phase.field``."""
    errors: dict[str, str] = {}
    for phase, fields in FIELDS.items():
        for f in fields:
            v = values.get(phase, {}).get(f)
            try:
                x = float(v)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                errors[f"{phase}.{f}"] = f"{f} must be a number, got {v!r}"
                continue
            if x != x or x in (float("inf"), float("-inf")) or x < 0:
                errors[f"{phase}.{f}"] = f"{f} must be a finite number >= 0"
            elif f == "pue" and x < 1:
                errors[f"{phase}.{f}"] = "pue must be >= 1"
            elif f == "transport_factor" and x == 0:
                errors[f"{phase}.{f}"] = "transport_factor must be > 0"
    if errors:
        return None, errors
    kw = {p: {f: float(values[p][f]) for f in fs} for p, fs in FIELDS.items()}
    try:
        return nn_total(**kw), {}
    except (TypeError, ValueError) as exc:  # pragma: no cover - checked above
        return None, {"form": str(exc)}


def sweep(values: Mapping[str, Mapping[str, Any]], phase: str, field: str,
          points: list[float]) -> list[float]:
    """Total gCO2e for each value of ``phase.field`` in ``points`` (others fixed)."""
    out = []
    for p in points:
        changed = {k: dict(v) for k, v in values.items()}
        changed[phase][field] = p
        result, _ = compute(changed)
        out.append(float("nan") if result is None else float(result.total_g))
    return out


class NNCalculator:
    """The widget: ``.widget`` (displayable), ``.result`` (latest breakdown), ``.errors``."""

    def __init__(self, preset: str = "GPT-3 (Patterson et al. 2021)") -> None:
        import ipywidgets as w

        self.result: NNBreakdown | None = None
        self.errors: dict[str, str] = {}
        self._inputs: dict[str, Any] = {}
        self._errs: dict[str, Any] = {}
        self.preset = w.Dropdown(options=[*PRESETS, "Custom"], value=preset,
                                 description="Preset")
        codes = sorted(r.code for r in regions() if r.kind in ("country", "region"))
        boxes = []
        for phase, fields in FIELDS.items():
            rows = [w.HTML(f"<b>{phase}</b>")]
            region = w.Combobox(options=codes, placeholder="region code",
                                description="Region", ensure_option=False)
            region.observe(lambda ch, p=phase: self._region(p, ch["new"]), "value")
            rows.append(region)
            for f in fields:
                key = f"{phase}.{f}"
                self._inputs[key] = w.Text(description=f, style={"description_width": "160px"})
                self._errs[key] = w.HTML()
                self._inputs[key].observe(lambda _ch: self._update(), "value")
                rows.append(w.HBox([self._inputs[key], self._errs[key]]))
            boxes.append(w.VBox(rows))
        self.total = w.HTML()
        self.chart = w.Output()
        self.preset.observe(lambda ch: self.load(ch["new"]), "value")
        self.widget = w.VBox([self.preset, w.HBox(boxes), self.total, self.chart])
        self.load(preset)

    def load(self, preset: str) -> None:
        """Fill the fields from a preset (``Custom`` keeps them)."""
        if preset not in PRESETS:
            return
        self._loading = True
        for phase, fields in PRESETS[preset].items():
            for f, v in fields.items():
                self._inputs[f"{phase}.{f}"].value = repr(v)
        self._loading = False
        self._update()

    def set(self, **values: Any) -> None:
        """Set fields by ``phase__field=value`` (e.g. ``training__pue=1.2``)."""
        for k, v in values.items():
            self._inputs[k.replace("__", ".")].value = str(v)

    def values(self) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {p: {} for p in FIELDS}
        for key, box in self._inputs.items():
            phase, f = key.split(".")
            out[phase][f] = box.value
        return out

    def _region(self, phase: str, code: str) -> None:
        try:
            value = intensity(code)
        except (KeyError, ValueError, TypeError):
            self._errs[f"{phase}.intensity_g_per_kwh"].value = (
                f"<span style='color:#b00'>unknown region {code!r}</span>" if code else "")
            return
        self._inputs[f"{phase}.intensity_g_per_kwh"].value = repr(value)

    def _update(self) -> None:
        if getattr(self, "_loading", False):
            return
        vals = self.values()
        self.result, self.errors = compute(vals)
        for key, label in self._errs.items():
            msg = self.errors.get(key, "")
            label.value = f"<span style='color:#b00'>{msg}</span>" if msg else ""
        if self.result is None:
            self.total.value = "<i>fix the highlighted fields</i>"
            return
        r = self.result
        self.total.value = (f"<b>total {r.total_g / 1e6:,.3f} tCO2e</b> — embodied "
                            f"{r.embodied_g / 1e6:,.3f} t, training {r.training_g / 1e6:,.3f} t"
                            f" ({r.training_kwh / 1e3:,.1f} MWh), inference "
                            f"{r.inference_g / 1e6:,.3f} t ({r.inference_kwh / 1e3:,.1f} MWh)")
        self._draw(vals)

    def _draw(self, vals: dict[str, dict[str, str]]) -> None:
        import matplotlib.pyplot as plt
        from IPython.display import display

        r = self.result
        assert r is not None
        pues = [1.0 + 0.1 * k for k in range(11)]
        totals = sweep(vals, "training", "pue", pues)
        self.chart.clear_output(wait=True)
        with self.chart:
            fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3))
            ax1.bar(["embodied", "training", "inference"],
                    [r.embodied_g / 1e6, r.training_g / 1e6, r.inference_g / 1e6])
            ax1.set_ylabel("tCO2e")
            ax2.plot(pues, [t / 1e6 for t in totals])
            ax2.set_xlabel("training PUE")
            ax2.set_ylabel("total tCO2e")
            fig.tight_layout()
            display(fig)
            plt.close(fig)

    def _ipython_display_(self) -> None:  # pragma: no cover - display hook
        from IPython.display import display

        display(self.widget)


def nn_calculator(preset: str = "GPT-3 (Patterson et al. 2021)") -> NNCalculator:
    """The NN carbon calculator widget (presets, region lookup, live breakdown and sweep)."""
    return NNCalculator(preset)
