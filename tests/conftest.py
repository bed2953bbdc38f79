"""Every test starts from a clean energykernel state, with its own log directory."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_energykernel(tmp_path, monkeypatch):
    """Fresh settings, engine and in-memory record; logs in a per-test directory."""
    from energykernel.core import config, idle
    from energykernel.core.engine import TIMELINE, shutdown_engine
    from energykernel.core.recorder import recorder

    log_dir = tmp_path / "ek-logs"
    monkeypatch.setenv("ENERGYKERNEL_LOG_DIR", str(log_dir))
    config.reset_settings()
    shutdown_engine()
    recorder().close()
    recorder().reset()
    TIMELINE.clear()
    idle.forget()
    yield log_dir
    shutdown_engine()
    recorder().close()
    recorder().reset()
    TIMELINE.clear()
    idle.forget()
    config.reset_settings()


@pytest.fixture
def log_dir(_isolated_energykernel):
    """The per-test ``ENERGYKERNEL_LOG_DIR``."""
    return _isolated_energykernel


@pytest.fixture
def estimate_only(monkeypatch):
    """Measure with the estimate backend alone (what CI machines without counters use)."""
    from energykernel.core import config

    monkeypatch.setenv("ENERGYKERNEL_BACKENDS", "estimate")
    config.reset_settings()


_LAST = ("tests/browser/", "tests/binder/")


def pytest_collection_modifyitems(config, items):
    """Run the slow end-to-end suites (real browser, Binder environment) last."""
    def slow_rank(item) -> int:
        path = item.nodeid
        return next((k + 1 for k, prefix in enumerate(_LAST) if path.startswith(prefix)), 0)

    items.sort(key=slow_rank)  # stable: keeps the usual order within each group


@pytest.fixture
def manual(monkeypatch):
    """Manual counters for cpu and ram (tests/fakes/counters.py), the estimate for the rest."""
    from fakes.counters import use_manual_backend

    return use_manual_backend(monkeypatch, estimate=True)
