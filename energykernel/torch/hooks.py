"""Hooks that time each layer call of a PyTorch model, forward and backward.

Counters cannot resolve a layer call of a few ms, and reading them costs tens of µs, so
the hooks only *time* each call (``perf_counter_ns``, after ``torch.cuda.synchronize()``
on GPU when ``sync=True``); the counters are read at step boundaries, and around a call
only when that (layer, pass)'s calls lasted long enough in the previous step for the
counter to resolve them (see :data:`.attribution.COUNTER_WINDOW_S`). Each step's measured
energy is then split by :func:`.attribution.apportion_step`: counter-read calls keep their
reading, the rest is shared by exclusive time among the other calls and "outside layers",
so layers + outside = the measured step energy, per device.

Backward timing (``backward="graph"``, the default) hooks the autograd nodes a call
created: a pre-hook on its output nodes (backward starts) and hooks on its innermost nodes
(the gradients w.r.t. its inputs and parameters are done). Unlike
``register_full_backward_hook`` this survives in-place ops on a layer's output
(``ReLU(inplace=True)``, ``y += x``) and times a first layer's weight gradient (a full
backward hook fires before it when no input requires grad). ``backward="module"`` uses
the module full backward pre/post hooks instead; ``backward=None`` times forward only.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    pass

PASSES = ("forward", "backward")
OUTSIDE = "(outside)"
ROOT = "(model)"
_MAX_GRAPH_NODES = 256  # autograd nodes walked per call before giving up on its interior
_ACCUMULATE = "AccumulateGrad"

LayerSpec = str | Iterable[str] | Callable[[str, nn.Module], bool]


class _Call:
    """A layer call being timed (forward or backward)."""

    __slots__ = ("counter", "dead", "inputs", "ix", "last_ns", "mark", "pass_", "pending",
                 "read0", "read1", "t0", "t1")

    def __init__(self, ix: int, pass_: str, counter: frozenset[str]) -> None:
        self.ix, self.pass_, self.counter = ix, pass_, counter
        self.t0 = self.t1 = self.last_ns = 0
        self.read0: dict[str, float] | None = None
        self.read1: dict[str, float] | None = None
        self.pending = self.mark = 0
        self.dead = False
        self.inputs: set[int] = set()


def select_layers(model: nn.Module, layers: LayerSpec) -> dict[str, nn.Module]:
    """Qualified name → module for ``layers`` = "leaf", a list of names, or a predicate."""
    named = dict(model.named_modules())  # a module reachable twice appears once
    if isinstance(layers, str):
        if layers != "leaf":
            raise ValueError(f"LayerEnergy(layers={layers!r}): use 'leaf', a list of "
                             "qualified module names, or a predicate (name, module) -> bool")
        chosen = {n: m for n, m in named.items() if next(m.children(), None) is None}
    elif callable(layers):
        chosen = {n: m for n, m in named.items() if layers(n, m)}
    else:
        wanted = list(layers)
        unknown = [n for n in wanted if n not in named]
        if unknown:
            known = ", ".join(repr(n) for n in list(named)[1:12])
            raise ValueError(f"LayerEnergy(layers=...): no module named {unknown[0]!r} in the "
                             f"model; qualified names look like {known}")
        wanted_set = set(wanted)
        chosen = {n: m for n, m in named.items() if n in wanted_set}
    if not chosen:
        raise ValueError("LayerEnergy: the layer selection matched no module")
    return {(n or ROOT): m for n, m in chosen.items()}


def _tensors(obj: Any, depth: int = 0) -> Iterable[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        yield obj
    elif depth < 3 and isinstance(obj, (tuple, list)):
        for item in obj:
            yield from _tensors(item, depth + 1)
    elif depth < 3 and isinstance(obj, Mapping):
        for item in obj.values():
            yield from _tensors(item, depth + 1)


class LayerHooks:
    """The timing half of :class:`~energykernel.torch.LayerEnergy`: selects the layers,
    registers and removes the hooks, and times every call (forward and backward).

    Closed calls accumulate until :meth:`_take_calls`; ``_mode[(layer index, pass)]`` names
    the backends whose counters are read (``_read``) around that layer's calls.
    """

    def __init__(self, model: nn.Module, layers: LayerSpec, sync: bool,
                 backward: str | None) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"LayerEnergy: expected a torch.nn.Module, got {type(model).__name__}")
        if backward not in ("graph", "module", None):
            raise ValueError(f"LayerEnergy(backward={backward!r}): use 'graph', 'module' or None")
        self.model = model
        self.layers = select_layers(model, layers)
        self.names = list(self.layers)
        self.sync = sync
        self.backward = backward
        mods = list(self.layers.values())
        chosen = {id(m) for m in mods}
        # Counters are read only around calls that contain no other selected call.
        self._innermost = [not any(id(s) in chosen for s in m.modules() if s is not m)
                           for m in mods]
        self.params = [sum(p.numel() for p in m.parameters()) for m in mods]
        self._handles: list[Any] = []
        self._attached = False

    @property
    def attached(self) -> bool:
        return self._attached

    def _install(self, read: Callable[[], dict[str, float]]) -> None:
        """Reset the timing state and register the hooks (all or none)."""
        self._read = read
        self._cuda = bool(self.sync and torch.cuda.is_available() and any(
            t.is_cuda for t in itertools.chain(self.model.parameters(), self.model.buffers())))
        n = len(self.names)
        self._mode = {(i, p): frozenset() for i in range(n) for p in PASSES}
        self._fwd_open: list[list[_Call]] = [[] for _ in range(n)]
        self._bw_stack: list[list[_Call]] = [[] for _ in range(n)]
        self._bw_open: dict[int, _Call] = {}
        self._calls: list[_Call] = []
        self._out_nodes: dict[int, int] = {}  # output node id → order of registration
        try:
            for i, module in enumerate(self.layers.values()):
                self._handles.append(module.register_forward_pre_hook(
                    partial(self._fwd_pre, i), with_kwargs=True))
                self._handles.append(module.register_forward_hook(partial(self._fwd_post, i)))
                if self.backward == "module":
                    self._handles.append(module.register_full_backward_pre_hook(
                        partial(self._bw_pre_module, i)))
                    self._handles.append(module.register_full_backward_hook(
                        partial(self._bw_post_module, i)))
        except BaseException:
            self._uninstall()
            raise

    def _uninstall(self) -> None:
        """Remove every hook; graph hooks still pending see ``_attached`` False."""
        handles, self._handles = self._handles, []
        for handle in handles:
            handle.remove()
        self._calls, self._bw_open, self._out_nodes = [], {}, {}

    def _busy(self) -> bool:
        """Whether anything was timed since the last :meth:`_take_calls`."""
        return bool(self._calls or self._bw_open)

    def _take_calls(self) -> list[_Call]:
        """The calls closed since the last take; a backward still open is closed at its
        last event, and forward calls left open (an exception) are dropped."""
        calls, self._calls = self._calls, []
        for call in self._bw_open.values():
            call.dead = True
            if call.last_ns:
                call.t1, call.read0 = call.last_ns, None
                calls.append(call)
        self._bw_open = {}
        for stack in itertools.chain(self._fwd_open, self._bw_stack):
            stack.clear()
        self._out_nodes = {}
        return calls

    # -- hooks (hot path) ----------------------------------------------------------------
    def _now(self) -> int:
        if self._cuda:
            torch.cuda.synchronize()
        return time.perf_counter_ns()

    def _fwd_pre(self, ix: int, module: nn.Module, args: tuple, kwargs: dict) -> None:
        call = _Call(ix, "forward", self._mode[ix, "forward"])
        if self.backward == "graph" and torch.is_grad_enabled():
            if len(args) == 1 and not kwargs and isinstance(args[0], torch.Tensor):
                node = args[0].grad_fn  # the common case, without the generic walk
                call.inputs = set() if node is None else {id(node)}
            else:
                call.inputs = {id(t.grad_fn) for t in _tensors((args, kwargs))
                               if t.grad_fn is not None}
            call.mark = len(self._out_nodes)
        if call.counter:
            call.read0 = self._read()
        call.t0 = self._now()
        self._fwd_open[ix].append(call)

    def _close_call(self, stack: list) -> Any:
        """Close the innermost open call of ``stack``: end time, counter, keep it."""
        if not stack:
            return None
        call = stack.pop()
        call.t1 = self._now()
        if call.counter:
            call.read1 = self._read()
        self._calls.append(call)
        return call

    def _fwd_post(self, ix: int, module: nn.Module, args: tuple, output: Any) -> None:
        call = self._close_call(self._fwd_open[ix])
        if call is None:
            return
        if self.backward == "graph" and torch.is_grad_enabled():
            self._hook_graph(ix, call.inputs, call.mark, output)

    def _hook_graph(self, ix: int, inputs: set[int], mark: int, output: Any) -> None:
        """Hook the autograd nodes this call created: its output nodes and innermost ones.

        The walk from the outputs stops at the call's inputs, at leaves (parameters), and at
        the outputs of calls that finished before this one began (``mark``), so it stays
        inside the call even when the layer uses a tensor computed earlier.
        """
        starts, seen = [], set(inputs)
        for t in (output,) if isinstance(output, torch.Tensor) else _tensors(output):
            node = t.grad_fn
            if node is not None and id(node) not in seen:
                seen.add(id(node))
                starts.append(node)
        if not starts:
            return
        order = self._out_nodes
        interior, todo = [], list(starts)
        while todo and len(interior) <= _MAX_GRAPH_NODES:
            node = todo.pop()
            interior.append(node)
            for nxt, _ in node.next_functions:
                if nxt is None or id(nxt) in seen or order.get(id(nxt), mark) < mark:
                    continue
                if type(nxt).__name__ == _ACCUMULATE:
                    continue
                seen.add(id(nxt))
                todo.append(nxt)
        if todo:  # walked into a long history (a captured tensor): time the outputs only
            interior = starts
        inner = {id(n) for n in interior}
        ends = [n for n in interior
                if not any(x is not None and id(x) in inner for x, _ in n.next_functions)]
        for node in starts:
            order.setdefault(id(node), len(order))
        call = _Call(ix, "backward", self._mode[ix, "backward"])
        call.pending = len(ends)
        for node in starts:
            node.register_prehook(partial(self._bw_start, call))
        for node in ends:
            node.register_hook(partial(self._bw_end, call))

    def _bw_start(self, call: _Call, grad_outputs: Any) -> None:
        if call.t0 or call.dead or not self._attached:
            return
        if call.counter:
            call.read0 = self._read()
        call.t0 = self._now()
        self._bw_open[id(call)] = call

    def _bw_end(self, call: _Call, grad_inputs: Any, grad_outputs: Any) -> None:
        if not call.t0 or call.dead or not self._attached:
            return
        call.pending -= 1
        call.last_ns = self._now()
        if call.pending <= 0:
            call.t1 = call.last_ns
            if call.counter:
                call.read1 = self._read()
            self._bw_open.pop(id(call), None)
            self._calls.append(call)

    def _bw_pre_module(self, ix: int, module: nn.Module, grad_output: Any) -> None:
        call = _Call(ix, "backward", self._mode[ix, "backward"])
        if call.counter:
            call.read0 = self._read()
        call.t0 = self._now()
        self._bw_stack[ix].append(call)

    def _bw_post_module(self, ix: int, module: nn.Module, grad_input: Any,
                        grad_output: Any) -> None:
        self._close_call(self._bw_stack[ix])
