"""``energykernel compare A.nc B.nc [-o OUT.html] [--top N]``: what changed between two
measurements (datasets written by ``ek.save`` or ``energykernel measure``, or two annotated
notebooks written by ``energykernel measure``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..core.units import si
from ._paths import CliError, input_file, output_file

PROG = "energykernel compare"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Compare two energykernel datasets: "
                                "the tasks that changed most, B against A.")
    p.add_argument("a", help="the first dataset (.nc), or an annotated notebook (.ipynb)")
    p.add_argument("b", help="the second dataset (.nc), or an annotated notebook (.ipynb)")
    p.add_argument("-o", "--output", help="also write an HTML comparison here")
    p.add_argument("--top", type=int, default=10, help="how many tasks to print (default 10)")
    return p


def compare_main(argv: Sequence[str]) -> int:
    """Print the tasks that changed most; write the HTML page if asked. Exit 2 on bad input."""
    try:
        args = _parser().parse_args(list(argv))
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        return _compare(args)
    except CliError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2


def _open(path):
    """A dataset file, or the cube of an annotated notebook (written by ``measure``)."""
    if path.suffix.lower() == ".ipynb":
        from ..data.notebook import open_notebook_cube

        return open_notebook_cube(path)
    from ..data.schema import open_netcdf

    return open_netcdf(path)


def _compare(args: argparse.Namespace) -> int:
    from ..core._atomic import write_text_atomic
    from ..data.compare import compare
    from ..viz.compare import render_comparison

    if args.top < 1:
        raise CliError(f"--top {args.top}: give a number ≥ 1")
    a, b = input_file(args.a, "dataset A"), input_file(args.b, "dataset B")
    out = output_file(args.output, "comparison", (".html", ".htm"), [a, b]) if args.output \
        else None
    try:
        result = compare(_open(a), _open(b))
    except (ValueError, OSError) as exc:
        raise CliError(str(exc)) from None
    print(f"B ({b.name}) against A ({a.name}), the tasks that moved most:")
    changed = result["changed"].values if "changed" in result else None
    for j, task in enumerate(result.task.values[: args.top]):
        delta = float(result.total_delta.values[j])
        ratio = float(result.total_ratio.values[j])
        note = "" if changed is None else ("  changed" if changed[j] else "  within bounds")
        shown = "—" if delta != delta else ("+" if delta > 0 else "") + si(delta, "J")
        print(f"  {str(task)[:60]:<60} {shown:>12}  ×{ratio:.3g}{note}" if ratio == ratio
              else f"  {str(task)[:60]:<60} {shown:>12}{note}")
    if out is not None:
        write_text_atomic(out, render_comparison(result, a=str(a), b=str(b)))
        print(f"comparison: {out}")
    return 0
