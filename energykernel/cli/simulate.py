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

from ..core.units import COMPONENTS, number, si, si_interval
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
    p.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                   help="the time --mode optimal may take (default 10); its exact search "
                        "stops there")
    p.add_argument("--objective", choices=("auto", "energy", "carbon"), default="auto",
                   help="what --mode optimal minimises (auto: carbon if every instance has "
                        "an intensity)")
    p.add_argument("--algorithm", choices=("greedy", "heft", "heft-energy"), default="greedy",
                   help="optimize's rule (default greedy: DESIGN's; heft: critical path "
                        "first, earliest finish; heft-energy: critical path first, cheapest)")
    p.add_argument("--start-hour", type=float, default=0.0, metavar="HOUR",
                   help="hour of the instances' intensity_profile at which the run starts")
    p.add_argument("--shift", nargs="?", const="workflow", default=None,
                   choices=("workflow", "tasks"),
                   help="delay the workflow within its window to its greenest start; "
                        "'tasks': then each task within its slack too")
    p.add_argument("--dataset", metavar="OUT.nc", default=None,
                   help="write the simulated Dataset (NetCDF4) here")
    return p


def _cell(col: str, x: float) -> str:
    """A table cell in SI units: energies in J (kJ, MJ…), emissions in gCO2e, seconds
    with thousands separators; "-" for NaN."""
    if x != x:
        return "-"
    if col.endswith("_j"):
        return si(x, "J")
    if col == "emissions_g":
        return si(x, "gCO2e")
    return number(x, ",.1f", nan="-")


_HEADERS = {"busy_s": "busy (s)", "idle_j": "idle", "total_j": "total",
            "emissions_g": "carbon", **{f"{c}_j": c for c in COMPONENTS}}


def format_summary(result) -> str:
    """The text table: per instance tasks, busy time, energy per component, idle, total,
    carbon — one SI formatting (:func:`energykernel.core.units.si`) throughout."""
    table = result.summary()
    comps = [f"{c}_j" for c in COMPONENTS if table[f"{c}_j"].fillna(0).any()]
    cols = ["tasks", "busy_s", *comps, "idle_j", "total_j", "emissions_g"]
    header = ["instance", *[_HEADERS.get(c, c) for c in cols]]
    rows = [[str(idx), *[str(int(r["tasks"])) if c == "tasks" else _cell(c, float(r[c]))
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
    b = result.band()
    em = ("" if t["emissions_g"] != t["emissions_g"] else
          f", emissions {si_interval(t['emissions_g'], b['emissions_lo_g'], b['emissions_hi_g'], 'gCO2e')}")
    energy = si_interval(t["energy_j"], b["energy_lo_j"], b["energy_hi_j"], "J")
    out.append(f"mode {result.mode}: energy {energy}, makespan "
               f"{number(t['makespan_s'], ',.1f')} s{em}")
    if "offset_s" in result.info or "start_hour" in result.info:
        out.append(f"starts {number(result.offset_s, ',.0f')} s after t = 0 (t = 0 at hour "
                   f"{result.clock_s / 3600:g} of the intensity profile)")
    if result.info.get("steps_shifted"):
        k = result.info["steps_shifted"]
        out.append(f"{k} task{' waits' if k == 1 else 's wait'} for greener hours (in all "
                   f"{number(result.info['step_shift_s'], ',.0f')} s): "
                   f"{number(result.info['step_shift_saved_g'], ',.1f')} gCO2e saved")
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
        if args.time_limit is not None and args.mode != "optimal":
            raise SimulationInputError("--time-limit: only with --mode optimal")
        env = ComputeEnvironment.from_json(args.instances)
        workflow = Workflow.from_json(args.tasks)
        result = env.run(workflow, args.mode, deadline_s=args.deadline,
                         time_limit_s=args.time_limit,
                         objective=args.objective, algorithm=args.algorithm,
                         start_hour=args.start_hour,
                         shift={None: False, "workflow": True}.get(args.shift, args.shift))
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
