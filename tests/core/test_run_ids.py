"""Run ids stay unique when user code reseeds ``random`` (random.seed(0) in a notebook)."""

from __future__ import annotations

import os
import random

import pytest

import energykernel as ek


def test_reseeding_random_does_not_repeat_run_ids(estimate_only):
    ids = []
    for _ in range(2):
        random.seed(0)
        with ek.measure("seeded") as m:
            pass
        ids.append(m.result.id)
    assert ids[0] != ids[1]
    random.seed(0)
    state = random.getstate()
    with ek.measure("again"):
        pass
    assert random.getstate() == state  # measuring does not draw from the user's generator


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_draws_other_ids():
    from energykernel.core import window

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send one id and leave
        os.write(write, f"{window._random_bits(128):032x}".encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.waitpid(pid, 0)
    os.close(read)
    assert child != f"{window._random_bits(128):032x}" and len(child) == 32
