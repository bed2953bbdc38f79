"""Screenshots of the HTML report for the README: the tour notebook and a generated
200-cell notebook, each measured with ``energykernel measure`` and shown in headless
Chromium (Playwright driving ``/usr/bin/chromium``; ``ENERGYKERNEL_CHROMIUM`` overrides).

    python scripts/report_screenshots.py [--out docs] [--keep DIR]

Writes ``report-tour.png`` (also copied to ``report.png``, the README picture) and
``report-200-cells.png`` (with ``report-200-cells-chart.png``, its chart). The 200-cell notebook is measured twice, so its report shows
each cell's previous run. Nothing is downloaded; the kernels use the default backends.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("ENERGYKERNEL_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WIDTH, HEIGHT = 1180, 1500  # the top of the report: carbon, top cells, the table's head


def generated_notebook(path: Path, cells: int = 200, seed: int = 7) -> Path:
    """A notebook of ``cells`` code cells, each doing a different amount of work."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    rng = random.Random(seed)
    out = [new_markdown_cell(f"# {cells} cells\nEach cell does a different amount of work."),
           new_code_cell("import math, random\nrandom.seed(0)")]
    for k in range(cells - 1):
        n = int(10 ** rng.uniform(2, 5.7))
        out.append(new_code_cell([
            f"# step {k}: squares\ntotal = sum(i * i for i in range({n}))",
            f"# step {k}: sort a sample\nsample = sorted(random.random() for _ in range({n}))",
            f"# step {k}: trigonometry\nacc = 0.0\nfor i in range({n}):\n"
            "    acc += math.sin(i) * math.cos(i)",
            f"# step {k}: strings\ntext = ' '.join(str(i) for i in range({n // 4 + 1}))",
        ][k % 4]))
    nbformat.write(new_notebook(cells=out, metadata={"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}}), path)
    return path


def measure(notebook: Path, out_dir: Path, times: int = 1) -> Path:
    """``energykernel measure`` ``times`` times; the report's path."""
    from energykernel.cli.main import main

    out = (out_dir / notebook.name.replace(".ipynb", ".energy.ipynb")).resolve()
    here = Path.cwd()
    os.chdir(notebook.parent)  # the report names the notebook as given: no local paths
    try:
        for _ in range(times):
            code = main(["measure", notebook.name, "-o", str(out), "--no-progress"])
            if code != 0:
                sys.exit(f"energykernel measure {notebook} exited {code}")
    finally:
        os.chdir(here)
    return out.with_suffix(".html")


def screenshot(html: Path, png: Path, chart: Path | None = None) -> None:
    """The top of the report into ``png``; its chart of energy per task into ``chart``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
            page.goto(html.as_uri())
            page.screenshot(path=str(png))
            if chart is not None:
                page.locator("#plot-tasks svg").screenshot(path=str(chart))
        finally:
            browser.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "docs"), help="folder for the PNGs")
    ap.add_argument("--keep", default=None, help="keep the measured files in this folder")
    args = ap.parse_args()
    out = Path(args.out)
    work = Path(args.keep or tempfile.mkdtemp(prefix="energykernel-shots-"))
    work.mkdir(parents=True, exist_ok=True)
    tour = REPO / "notebooks" / "01-tour.ipynb"  # run where it lies (never modified)
    screenshot(measure(tour, work), out / "report-tour.png")
    shutil.copyfile(out / "report-tour.png", out / "report.png")
    many = generated_notebook(work / "200-cells.ipynb")
    screenshot(measure(many, work, times=2), out / "report-200-cells.png",
               out / "report-200-cells-chart.png")
    print(f"wrote report-tour.png, report.png, report-200-cells.png and "
          f"report-200-cells-chart.png in {out} (measured files in {work})")
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
