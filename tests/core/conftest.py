"""Core tests measure through the real engine with hand-driven counters."""

from __future__ import annotations

import pytest
from fakes.counters import use_manual_backend


@pytest.fixture
def manual(monkeypatch):
    """Manual counters for cpu and ram, the estimate for the rest."""
    return use_manual_backend(monkeypatch, estimate=True)
