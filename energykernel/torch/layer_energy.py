"""``LayerEnergy``: per-layer forward/backward energy of a PyTorch model.

The hooks (:mod:`.hooks`) time each layer call; this class reads the counters at step
boundaries, hands each step to :func:`.attribution.apportion_step`, keeps the per-step
results, and records runs ``<prefix>/<layer>/<pass>`` (plus ``<prefix>/(outside)/other``)
so that ``ek.dataset()`` sums over them to the measured energy of the steps.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..core.config import settings
from ..core.engine import acquire_engine, new_window_key
from ..core.record import exit_status
from ..core.recorder import recorder
from ..core.units import COMPONENTS
from ..core.window import current_parent_id
from . import analysis as _analysis
from . import attribution as _attr
from .hooks import OUTSIDE, LayerHooks, LayerSpec, _Call

if TYPE_CHECKING:
    import xarray as xr


class LayerEnergy(LayerHooks):
    """Per-layer forward/backward energy of ``model``: ``with LayerEnergy(model) as le:``.

    Args:
        model: the ``nn.Module`` to watch.
        layers: ``"leaf"`` (modules without children), a list of qualified names, or a
            predicate ``(name, module) -> bool``. Same-class layers stay apart by name.
        components: subset of ``cpu, gpu, ram, storage``; default every measured one.
        sync: call ``torch.cuda.synchronize()`` around each timed call when the model is
            on a GPU (else GPU time lands in whichever call waits for it).
        prefix: task prefix of the recorded runs: ``<prefix>/<layer>/<pass>``.
        backward: ``"graph"`` (autograd-node hooks, default), ``"module"`` (full backward
            hooks) or ``None`` (forward only).
        counter_window_s: shortest call (s) whose counters are read around it; None → per
            backend (:data:`.attribution.COUNTER_WINDOW_S`), 0 → always.
        record_interval_s: the runs in ``ek.runs()`` (one per layer and pass, plus outside)
            sum the steps closed within this many seconds (0: one set of runs per step), so
            fast steps do not flood the log; :meth:`dataset` always has every step. Pending
            runs are written on :meth:`detach` and at once for a step that failed.

    Mark steps with :meth:`step` (or epochs: a step is whatever lies between two marks);
    the pending step is closed on :meth:`detach` if anything ran in it.
    """

    def __init__(self, model: nn.Module, *, layers: LayerSpec = "leaf",
                 components: Iterable[str] | str | None = None, sync: bool = True,
                 prefix: str = "torch", backward: str | None = "graph",
                 counter_window_s: float | Mapping[str, float] | None = None,
                 record_interval_s: float = 1.0) -> None:
        if not isinstance(prefix, str) or not prefix:
            raise ValueError(f"LayerEnergy(prefix={prefix!r}): must be a non-empty string")
        if isinstance(components, str):
            components = [c.strip() for c in components.split(",") if c.strip()]
        self._components = None if components is None else tuple(components)
        for comp in self._components or ():
            if comp not in COMPONENTS:
                raise ValueError(f"LayerEnergy(components=...): unknown component {comp!r}; "
                                 f"known: {', '.join(COMPONENTS)}")
        super().__init__(model, layers, sync, backward)
        self.prefix = prefix
        self.counter_window_s = counter_window_s
        if not record_interval_s >= 0:
            raise ValueError(f"LayerEnergy(record_interval_s={record_interval_s!r}): must be >= 0")
        self.record_interval_s = float(record_interval_s)
        self.steps: list[_attr.StepResult] = []
        self._losses: dict[int, float] = {}
        self._engine = None

    # -- attach / detach -----------------------------------------------------------------
    def __enter__(self) -> LayerEnergy:
        return self.attach()

    def __exit__(self, exc_type, exc, tb) -> None:
        self.detach(status=exit_status(exc)[0])

    def attach(self) -> LayerEnergy:
        """Register the hooks and start the first step."""
        if self._attached:
            raise RuntimeError("LayerEnergy is already attached")
        self._window_key = new_window_key()
        engine = self._engine = acquire_engine(self._window_key, self.prefix)
        try:
            self._comps = tuple(c for c in (self._components or engine.components)
                                if c in engine.component_backend)
            keep = engine.detail_devices
            self._device_backend = {d.name: b.name for b in engine.backends
                                    for d in b.devices.values() if d.name in keep}
            self._methods = {b.name: b.method for b in engine.backends}
            self._runs = _attr.RunBuffer(self.prefix, parent_id=current_parent_id())
            self._flushed_s = time.time()
            self._install(engine.read)
            if self.counter_window_s is not None:
                self._update_modes({})
        except BaseException:
            engine.window_closed(self._window_key)
            raise
        self._attached = True
        self._begin_step(time.perf_counter_ns(), engine.read())
        return self

    def detach(self, status: str = "ok") -> None:
        """Close the pending step (if anything ran in it) and remove every hook."""
        if not self._attached:
            return
        try:
            if self._busy():
                self._close_step(status)
            self._flush_runs()
        finally:
            self._uninstall()
            self._attached = False
            self._engine.window_closed(self._window_key)

    # -- steps ---------------------------------------------------------------------------
    def step(self, loss: Any = None) -> _attr.StepResult:
        """Close the current step (everything since the last mark) and start the next.

        ``loss`` (optional) is logged for the step being closed.
        """
        if not self._attached:
            raise RuntimeError("LayerEnergy.step(): not attached (use `with` or .attach())")
        if loss is not None:
            self.log_loss(loss, step=len(self.steps))
        return self._close_step("ok")

    def log_loss(self, loss: Any, step: int | None = None) -> None:
        """Attach a loss value to a step: by default the step in progress if a layer ran in
        it, else the last closed step (so it works before or after :meth:`step`)."""
        value = float(loss.detach().float().mean()) if isinstance(loss, torch.Tensor) \
            else float(loss)
        if step is None:
            pending = self._attached and self._busy()
            step = len(self.steps) if pending or not self.steps else len(self.steps) - 1
        if not isinstance(step, int) or step < 0:
            raise ValueError(f"log_loss(step={step!r}): must be a step index >= 0")
        self._losses[step] = value
        if step < len(self.steps):
            self.steps[step].loss = value

    def _begin_step(self, t_ns: int, reading: dict[str, float]) -> None:
        self._t0_ns, self._read0 = t_ns, reading
        self._start_s = time.time()

    def _close_step(self, status: str) -> _attr.StepResult:
        engine = self._engine
        t1_ns = self._now()
        reading = engine.read()
        calls = self._take_calls()
        keep = self._device_backend
        step_dev = {d: max(0.0, reading.get(d, 0.0) - self._read0.get(d, 0.0)) for d in keep}
        spans = []
        for c in calls:
            delta = None
            if c.counter and c.read0 is not None and c.read1 is not None:
                delta = {d: c.read1.get(d, 0.0) - c.read0.get(d, 0.0) for d in keep}
            spans.append(_attr.CallSpan((self.names[c.ix], c.pass_), c.t0, c.t1,
                                        c.counter, delta))
        shares = _attr.apportion_step(step_dev, spans, self._t0_ns, t1_ns, keep)
        result = self._record(status, t1_ns, step_dev, shares, spans)
        self.steps.append(result)
        self._update_modes(self._mean_call_s(calls))
        self._begin_step(t1_ns, reading)
        return result

    def _mean_call_s(self, calls: list[_Call]) -> dict[tuple[int, str], float]:
        total: dict[tuple[int, str], list[int]] = {}
        for c in calls:
            total.setdefault((c.ix, c.pass_), []).append(c.t1 - c.t0)
        return {k: sum(v) / len(v) / 1e9 for k, v in total.items()}

    def _update_modes(self, mean_s: dict[tuple[int, str], float]) -> None:
        for key in self._mode:
            if self._innermost[key[0]]:
                self._mode[key] = _attr.counter_backends(
                    mean_s.get(key, 0.0), self._methods, self.counter_window_s)

    def _record(self, status: str, t1_ns: int, step_dev: dict[str, float],
                shares: _attr.StepShares, spans: list[_attr.CallSpan]) -> _attr.StepResult:
        """The step's result by component; its runs go to the pending run totals."""
        engine, comps = self._engine, self._comps
        index = len(self.steps)
        method = {c: engine.component_backend[c].method for c in comps}
        comp_backend = {c: engine.component_backend[c].name for c in comps}
        duration_s = (t1_ns - self._t0_ns) / 1e9
        first: dict[tuple[str, str], int] = {}
        last: dict[tuple[str, str], int] = {}
        for sp in spans:
            first[sp.key] = min(first.get(sp.key, sp.t0_ns), sp.t0_ns)
            last[sp.key] = max(last.get(sp.key, sp.t1_ns), sp.t1_ns)
        if status != "ok":
            self._flush_runs()
        layer_j, attribution = {}, {}
        for key, dev_j in shares.energy_j.items():
            layer_j[key] = engine.component_energy(dev_j, comps)
            counts = shares.counter_calls.get(key, {})
            n_counter = {c: counts.get(comp_backend[c], 0) for c in comps}
            attribution[key] = {c: _attr.attribution_label(n_counter[c], shares.calls[key])
                                for c in comps}
            self._runs.add(key, index, self._wall(first[key]), self._wall(last[key]),
                       shares.time_s[key], layer_j[key], dev_j, shares.calls[key], n_counter)
        outside = engine.component_energy(shares.outside_j, comps)
        self._runs.add((OUTSIDE, "other"), index, self._start_s, self._start_s + duration_s,
                   shares.outside_s, outside, shares.outside_j, 0, dict.fromkeys(comps, 0))
        self._runs.status = status
        if status != "ok" or time.time() - self._flushed_s >= self.record_interval_s:
            self._flush_runs()
        return _attr.StepResult(
            index=index, start_s=self._start_s, duration_s=duration_s, status=status,
            step_j=engine.component_energy(step_dev, comps), layer_j=layer_j,
            layer_s=dict(shares.time_s), calls=dict(shares.calls), attribution=attribution,
            outside_j=outside, outside_s=shares.outside_s, loss=self._losses.get(index),
            extra={"method": method},
        )

    def _flush_runs(self) -> None:
        """Record the pending runs (one per (layer, pass), and outside)."""
        self._flushed_s = time.time()
        method = {c: self._engine.component_method[c] for c in self._comps}
        rec = recorder()
        for run in self._runs.flush(method, settings().instance, OUTSIDE,
                                    terms=self._engine.bounds):
            rec.append(run)

    def _wall(self, t_ns: int) -> float:
        return self._start_s + (t_ns - self._t0_ns) / 1e9

    # -- results -------------------------------------------------------------------------
    def dataset(self) -> xr.Dataset:
        """Closed steps as a Dataset: (layer, pass, component) totals + per-step variables."""
        return _analysis.build_dataset(self)

    def hotspots(self, ratio: float = 2.0, min_share: float = 0.05) -> list[_analysis.Hotspot]:
        """Layers whose energy share is ``ratio``× their parameter share (or more)."""
        return _analysis.hotspots(self.dataset(), ratio=ratio, min_share=min_share)

    def loss_energy(self, window: int = 5, factor: float = 5.0) -> xr.Dataset:
        """Loss vs cumulative energy, energy per unit of loss reduction, stop point."""
        return _analysis.loss_energy(self.dataset(), window=window, factor=factor)

    def plot(self, kind: str = "all"):
        """Matplotlib figure: ``layers``, ``violin``, ``loss``, ``total`` or ``all``."""
        from ..viz import torch as plots

        return plots.plot(self.dataset(), kind)

    def to_tensorboard(self, log_dir: str | os.PathLike, **options: Any):
        """Write scalars and figures to a TensorBoard log dir (needs ``tensorboard``)."""
        from .tensorboard import to_tensorboard

        return to_tensorboard(self.dataset(), log_dir, **options)

    def __repr__(self) -> str:
        state = "attached" if self._attached else "detached"
        return (f"<LayerEnergy {type(self.model).__name__}: {len(self.names)} layers, "
                f"{len(self.steps)} steps, {state}>")
