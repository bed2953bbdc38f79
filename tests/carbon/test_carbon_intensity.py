"""intensity(): offline table lookups, provenance, errors, and the build script."""

from __future__ import annotations

import csv
import importlib.util
import os
from pathlib import Path

import pytest

from energykernel.carbon import UnknownRegionError, intensity, intensity_info, regions

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / "energykernel/carbon/data/intensity.csv"


@pytest.mark.parametrize("code", ["FR", "FRA", "fra", "France", " france "])
def test_country_codes_and_names(code):
    assert intensity(code) == intensity("FRA")


def test_values_and_provenance():
    info = intensity_info("FR")
    assert info.code == "FRA" and info.alpha2 == "FR" and info.kind == "country"
    assert 10 < info.value_g_per_kwh < 150  # a nuclear/hydro grid
    assert 2015 <= info.year <= 2030
    assert "Our World in Data" in info.source and "CC BY 4.0" in info.licence
    assert intensity("PL") > intensity("FR") * 5  # a coal grid


def test_aliases():
    assert intensity("UK") == intensity("GB") == intensity("GBR") == intensity("United Kingdom")
    assert intensity("United States") == intensity("US") == intensity("USA")
    assert intensity("Côte d'Ivoire") == intensity("CI")


def test_cloud_regions():
    assert intensity("aws:us-east-1") == intensity("us-east-1") == intensity("US-VA")
    assert intensity("azure:westeurope") == intensity("NL")
    assert intensity("aws:eu-west-3") == intensity("FR")
    gcp = intensity_info("gcp:europe-west9")
    assert gcp.provider == "gcp" and gcp.year == 2023 and "Google" in gcp.source
    assert intensity("europe-west9") == gcp.value_g_per_kwh
    assert intensity("gcp:me-central1") > 0  # codecarbon's typo fixed
    for provider in ("aws", "gcp", "azure"):
        assert len(regions(kind="region", provider=provider)) >= 25


def test_us_state_from_egrid():
    info = intensity_info("US-CA")
    assert info.kind == "subdivision" and info.year == 2023 and "eGRID" in info.source


def test_world_only_when_asked():
    assert intensity("WORLD") == 475.0
    with pytest.raises(UnknownRegionError):
        intensity("Atlantis")


def test_unknown_code_error_names_it_with_close_matches():
    with pytest.raises(KeyError) as exc:
        intensity("Frnace")
    assert "Frnace" in str(exc.value) and "FRA" in str(exc.value)
    with pytest.raises(ValueError, match="us-east-1"):
        intensity("us-east-11")
    assert "FRA (France)" in exc.value.suggestions


def test_non_string_is_a_type_error():
    with pytest.raises(TypeError):
        intensity(250)  # type: ignore[arg-type]


def test_every_row_has_value_year_source_licence():
    with TABLE.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) > 300
    codes = [r["code"] for r in rows]
    assert len(codes) == len(set(codes))
    for r in rows:
        assert 0 <= float(r["value_g_per_kwh"]) < 2000, r["code"]
        assert r["year"].isdigit() and r["source"] and r["licence"], r["code"]
    countries = [r for r in rows if r["kind"] == "country"]
    assert all(len(r["alpha2"]) == 2 and len(r["alpha3"]) == 3 for r in countries)


def test_sources_note_ships_next_to_table():
    text = (TABLE.parent / "SOURCES.md").read_text(encoding="utf-8")
    assert "CC BY 4.0" in text and "MIT" in text


# `./run test` downloads it here (scripts/build_intensity_table.py says how by hand).
WHEEL = Path(os.environ.get("ENERGYKERNEL_CODECARBON_WHEEL",
                            ROOT / ".venv/wheels/codecarbon-3.3.2-py3-none-any.whl"))
ISO = Path("/usr/share/iso-codes/json/iso_3166-1.json")


@pytest.mark.skipif(not (WHEEL.is_file() and ISO.is_file()),
                    reason=f"needs the codecarbon 3.3.2 wheel at {WHEEL} and Debian iso-codes "
                           "(see scripts/build_intensity_table.py)")
def test_build_script_regenerates_the_shipped_table(tmp_path):
    spec = importlib.util.spec_from_file_location("bit", ROOT / "scripts/build_intensity_table.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "intensity.csv"
    assert mod.main(["--wheel", str(WHEEL), "--iso-codes", str(ISO), "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == TABLE.read_text(encoding="utf-8")
