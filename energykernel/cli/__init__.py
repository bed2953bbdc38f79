"""The ``energykernel`` command: ``measure``, ``report``, ``backends``, ``simulate``."""

from __future__ import annotations

from .main import main

__all__ = ["main"]
