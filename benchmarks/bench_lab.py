"""Cost of the JupyterLab extension: auto mode's time per empty cell, with and without it.

1. Kernel side, in a real ipykernel (jupyter_client round trips, ``pass`` cells, blocks
   alternating in one kernel): auto mode off; auto mode with the ⚡ line as before the
   extension (text/plain + text/html); auto mode with the run the extension reads
   (application/vnd.energykernel.run+json) added. Medians per cell and their differences.
2. ``--browser``: a real JupyterLab in headless Chromium (Playwright, Debian's chromium),
   a notebook of empty cells run with auto mode on, the extension enabled, then disabled
   (``disabledExtensions`` and the server extension off), alternating rounds: wall time
   per cell as the page sees it (run-all-cells), plus the status bar's request rate.
3. The size of the built frontend bundle (labextension/dist/static).

Prints figures and ratios; asserts nothing. Run:
``.venv/bin/python benchmarks/bench_lab.py [--cells N] [--blocks B] [--browser]``.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STATIC = REPO / "labextension" / "dist" / "static"

_NO_MIME = r"""
import energykernel.jupyter.display as _d
if not hasattr(_d, "_bench_bundle"):
    _d._bench_bundle, _d._bench_placeholder = _d.bundle, _d.placeholder
def _strip(pair):
    data, meta = pair
    return {k: v for k, v in data.items() if k != _d.RUN_MIME}, meta
_d.bundle = (lambda m: _strip(_d._bench_bundle(m))) if MIME_OFF else _d._bench_bundle
_d.placeholder = ((lambda *a, **k: _strip(_d._bench_placeholder(*a, **k))) if MIME_OFF
                  else _d._bench_placeholder)
"""


def _env(log_dir: str) -> dict[str, str]:
    env = {**os.environ, "ENERGYKERNEL_LOG_DIR": log_dir, "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    env.setdefault("ENERGYKERNEL_BACKENDS", "estimate")
    env.pop("ENERGYKERNEL_REGION", None)
    return env


def _in_kernel_s(reply: dict) -> float:
    """Seconds from the kernel taking the request to its reply (ipykernel's own stamps)."""
    import datetime as dt

    started = reply["metadata"]["started"]
    if isinstance(started, str):
        started = dt.datetime.fromisoformat(started)
    return (reply["header"]["date"] - started).total_seconds()


def kernel_side(cells: int, blocks: int) -> dict[str, tuple[float, float]]:
    """Per mode: (median round trip, median time in the kernel) per empty cell, in s."""
    from jupyter_client import KernelManager

    with tempfile.TemporaryDirectory() as logs:
        km = KernelManager(kernel_name="python3")
        # history in memory: IPython's per-cell SQLite commit would dominate the figures
        km.start_kernel(env=_env(logs), extra_arguments=["--HistoryManager.hist_file=:memory:"])
        kc = km.client()
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=60)
            quiet = {"silent": True, "store_history": False}
            kc.execute_interactive("%load_ext energykernel", **quiet)
            modes = {
                "auto off": "%energy auto off",
                "auto on, line only (no extension data)":
                    "%energy auto on\nMIME_OFF = True\n" + _NO_MIME,
                "auto on, line + run for the extension":
                    "%energy auto on\nMIME_OFF = False\n" + _NO_MIME,
            }
            times: dict[str, list[float]] = {m: [] for m in modes}
            inside: dict[str, list[float]] = {m: [] for m in modes}
            order = list(modes)
            for _ in range(blocks):
                order = order[1:] + order[:1]  # each mode in each position in turn
                for mode in order:
                    setup = modes[mode]
                    kc.execute_interactive(setup, **quiet)
                    for _ in range(20):  # warm up this mode
                        kc.execute_interactive("pass", output_hook=lambda m: None)
                    for _ in range(cells):
                        t0 = time.perf_counter()
                        reply = kc.execute_interactive("pass", output_hook=lambda m: None)
                        times[mode].append(time.perf_counter() - t0)
                        inside[mode].append(_in_kernel_s(reply))
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)
    return {m: (statistics.median(times[m]), statistics.median(inside[m])) for m in modes}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_lab(root: Path, base: Path, enabled: bool) -> tuple[subprocess.Popen, str, str]:
    config = base / ("config-on" if enabled else "config-off")
    (config / "labconfig").mkdir(parents=True, exist_ok=True)
    server: dict = {"LabApp": {"news_url": None, "expose_app_in_browser": True,
                               "extension_manager": "readonly"}}
    if not enabled:
        server["ServerApp"] = {"jpserver_extensions": {"energykernel.jupyter.server": False}}
        (config / "labconfig" / "page_config.json").write_text(
            json.dumps({"disabledExtensions": {"energykernel": True}}))
    (config / "jupyter_server_config.json").write_text(json.dumps(server))
    token, port = secrets.token_hex(8), _free_port()
    env = {**_env(str(base / "logs")), "JUPYTER_CONFIG_DIR": str(config),
           "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
           "JUPYTERLAB_WORKSPACES_DIR": str(base / "ws"), "IPYTHONDIR": str(base / "ipy")}
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={root}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2):
                return proc, url, token
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("jupyter lab did not start")


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


