"""Run a probe script as ``nobody``, so the kernel (not a mock) refuses unreadable files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_json(script: str, *args: str) -> dict:
    """Run ``script`` (which drops to ``nobody`` itself when root) in a fresh interpreter
    with energykernel importable; return the JSON object it prints last."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True,
                          text=True, env=env, cwd="/", timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])
