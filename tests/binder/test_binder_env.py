"""What Binder does, without Docker: a fresh environment from binder/, then the notebooks.

repo2docker (Python buildpack) runs ``pip install -r binder/requirements.txt`` in the image's
environment, then ``./binder/postBuild`` from the repository root. This module does the same
in a fresh virtual environment of this Python, executes the tour (and every other notebook)
in it with nbclient, and, where ``jupyter-repo2docker`` is pip-installable, checks that its
``--no-build`` dry run picks up binder/ (Python from runtime.txt, requirements, postBuild).

A full install is slow, so all but the static check of binder/ run only with ``CI=true`` or ``ENERGYKERNEL_BINDER_TEST=1``.
Wheels are kept in a wheelhouse (``ENERGYKERNEL_WHEELHOUSE``, default
``~/.cache/energykernel/binder-wheelhouse``): the environment is installed from it with
``--no-index`` (offline, fast); only when a pinned wheel is missing does ``pip wheel`` fill
it, going through pip's own cache and configured indexes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BINDER = REPO / "binder"
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
TOUR = "01-tour.ipynb"

_ENABLED = (os.environ.get("CI", "").lower() in ("1", "true", "yes")
            or os.environ.get("ENERGYKERNEL_BINDER_TEST") == "1")


def binder(test):
    """Slow: only with CI=true or ENERGYKERNEL_BINDER_TEST=1."""
    for mark in (pytest.mark.slow, pytest.mark.timeout(900), pytest.mark.skipif(
            not _ENABLED, reason="Binder reproduction installs a whole environment (minutes): "
                                 "runs with CI=true or ENERGYKERNEL_BINDER_TEST=1")):
        test = mark(test)
    return test

_COPY_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "venv", "node_modules", "__pycache__", "*.pyc", ".pytest_cache",
    ".ruff_cache", ".ipynb_checkpoints", "test-artifacts", "build", "dist", "*.egg-info")

_RUN_NOTEBOOK = r"""
import json, sys
import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

path = sys.argv[1]
nb = nbformat.read(path, as_version=4)
client = NotebookClient(nb, timeout=300, kernel_name="python3",
                        resources={"metadata": {"path": sys.argv[2]}})
try:
    client.execute()
except CellExecutionError as exc:
    print(str(exc)[-4000:])
    sys.exit(1)
errors = [o.get("ename", "") + ": " + o.get("evalue", "") for c in nb.cells
          if c.cell_type == "code" for o in c.get("outputs", [])
          if o.get("output_type") == "error"]