_READY = """() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!(k && k.status === 'idle' && w.content.widgets.length > 0); }"""
_RUN_ALL = """async () => { const t0 = performance.now();
  await window.jupyterapp.commands.execute('notebook:run-all-cells');
  return performance.now() - t0; }"""


def browser_side(cells: int, rounds: int) -> dict[str, object]:
    import nbformat
    from playwright.sync_api import sync_playwright

    chromium = os.environ.get("ENERGYKERNEL_CHROMIUM", "/usr/bin/chromium")
    out: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        base = Path(tmp)
        root = base / "root"
        root.mkdir()
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                     "language": "python"}
        nb.cells = ([nbformat.v4.new_code_cell("%load_ext energykernel\n%energy auto on")]
                    + [nbformat.v4.new_code_cell("pass") for _ in range(cells)])
        nbformat.write(nb, root / "empty.ipynb")
        per_cell: dict[str, list[float]] = {"with the extension": [], "without": []}
        servers = {name: _start_lab(root, base, enabled=name == "with the extension")
                   for name in per_cell}
        browsers = []  # one each: a background page of a browser is hidden (it never polls)
        try:
            pages = {}
            for name, (_, url, token) in servers.items():
                browsers.append(p.chromium.launch(
                    executable_path=chromium, args=["--headless", "--no-sandbox",
                                                    "--disable-gpu"]))
                page = browsers[-1].new_page()
                page.set_default_timeout(120_000)
                page.goto(f"{url}/lab/tree/empty.ipynb?token={token}&reset")
                page.wait_for_function(_READY)
                page.evaluate(_RUN_ALL)  # warm up (kernel imports, first renders)
                pages[name] = page
            order = list(pages)
            for _ in range(rounds):
                order.reverse()  # neither goes first every time
                for name in order:
                    ms = pages[name].evaluate(_RUN_ALL)
                    per_cell[name].append(ms / (cells + 1))
            page = pages["with the extension"]
            page.evaluate("() => { performance.setResourceTimingBufferSize(10000);"
                          " performance.clearResourceTimings(); }")
            page.wait_for_timeout(10_000)
            starts = page.evaluate("() => performance.getEntriesByType('resource')"
                                   ".filter(e => e.name.includes('/energykernel/power'))"
                                   ".map(e => e.startTime)")
            out["status-bar requests in 10 s"] = len(starts)
            if len(starts) > 1:
                out["shortest gap between two requests, ms"] = min(
                    b - a for a, b in itertools.pairwise(starts))
            out["badges shown"] = page.evaluate(
                "() => document.querySelectorAll('.ek-badge:not(:empty)').length")
        finally:
            for b in browsers:
                b.close()
            for proc, _, _ in servers.values():
                _stop(proc)
    for name, values in per_cell.items():
        out[f"ms per cell, {name}"] = statistics.median(values)
    return out


def bundle_size() -> dict[str, int]:
    files = [f for f in STATIC.glob("*.js")] if STATIC.is_dir() else []
    raw = sum(f.stat().st_size for f in files)
    zipped = sum(len(gzip.compress(f.read_bytes(), 9)) for f in files)
    return {"files": len(files), "bytes": raw, "gzip bytes": zipped}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=200, help="empty cells per block")
    ap.add_argument("--blocks", type=int, default=3)
    ap.add_argument("--browser", action="store_true", help="also time a real JupyterLab")
    args = ap.parse_args()

    size = bundle_size()
    if size["files"]:
        print(f"frontend bundle: {size['files']} JS files, {size['bytes'] / 1024:.1f} KiB "
              f"({size['gzip bytes'] / 1024:.1f} KiB gzipped)")
    else:
        print("frontend bundle: not built (./run setup builds labextension/dist)")

    medians = kernel_side(args.cells, args.blocks)
    print(f"\nper empty cell in a real kernel, median of {args.cells} × {args.blocks} "
          "(round trip; time in the kernel):")
    base_trip, base_in = medians["auto off"]
    for mode, (trip, inside) in medians.items():
        print(f"  {mode:42s} {trip * 1e3:7.3f} ms (+{(trip - base_trip) * 1e3:.3f}); "
              f"{inside * 1e3:7.3f} ms (+{(inside - base_in) * 1e3:.3f})")
    line = medians["auto on, line only (no extension data)"]
    full = medians["auto on, line + run for the extension"]
    print(f"  the extension's data adds {(full[0] - line[0]) * 1e3:+.3f} ms per round trip "
          f"(ratio {full[0] / line[0]:.3f}), {(full[1] - line[1]) * 1e3:+.3f} ms in the kernel "
          f"(ratio {full[1] / line[1]:.3f})")

    if args.browser:
        print("\nJupyterLab in Chromium (run-all-cells, auto mode on):")
        for key, value in browser_side(min(args.cells, 60), max(args.blocks, 3)).items():
            print(f"  {key}: {value:.2f}" if isinstance(value, float) else f"  {key}: {value}")


if __name__ == "__main__":
    main()
