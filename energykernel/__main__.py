"""``python -m energykernel``: the ``energykernel`` command."""

import sys

from .cli import main

sys.exit(main())
