"""``energykernel simulate INSTANCES.json TASKS.json [--mode ...] [--dataset OUT.nc]``.

:func:`simulate_main` holds the logic (``energykernel.cli.main`` dispatches to it); also runnable
as ``python -m energykernel.cli.simulate``. Bad input prints one line naming the file, entry and
field and returns 2; the dataset is written atomically (never a partial file) and never over
an input (:mod:`energykernel.cli._paths`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..core.units import COMPONENTS, J_PER_KWH, number
from ..sim.model import MODES, SimulationInputError
from ._paths import CliError, output_file


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="energykernel simulate",
        description="Simulate a workflow of tasks on compute instances.")
    p.add_argument("instances", metavar="INSTANCES.json", help="instances JSON file")
    p.add_argument("tasks", metavar="TASKS.json",
                   help="tasks JSON file; the workflow is the tasks in file order")
    p.add_argument("--mode", choices=MODES, default="monitor",
                   help="scheduling mode (default: monitor)")
    p.add_argument("--deadline", type=float, default=None, metavar="SECONDS",
                   help="makespan limit for --mode optimal")
    p.add_argument("--objective", choices=("auto", "energy", "carbon"), default="auto",
                   help="what --mode optimal minimises (auto: carbon if every instance has "
                        "an intensity)")
    p.add_argument("--dataset", metavar="OUT.nc", default=None,
                   help="write the simulated Dataset (NetCDF4) here")
    return p


def _fmt(x: float, digits: int = 4) -> str:
    """A table cell: ``digits`` significant digits, "-" for NaN."""
    return number(x, f".{digits}g", nan="-")


def format_summary(result) -> str:
    """The text table: per instance tasks, busy time, J per component, idle, total, gCO2e."""
    table = result.summary()
    cols = ["tasks", "busy_s", *[f"{c}_j" for c in COMPONENTS], "idle_j", "total_j",
            "emissions_g"]
    header = ["instance", *cols]
    rows = [[str(idx), *[str(int(r["tasks"])) if c == "tasks" else _fmt(float(r[c]))
                         for c in cols]] for idx, r in table.iterrows()]
    widths = [max(len(h), *(len(row[k]) for row in rows)) for k, h in enumerate(header)]
    line = "  ".join(h.ljust(w) if k == 0 else h.rjust(w)
                     for k, (h, w) in enumerate(zip(header, widths, strict=True)))
    out = [line, "-" * len(line)]
    for row in rows:
        if row[0] == "TOTAL":
            out.append("-" * len(line))
        out.append("  ".join(v.ljust(w) if k == 0 else v.rjust(w)
                             for k, (v, w) in enumerate(zip(row, widths, strict=True))))
    t = result.totals()
    em = "" if t["emissions_g"] != t["emissions_g"] else f", emissions {_fmt(t['emissions_g'])} gCO2e"
    out.append(f"mode {result.mode}: energy {_fmt(t['energy_j'], 6)} J "
               f"({_fmt(t['energy_j'] / J_PER_KWH, 4)} kWh), makespan {_fmt(t['makespan_s'], 6)} s{em}")
    if result.mode == "optimal":
        info = result.info
        out.append(f"optimal: objective {info.get('objective')}, solver {info.get('solver')}, "
                   f"proven optimal: {'yes' if info.get('proven_optimal') else 'no'}"
                   f" (best candidate: {info.get('best_candidate')})")
    return "\n".join(out)


def _write_dataset(ds, path: Path) -> None:
    from ..core._atomic import write_netcdf_atomic

    write_netcdf_atomic(ds, path)


def simulate_main(argv: list[str] | None = None) -> int:
    """Run the ``simulate`` command; returns the exit code (0 ok, 2 bad input)."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse printed usage and the error
        return int(exc.code or 0)
    from ..sim.model import ComputeEnvironment, Workflow

    try:
        out = (output_file(args.dataset, "--dataset", (".nc", ".nc4"),
                           [args.instances, args.tasks]) if args.dataset else None)
        if args.deadline is not None and args.mode != "optimal":
            raise SimulationInputError("--deadline: only with --mode optimal")
        env = ComputeEnvironment.from_json(args.instances)
        workflow = Workflow.from_json(args.tasks)
        result = env.run(workflow, args.mode, deadline_s=args.deadline,
                         objective=args.objective)
    except (CliError, SimulationInputError) as exc:
        print(f"energykernel simulate: error: {exc}", file=sys.stderr)
        return 2
    print(format_summary(result))
    if out is not None:
        try:
            _write_dataset(result.dataset, out)
        except OSError as exc:
            print(f"energykernel simulate: error: --dataset {out}: {exc}", file=sys.stderr)
            return 2
        print(f"dataset written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(simulate_main())
