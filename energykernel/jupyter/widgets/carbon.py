"""``nn_calculator()``: an ipywidgets view over :func:`energykernel.carbon.nn_total`.

Numbers come from the carbon package (:func:`energykernel.carbon.nn_total`, the sweep of
:mod:`energykernel.carbon.sweep`) and the charts from :mod:`energykernel.viz.carbon`
(:class:`matplotlib.figure.Figure`, no pyplot) into an ``ipywidgets.Image``; this module only
reads fields (:func:`compute`, :func:`sweep_points`, :func:`sweep`: testable without a
browser), shows errors next to them and lays the form out. Updates are debounced and
serialised by a lock, so the last state wins even when the kernel handles two widget
messages at once. The form reflows (flex-wrap) in a narrow notebook.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from energykernel.carbon import NNBreakdown, check_number, intensity, nn_total, region_choices
from energykernel.carbon.sweep import sweep_points as _sweep_points
from energykernel.carbon.sweep import sweep_totals
from energykernel.viz.carbon import nn_description as chart_description
from energykernel.viz.carbon import nn_figure
from energykernel.viz.plot import figure_png

from ._common import Debouncer, caption_html, chart_image, error_html

FIELDS: dict[str, tuple[str, ...]] = {
    "training": ("hardware_count", "hardware_power_w", "server_count", "server_power_w",
                 "hours", "pue", "intensity_g_per_kwh", "transport_factor"),
    "inference": ("server_count", "server_power_w", "hours", "pue", "intensity_g_per_kwh",
                  "transport_factor"),
    "embodied": ("device_count", "production_energy_kwh", "intensity_g_per_kwh",
                 "transport_factor"),
}

#: What each field is called on the form (words with units) and its tooltip; the tooltip
#: names the parameter of the calculators (:func:`energykernel.carbon.nn_total`).
FIELD_TEXT: dict[str, tuple[str, str]] = {
    "hardware_count": ("Accelerators", "number of GPUs/TPUs used"),
    "hardware_power_w": ("Power per accelerator (W)", "average power draw of one accelerator"),
    "server_count": ("Servers", "number of host servers (beyond the accelerators)"),
    "server_power_w": ("Power per server (W)", "average power draw of one server"),
    "hours": ("Duration (hours)", "wall-clock hours of the phase"),
    "pue": ("PUE (×)", "datacentre power usage effectiveness, ≥ 1"),
    "intensity_g_per_kwh": ("Grid intensity (gCO2e/kWh)",
                            "carbon intensity of the electricity; a region fills it in"),
    "transport_factor": ("Transport factor (×)", "multiplier for shipping and installation, ≥ 1"),
    "device_count": ("Devices", "number of devices whose manufacture is counted"),
    "production_energy_kwh": ("Production energy (kWh each)",
                              "energy to manufacture one device"),
}
#: A chart out of date with the fields is drawn faded (the class is set by the widget).
STALE_CSS = ".ek-stale{opacity:.3;filter:grayscale(1)}"
REGION_HELP = ("a country (FR, France), a US state (US-CA) or a cloud region "
               "(aws:eu-north-1); its grid intensity fills the field below")


def field_label(field: str) -> str:
    """The words a field is shown with (its parameter name when it has none)."""
    return FIELD_TEXT.get(field, (field, ""))[0]


def field_tooltip(phase: str, field: str) -> str:
    """A field's tooltip: what it is, and the parameter it sets."""
    what = FIELD_TEXT.get(field, ("", ""))[1]
    param = f"parameter {field} of energykernel.carbon.nn_total({phase}=...)"
    return f"{what} — {param}" if what else param


def region_code(text: str) -> str:
    """The code behind a region field's text: a suggested label's code, else the text as
    typed (an ISO code, a name or a cloud region)."""
    return region_choices().get(text, text).strip()


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
CUSTOM = "Custom"
# What the sweep plot varies: label → (phase, field).
SWEEPS: dict[str, tuple[str, str]] = {
    "training PUE": ("training", "pue"),
    "training hours": ("training", "hours"),
    "training intensity (gCO2e/kWh)": ("training", "intensity_g_per_kwh"),
}


