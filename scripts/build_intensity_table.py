#!/usr/bin/env python3
"""Regenerate ``energykernel/carbon/data/intensity.csv`` from codecarbon's published data.

The numbers come from the data files inside the codecarbon wheel (MIT licence); the wheel
is read as a zip archive, codecarbon is never imported. Get the wheel with::

    .venv/bin/pip download --no-deps -d .venv/wheels codecarbon==3.3.2   (./run test does this)
    .venv/bin/python scripts/build_intensity_table.py --wheel .venv/wheels/codecarbon-3.3.2-py3-none-any.whl

ISO 3166-1 alpha-2 codes and English names come from Debian's ``iso-codes`` package
(``/usr/share/iso-codes/json/iso_3166-1.json``), which is matched on the alpha-3 code.

Rows written (all values in gCO2e/kWh):

- ``country``: Our World in Data ``carbon_intensity_elec`` (Ember, Energy Institute), CC BY 4.0,
  as shipped in codecarbon ``data/private_infra/global_energy_mix.json``.
- ``subdivision``: US states, EPA eGRID2023 total output CO2e rate (lb/MWh, converted), public
  domain, as shipped in ``data/private_infra/2023/usa_emissions.json``.
- ``region``: GCP regions at Google's published grid intensity (``data/cloud/impact.csv``);
  AWS and Azure regions at the grid value of their location (US state or country).
- ``aggregate``: ``WORLD``, the IEA world average from ``carbon_intensity_per_source.json``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import tempfile
import zipfile
from pathlib import Path

LB_PER_MWH_TO_G_PER_KWH = 453.59237 / 1000.0
CODECARBON = "codecarbon 3.3.2 (MIT licence)"
OWID_SOURCE = (
    "Our World in Data energy dataset, carbon_intensity_elec (Ember; Energy Institute), "
    "via codecarbon data/private_infra/global_energy_mix.json"
)
OWID_LICENCE = f"CC BY 4.0 (Our World in Data); redistributed in {CODECARBON}"
EGRID_SOURCE = "US EPA eGRID2023, state annual CO2e total output emission rate (STC2ERTA)"
EGRID_LICENCE = f"US government work, public domain; redistributed in {CODECARBON}"
GCP_SOURCE = "Google Cloud region carbon data, grid carbon intensity 2023 (cloud.google.com/sustainability/region-carbon)"
GCP_LICENCE = f"published by Google; redistributed in {CODECARBON}"

# Main AWS regions -> location (ISO alpha-3 country, or US-XX state for eGRID).
AWS = {
    "us-east-1": ("N. Virginia", "US-VA"), "us-east-2": ("Ohio", "US-OH"),
    "us-west-1": ("N. California", "US-CA"), "us-west-2": ("Oregon", "US-OR"),
    "af-south-1": ("Cape Town", "ZAF"), "ap-east-1": ("Hong Kong", "HKG"),
    "ap-south-1": ("Mumbai", "IND"), "ap-south-2": ("Hyderabad", "IND"),
    "ap-northeast-1": ("Tokyo", "JPN"), "ap-northeast-2": ("Seoul", "KOR"),
    "ap-northeast-3": ("Osaka", "JPN"), "ap-southeast-1": ("Singapore", "SGP"),
    "ap-southeast-2": ("Sydney", "AUS"), "ap-southeast-3": ("Jakarta", "IDN"),
    "ap-southeast-4": ("Melbourne", "AUS"), "ca-central-1": ("Montreal", "CAN"),
    "ca-west-1": ("Calgary", "CAN"), "eu-central-1": ("Frankfurt", "DEU"),
    "eu-central-2": ("Zurich", "CHE"), "eu-west-1": ("Ireland", "IRL"),
    "eu-west-2": ("London", "GBR"), "eu-west-3": ("Paris", "FRA"),
    "eu-north-1": ("Stockholm", "SWE"), "eu-south-1": ("Milan", "ITA"),
    "eu-south-2": ("Aragon", "ESP"), "il-central-1": ("Tel Aviv", "ISR"),
    "me-south-1": ("Bahrain", "BHR"), "me-central-1": ("UAE", "ARE"),
    "sa-east-1": ("Sao Paulo", "BRA"), "cn-north-1": ("Beijing", "CHN"),
    "cn-northwest-1": ("Ningxia", "CHN"),
}
AZURE = {
    "eastus": ("Virginia", "US-VA"), "eastus2": ("Virginia", "US-VA"),
    "centralus": ("Iowa", "US-IA"), "northcentralus": ("Illinois", "US-IL"),
    "southcentralus": ("Texas", "US-TX"), "westcentralus": ("Wyoming", "US-WY"),
    "westus": ("California", "US-CA"), "westus2": ("Washington", "US-WA"),
    "westus3": ("Arizona", "US-AZ"), "canadacentral": ("Toronto", "CAN"),
    "canadaeast": ("Quebec City", "CAN"), "brazilsouth": ("Sao Paulo", "BRA"),
    "northeurope": ("Ireland", "IRL"), "westeurope": ("Netherlands", "NLD"),
    "uksouth": ("London", "GBR"), "ukwest": ("Cardiff", "GBR"),
    "francecentral": ("Paris", "FRA"), "francesouth": ("Marseille", "FRA"),
    "germanywestcentral": ("Frankfurt", "DEU"), "germanynorth": ("Berlin", "DEU"),
    "switzerlandnorth": ("Zurich", "CHE"), "switzerlandwest": ("Geneva", "CHE"),
    "norwayeast": ("Oslo", "NOR"), "norwaywest": ("Stavanger", "NOR"),
    "swedencentral": ("Gavle", "SWE"), "polandcentral": ("Warsaw", "POL"),
    "italynorth": ("Milan", "ITA"), "spaincentral": ("Madrid", "ESP"),
    "eastasia": ("Hong Kong", "HKG"), "southeastasia": ("Singapore", "SGP"),
    "australiaeast": ("New South Wales", "AUS"), "australiasoutheast": ("Victoria", "AUS"),
    "australiacentral": ("Canberra", "AUS"), "japaneast": ("Tokyo", "JPN"),
    "japanwest": ("Osaka", "JPN"), "koreacentral": ("Seoul", "KOR"),
    "koreasouth": ("Busan", "KOR"), "centralindia": ("Pune", "IND"),
    "southindia": ("Chennai", "IND"), "westindia": ("Mumbai", "IND"),
    "uaenorth": ("Dubai", "ARE"), "uaecentral": ("Abu Dhabi", "ARE"),
    "southafricanorth": ("Johannesburg", "ZAF"), "southafricawest": ("Cape Town", "ZAF"),
    "qatarcentral": ("Doha", "QAT"), "israelcentral": ("Israel", "ISR"),
    "mexicocentral": ("Queretaro", "MEX"),
}
GCP_TYPOS = {"me-cenrtal1": "me-central1"}
EXTRA_ALIASES = {"GBR": ["UK", "Great Britain"], "USA": ["United States of America", "US"]}
COLUMNS = [
    "code", "kind", "name", "alpha2", "alpha3", "provider", "location",
    "value_g_per_kwh", "year", "source", "licence", "aliases",
]


def _read(zf: zipfile.ZipFile, member: str) -> str:
    return zf.read(f"codecarbon/{member}").decode("utf-8-sig")


def build(wheel: Path, iso_codes: Path) -> list[dict[str, str]]:
    """Return the table rows (strings) built from the wheel and the ISO code list."""
    iso = {c["alpha_3"]: c for c in json.loads(iso_codes.read_text("utf-8"))["3166-1"]}
    with zipfile.ZipFile(wheel) as zf:
        mix = json.loads(_read(zf, "data/private_infra/global_energy_mix.json"))
        usa = json.loads(_read(zf, "data/private_infra/2023/usa_emissions.json"))
        per_source = json.loads(_read(zf, "data/private_infra/carbon_intensity_per_source.json"))
        gcp = list(csv.DictReader(io.StringIO(_read(zf, "data/cloud/impact.csv"))))
    rows: list[dict[str, str]] = []
    values: dict[str, tuple[float, int, str, str, str]] = {}  # location -> value, year, ...

    for a3, entry in sorted(mix.items()):
        if a3 not in iso:
            raise SystemExit(f"{a3} ({entry['country_name']}) is not an ISO 3166-1 alpha-3 code")
        info = iso[a3]
        aliases = {entry["country_name"], info["name"]}
        aliases |= {info[k] for k in ("common_name", "official_name") if k in info}
        aliases |= set(EXTRA_ALIASES.get(a3, []))
        value, year = float(entry["carbon_intensity"]), int(entry["year"])
        values[a3] = (value, year, OWID_SOURCE, OWID_LICENCE, info.get("common_name", info["name"]))
        rows.append(_row(a3, "country", values[a3][4], info["alpha_2"], a3, "", a3, value,
                         year, OWID_SOURCE, OWID_LICENCE, sorted(aliases - {values[a3][4]})))

    egrid_year = int(usa["_source"]["year"])
    for state, entry in sorted(usa.items()):
        if state.startswith("_"):
            continue
        code = f"US-{entry['regionCode']}"
        value = round(float(entry["emissions"]) * LB_PER_MWH_TO_G_PER_KWH, 3)
        values[code] = (value, egrid_year, EGRID_SOURCE, EGRID_LICENCE, state.title())
        rows.append(_row(code, "subdivision", state.title(), "US", "USA", "", code, value,
                         egrid_year, EGRID_SOURCE, EGRID_LICENCE, []))

    for entry in gcp:
        if entry["provider"] != "gcp":
            continue
        region = GCP_TYPOS.get(entry["region"], entry["region"])
        a3 = entry["countryIsoCode"]
        name = f"GCP {region} ({entry['city'] or entry['country_name']})"
        rows.append(_row(f"gcp:{region}", "region", name, iso[a3]["alpha_2"], a3, "gcp", a3,
                         float(entry["impact"]), 2023, GCP_SOURCE, GCP_LICENCE, [region]))

    for provider, table in (("aws", AWS), ("azure", AZURE)):
        for region, (city, loc) in table.items():
            value, year, source, licence, _ = values[loc]
            a3 = "USA" if loc.startswith("US-") else loc
            note = f"grid value of the location ({loc}): {source}"
            rows.append(_row(f"{provider}:{region}", "region",
                             f"{provider.upper() if provider == 'aws' else 'Azure'} {region} ({city})",
                             iso[a3]["alpha_2"], a3, provider, loc, value, year, note, licence,
                             [region]))

    world_src = f"IEA Global Energy & CO2 Status Report 2019 ({per_source['world_average_source']}), via codecarbon carbon_intensity_per_source.json"
    rows.append(_row("WORLD", "aggregate", "World average", "", "", "", "WORLD",
                     float(per_source["world_average"]), 2018, world_src,
                     f"cited figure; redistributed in {CODECARBON}", ["World"]))
    return rows


def _row(code: str, kind: str, name: str, a2: str, a3: str, provider: str, location: str,
         value: float, year: int, source: str, licence: str, aliases: list[str]) -> dict[str, str]:
    return {
        "code": code, "kind": kind, "name": name, "alpha2": a2, "alpha3": a3,
        "provider": provider, "location": location, "value_g_per_kwh": repr(float(value)),
        "year": str(year), "source": source, "licence": licence, "aliases": "|".join(aliases),
    }


def write(rows: list[dict[str, str]], out: Path) -> None:
    """Write the rows atomically (temporary file, then rename)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=".intensity-", suffix=".csv")
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    root = Path(__file__).resolve().parents[1]
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--wheel", type=Path, default=Path("/tmp/cc/codecarbon-3.3.2-py3-none-any.whl"))
    p.add_argument("--iso-codes", type=Path,
                   default=Path("/usr/share/iso-codes/json/iso_3166-1.json"))
    p.add_argument("--out", type=Path, default=root / "energykernel/carbon/data/intensity.csv")
    args = p.parse_args(argv)
    for what, path in (("--wheel", args.wheel), ("--iso-codes", args.iso_codes)):
        if not path.is_file():
            print(f"error: {what} {path} does not exist (see this script's docstring)",
                  file=sys.stderr)
            return 2
    rows = build(args.wheel, args.iso_codes)
    write(rows, args.out)
    print(f"wrote {len(rows)} rows to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
