"""A real JupyterLab server and Debian's Chromium driven by Playwright, for widget tests.

Nothing here downloads a browser: Playwright drives ``/usr/bin/chromium`` (override with
``ENERGYKERNEL_CHROMIUM``). Without Chromium or the ``playwright`` package the tests skip
with the reason, except under ``CI=true``, where they fail instead.

The server runs on 127.0.0.1 with a random token, in a temporary copy of ``notebooks/`` and
``examples/``, with its own config, runtime, settings and workspace directories; kernels use
the ``estimate`` backend and a temporary log directory. Screenshots and the server log go to
``test-artifacts/browser/`` (``ENERGYKERNEL_TEST_ARTIFACTS`` overrides); with
``ENERGYKERNEL_UPDATE_DOCS=1`` the widget screenshots are also copied into ``docs/``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("ENERGYKERNEL_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 90_000  # generous: a cold kernel on 2 slow cores
RUN_ALL_TIMEOUT_MS = 240_000


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _unavailable() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not CHROMIUM.exists():
        return (f"Chromium not found at {CHROMIUM} (apt-get install chromium, "
                f"or set ENERGYKERNEL_CHROMIUM)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the 'playwright' Python package is not installed (pip install playwright)"
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        return "the 'jupyterlab' Python package is not installed (pip install jupyterlab)"
    return None


@pytest.fixture(scope="session")
def _browser_requirements():
    why = _unavailable()
    if why:
        if _in_ci():
            pytest.fail(f"browser tests must run in CI (CI=true), but {why}")
        pytest.skip(why)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    out = Path(os.environ.get("ENERGYKERNEL_TEST_ARTIFACTS", REPO / "test-artifacts")) / "browser"
    shutil.rmtree(out, ignore_errors=True)  # only this run's screenshots and logs
    out.mkdir(parents=True)
    return out


@pytest.fixture
def screenshot(artifacts):
    """``screenshot(locator, name, docs_name=None)``: PNG into the artifacts (and docs/)."""

    def take(locator, name: str, docs_name: str | None = None) -> Path:
        path = artifacts / name
        page = locator.page
        viewport = page.viewport_size
        page.wait_for_function(_IMAGES_LOADED, arg=locator.element_handle())
        box = locator.bounding_box()
        if viewport and box and box["height"] + 300 > viewport["height"]:
            # Taller than the viewport: grow it for the shot, so the element is whole.
            page.set_viewport_size({"width": viewport["width"],
                                    "height": int(box["height"]) + 400})
        try:
            # Centred in a tall viewport: clear of the sticky notebook toolbar and status bar.
            locator.evaluate("el => el.scrollIntoView({block: 'center'})")
            assert locator.evaluate(_SETTLED), f"{name}: an image inside did not decode"
            locator.screenshot(path=str(path), animations="disabled")
        finally:
            if viewport and page.viewport_size != viewport:
                page.set_viewport_size(viewport)
        if docs_name and os.environ.get("ENERGYKERNEL_UPDATE_DOCS") == "1":
            shutil.copyfile(path, REPO / "docs" / docs_name)
        return path

    return take


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _settings(root: Path) -> Path:
    """User settings: no news/update prompts; every cell kept in the DOM (no windowing)."""
    settings = root / "lab-settings"
    files = {
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
            {"fetchNews": "false", "checkForUpdates": False},
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings":
            {"windowingMode": "none"},
    }
    for rel, value in files.items():
        path = settings / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    return settings


@dataclass
class LabServer:
    url: str
    token: str
    root: Path
    log: Path

    def notebook_url(self, name: str) -> str:
        return f"{self.url}/lab/tree/notebooks/{name}?token={self.token}&reset"


@pytest.fixture(scope="session")
def lab(_browser_requirements, tmp_path_factory, artifacts):
    """A JupyterLab server on 127.0.0.1 (random port and token) over a copy of the notebooks."""
    base = tmp_path_factory.mktemp("lab")
    root = base / "root"
    shutil.copytree(REPO / "notebooks", root / "notebooks",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    shutil.copytree(REPO / "examples", root / "examples")
    config_dir = base / "config"
    config_dir.mkdir()
    # news_url=None turns announcements off; no update check, no PyPI extension manager.
    (config_dir / "jupyter_server_config.json").write_text(json.dumps({
        "LabApp": {"news_url": None, "expose_app_in_browser": True,
                   "extension_manager": "readonly",
                   "check_for_updates_class": "jupyterlab.handlers.announcements.NeverCheckForUpdate"},
    }))
    token = secrets.token_hex(16)
    port = _free_port()
    env = {**os.environ,
           "JUPYTER_CONFIG_DIR": str(config_dir),
           "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(_settings(base)),
           "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"),
           "IPYTHONDIR": str(base / "ipython"),
           "ENERGYKERNEL_BACKENDS": "estimate",
           "ENERGYKERNEL_LOG_DIR": str(base / "ek-logs"),
           "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    env.pop("ENERGYKERNEL_REGION", None)
    env.pop("MPLBACKEND", None)  # the kernel's inline backend, as for a user
    log = artifacts / "jupyterlab.log"
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # containers and CI images often run as root
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"jupyter lab exited with {proc.returncode}; log:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"jupyter lab did not answer on {url} in 120 s; log:\n"
                            f"{log.read_text()}")
            time.sleep(0.5)
        yield LabServer(url=url, token=token, root=root, log=log)
    finally:
        # SIGTERM lets the server shut its kernels down; then the whole group we started.
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def browser(_browser_requirements):
    """Chromium for one test module; Playwright's sync API runs an event loop in this
    thread, so it must not outlive the browser tests."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser, artifacts, request):
    context = browser.new_context(viewport={"width": 1300, "height": 1800})
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    console: list[str] = []
    pg.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    try:
        yield pg
    finally:
        failed = getattr(request.node, "rep_call", None)
        if failed is not None and failed.failed:
            name = re.sub(r"\W+", "_", request.node.name)
            pg.screenshot(path=str(artifacts / f"FAILED-{name}.png"), full_page=True)
            (artifacts / f"FAILED-{name}.console.txt").write_text("\n".join(console))
        context.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    if rep.when == "call":
        item.rep_call = rep
    return rep


