"""Test doubles that behave like the real hardware interfaces."""
