"""Export to an Impact Framework (IF v1) manifest whose builtin pipeline recomputes our numbers.

``to_if_manifest(source, path)`` accepts an :class:`NNBreakdown` (from ``nn_total``) or a
Dataset carrying ``emissions`` (from ``carbon_dataset``; pass ``intensity=`` / ``pue=`` /
``embodied=`` to compute them first). Only IF builtins are used: Multiply, Sum,
Coefficient, Divide, SciEmbodied and Sci. The YAML is written by a tiny emitter here (no
PyYAML dependency). Run it with ``if-run --manifest PATH --output OUT`` (npm ``@grnsft/if``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from energykernel.carbon.calculators import NNBreakdown
from energykernel.core._atomic import write_text_atomic
from energykernel.core.units import J_PER_KWH, S_PER_HOUR

TIMESTAMP = "2024-01-01T00:00:00Z"


# -- YAML -------------------------------------------------------------------------------

def _scalar(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool | np.bool_):
        return "true" if v else "false"
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, float | np.floating):
        f = float(v)
        if not math.isfinite(f):
            raise ValueError(f"cannot write the non-finite number {f!r} to a manifest")
        text = repr(f)
        if "e" in text and "." not in text.split("e")[0]:
            mantissa, exp = text.split("e")
            text = f"{mantissa}.0e{exp}"
        return text
    return json.dumps(str(v))


def to_yaml(obj: Any, indent: int = 0) -> str:
    """YAML text for nested dicts / lists / scalars (block style, strings double-quoted)."""
    pad = " " * indent
    lines: list[str] = []
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            key = json.dumps(str(k))
            nested = isinstance(v, Mapping) and bool(v)
            if nested or (isinstance(v, list) and any(isinstance(x, Mapping) for x in v)):
                lines.append(f"{pad}{key}:")
                lines.append(to_yaml(v, indent + 2))
            elif isinstance(v, list):
                lines.append(f"{pad}{key}: [{', '.join(_scalar(x) for x in v)}]")
            elif isinstance(v, Mapping):
                lines.append(f"{pad}{key}: {{}}")
            else:
                lines.append(f"{pad}{key}: {_scalar(v)}")
    elif isinstance(obj, list):
        for item in obj:
            body = to_yaml(item, indent + 2) if isinstance(item, Mapping) else pad + "  " + _scalar(item)
            lines.append(f"{pad}- {body.lstrip()}")
    else:
        lines.append(pad + _scalar(obj))
    return "\n".join(lines)


# -- pipeline builder --------------------------------------------------------------------

class _Pipeline:
    """Collects plugin definitions and the compute order for one manifest."""

    def __init__(self) -> None:
        self.plugins: dict[str, dict[str, Any]] = {}
        self.compute: list[str] = []

    def add(self, name: str, method: str, config: Mapping[str, Any], *, run: bool = True) -> str:
        self.plugins.setdefault(name, {"method": method, "path": "builtin", "config": dict(config)})
        if run:
            self.compute.append(name)
        return name

    def multiply(self, name: str, inputs: list[str], output: str) -> None:
        self.add(name, "Multiply", {"input-parameters": inputs, "output-parameter": output})

    def sum(self, name: str, inputs: list[str], output: str) -> None:
        self.add(name, "Sum", {"input-parameters": inputs, "output-parameter": output})

    def coefficient(self, name: str, inp: str, k: float, output: str) -> None:
        self.add(name, "Coefficient", {"input-parameter": inp, "coefficient": k,
                                       "output-parameter": output})

    def divide(self, name: str, num: str, den: str, output: str) -> None:
        self.add(name, "Divide", {"numerator": num, "denominator": den, "output": output})


def _tag(i: int) -> str:
    """Letters-only entry tag (IF parameter names may not hold digits): a, b, ..., z, ba, ..."""
    out = ""
    while True:
        out = chr(ord("a") + i % 26) + out
        i //= 26
        if i == 0:
            return out


def _entries(spec: Mapping[str, Any], keys: Sequence[str]) -> list[dict[str, float]]:
    from energykernel.carbon._args import is_dataarray

    cols = {}
    for k in keys:
        v = spec[k]
        if isinstance(v, str):
            from energykernel.carbon.intensity import intensity

            v = intensity(v)
        if is_dataarray(v) or np.ndim(v) > 1:
            raise ValueError(f"{k}: a sweep (DataArray / n-D array) cannot be exported; "
                             "export one scenario at a time")
        if isinstance(v, list | tuple):
            from energykernel.carbon.intensity import intensity

            v = [intensity(x) if isinstance(x, str) else x for x in v]
        cols[k] = np.atleast_1d(np.asarray(v, dtype=float))
    n = max(len(c) for c in cols.values())
    return [{k: float(c[i] if len(c) > 1 else c[0]) for k, c in cols.items()} for i in range(n)]


def _amortised_embodied(p: _Pipeline, name: str, spec: Mapping[str, float], time_s: float,
                        output: str, inputs: dict[str, Any]) -> None:
    """SciEmbodied with the baseline server = our device: M = TE × usage-ratio × time / lifespan."""
    te = float(spec["total_embodied_g"])
    ratio = float(spec.get("resources_reserved", 1.0)) / float(spec.get("total_resources", 1.0))
    if te == 0 or ratio == 0 or time_s == 0:
        inputs[output] = 0.0
        return
    p.add(name, "SciEmbodied", {"baseline-emissions": te,
                                "lifespan": float(spec["expected_lifespan_h"]) * S_PER_HOUR,
                                "output-parameter": output})
    inputs.update({"vCPUs": 1, "memory": 16, "usage-ratio": ratio, "time": time_s})


def _nn_manifest(result: NNBreakdown, functional_units: float | None) -> tuple[dict, dict, list]:
    p = _Pipeline()
    inputs: dict[str, Any] = {}
    totals: dict[str, list[str]] = {"training": [], "inference": [], "embodied": []}
    energies: dict[str, list[str]] = {"training": [], "inference": []}
    for phase in ("training", "inference"):
        spec = result.inputs.get(phase)
        if spec is None:
            continue
        keys = ["server_count", "server_power_w", "hours", "pue", "intensity_g_per_kwh"]
        if phase == "training":
            keys = ["hardware_count", "hardware_power_w", *keys]
        spec = {"transport_factor": 1.0, **spec}
        for i, e in enumerate(_entries(spec, [*keys, "transport_factor"])):
            q = f"{phase}-{_tag(i)}"
            for k, v in e.items():
                inputs[f"{q}/{_param(k)}"] = v
            power = [f"{q}/server-power-total-w"]
            p.multiply(f"{q}-servers", [f"{q}/server-count", f"{q}/server-power-w"], power[0])
            if phase == "training":
                p.multiply(f"{q}-hardware", [f"{q}/hardware-count", f"{q}/hardware-power-w"],
                           f"{q}/hardware-power-total-w")
                power.append(f"{q}/hardware-power-total-w")
            p.sum(f"{q}-it-power", power, f"{q}/it-power-w")
            p.multiply(f"{q}-energy-wh", [f"{q}/it-power-w", f"{q}/hours", f"{q}/pue"],
                       f"{q}/energy-wh")
            p.coefficient(f"{q}-energy", f"{q}/energy-wh", 0.001, f"{q}/energy")
            p.divide(f"{q}-intensity", f"{q}/grid/carbon-intensity", f"{q}/transport-factor",
                     f"{q}/effective-intensity")
            p.multiply(f"{q}-carbon", [f"{q}/energy", f"{q}/effective-intensity"], f"{q}/carbon")
            energies[phase].append(f"{q}/energy")
            totals[phase].append(f"{q}/carbon")
    emb = result.inputs.get("embodied")
    if isinstance(emb, Mapping) and "total_embodied_g" in emb:
        e = _entries(emb, [k for k in emb if k != "time_reserved_h"] + ["time_reserved_h"])
        if len(e) != 1:
            raise ValueError("export amortised embodied carbon for one device type at a time")
        _amortised_embodied(p, "embodied-a-amortised", e[0], e[0]["time_reserved_h"] * S_PER_HOUR,
                            "embodied-a/carbon", inputs)
        totals["embodied"].append("embodied-a/carbon")
    elif isinstance(emb, Mapping):
        spec = {"transport_factor": 1.0, **emb}
        for i, e in enumerate(_entries(spec, ["device_count", "production_energy_kwh",
                                              "intensity_g_per_kwh", "transport_factor"])):
            q = f"embodied-{_tag(i)}"
            for k, v in e.items():
                inputs[f"{q}/{_param(k)}"] = v
            p.divide(f"{q}-intensity", f"{q}/grid/carbon-intensity", f"{q}/transport-factor",
                     f"{q}/effective-intensity")
            p.multiply(f"{q}-carbon", [f"{q}/effective-intensity",
                                       f"{q}/production-energy-kwh", f"{q}/device-count"],
                       f"{q}/carbon")
            totals["embodied"].append(f"{q}/carbon")
    elif emb is not None:
        for i, v in enumerate(np.atleast_1d(np.asarray(emb, dtype=float))):
            inputs[f"embodied-{_tag(i)}/carbon"] = float(v)
            totals["embodied"].append(f"embodied-{_tag(i)}/carbon")
    for phase, names in energies.items():
        if names:
            p.sum(f"energy-{phase}", names, f"energy-{phase}")
    out_names = []
    for phase, names in totals.items():
        if names:
            p.sum(f"carbon-{phase}", names, f"carbon-{phase}")
            out_names.append(f"carbon-{phase}")
    if not out_names:
        raise ValueError("nothing to export: the breakdown has no training, inference or "
                         "embodied inputs")
    p.sum("carbon", out_names, "carbon")
    if functional_units is not None:
        inputs["functional-units"] = float(functional_units)
        p.add("sci", "Sci", {"functional-unit": "functional-units"})
    obs = {"timestamp": TIMESTAMP, "duration": 1, **inputs}
    tree = {"children": {"nn": {"pipeline": {"compute": p.compute}, "inputs": [obs]}}}
    return p.plugins, tree, p.compute


def _param(key: str) -> str:
    return {"intensity_g_per_kwh": "grid/carbon-intensity"}.get(key, key.replace("_", "-"))


def _dataset_manifest(ds: Any) -> tuple[dict, dict]:
    import xarray as xr

    if "emissions" not in ds.data_vars:
        raise ValueError("the Dataset has no 'emissions'; call carbon_dataset(ds, "
                         "intensity=...) first or pass intensity=... here")
    attrs = ds["emissions"].attrs
    inten = _per_instance_attr(attrs.get("intensity_g_per_kwh"), "intensity")
    pue = _per_instance_attr(attrs.get("pue"), "pue")
    p = _Pipeline()
    p.coefficient("energy-kwh", "energy-j", 1.0 / J_PER_KWH, "energy")
    p.multiply("carbon-operational", ["energy", "pue", "grid/carbon-intensity"], "carbon")
    energy = ds["energy"]
    def spread(var: str) -> Any:
        if var not in ds.variables:
            return None
        return xr.broadcast(ds[var], energy)[0].transpose(*energy.dims)

    inst, dur = spread("instance"), spread("duration")
    tree: dict[str, Any] = {"children": {}}
    for idx in np.ndindex(energy.shape):
        joules = float(energy.values[idx])
        if not math.isfinite(joules):
            continue
        name = str(inst.values[idx]) if inst is not None else ""
        node = tree
        for dim, k in zip(energy.dims, idx, strict=True):
            label = str(energy[dim].values[k]) if dim in energy.coords else f"{dim}-{k}"
            node = node["children"].setdefault(label, {"children": {}})
        node.pop("children")
        seconds = float(dur.values[idx]) if dur is not None else 1.0
        node["pipeline"] = {"compute": list(p.compute)}
        node["inputs"] = [{
            "timestamp": TIMESTAMP, "duration": max(1, math.ceil(seconds)), "energy-j": joules,
            "pue": _pick(pue, name, "pue"), "grid/carbon-intensity": _pick(inten, name, "intensity"),
        }]
    if not tree["children"]:
        raise ValueError("nothing to export: every energy value is NaN")
    return p.plugins, tree


def _per_instance_attr(value: Any, what: str) -> Any:
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict) and all(isinstance(v, int | float) for v in parsed.values()):
            return {str(k): float(v) for k, v in parsed.items()}
    raise ValueError(f"cannot export: the {what} used for 'emissions' is not a number or a "
                     f"per-instance mapping ({value!r})")


def _pick(value: Any, instance: str, what: str) -> float:
    if isinstance(value, dict):
        if instance not in value:
            raise ValueError(f"cannot export: no {what} recorded for instance {instance!r}")
        return value[instance]
    return value


def to_if_manifest(source: Any, path: str | os.PathLike[str] | None = None, *,
                   name: str = "energykernel", description: str | None = None,
                   functional_units: float | None = None, **carbon_kwargs: Any) -> str:
    """Write (if ``path``) and return an IF v1 manifest recomputing ``source``'s emissions.

    ``source``: an :class:`NNBreakdown` (``functional_units`` adds an SCI step) or a
    Dataset with ``emissions``; ``carbon_kwargs`` (``intensity``, ``pue``, ``embodied``)
    are passed to ``carbon_dataset`` first. The file is written atomically.
    """
    if isinstance(source, NNBreakdown):
        if carbon_kwargs:
            raise TypeError(f"unexpected argument(s) {', '.join(carbon_kwargs)} for a breakdown")
        plugins, tree, _ = _nn_manifest(source, functional_units)
        description = description or "energykernel nn_total: embodied + training + inference"
    elif hasattr(source, "data_vars"):
        ours = "emissions" in source.data_vars and \
            "intensity_g_per_kwh" in source["emissions"].attrs
        if carbon_kwargs or not ours:  # compute (or recompute someone else's) emissions
            from energykernel.carbon.dataset import carbon_dataset

            source = carbon_dataset(source, **carbon_kwargs)
        plugins, tree = _dataset_manifest(source)
        description = description or "energykernel dataset: energy (J) -> emissions (gCO2e)"
    else:
        raise TypeError("source must be an NNBreakdown (from nn_total) or an energykernel "
                        f"Dataset, got {type(source).__name__}")
    manifest = {"name": name, "description": description, "tags": None,
                "initialize": {"plugins": plugins}, "tree": tree}
    text = "# Impact Framework v1 manifest written by energykernel\n" + to_yaml(manifest) + "\n"
    if path is not None:
        _write_atomic(Path(path), text)
    return text


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, text)
