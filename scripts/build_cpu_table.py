#!/usr/bin/env python3
"""Regenerate the CPU power tables of the estimate backend (``energykernel/counters/data/``).

Sources, each read as data (nothing is imported or executed):

- ``cpu_tdp.csv``: processor name → TDP (W), the table codecarbon ships as
  ``codecarbon/data/hardware/cpu_power.csv`` (Intel ARK and AMD product data collected by
  CodeCarbon), read from the pinned codecarbon wheel as a zip archive. MIT licence.
- ``cpu_architectures.csv``: processor model → microarchitecture, the lists
  ``data/amd-epyc-gen*.csv`` and ``data/intel-*.csv`` of Cloud Carbon Footprint's
  cloud-carbon-coefficients repository (Apache-2.0).
- ``specpower_servers.csv``: the SPECpower_ssj2008 results (``data/SPECpower-full-results.csv``
  of the same repository) whose CPU matches one of those lists, matched exactly as its
  ``coefficients.ipynb`` does (the list entry, case-insensitive, at the end of the
  "CPU Description" after a word boundary). Results © SPEC, www.spec.org.
- ``aws_instances.csv``: EC2 instance type → microarchitectures, from
  ``INSTANCE_TYPE_COMPUTE_PROCESSOR_MAPPING`` in Cloud Carbon Footprint's
  ``packages/aws/src/lib/AWSInstanceTypes.ts`` (Apache-2.0); GPU entries dropped.

Get the inputs with::

    .venv/bin/pip download --no-deps -d /tmp/cc codecarbon==3.3.2
    git clone https://github.com/cloud-carbon-footprint/cloud-carbon-coefficients /tmp/ccc
    git -C /tmp/ccc checkout dda7621f8ab227dcb45096af6ccc2227aaf92b3e
    git clone https://github.com/cloud-carbon-footprint/cloud-carbon-footprint /tmp/ccf
    git -C /tmp/ccf checkout b7a049c7d25c0022919ab9010199dd9e77aa4577
    .venv/bin/python scripts/build_cpu_table.py --wheel /tmp/cc/codecarbon-3.3.2-py3-none-any.whl \\
        --coefficients /tmp/ccc --ccf /tmp/ccf

``--coefficients`` and ``--ccf`` take a checkout or a bare git directory (read at the pinned
commit, or ``HEAD`` if that commit is not there; the commit used is written in each file).
"""

from __future__ import annotations

import argparse
import csv
import io
import re
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

CODECARBON_VERSION = "3.3.2"
CODECARBON_MEMBER = "codecarbon/data/hardware/cpu_power.csv"
CODECARBON_LICENCE = ("MIT licence, Copyright (c) 2019 Mila, BCG Gamma, CometML, Haverford "
                      "College; (c) 2023 Code Carbon NGO")
COEFFICIENTS_REPO = "github.com/cloud-carbon-footprint/cloud-carbon-coefficients"
COEFFICIENTS_COMMIT = "dda7621f8ab227dcb45096af6ccc2227aaf92b3e"
CCF_REPO = "github.com/cloud-carbon-footprint/cloud-carbon-footprint"
CCF_COMMIT = "b7a049c7d25c0022919ab9010199dd9e77aa4577"
CCF_LICENCE = "Apache License 2.0, (c) 2021 Thoughtworks Inc"
SPEC_NOTE = ("SPEC and SPECpower_ssj are trademarks of the Standard Performance Evaluation "
             "Corporation; results from www.spec.org (SPEC Fair Use Rule: spec.org/fairuse.html)")

#: cloud-carbon-coefficients list file → architecture name (Cloud Carbon Footprint's
#: COMPUTE_PROCESSOR_TYPES spelling, packages/core/src/compute/ComputeProcessorTypes.ts).
ARCH_FILES = {
    "amd-epyc-gen1": "AMD EPYC 1st Gen",
    "amd-epyc-gen2": "AMD EPYC 2nd Gen",
    "amd-epyc-gen3": "AMD EPYC 3rd Gen",
    "intel-sandybridge": "Sandy Bridge",
    "intel-ivybridge": "Ivy Bridge",
    "intel-haswell": "Haswell",
    "intel-broadwell": "Broadwell",
    "intel-skylake": "Skylake",
    "intel-cascadelake": "Cascade Lake",
    "intel-coffeelake": "Coffee Lake",
}
#: COMPUTE_PROCESSOR_TYPES member → name (CPU types only; GPUs and UNKNOWN are dropped).
CCF_CPU_TYPES = {
    "CASCADE_LAKE": "Cascade Lake", "SKYLAKE": "Skylake", "HASWELL": "Haswell",
    "BROADWELL": "Broadwell", "COFFEE_LAKE": "Coffee Lake", "SANDY_BRIDGE": "Sandy Bridge",
    "IVY_BRIDGE": "Ivy Bridge", "ICELAKE": "Ice Lake", "AMD_EPYC_1ST_GEN": "AMD EPYC 1st Gen",
    "AMD_EPYC_2ND_GEN": "AMD EPYC 2nd Gen", "AMD_EPYC_3RD_GEN": "AMD EPYC 3rd Gen",
    "AWS_GRAVITON": "AWS Graviton", "AWS_GRAVITON_2": "AWS Graviton2",
}

