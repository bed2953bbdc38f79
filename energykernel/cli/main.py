"""The ``energykernel`` command: ``measure``, ``report``, ``backends``, ``simulate``,
``compare``.

Exit codes: 0 done; 1 the notebook stopped at a failing cell (everything measured up to
it is still written); 2 bad arguments, paths or files (nothing is written).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path

from ..core.units import si
from ._paths import CliError, input_file, output_file

PROG = "energykernel"
MAX_HISTORY = 1000  # --history: runs kept per cell at most
SHOWN_CHANGES = 10  # cells printed with their change (every regression, then the largest)
REGION_HELP = ("grid intensity for the report's carbon: an ISO country code (FR), a US "
               "state or a cloud region (aws:eu-west-3); default: the world average")


def _region(code: str | None) -> str | None:
    """``code`` if the intensity table knows it (checked before anything runs)."""
    if code is None:
        return None
    from ..carbon import intensity

    try:
        intensity(code)
    except (LookupError, ValueError) as exc:
        raise CliError(f"--region {code}: {exc}") from None
    return code


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Energy of notebooks and code, "
                                "measured from hardware counters.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    m = sub.add_parser("measure", help="run a notebook with every cell measured")
    m.add_argument("notebook", help="the notebook to run (it is not modified)")
    m.add_argument("-o", "--output", help="annotated notebook (default NAME.energy.ipynb)")
    m.add_argument("--dataset", help="runs dataset, NetCDF (default NAME.energy.nc)")
    m.add_argument("--report", help="HTML report (default NAME.energy.html)")
    m.add_argument("--timeout", type=float, default=None, metavar="S",
                   help="seconds a cell may run (default: no limit)")
    m.add_argument("--kernel", default=None, metavar="NAME",
                   help="kernel name (default: the notebook's, else python3)")
    m.add_argument("--no-progress", action="store_true", help="no progress bar")
    m.add_argument("--region", default=None, metavar="CODE", help=REGION_HELP)
    m.add_argument("--history", type=int, default=None, metavar="N",
                   help="runs of each cell kept in the annotated notebook, by a hash of its "
                        "source, to compare with (default 5; 0 keeps none)")
    r = sub.add_parser("report", help="write the HTML report of a dataset")
    r.add_argument("dataset", help="a file written by ek.save or energykernel measure")
    r.add_argument("-o", "--output", help="the HTML file to write")
    r.add_argument("--csv", default=None, metavar="OUT.csv",
                   help="also (or only) write the tidy table: one row per task × instance × "
                        "component (ds.ek.to_dataframe())")
    r.add_argument("--region", default=None, metavar="CODE", help=REGION_HELP)
    sub.add_parser("backends", help="what can be read on this machine, and why not")
    sub.add_parser("simulate", help="simulate a workflow on compute instances "
                   "(energykernel simulate --help)", add_help=False)
    sub.add_parser("compare", help="what changed between two datasets "
                   "(energykernel compare --help)", add_help=False)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``energykernel`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "simulate":
        from .simulate import simulate_main

        return int(simulate_main(argv[1:]) or 0)
    if argv and argv[0] == "compare":
        from .compare import compare_main

        return compare_main(argv[1:])
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    try:
        if args.command == "measure":
            return _measure(args)
        if args.command == "report":
            return _report(args)
        if args.command == "backends":
            return _backends()
        _parser().print_help()
        return 2
    except CliError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2


def _read_notebook(path: Path):
    import nbformat

    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CliError(f"{str(path)!r} is not a Jupyter notebook ({reason})") from None
    if not isinstance(nb, dict) or "cells" not in nb:
        raise CliError(f"{str(path)!r} is not a Jupyter notebook (no cells)")
    return nb


def _measure(args: argparse.Namespace) -> int:
    import nbformat

    from ..core._atomic import write_text_atomic
    from ..jupyter.runner import RunError, run_notebook
    from ..viz import report as _report_mod

    source = input_file(args.notebook, "notebook")
    nb = _read_notebook(source)
    region = _region(args.region)
    if args.timeout is not None and not args.timeout > 0:
        raise CliError(f"--timeout {args.timeout:g}: must be > 0 seconds")
    from ..data.history import DEFAULT_RUNS

    keep = DEFAULT_RUNS if args.history is None else args.history
    if not 0 <= keep <= MAX_HISTORY:
        raise CliError(f"--history {keep}: give a number of runs from 0 to {MAX_HISTORY}")
    stem = source.name.removesuffix(".ipynb")
    out_nb = output_file(args.output or source.with_name(f"{stem}.energy.ipynb"),
                         "output notebook", (".ipynb",), [source])
    base = out_nb.with_name(out_nb.name.removesuffix(".ipynb").removesuffix(".energy"))
    out_ds = output_file(args.dataset or f"{base}.energy.nc", "dataset", (".nc",), [source])
    out_html = output_file(args.report or f"{base}.energy.html", "report",
                           (".html", ".htm"), [source])

    past = _past(nb, out_nb)
    try:
        run = run_notebook(nb, cwd=source.parent.resolve(), kernel_name=args.kernel,
                           timeout_s=args.timeout, progress=not args.no_progress,
                           history=keep, past=past)
    except RunError as exc:
        raise CliError(str(exc)) from None

    stopped = run.failure or run.unloaded
    nb.metadata["energykernel"] = {"source": source.name, "runs": len(run.records),
                                   "complete": stopped is None}
    if run.failure:
        nb.metadata["energykernel"]["stopped"] = run.failure
    if run.unloaded:
        nb.metadata["energykernel"]["unloaded"] = run.unloaded
    if run.notes:
        nb.metadata["energykernel"]["notes"] = run.notes
    write_text_atomic(out_nb, nbformat.writes(nb))
    _write_dataset(run, out_ds)
    data = _report_mod.open_dataset(out_ds)
    from ..counters import statuses
    from ..data.schema import self_energy_j

    note = (f"The notebook stopped early: {run.failure}. Runs up to that cell are shown."
            if run.failure else None)
    notes = ([f"Measurement stopped: {run.unloaded}."] if run.unloaded else []) + run.notes
    _report_mod.write_report(data, out_html, title=f"Energy of {source.name}",
                             source=str(source), statuses=statuses(), note=note,
                             notes=notes, region=region)
    total = sum(sum(own.values()) for own in self_energy_j(run.records))  # each joule once
    print(f"measured {len(run.records)} runs, {si(total, 'J')} in total")
    _print_changes(run.changes)
    print(f"  notebook: {out_nb}\n  dataset:  {out_ds}\n  report:   {out_html}")
    if run.failure:
        print(f"{PROG}: stopped: {run.failure}; wrote the {len(run.records)} runs measured "
              "before it", file=sys.stderr)
        return 1
    if run.unloaded:
        print(f"{PROG}: incomplete: {run.unloaded}; wrote the {len(run.records)} runs "
              "measured before it", file=sys.stderr)
        return 1
    return 0


def _past(nb, out_nb: Path) -> dict:
    """The history the input notebook carries, and that of the annotated notebook this run
    replaces (so measuring the same notebook again compares with the last run)."""
    import nbformat

    from ..data.history import collect

    cells = list(nb.cells)
    if out_nb.is_file():
        with contextlib.suppress(Exception):  # not a notebook: nothing to compare with
            cells += nbformat.read(out_nb, as_version=4).cells
    return collect(cells)


def _print_changes(changes) -> None:
    """The cells that ran before: how many, those beyond their bounds, the largest moves."""
    if not changes:
        return
    from ..jupyter.cell_history import change_text

    rose = [c for c in changes if c.verdict == "rose"]
    fell = [c for c in changes if c.verdict == "fell"]
    print(f"compared with the previous run: {len(changes)} cell(s); {len(rose)} rose beyond "
          f"their bounds, {len(fell)} fell beyond them")
    shown = rose + sorted((c for c in changes if c.verdict != "rose"),
                          key=lambda c: -abs(c.delta_j))[: max(0, SHOWN_CHANGES - len(rose))]
    for c in shown:
        print(f"  cell {c.number} ({c.task}): {change_text(c)}")


def _write_dataset(run, out: Path) -> None:
    """Every run from the kernel's log, plus the power timeline the kernel sampled."""
    from ..core.config import settings
    from ..data.schema import open_timeline_samples, save

    save(run.records, open_timeline_samples(run.dataset_file), settings().instance, out)


def _report(args: argparse.Namespace) -> int:
    from ..viz import report as _report_mod

    source = input_file(args.dataset, "dataset")
    if args.output is None and args.csv is None:
        raise CliError("say what to write: -o OUT.html (the report) and/or --csv OUT.csv")
    out = output_file(args.output, "report", (".html", ".htm"), [source]) \
        if args.output is not None else None
    out_csv = output_file(args.csv, "table", (".csv",), [source]) \
        if args.csv is not None else None
    region = _region(args.region)
    try:
        data = _report_mod.open_dataset(source)
    except (ValueError, OSError) as exc:
        raise CliError(str(exc)) from None
    if out is not None:
        _report_mod.write_report(data, out, title=f"Energy report: {source.name}",
                                 source=str(source), region=region)
        print(f"report: {out}")
    if out_csv is not None:
        from ..data.export import write_csv

        write_csv(data.cube, out_csv)
        print(f"table:  {out_csv}")
    return 0


def _backends() -> int:
    from ..counters import statuses

    for status in statuses():
        print(status)
    return 0
