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

# Modules whose tests share no fixture wider than a test (each starts its own kernels or
# subprocesses): under pytest-xdist their tests are spread over the workers one by one.
_SPREAD = (
    "tests/test_notebooks_execute.py",
    "tests/jupyter/test_nb_transparency.py",
    "tests/jupyter/test_nb_cli.py",
)


def _work_unit(nodeid: str) -> str:
    """What pytest-xdist gives one worker to run in order, as a serial run would.

    A whole end-to-end suite (one JupyterLab server and its screenshots; one Binder
    environment and its wheelhouse), a test of a ``_SPREAD`` module, else a module (its
    module-scoped kernel, shell or cluster set up once, its tests in file order).
    """
    path = nodeid.split("::")[0]
    suite = next((prefix for prefix in _LAST if path.startswith(prefix)), None)
    if suite is not None:
        return suite
    return nodeid if path in _SPREAD else path


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``-n N`` (pyproject's addopts): work units from ``_work_unit``, handed out in the
    workers' collection order (the long end-to-end suites first), not by size."""
    if config.getoption("dist") != "load":  # an explicit --dist other than the default
        return None
    from xdist.scheduler import LoadScopeScheduling

    class _Scheduler(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _work_unit(nodeid)

    config.option.loadscopereorder = False  # keep the collection order below
    return _Scheduler(config, log)


def pytest_collection_modifyitems(config, items):
    """Run the slow end-to-end suites (real browser, Binder environment) last; on a
    pytest-xdist worker, first, so that they start while the other workers run the rest."""
    def slow_rank(item) -> int:
        path = item.nodeid
        return next((k + 1 for k, prefix in enumerate(_LAST) if path.startswith(prefix)), 0)

    if hasattr(config, "workerinput"):  # an xdist worker: Binder's, the browser's, the rest
        items.sort(key=lambda item: -slow_rank(item))
    else:
        items.sort(key=slow_rank)  # stable: keeps the usual order within each group


@pytest.fixture
def manual(monkeypatch):
    """Manual counters for cpu and ram (tests/fakes/counters.py), the estimate for the rest."""
    from fakes.counters import use_manual_backend

    return use_manual_backend(monkeypatch, estimate=True)
