"""Cost of the notebook layer.

1. Auto mode's added time per (near-)empty cell, against the same shell without the
   extension, in the same run: blocks alternate, medians per cell (target ≤ 1 ms).
2. ``%load_ext energykernel`` time in a fresh interpreter (cold imports).
3. Proof that loading and measuring import no xarray/pandas/matplotlib until a Dataset
   or a plot is asked for.

Run: ``.venv/bin/python benchmarks/bench_notebook.py`` (uses the estimate backend and a
temporary log directory unless ENERGYKERNEL_BACKENDS / ENERGYKERNEL_LOG_DIR are set).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

CELLS_PER_BLOCK = 300
BLOCKS = 5

_PROBE = r"""
import json, sys, time
from IPython.core.interactiveshell import InteractiveShell
sh = InteractiveShell.instance()
heavy = ("xarray", "pandas", "matplotlib")
seen = lambda: sorted(m for m in heavy if m in sys.modules)
t0 = time.perf_counter()
sh.run_cell("%load_ext energykernel")
load_s = time.perf_counter() - t0
after_load = seen()
sh.run_cell("%energy auto on")
for k in range(5):
    sh.run_cell(f"x = {k}")
sh.run_cell("%%energy -t marked\ny = 1")
after_cells = seen()
import energykernel as ek
ek.dataset()
after_dataset = seen()
ek.dataset().ek.plot()
after_plot = seen()
print(json.dumps({"load_s": load_s, "after_load": after_load, "after_cells": after_cells,
                  "after_dataset": after_dataset, "after_plot": after_plot}))
"""


def _time_cells(shell, n: int) -> list[float]:
    out = []
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink):
        for _ in range(n):
            t0 = time.perf_counter()
            shell.run_cell("pass", store_history=True)
            out.append(time.perf_counter() - t0)
    return out


def auto_mode_overhead(history: str = "file") -> dict[str, float]:
    """Median seconds per ``pass`` cell with and without auto mode, alternating blocks.

    ``history="memory"`` keeps IPython's input history in memory instead of its SQLite
    file, whose per-cell commit (a background thread) interacts with the timing.
    """
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    from energykernel.jupyter import magics

    InteractiveShell.clear_instance()
    config = Config()
    if history == "memory":
        config.HistoryManager.hist_file = ":memory:"
    shell = InteractiveShell.instance(config=config)
    _time_cells(shell, 50)  # warm up the shell
    magics.load_ipython_extension(shell)
    shell.run_cell("%energy auto on")
    _time_cells(shell, 50)  # warm up the engine (backends opened, sampler started)
    magics.unload_ipython_extension(shell)
    base, auto, quiet = [], [], []
    for _ in range(BLOCKS):
        base += _time_cells(shell, CELLS_PER_BLOCK)
        magics.load_ipython_extension(shell)
        shell.run_cell("%energy auto on")
        auto += _time_cells(shell, CELLS_PER_BLOCK)
        shell.run_cell("%energy auto on quiet")
        quiet += _time_cells(shell, CELLS_PER_BLOCK)
        magics.unload_ipython_extension(shell)
    return {"base_s": statistics.median(base), "auto_s": statistics.median(auto),
            "quiet_s": statistics.median(quiet),
            "base_mean_s": statistics.fmean(base), "auto_mean_s": statistics.fmean(auto)}


def gil_release_control() -> tuple[float, float]:
    """Control for the history-file effect: (base, with a hook that only sleeps 0.2 ms) in
    seconds per cell. Any hook that releases the GIL lets IPython's history thread commit
    (an fsync, under a lock the next cell waits for) after every back-to-back cell."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    InteractiveShell.clear_instance()
    shell = InteractiveShell.instance(config=Config())
    _time_cells(shell, 50)

    def sleep_hook(*_: object) -> None:
        time.sleep(0.0002)

    base = statistics.median(_time_cells(shell, CELLS_PER_BLOCK))
    shell.events.register("post_run_cell", sleep_hook)
    hooked = statistics.median(_time_cells(shell, CELLS_PER_BLOCK))
    shell.events.unregister("post_run_cell", sleep_hook)
    return base, hooked


def cold_load(env: dict[str, str]) -> dict:
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                         env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    tmp = tempfile.TemporaryDirectory(prefix="ek-bench-")
    os.environ.setdefault("ENERGYKERNEL_BACKENDS", "estimate")
    os.environ.setdefault("ENERGYKERNEL_LOG_DIR", tmp.name)
    env = dict(os.environ)

    print(f"backends: {os.environ['ENERGYKERNEL_BACKENDS']}")
    added = {}
    for history in ("file", "memory"):
        r = auto_mode_overhead(history)
        added[history] = (r["auto_s"] - r["base_s"]) * 1e3
        quiet_ms = (r["quiet_s"] - r["base_s"]) * 1e3
        print(f"IPython history in {history}:")
        print(f"  empty cell, no extension : {r['base_s'] * 1e3:7.3f} ms median "
              f"({r['base_mean_s'] * 1e3:.3f} ms mean), {BLOCKS * CELLS_PER_BLOCK} cells")
        print(f"  empty cell, auto mode    : {r['auto_s'] * 1e3:7.3f} ms median "
              f"({r['auto_mean_s'] * 1e3:.3f} ms mean)")
        verdict = "OK" if added[history] <= 1.0 else "OVER TARGET"
        print(f"  added per cell           : {added[history]:7.3f} ms (target ≤ 1 ms: {verdict})")
        print(f"  added, 'auto on quiet'   : {quiet_ms:7.3f} ms (no line shown)")

    base_s, hooked_s = gil_release_control()
    print(f"control, history in file: a hook that only sleeps 0.2 ms adds "
          f"{(hooked_s - base_s) * 1e3:.3f} ms per back-to-back cell (IPython's own "
          "history commit, no longer deferred)")

    loads = [cold_load(env) for _ in range(3)]
    probe = loads[-1]
    print(f"%load_ext energykernel   : {statistics.median(x['load_s'] for x in loads) * 1e3:7.1f}"
          " ms (fresh interpreter, median of 3)")
    print(f"heavy modules after load : {probe['after_load'] or 'none'}")
    print(f"… after measured cells   : {probe['after_cells'] or 'none'}")
    print(f"… after ek.dataset()     : {probe['after_dataset']}")
    print(f"… after ds.ek.plot()     : {probe['after_plot']}")
    lazy = not probe["after_load"] and not probe["after_cells"]
    print(f"lazy imports             : {'OK' if lazy else 'FAILED'}")
    tmp.cleanup()
    return 0 if lazy else 1


if __name__ == "__main__":
    sys.exit(main())
