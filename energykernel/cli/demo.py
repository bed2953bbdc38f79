"""``python -m energykernel.cli.demo`` (``./run demo``): measure the tour notebook, say where
the annotated notebook, dataset and report are."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "01-tour.ipynb"


def main(argv: list[str] | None = None) -> int:
    """Run ``energykernel measure`` on the tour into ``demo-output/`` (or ``argv[0]``)."""
    from .main import main as cli_main

    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0]) if argv else Path.cwd() / "demo-output"
    if not NOTEBOOK.is_file():
        print(f"energykernel demo: the tour notebook {NOTEBOOK} is missing "
              "(run from a source checkout)", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    print(f"energykernel demo: measuring {NOTEBOOK.relative_to(ROOT)} cell by cell "
          "in a fresh kernel…")
    code = cli_main(["measure", str(NOTEBOOK), "-o", str(out / "01-tour.energy.ipynb"),
                     "--dataset", str(out / "01-tour.energy.nc"),
                     "--report", str(out / "01-tour.energy.html")])
    if code == 0:
        print("\nOpen the report in a browser, the notebook in Jupyter; in Python:\n"
              f"  import energykernel as ek; ek.load({str(out / '01-tour.energy.nc')!r})")
    return code


if __name__ == "__main__":
    sys.exit(main())
