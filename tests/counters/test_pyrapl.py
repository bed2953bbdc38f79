"""The pyRAPL backend: pyRAPL's own discovery and reads, pointed at the fake tree."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))

from fakes.powercap import FakePowercap, pyrapl_patches
from fakes.unprivileged import run_json

from energykernel.counters import pyrapl as ek_pyrapl
from energykernel.counters.pyrapl import NOT_INSTALLED, PyRaplBackend
from energykernel.counters.rapl import RaplBackend

REPO = Path(__file__).parents[2]
needs_pyrapl = pytest.mark.skipif(
    importlib.util.find_spec("pyRAPL") is None, reason="pyRAPL not installed"
)
pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")  # pyRAPL leaks `name` files


def uj(joules: float) -> int:
    return round(joules * 1e6)


def on_fake(tree: FakePowercap, monkeypatch) -> None:
    for target, attr, value in pyrapl_patches(tree.sys):
        monkeypatch.setattr(target, attr, value, raising=False)


@pytest.fixture
def fake(tmp_path, monkeypatch):
    with FakePowercap(tmp_path) as tree:
        on_fake(tree, monkeypatch)
        yield tree


@needs_pyrapl
def test_probe_and_devices(fake):
    status = PyRaplBackend().probe()
    assert status.available, status.reason
    assert status.components == ("cpu", "ram")
    assert status.devices == ("cpu:package-0", "ram:dram-0", "cpu:package-1", "ram:dram-1")
    b = PyRaplBackend()
    b.open()
    assert {n: d.component for n, d in b.devices.items()} == {
        "cpu:package-0": "cpu",
        "ram:dram-0": "ram",
        "cpu:package-1": "cpu",
        "ram:dram-1": "ram",
    }
    assert b.devices["ram:dram-1"].meta["zone_dir"].endswith("intel-rapl:1/intel-rapl:1:0")
    b.close()


@needs_pyrapl
def test_exact_energy_matches_rapl_backend(fake):
    """Same tree, same window: pyrapl and rapl agree to the µJ on cpu and ram."""
    ours, rapl = PyRaplBackend(), RaplBackend(str(fake.root))
    ours.open()
    rapl.open()
    p0, r0 = ours.read(), rapl.read()
    fake.advance(2.5)
    p1, r1 = ours.read(), rapl.read()
    assert uj(p1["cpu:package-0"]) - uj(p0["cpu:package-0"]) == 100_000_000  # 40 W × 2.5 s
    for component, expected in (("cpu", 175_000_000), ("ram", 25_000_000)):
        for backend, a, b in ((ours, p0, p1), (rapl, r0, r1)):
            got = sum(
                uj(b[n]) - uj(a[n]) for n, d in backend.devices.items() if d.component == component
            )
            assert got == expected, (backend.name, component)
    ours.close()
    rapl.close()


@needs_pyrapl
def test_wraparound_added_to_pyrapl(tmp_path, monkeypatch):
    layout = (("intel-rapl:0", "package-0", 0.0, None), ("intel-rapl:0:0", "dram", 0.0, None))
    with FakePowercap(
        tmp_path, layout=layout, range_uj=999_999, start_uj=700_000, cpus_per_package=4
    ) as tree:
        on_fake(tree, monkeypatch)
        b = PyRaplBackend()
        b.open()
        raw_before = b._sensor.energy()[0]
        start = b.read()
        for _ in range(3):  # 0.6 J per poll: two wraps of package-0 in the window
            tree.add_energy("intel-rapl:0", 600_000)
            tree.add_energy("intel-rapl:0:0", 400_000)
            b.read()
        end = b.read()
        # pyRAPL alone: end - start of its raw values is negative across the wrap
        assert b._sensor.energy()[0] - raw_before < 0
        assert uj(end["cpu:package-0"]) - uj(start["cpu:package-0"]) == 1_800_000
        assert uj(end["ram:dram-0"]) - uj(start["ram:dram-0"]) == 1_200_000
        b.close()


@needs_pyrapl
def test_poll_interval_from_zone_constraints(tmp_path, monkeypatch):
    layout = (
        ("intel-rapl:0", "package-0", 0.0, 150_000_000),
        ("intel-rapl:0:0", "dram", 0.0, 30_000_000),
    )
    with FakePowercap(tmp_path, layout=layout, range_uj=10_000_000) as tree:
        on_fake(tree, monkeypatch)
        b = PyRaplBackend()
        b.open()
        assert b.poll_interval_s() == pytest.approx(10 / 150 / 2)
        b.close()


@needs_pyrapl
def test_multi_die_is_beyond_pyrapl(tmp_path, monkeypatch):
    layout = (
        ("intel-rapl:0", "package-0-die-0", 100.0, None),
        ("intel-rapl:1", "package-0-die-1", 100.0, None),
    )
    with FakePowercap(tmp_path, layout=layout) as tree:
        on_fake(tree, monkeypatch)
        status = PyRaplBackend().probe()
        assert not status.available
        assert "multi-die" in status.reason and "'rapl' backend" in status.reason
        assert RaplBackend(str(tree.root)).probe().available


def test_not_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyRAPL", None)  # find_spec → None, import fails
    status = PyRaplBackend().probe()
    assert not status.available
    assert status.reason == NOT_INSTALLED
    assert "pip install 'energykernel[rapl]'" in status.reason


def test_no_powercap_tree(monkeypatch, tmp_path):
    monkeypatch.setattr(ek_pyrapl, "PYRAPL_ZONES_DIR", str(tmp_path / "intel-rapl"))
    status = PyRaplBackend().probe()
    assert not status.available
    assert f"no RAPL powercap interface at {tmp_path / 'intel-rapl'}" in status.reason


_PROBE_AS_NOBODY = """
import json, os, sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from fakes.powercap import pyrapl_patches
from energykernel.counters.pyrapl import PyRaplBackend
for target, attr, value in pyrapl_patches(Path(sys.argv[1])):
    setattr(target, attr, value)
if os.geteuid() == 0:
    os.setgroups([]); os.setgid(65534); os.setuid(65534)
status = PyRaplBackend().probe()
print(json.dumps({"available": status.available, "reason": status.reason}))
"""


@needs_pyrapl
def test_unreadable_energy_uj():
    """pyRAPL's own ``open`` meets a real 0400 root-only file as an unprivileged user."""
    base = tempfile.mkdtemp(prefix="ek-pyrapl-")
    os.chmod(base, 0o755)
    try:
        with FakePowercap(Path(base)) as tree:
            path = tree.make_unreadable("intel-rapl:0")
            if os.geteuid() != 0:
                os.chmod(path, 0)
            result = run_json(_PROBE_AS_NOBODY, str(tree.sys), str(REPO / "tests"))
    finally:
        subprocess.run(["rm", "-rf", base], check=False)
    assert not result["available"]
    assert "permission denied" in result["reason"]
    assert "intel-rapl:0/energy_uj" in result["reason"]
    assert "CVE-2020-8694" in result["reason"]


@needs_pyrapl
def test_import_leaves_root_logger_alone():
    code = (
        "import logging\n"
        "from energykernel.counters.pyrapl import _import_pyrapl\n"
        "_import_pyrapl()\n"
        "print(len(logging.getLogger().handlers))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
        check=True,
    )
    assert proc.stdout.strip() == "0"
    assert "pymongo" not in proc.stderr