print(json.dumps({"errors": errors}))
sys.exit(1 if errors else 0)
"""


def _run(cmd, *, env=None, cwd=None, timeout=600, check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], env=env, cwd=cwd, timeout=timeout,
                          capture_output=True, text=True)
    if check and proc.returncode != 0:
        pytest.fail(f"command failed ({proc.returncode}): {' '.join(map(str, cmd))}\n"
                    f"--- stdout ---\n{proc.stdout[-6000:]}\n--- stderr ---\n{proc.stderr[-6000:]}")
    return proc


def _wheelhouse() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    path = Path(os.environ.get("ENERGYKERNEL_WHEELHOUSE",
                               default / "energykernel" / "binder-wheelhouse"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _runtime_python() -> str:
    """The interpreter runtime.txt asks for: this one if it matches, else pythonX.Y on PATH."""
    text = (BINDER / "runtime.txt").read_text().strip()
    m = re.fullmatch(r"python-(\d+)\.(\d+)(?:\.\d+)?", text)
    assert m, f"binder/runtime.txt: expected 'python-X.Y', got {text!r}"
    want = (int(m.group(1)), int(m.group(2)))
    if sys.version_info[:2] == want:
        return sys.executable
    other = shutil.which(f"python{want[0]}.{want[1]}")
    if other is None:
        pytest.skip(f"binder/runtime.txt asks for Python {want[0]}.{want[1]}, which is not "
                    f"installed here (this is {sys.version_info[0]}.{sys.version_info[1]})")
    return other


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ENERGYKERNEL_", "PYTHON", "VIRTUAL_ENV", "JUPYTER", "CONDA"))}
    env.update(extra)
    return env


def _fill(pip: Path, wheelhouse: Path, args: list, env: dict[str, str]) -> bool:
    """Make sure the wheelhouse holds wheels for ``args`` (offline if it already does)."""
    have = [pip, "wheel", "--no-index", "--find-links", wheelhouse, "--wheel-dir", wheelhouse]
    if _run([*have, *args], env=env, check=False).returncode == 0:
        return True
    fetch = [pip, "wheel", "--find-links", wheelhouse, "--wheel-dir", wheelhouse, *args]
    return _run(fetch, env=env, check=False, timeout=900).returncode == 0


def _install(pip: Path, wheelhouse: Path, args: list, env: dict[str, str]) -> None:
    """``pip install ARGS`` offline from the wheelhouse, filled first where it lacks a wheel.

    ``--no-compile``: the packages' files as pip installs them, less the ahead-of-time
    bytecode of thousands of modules (torch's, sympy's, pandas' and scipy's mostly) that
    no notebook imports; Python compiles those the notebooks import when they import them.
    """
    offline = [pip, "install", "--no-index", "--no-compile", "--find-links", wheelhouse, *args]
    if _run(offline, env=env, check=False).returncode != 0:
        _run([pip, "wheel", "--find-links", wheelhouse, "--wheel-dir", wheelhouse, *args],
             env=env, timeout=900)
        _run(offline, env=env)


@pytest.fixture(scope="module")
def binder_env(tmp_path_factory):
    """A checkout copy and a venv built from it the way repo2docker builds the image."""
    base = tmp_path_factory.mktemp("binder")
    repo = base / "repo"
    shutil.copytree(REPO, repo, ignore=_COPY_IGNORE)
    venv = base / "venv"
    _run([_runtime_python(), "-m", "venv", venv])
    bindir = venv / "bin"
    wheelhouse = _wheelhouse()
    env = _clean_env(PATH=f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
                     VIRTUAL_ENV=str(venv), JUPYTER_DATA_DIR=str(base / "jupyter-data"),
                     JUPYTER_CONFIG_DIR=str(base / "jupyter-config"),
                     JUPYTER_RUNTIME_DIR=str(base / "jupyter-runtime"),
                     IPYTHONDIR=str(base / "ipython"),
                     ENERGYKERNEL_LOG_DIR=str(base / "ek-logs"),
                     PIP_DISABLE_PIP_VERSION_CHECK="1")
    pip = bindir / "pip"
    # 1. What the Python buildpack runs: pip install -r binder/requirements.txt. Binder
    #    reaches PyTorch's CPU wheel index; here only the package registries are reachable,
    #    so the same pinned CPU wheel comes from the machine's wheel directory instead
    #    (an unreachable extra index would only make pip wait for its timeouts).
    reqs = base / "requirements-offline.txt"
    reqs.write_text("".join(
        line for line in (repo / "binder" / "requirements.txt").read_text().splitlines(True)
        if not line.startswith("--extra-index-url ")))
    _install(pip, wheelhouse, ["-r", reqs], env)
    # 2. ./binder/postBuild from the repository root. Its isolated build of energykernel needs
    #    the build backend: offline from the wheelhouse (fetched there once).
    assert _fill(pip, wheelhouse, ["hatchling"], env), "could not get a hatchling wheel"
    post_env = {**env, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheelhouse)}
    _run(["bash", "-c", "./binder/postBuild"], env=post_env, cwd=repo)
    return {"base": base, "repo": repo, "venv": venv, "env": env}


def test_requirements_are_exact_pins_and_postbuild_is_executable():
    lines = [ln.strip() for ln in (BINDER / "requirements.txt").read_text().splitlines()]
    reqs = [ln for ln in lines if ln and not ln.startswith(("#", "--extra-index-url "))]
    assert reqs, "binder/requirements.txt is empty"
    loose = [r for r in reqs if not re.fullmatch(r"[A-Za-z0-9_.\-]+==[A-Za-z0-9_.+!]+", r)]
    assert loose == [], f"binder/requirements.txt: not an exact pin: {loose}"
    names = [r.split("==")[0].lower().replace("_", "-") for r in reqs]
    assert len(names) == len(set(names)), "binder/requirements.txt: duplicate package"
    assert "energykernel" not in names  # postBuild installs it from the checkout
    assert os.access(BINDER / "postBuild", os.X_OK), "binder/postBuild must be executable"


# Imported by a notebook but deliberately not on Binder (see binder/requirements.txt).
NOT_ON_BINDER: set[str] = set()


def test_every_notebook_import_is_pinned_for_binder():
    import importlib.metadata

    import nbformat

    pinned = {ln.split("==")[0].strip().lower().replace("_", "-")
              for ln in (BINDER / "requirements.txt").read_text().splitlines()
              if ln.strip() and not ln.startswith(("#", "--"))}
    dists = importlib.metadata.packages_distributions()
    missing = {}
    for path in NOTEBOOKS:
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type != "code":
                continue
            for m in re.finditer(r"^\s*(?:from|import)\s+([A-Za-z_]\w*)", cell.source, re.M):
                module = m.group(1)
                if (module in sys.stdlib_module_names or module == "energykernel"
                        or module in NOT_ON_BINDER):
                    continue
                names = {d.lower().replace("_", "-") for d in dists.get(module, [module])}
                if not names & pinned:
                    missing.setdefault(module, set()).add(path.name)
    assert missing == {}, f"imported by notebooks but not in binder/requirements.txt: {missing}"


@binder
def test_environment_is_consistent_and_uses_the_installed_package(binder_env):
    py = binder_env["venv"] / "bin" / "python"
    env = binder_env["env"]
    _run([py, "-m", "pip", "check"], env=env)
    where = _run([py, "-c", "import energykernel, sys; print(energykernel.__file__)"],
                 env=env, cwd=binder_env["base"]).stdout.strip()
    assert Path(where).is_relative_to(binder_env["venv"]), (
        f"energykernel imported from {where}, not from the Binder environment")
    specs = json.loads(_run([binder_env["venv"] / "bin" / "jupyter", "kernelspec", "list",
                             "--json"], env=env).stdout)["kernelspecs"]
    assert Path(specs["python3"]["resource_dir"]).is_relative_to(binder_env["venv"])
    cli = _run([binder_env["venv"] / "bin" / "energykernel", "backends"], env=env, check=False)
    assert cli.returncode == 0, cli.stderr


def _execute(binder_env, name: str) -> None:
    nb_dir = binder_env["repo"] / "notebooks"
    script = binder_env["base"] / "run_notebook.py"
    script.write_text(_RUN_NOTEBOOK)
    proc = _run([binder_env["venv"] / "bin" / "python", script, nb_dir / name, nb_dir],
                env=binder_env["env"], cwd=nb_dir, timeout=600, check=False)
    hint = ""
    missing = re.search(r"No module named '([\w.]+)'", proc.stdout)
    if missing:
        hint = (f"\nHint: {missing.group(1)!r} is not in binder/requirements.txt; a notebook "
                f"whose optional dependency Binder lacks must say so and skip its cells.")
    assert proc.returncode == 0, (f"{name} failed in the Binder environment:\n"
                                  f"{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}{hint}")


@binder
def test_tour_runs_in_the_binder_environment(binder_env):
    _execute(binder_env, TOUR)


@binder
@pytest.mark.parametrize("name", [p.name for p in NOTEBOOKS if p.name != TOUR])
def test_other_notebooks_run_in_the_binder_environment(binder_env, name):
    _execute(binder_env, name)


@binder
def test_repo2docker_dry_run_detects_the_binder_config(tmp_path):
    """``repo2docker --no-build`` renders the Dockerfile without Docker; check what it uses."""
    venv = tmp_path / "r2d"
    _run([sys.executable, "-m", "venv", venv])
    pip = venv / "bin" / "pip"
    env = _clean_env(PIP_DISABLE_PIP_VERSION_CHECK="1")
    wheelhouse = _wheelhouse()
    if not _fill(pip, wheelhouse, ["jupyter-repo2docker"], env):
        pytest.skip("jupyter-repo2docker is not pip-installable here (no wheel from the "
                    "configured indexes or pip's cache)")
    _run([pip, "install", "--no-index", "--find-links", wheelhouse, "jupyter-repo2docker"],
         env=env)
    repo = tmp_path / "repo"
    shutil.copytree(REPO, repo, ignore=_COPY_IGNORE)
    proc = _run([venv / "bin" / "repo2docker", "--no-build", "--no-run", "--user-id", "1000",
                 "--user-name", "jovyan", repo], env=env, timeout=300)
    dockerfile, log = proc.stdout, proc.stderr
    version = (BINDER / "runtime.txt").read_text().strip().removeprefix("python-")
    assert f"python={version}" in log or f"PYTHON_VERSION={version}" in dockerfile, log
    assert re.search(r'pip install .*-r "?binder/requirements\.txt', dockerfile), dockerfile
    assert re.search(r"RUN \./binder/postBuild", dockerfile), dockerfile
    # The root pyproject.toml is not what the image installs from when binder/ exists.
    assert not re.search(r"pip install[^\n]*\s(-e\s+)?\.\s*$", dockerfile, re.M), dockerfile
