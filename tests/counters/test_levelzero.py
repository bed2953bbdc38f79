"""The Level Zero backend against a fake ``pyzes`` with the real names, structures and codes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))

from fakes.pyzes import (
    COUNTER_MODULUS,
    ZE_RESULT_ERROR_DEVICE_LOST,
    ZE_RESULT_ERROR_INSUFFICIENT_PERMISSIONS,
    ZE_RESULT_ERROR_UNINITIALIZED,
    FakeCard,
    FakeDomain,
    FakePyzes,
    arc_a770,
    max_1550,
)

from energykernel.counters import create, statuses
from energykernel.counters.base import BackendUnavailable
from energykernel.counters.levelzero import NOT_INSTALLED, LevelZeroBackend, parse_mask


@pytest.fixture
def zes(monkeypatch):
    for var in ("ZE_AFFINITY_MASK", "ZE_FLAT_DEVICE_HIERARCHY"):
        monkeypatch.delenv(var, raising=False)
    fake = FakePyzes([max_1550(), arc_a770()])
    monkeypatch.setitem(sys.modules, "pyzes", fake)
    return fake


@pytest.fixture
def backend(zes):
    b = LevelZeroBackend()
    b.open()
    yield b
    b.close()


def test_probe_and_registry(zes):
    status = create("levelzero").probe()
    assert status.available, status.reason
    assert status.components == ("gpu",)
    assert status.devices[:1] == ("gpu:0",) and "gpu:1" in status.devices
    assert "gpu:0 Intel(R) Data Center GPU Max 1550 (card energy counter)" in status.reason
    assert "gpu:1 Intel(R) Arc(TM) A770 Graphics (package energy counter)" in status.reason
    assert any(s.name == "levelzero" for s in statuses())


def test_card_counted_package_and_tiles_are_detail(backend):
    comps = {n: d.component for n, d in backend.devices.items()}
    assert comps == {"gpu:0": "gpu", "gpu:0:package": None, "gpu:0.0:package": None,
                     "gpu:0.1:package": None, "gpu:1": "gpu"}
    meta = backend.devices["gpu:0"].meta
    assert meta["domain"] == "card" and meta["power_limit_w"] == 600.0
    assert meta["source"] == "energy_counter" and meta["serial"] == "LQAC12345678"
    assert backend.devices["gpu:1"].meta["power_limit_w"] == 225.0
    assert backend.components == ("gpu",)
    assert backend.poll_interval_s() is None  # 64-bit counters: no wrap to chase


def test_energy_since_open_in_microjoules(zes, backend):
    r0 = backend.read()
    zes.advance(2.0)
    r1 = backend.read()
    assert r0 == dict.fromkeys(r0, 0.0)
    assert r1["gpu:0"] == pytest.approx(1200.0)  # 600 W × 2 s, exact µJ
    assert r1["gpu:1"] == pytest.approx(300.0)
    assert r1["gpu:0.0:package"] == pytest.approx(600.0)
    counted = backend.read(detail=False)
    assert set(counted) == {"gpu:0", "gpu:1"}


def test_counter_wraps_at_64_bits(zes, backend):
    card = zes.cards[1].domains[0]
    backend.read()
    card.energy_uj = COUNTER_MODULUS - 1_000
    backend._gpus[-1].counter.last_uj = card.energy_uj  # (as if read just before the wrap)
    before = backend.read()["gpu:1"]
    zes.advance(1.0)  # 150 J: wraps
    assert card.energy_uj < 150_000_000
    assert backend.read()["gpu:1"] - before == pytest.approx(150.0)


def test_a_restart_counts_from_zero(zes, backend):
    zes.advance(1.0)
    before = backend.read()["gpu:1"]
    zes.cards[1].domains[0].energy_uj = 5_000_000  # driver reload: counter restarted
    assert backend.read()["gpu:1"] - before == pytest.approx(5.0)
    assert backend.devices["gpu:1"].meta["counter_resets"] == 1


def test_error_mid_window_keeps_energy(zes, backend):
    zes.advance(1.0)
    assert backend.read()["gpu:1"] == pytest.approx(150.0)
    zes.cards[1].domains[0].error = ZE_RESULT_ERROR_DEVICE_LOST
    zes.advance(1.0)
    assert backend.read()["gpu:1"] == pytest.approx(150.0)  # held, never lost or negative
    assert "GPU is lost" in backend.devices["gpu:1"].meta["last_error"]
    zes.cards[1].domains[0].error = None
    assert backend.read()["gpu:1"] == pytest.approx(300.0)  # the gap is counted once


@pytest.mark.parametrize(
    ("mask", "hierarchy", "devices"),
    [
        ("1", "COMBINED", ("gpu:1",)),
        ("0", "COMBINED", ("gpu:0",)),
        ("0.1", "COMBINED", ("gpu:0.1",)),
        ("0.0,0.1", "COMBINED", ("gpu:0.0", "gpu:0.1")),
        ("0.1,0", "COMBINED", ("gpu:0",)),  # the whole card wins
        ("2", None, ("gpu:1",)),  # FLAT (the default): tiles 0, 1 of card 0, then card 1
        ("1", None, ("gpu:0.1",)),
        ("0,1", None, ("gpu:0.0", "gpu:0.1")),
    ],
)
def test_affinity_mask(zes, monkeypatch, mask, hierarchy, devices):
    monkeypatch.setenv("ZE_AFFINITY_MASK", mask)
    if hierarchy:
        monkeypatch.setenv("ZE_FLAT_DEVICE_HIERARCHY", hierarchy)
    status = LevelZeroBackend().probe()
    assert status.available, status.reason
    counted = tuple(d for d in status.devices if d.count(":") == 1)  # not gpu:N:kind detail
    assert counted == devices


def test_tile_mask_counts_the_tiles(zes, monkeypatch):
    monkeypatch.setenv("ZE_AFFINITY_MASK", "0.1")
    monkeypatch.setenv("ZE_FLAT_DEVICE_HIERARCHY", "COMBINED")
    b = LevelZeroBackend()
    b.open()
    assert {n: d.component for n, d in b.devices.items()} == {
        "gpu:0.1": "gpu", "gpu:0:card": None, "gpu:0:package": None}
    zes.advance(1.0)
    assert b.read()["gpu:0.1"] == pytest.approx(240.0)  # tile 1 at 0.4 × 600 W
    b.close()


def test_tile_mask_without_tile_domains_counts_the_card(monkeypatch):
    card = FakeCard(tiles=2, domains=[FakeDomain()])  # per-card energy only
    monkeypatch.setitem(sys.modules, "pyzes", FakePyzes([card]))
    monkeypatch.setenv("ZE_AFFINITY_MASK", "0.1")
    monkeypatch.setenv("ZE_FLAT_DEVICE_HIERARCHY", "COMBINED")
    status = LevelZeroBackend().probe()
    assert status.available and status.devices == ("gpu:0",)
    assert "energy is per card here: the whole card is counted" in status.reason


@pytest.mark.parametrize("mask", ["7", "x", "0.0.1"])
def test_mask_naming_nothing(zes, monkeypatch, mask):
    monkeypatch.setenv("ZE_AFFINITY_MASK", mask)
    status = LevelZeroBackend().probe()
    assert not status.available and "ZE_AFFINITY_MASK" in status.reason
    with pytest.raises(BackendUnavailable):
        LevelZeroBackend().open()


def test_parse_mask_notes():
    notes: list[str] = []
    assert parse_mask("0.1,1,9", False, [2, 1], notes) == {0: {1}, 1: None}
    assert notes == ["ZE_AFFINITY_MASK entry '9' names no device here: skipped"]


def test_domain_without_counter_and_old_driver(monkeypatch):
    cards = [FakeCard("Old", tiles=0, ext_properties=False, domains=[
                 FakeDomain(power_w=100.0), FakeDomain(power_w=90.0)]),
             FakeCard("No counter", domains=[FakeDomain(energy_supported=False)])]
    fake = FakePyzes(cards)
    monkeypatch.setitem(sys.modules, "pyzes", fake)
    b = LevelZeroBackend()
    b.open()
    # Without extended properties the domain kind is unknown: the first counts.
    assert {n: d.component for n, d in b.devices.items()} == {
        "gpu:0": "gpu", "gpu:0:unknown": None}
    assert "gpu:1 (No counter): no power domain with an energy counter" in b.notes
    fake.advance(1.0)
    assert b.read()["gpu:0"] == pytest.approx(100.0)
    b.close()


def test_non_gpu_devices_are_skipped(monkeypatch):
    cards = [FakeCard("Xeon", device_type=2, domains=[FakeDomain()]), arc_a770()]
    monkeypatch.setitem(sys.modules, "pyzes", FakePyzes(cards))
    assert LevelZeroBackend().probe().devices == ("gpu:0",)


@pytest.mark.parametrize(
    ("code", "text"),
    [(ZE_RESULT_ERROR_UNINITIALIZED, "no driver to initialise"),
     (ZE_RESULT_ERROR_INSUFFICIENT_PERMISSIONS, "render"),
     (0x7FFFFFFE, "zesInit returned 0x7FFFFFFE")],
)
def test_init_failure_is_a_reason(monkeypatch, code, text):
    monkeypatch.setitem(sys.modules, "pyzes", FakePyzes([arc_a770()], init_result=code))
    status = LevelZeroBackend().probe()
    assert not status.available and text in status.reason
    with pytest.raises(BackendUnavailable, match="Level Zero"):
        LevelZeroBackend().open()


def test_no_intel_gpu(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyzes", FakePyzes([]))
    status = LevelZeroBackend().probe()
    assert not status.available and status.reason == "Level Zero found no usable GPU"


def test_not_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyzes", None)
    status = LevelZeroBackend().probe()
    assert not status.available and status.reason == NOT_INSTALLED
    assert "energykernel[intel]" in status.reason


def test_bindings_without_the_loader(monkeypatch, tmp_path):
    """pyzes loads libze_loader.so.1 when imported: an OSError without it."""
    pkg = tmp_path / "pyzes"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "from ctypes import CDLL\nCDLL('/nonexistent/libze_loader.so.1')\n")
    monkeypatch.delitem(sys.modules, "pyzes", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    status = LevelZeroBackend().probe()
    assert not status.available
    assert "Level Zero loader could not be loaded" in status.reason
    assert "libze_loader.so.1" in status.reason and "intel-level-zero-gpu" in status.reason


def test_bound_terms(backend):
    terms = backend.bound_terms()
    assert terms["gpu:0"].abs_j == pytest.approx(1e-6 + 600.0 * 0.1)
    assert terms["gpu:1"].abs_j == pytest.approx(1e-6 + 225.0 * 0.1)
    assert "1 µJ" in terms["gpu:0"].source


def test_close(zes):
    b = LevelZeroBackend()
    b.open()
    b.close()
    assert b.devices == {} and b.read() == {}


def test_fake_matches_real_pyzes_names():
    """The fake must not drift from pyzes: same function, structure and constant names, and
    the same structure fields. pyzes loads libze_loader.so.1 when imported, so without the
    loader its source is read instead of imported."""
    import ast
    import importlib.util

    spec = importlib.util.find_spec("pyzes")
    if spec is None or spec.origin is None:
        pytest.skip("pyzes not installed")
    tree = ast.parse(Path(spec.origin).read_text())
    names: set[str] = set()
    fields: dict[str, list[str]] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if (isinstance(item, ast.Assign) and isinstance(item.value, ast.List)
                        and getattr(item.targets[0], "id", "") == "_fields_"):
                    fields[node.name] = [e.elts[0].value for e in item.value.elts]  # type: ignore[attr-defined]
    fake = FakePyzes([])
    for name in dir(fake):
        if name.startswith(("zes", "ZE_", "ZES_", "ze_")):
            assert name in names, name
            cls = getattr(fake, name)
            if isinstance(cls, type) and hasattr(cls, "_fields_") and name in fields:
                assert [f[0] for f in cls._fields_] == fields[name], name