# wait_for_function does not await a Promise (an async predicate counts as true at once):
# poll the synchronous check, then ``evaluate`` (which awaits) the async one.
_IMAGES_LOADED = """el => [...el.querySelectorAll('img')].every(
    i => i.complete && i.naturalWidth > 0)"""

_SETTLED = """async el => {
    // every image (e.g. a freshly replaced matplotlib chart) decoded, then two frames painted
    const imgs = [...el.querySelectorAll('img')];
    await Promise.all(imgs.map(i => i.decode().catch(() => null)));
    await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
    return imgs.every(i => i.complete && i.naturalWidth > 0);
}"""

_KERNEL_IDLE = """() => {
    const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    const k = w && w.sessionContext && w.sessionContext.session
              && w.sessionContext.session.kernel;
    return !!(k && k.status === 'idle' && w.content && w.content.widgets.length > 0);
}"""

_RUN_ALL = """async (ms) => {
    const run = window.jupyterapp.commands.execute('notebook:run-all-cells');
    const timeout = new Promise((_, reject) =>
        setTimeout(() => reject(new Error('run all cells: no end after ' + ms + ' ms')), ms));
    return await Promise.race([run, timeout]);
}"""

_ERRORS = """() => {
    const errors = [];
    for (const cell of window.jupyterapp.shell.currentWidget.content.widgets) {
        if (cell.model.type !== 'code') continue;
        for (const o of cell.model.outputs.toJSON()) {
            if (o.output_type === 'error') errors.push(o.ename + ': ' + o.evalue);
        }
        if (cell.model.executionCount === null) errors.push('not executed: '
            + cell.model.sharedModel.getSource().slice(0, 60));
    }
    return errors;
}"""


@pytest.fixture
def run_notebook(page, lab):
    """``run_notebook(name)``: open ``notebooks/NAME``, wait for its kernel, run all cells.

    Fails naming the cells that raised or did not run.
    """

    def run(name: str) -> None:
        page.goto(lab.notebook_url(name))
        page.wait_for_function(_KERNEL_IDLE, timeout=TIMEOUT_MS)
        page.evaluate("() => window.jupyterapp.shell.collapseLeft()")  # room for the widgets
        page.evaluate(_RUN_ALL, RUN_ALL_TIMEOUT_MS)
        page.wait_for_function(_KERNEL_IDLE, timeout=TIMEOUT_MS)
        errors = page.evaluate(_ERRORS)
        assert errors == [], f"{name}: cells failed in JupyterLab: {errors}"

    return run


@pytest.fixture
def kernel_idle(page):
    """``kernel_idle()``: wait until the notebook's kernel has finished what it was sent.

    Widget updates are debounced (applied on a timer thread after the kernel is idle), so
    this does not wait for a chart: wait for what the update shows (e.g. a chart caption).
    """
    return lambda: page.wait_for_function(_KERNEL_IDLE, timeout=TIMEOUT_MS)