def _read(text: Any) -> Any:
    """A field's number; text that is not one is passed on for the check to name."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return text


def _numbers(values: Mapping[str, Mapping[str, Any]]
             ) -> tuple[dict[str, dict[str, float]], dict[str, str]]:
    """Each field's number, checked by :func:`energykernel.carbon.check_number` (the
    calculators' own check, so a label says what their ``ValueError`` would), and errors
    keyed ``phase.field``."""
    errors: dict[str, str] = {}
    kw: dict[str, dict[str, float]] = {p: {} for p in FIELDS}
    for phase, fields in FIELDS.items():
        for f in fields:
            try:
                kw[phase][f] = check_number(f, _read(values.get(phase, {}).get(f)))
            except (TypeError, ValueError) as exc:
                errors[f"{phase}.{f}"] = str(exc)
    return kw, errors


def compute(values: Mapping[str, Mapping[str, Any]]) -> tuple[NNBreakdown | None, dict[str, str]]:
    """Breakdown for ``values`` (phase -> field -> value) and errors keyed ``phase.field``
    (``form`` for an error of the whole form, e.g. a total that overflows)."""
    kw, errors = _numbers(values)
    if errors:
        return None, errors
    try:
        return nn_total(**kw), {}
    except (TypeError, ValueError) as exc:
        return None, {"form": str(exc)}


def sweep_points(values: Mapping[str, Mapping[str, Any]], phase: str, field: str,
                 n: int = 11) -> list[float]:
    """The x values of the sweep plot from the field's current text
    (:func:`energykernel.carbon.sweep.sweep_points`)."""
    try:
        current = float(values[phase][field])
    except (KeyError, TypeError, ValueError):
        current = math.nan
    return _sweep_points(field, current, n)


def sweep(values: Mapping[str, Mapping[str, Any]], phase: str, field: str,
          points: list[float]) -> list[float]:
    """Total gCO2e for each value of ``phase.field`` in ``points`` (the other fields as
    given; all NaN while one of them is invalid)."""
    kw, errors = _numbers(values)
    errors.pop(f"{phase}.{field}", None)  # the swept field takes the points
    if errors:
        return [math.nan] * len(points)
    return sweep_totals(kw, phase, field, points)


def total_html(r: NNBreakdown) -> str:
    """The live total and its breakdown, as shown."""
    return (f"<b>total {r.total_g / 1e6:,.3f} tCO2e</b> — embodied "
            f"{r.embodied_g / 1e6:,.3f} t, training {r.training_g / 1e6:,.3f} t"
            f" ({r.training_kwh / 1e3:,.1f} MWh), inference "
            f"{r.inference_g / 1e6:,.3f} t ({r.inference_kwh / 1e3:,.1f} MWh)")


class NNCalculator:
    """The widget: ``.widget`` (displayable), ``.result`` (latest breakdown), ``.errors``;
    :meth:`update` applies the fields now."""

    def __init__(self, preset: str = "GPT-3 (Patterson et al. 2021)",
                 debounce_s: float = 0.15) -> None:
        import ipywidgets as w

        self.result: NNBreakdown | None = None
        self.errors: dict[str, str] = {}
        self._inputs: dict[str, Any] = {}
        self._errs: dict[str, Any] = {}
        self._region_errors: dict[str, str] = {}
        self._loading = False
        self._debouncer = Debouncer(self._apply, debounce_s, on_error=self._show_failure)
        wrap = w.Layout(flex_flow="row wrap", align_items="flex-start", width="100%")
        self.preset = w.Dropdown(options=[*PRESETS, CUSTOM],
                                 value=preset if preset in PRESETS else CUSTOM,
                                 description="Preset", layout=w.Layout(width="auto"))
        self.sweep = w.Dropdown(options=list(SWEEPS), value="training PUE",
                                description="Sweep", layout=w.Layout(width="auto"))
        choices = list(region_choices())
        # a field takes its column's width (up to 360 px) and shrinks with it; its error
        # message sits beside it, or wraps below it in a narrow column
        field = w.Layout(width="100%", max_width="360px", min_width="0")
        boxes = []
        for phase, fields in FIELDS.items():
            rows = [w.HTML(f"<b>{phase}</b>")]
            region = w.Combobox(options=choices, placeholder="FR, France, aws:eu-north-1…",
                                description="Region", ensure_option=False,
                                tooltip=REGION_HELP,
                                style={"description_width": "190px"}, layout=field)
            region.observe(lambda ch, p=phase: self._region(p, ch["new"]), "value")
            rows.append(w.HBox([region], layout=w.Layout(width="100%")))
            for f in fields:
                key = f"{phase}.{f}"
                self._inputs[key] = w.Text(description=field_label(f),
                                           tooltip=field_tooltip(phase, f),
                                           style={"description_width": "190px"}, layout=field)
                self._errs[key] = w.HTML(layout=w.Layout(width="auto"))
                self._inputs[key].observe(self._changed, "value")
                rows.append(w.HBox([self._inputs[key], self._errs[key]],
                                   layout=w.Layout(flex_flow="row wrap", width="100%")))
            boxes.append(w.VBox(rows, layout=w.Layout(flex="1 1 300px", min_width="280px",
                                                      max_width="480px", margin="0 12px 8px 0")))
        self.total = w.HTML()
        self.total.add_class("ek-nn-total")
        self.chart, self.caption = chart_image("ek-nn-chart")
        self.preset.observe(lambda ch: self.load(ch["new"]), "value")
        self.sweep.observe(self._changed, "value")
        style = w.HTML(f"<style>{STALE_CSS}</style>", layout=w.Layout(display="none"))
        self.widget = w.VBox([w.HBox([self.preset, self.sweep], layout=wrap),
                              w.HBox(boxes, layout=wrap), self.total, self.chart,
                              self.caption, style],
                             layout=w.Layout(width="100%"))
        self.load(self.preset.value)

    def load(self, preset: str) -> None:
        """Fill the fields from a preset (``Custom`` keeps them) and update now."""
        if preset not in PRESETS:
            return
        self._loading = True
        try:
            for phase, fields in PRESETS[preset].items():
                for f, v in fields.items():
                    self._inputs[f"{phase}.{f}"].value = repr(v)
        finally:
            self._loading = False
        self.update()

    def set(self, **values: Any) -> None:
        """Set fields by ``phase__field=value`` (e.g. ``training__pue=1.2``) and update now."""
        self._loading = True
        try:
            for k, v in values.items():
                self._inputs[k.replace("__", ".")].value = str(v)
        finally:
            self._loading = False
        if values:
            self._mark_custom()
        self.update()

    def values(self) -> dict[str, dict[str, str]]:
        """Every field's text, phase → field → value."""
        out: dict[str, dict[str, str]] = {p: {} for p in FIELDS}
        for key, box in self._inputs.items():
            phase, f = key.split(".")
            out[phase][f] = box.value
        return out

    @property
    def pending(self) -> bool:
        """Whether a debounced update is scheduled and not yet applied."""
        return self._debouncer.pending

    def update(self) -> None:
        """Apply the fields now (synchronously), cancelling a pending debounced update."""
        self._debouncer.flush()

    refresh = update

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a pending debounced update; True when none is left."""
        return self._debouncer.wait(timeout)

    def _changed(self, change: Any = None) -> None:
        if self._loading:
            return
        if change is not None and change.get("owner") in self._inputs.values():
            self._mark_custom()
        self._debouncer.trigger()

    def _mark_custom(self) -> None:
        """An edited field no longer matches the preset: show "Custom" (fields kept)."""
        if self.preset.value != CUSTOM:
            self.preset.value = CUSTOM  # load(CUSTOM) keeps the fields

    _update = update  # the name used before debouncing

    def _region(self, phase: str, text: str) -> None:
        key = f"{phase}.intensity_g_per_kwh"
        code = region_code(text)
        try:
            value = intensity(code)
        except (KeyError, ValueError, TypeError):
            self._region_errors[phase] = f"unknown region {code!r}" if code else ""
            self._errs[key].value = error_html(self._region_errors[phase]
                                               or self.errors.get(key))
            return
        self._region_errors[phase] = ""
        self._inputs[key].value = repr(value)

    def _apply(self) -> None:
        """Recompute from the fields; refresh errors, total and charts (under the lock)."""
        vals = self.values()
        result, errors = compute(vals)
        self.result, self.errors = result, errors
        for key, label in self._errs.items():
            phase = key.split(".")[0]
            region = self._region_errors.get(phase) if key.endswith(".intensity_g_per_kwh") else ""
            label.value = error_html(errors.get(key) or region)
        if result is None:
            self.total.value = (error_html(errors["form"]) if "form" in errors
                                else "<i>fix the highlighted fields</i>")
            self._mark_stale(True)
            return
        self.total.value = total_html(result)
        self._draw(result, vals)
        self._mark_stale(False)

    @property
    def stale(self) -> bool:
        """Whether the chart shows inputs that are no longer the form's (invalid fields)."""
        return "ek-stale" in self.chart._dom_classes

    def _mark_stale(self, stale: bool) -> None:
        """Grey the chart out and say so while the fields are invalid (it still shows the
        last valid inputs); nothing to mark before a first chart."""
        if stale and self.chart.value:
            self.chart.add_class("ek-stale")
            self.caption.value = caption_html("chart out of date: it shows the last valid "
                                              "inputs — fix the highlighted fields")
        elif not stale and self.stale:
            self.chart.remove_class("ek-stale")

    def _draw(self, r: NNBreakdown, vals: dict[str, dict[str, str]]) -> None:
        phase, field = SWEEPS[self.sweep.value]
        points = sweep_points(vals, phase, field)
        totals = sweep(vals, phase, field, points)
        try:
            png = figure_png(nn_figure(r, self.sweep.value, points, totals,
                                       float(vals[phase][field])), dpi=96, tight=False,
                             compress_level=1)
        except ImportError:  # pragma: no cover - matplotlib is optional
            return
        self.chart.value = png
        self.caption.value = caption_html(chart_description(r, self.sweep.value))

    def _show_failure(self, exc: BaseException) -> None:
        self.total.value = error_html(f"{type(exc).__name__}: {exc}")

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


def nn_calculator(preset: str = "GPT-3 (Patterson et al. 2021)",
                  debounce_s: float = 0.15) -> NNCalculator:
    """The NN carbon calculator widget (presets, region lookup, live breakdown and sweep)."""
    return NNCalculator(preset, debounce_s=debounce_s)