Reader = Callable[[str], str]


def git_reader(path: Path, commit: str) -> tuple[Reader, str]:
    """Read files of a checkout or bare git directory at ``commit`` (else HEAD)."""
    bare = (path / "HEAD").is_file() and (path / "objects").is_dir()
    git = ["git", f"--git-dir={path if bare else path / '.git'}"]
    have = subprocess.run([*git, "cat-file", "-e", f"{commit}^{{commit}}"],
                          capture_output=True).returncode == 0
    rev = commit if have else subprocess.run(
        [*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()

    def read(name: str) -> str:
        out = subprocess.run([*git, "show", f"{rev}:{name}"], capture_output=True, check=True)
        return out.stdout.decode("utf-8-sig")

    return read, rev


def tdp_rows(wheel: Path) -> tuple[list[list[str]], int]:
    """(name, TDP) rows of codecarbon's table, first of duplicates kept; rows whose TDP is
    not a number are skipped (their count is returned)."""
    with zipfile.ZipFile(wheel) as zf:
        text = zf.read(CODECARBON_MEMBER).decode("utf-8-sig")
    seen: set[str] = set()
    rows, skipped = [], 0
    for r in csv.DictReader(io.StringIO(text)):
        name = r["Name"].strip()
        try:
            watts = float(r["TDP"])
        except ValueError:
            watts = 0.0
        if name.lower() in seen or watts <= 0:
            skipped += 1
            continue
        seen.add(name.lower())
        rows.append([name, repr(watts)])
    return rows, skipped


def arch_lists(read: Reader) -> dict[str, list[str]]:
    """Architecture → processor entries, in the lists' order."""
    out: dict[str, list[str]] = {}
    for stem, arch in ARCH_FILES.items():
        entries = [row[0].strip() for row in csv.reader(io.StringIO(read(f"data/{stem}.csv")))
                   if row and row[0].strip()]
        out[arch] = list(dict.fromkeys(entries))
    return out


def _number(text: str) -> str:
    try:
        return repr(float(text))
    except ValueError:
        return ""  # "NC" (not compliant) or empty: no figure


def specpower_rows(read: Reader, lists: dict[str, list[str]]) -> list[list[str]]:
    """The SPECpower results of each architecture, matched as coefficients.ipynb does."""
    results = list(csv.DictReader(io.StringIO(read("data/SPECpower-full-results.csv"))))
    rows = []
    for arch, cpus in lists.items():
        pattern = re.compile("|".join(rf"\b{c}$" for c in cpus), re.IGNORECASE)
        for r in results:
            if pattern.search(r["CPU Description"]):
                rows.append([arch, r["CPU Description"], r["Hardware Vendor Test Sponsor"],
                             r["System Enclosure (if applicable)"], r["Date Submitted"],
                             r["Nodes"], r["Chips"], r["Total Threads"],
                             _number(r["avg. watts @ active idle"]),
                             _number(r["avg. watts @ 100%"])])
    return rows


def aws_rows(read: Reader) -> list[list[str]]:
    """(instance type, architectures joined by ``|``) from CCF's AWS mapping."""
    core = read("packages/core/src/compute/ComputeProcessorTypes.ts")
    groups = {name: re.findall(r"COMPUTE_PROCESSOR_TYPES\.(\w+)", body) for name, body in
              re.findall(r"export const (\w+) = \[(.*?)\]", core, re.S)}
    text = read("packages/aws/src/lib/AWSInstanceTypes.ts")
    body = text.split("INSTANCE_TYPE_COMPUTE_PROCESSOR_MAPPING", 1)[1]
    body = body.split("} = {", 1)[1].split("\n}", 1)[0]
    rows = []
    for itype, value in re.findall(r"'([^']+)':\s*(\[[^\]]*\]|\w+)", body):
        members = (re.findall(r"COMPUTE_PROCESSOR_TYPES\.(\w+)", value) if value.startswith("[")
                   else groups[value])
        archs = [CCF_CPU_TYPES[m] for m in members if m in CCF_CPU_TYPES]
        if archs:
            rows.append([itype, "|".join(archs)])
    return rows


def write(out: Path, header: Iterable[str], columns: list[str], rows: list[list[str]]) -> None:
    """Write ``# header`` lines, the column names and the rows; the file is replaced whole
    (written beside it, then renamed), so a failed run leaves the old table."""
    buf = io.StringIO()
    buf.writelines(f"# {line}\n" for line in header)
    table = csv.writer(buf, lineterminator="\n")
    table.writerow(columns)
    table.writerows(rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(buf.getvalue(), encoding="utf-8")
    tmp.chmod(0o644)
    tmp.replace(out)


def main(argv: list[str] | None = None) -> int:
    root = Path(__file__).resolve().parents[1]
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--wheel", type=Path,
                   default=Path(f"/tmp/cc/codecarbon-{CODECARBON_VERSION}-py3-none-any.whl"))
    p.add_argument("--coefficients", type=Path, default=Path("/tmp/ccc"))
    p.add_argument("--ccf", type=Path, default=Path("/tmp/ccf"))
    p.add_argument("--out-dir", type=Path, default=root / "energykernel/counters/data")
    args = p.parse_args(argv)
    for what, path in (("--wheel", args.wheel), ("--coefficients", args.coefficients),
                       ("--ccf", args.ccf)):
        if not path.exists():
            print(f"error: {what} {path} does not exist (see this script's docstring)",
                  file=sys.stderr)
            return 2
    read_coef, coef_rev = git_reader(args.coefficients, COEFFICIENTS_COMMIT)
    read_ccf, ccf_rev = git_reader(args.ccf, CCF_COMMIT)
    generated = "Generated by scripts/build_cpu_table.py; do not edit by hand."

    tdp, skipped = tdp_rows(args.wheel)
    write(args.out_dir / "cpu_tdp.csv", [
        "Processor TDP (W) by model name.",
        f"Source: codecarbon {CODECARBON_VERSION} (PyPI wheel), {CODECARBON_MEMBER}",
        "(Intel ARK and AMD product data collected by CodeCarbon).",
        f"Licence: {CODECARBON_LICENCE}.",
        f"{skipped} rows without a positive numeric TDP or repeating a name were left out. {generated}",
    ], ["name", "tdp_w"], tdp)

    lists = arch_lists(read_coef)
    write(args.out_dir / "cpu_architectures.csv", [
        "Processor model -> microarchitecture (matched at the end of a cleaned model name).",
        f"Source: {COEFFICIENTS_REPO} @ {coef_rev}, data/amd-epyc-gen*.csv, data/intel-*.csv.",
        f"Licence: {CCF_LICENCE} (cloud-carbon-coefficients). {generated}",
    ], ["architecture", "cpu"], [[a, c] for a, cpus in lists.items() for c in cpus])

    servers = specpower_rows(read_coef, lists)
    write(args.out_dir / "specpower_servers.csv", [
        "SPECpower_ssj2008 results per microarchitecture: whole-server average watts at",
        "active idle and at 100 % load (empty: not reported), as matched by coefficients.ipynb.",
        f"Source: {COEFFICIENTS_REPO} @ {coef_rev}, data/SPECpower-full-results.csv.",
        f"Licence: {CCF_LICENCE} (the collection); {SPEC_NOTE}. {generated}",
    ], ["architecture", "cpu", "sponsor", "system", "date", "nodes", "chips", "threads",
        "idle_w", "max_w"], servers)

    aws = aws_rows(read_ccf)
    write(args.out_dir / "aws_instances.csv", [
        "EC2 instance type -> processor microarchitectures (several: the instance type runs on any).",
        f"Source: {CCF_REPO} @ {ccf_rev}, packages/aws/src/lib/AWSInstanceTypes.ts",
        "(INSTANCE_TYPE_COMPUTE_PROCESSOR_MAPPING; GPU and Unknown entries dropped).",
        f"Licence: {CCF_LICENCE}. {generated}",
    ], ["instance_type", "architectures"], aws)
    print(f"wrote {len(tdp)} TDP rows, {sum(map(len, lists.values()))} architecture entries, "
          f"{len(servers)} SPECpower results, {len(aws)} EC2 instance types to {args.out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
