"""The layering rule: measuring needs none of the notebook, plotting or table libraries.

``energykernel``, ``energykernel.core``, ``energykernel.counters``, ``energykernel.sim`` and
``energykernel.carbon`` must import, and a block must be measured, without loading IPython,
ipywidgets, matplotlib, xarray, pandas, torch or dask (they are imported on demand, e.g.
for a Dataset, a plot or an integration). Each check runs in a fresh interpreter, so what this test session already imported
does not hide a violation. Modules are found with ``pkgutil.walk_packages``: a new module in
``core`` or ``counters`` is covered without editing this file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("IPython", "ipywidgets", "matplotlib", "xarray", "pandas", "torch", "dask")
# Packages whose every module (found by walk_packages) must import light.
LIGHT_TREES = ("energykernel.core", "energykernel.counters")
# Modules that must import light themselves (their submodules may load heavy libraries).
LIGHT_MODULES = ("energykernel", "energykernel.sim", "energykernel.carbon")

# Prints {"modules": [...], "offenders": {module: [heavy libraries it pulled in]}}.
_IMPORT_ALL = """
import importlib, json, pkgutil, sys
heavy, trees, singles = {heavy!r}, {trees!r}, {singles!r}

def loaded():
    return {{h for h in heavy if any(m == h or m.startswith(h + ".") for m in sys.modules)}}

names = list(singles)
for tree in trees:
    pkg = importlib.import_module(tree)
    names.append(tree)
    names += [m.name for m in pkgutil.walk_packages(pkg.__path__, tree + ".")]
offenders = {{}}
for name in names:
    before = loaded()
    importlib.import_module(name)
    new = sorted(loaded() - before)
    if new:
        offenders[name] = new
print(json.dumps({{"modules": names, "offenders": offenders}}))
"""

# Prints the heavy libraries loaded by importing energykernel and measuring one block.
_MEASURE = """
import json, sys
import energykernel as ek
with ek.measure("x") as m:
    pass
assert m.result is not None and m.result.status == "ok", m.result
print(json.dumps(sorted(h for h in {heavy!r}
                        if any(n == h or n.startswith(h + ".") for n in sys.modules))))
"""


def _run(code: str, tmp_path: Path) -> str:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ENERGYKERNEL_", "PYTHONSTARTUP", "MPLBACKEND"))}
    env.update(ENERGYKERNEL_BACKENDS="estimate", ENERGYKERNEL_LOG_DIR=str(tmp_path / "logs"))
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, f"subprocess failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout.strip().splitlines()[-1]


def test_core_counters_sim_carbon_import_no_heavy_library(tmp_path):
    code = _IMPORT_ALL.format(heavy=HEAVY, trees=LIGHT_TREES, singles=LIGHT_MODULES)
    report = json.loads(_run(code, tmp_path))
    modules = report["modules"]
    # walk_packages really found the modules (a broken walk must not pass vacuously).
    assert "energykernel.core.window" in modules and "energykernel.counters.rapl" in modules
    offenders = report["offenders"]
    assert not offenders, "imports that load a heavy library:\n" + "\n".join(
        f"  {module}: {', '.join(libs)}" for module, libs in offenders.items())


def test_measuring_a_block_loads_no_heavy_library(tmp_path):
    loaded = json.loads(_run(_MEASURE.format(heavy=HEAVY), tmp_path))
    assert loaded == [], f"`with energykernel.measure(...)` loaded: {', '.join(loaded)}"
