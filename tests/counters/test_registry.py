"""Every registered backend is named everywhere a method is listed."""

from __future__ import annotations

from energykernel.core.units import METHODS
from energykernel.counters import DEFAULT_COUNTERS, KNOWN_BACKENDS, create


def test_every_backend_method_is_known_and_described():
    from energykernel.viz.report import METHODS_TEXT

    for name in KNOWN_BACKENDS:
        method = create(name).method
        assert method in METHODS, name
        assert method in METHODS_TEXT, name
    assert set(DEFAULT_COUNTERS) <= set(KNOWN_BACKENDS)


def test_apple_figures_are_labelled_model_based():
    from energykernel.viz.report import METHODS_TEXT

    assert "model-based" in METHODS_TEXT["apple"]
