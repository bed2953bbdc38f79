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
    print(lab_hint())
    return code


def lab_hint() -> str:
    """How to start JupyterLab with energykernel's extension (nothing is opened here)."""
    ext = Path(sys.prefix) / "share" / "jupyter" / "labextensions" / "energykernel"
    jupyter = Path(sys.executable).with_name("jupyter")
    if not (ext / "package.json").is_file():
        return ("\nThe JupyterLab extension is not installed in this environment "
                "(./run setup builds it; it needs npm).")
    try:
        where = jupyter.relative_to(Path.cwd())
    except ValueError:
        where = jupyter
    return ("\nIn JupyterLab, with energykernel's extension active (badges on measured "
            "cells, live power in the status bar):\n"
            f"  {where} lab {NOTEBOOK.relative_to(ROOT)}\n"
            "then press '⚡ auto' in the notebook's toolbar (or run 'Measure every cell' "
            "from the command palette) and run the cells.")


if __name__ == "__main__":
    sys.exit(main())
