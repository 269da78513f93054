"""``qkdnet satellite`` as a user drives it."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from qkdnet.cli import app
from qkdnet.quantum.orbit import JINAN1_TLE

runner = CliRunner()


def test_passes_json_lists_a_week_over_one_station() -> None:
    """--days 7 --station beijing-gs: ~20 passes, UTC times in order, key only at night."""
    result = runner.invoke(app, ["satellite", "passes", "--days", "7", "--station",
                                 "beijing-gs", "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert 15 <= len(rows) <= 30
    for row in rows:
        assert row["station"] == "beijing-gs"
        assert row["rise_utc"] <= row["culmination_utc"] <= row["set_utc"]
        assert row["rise_utc"].startswith("2025-01-0")
        assert row["max_elevation_deg"] >= 10.0
        assert row["night"] or row["key_bits"] == 0
    assert any(r["key_bits"] > 100_000 for r in rows)


def test_unknown_station_is_named() -> None:
    """An unknown --station exits 2 naming it and the known ones."""
    result = runner.invoke(app, ["satellite", "passes", "--station", "atlantis-gs"])
    assert result.exit_code == 2
    assert "atlantis-gs" in result.stderr and "beijing-gs" in result.stderr


def test_bad_tle_file_is_named(tmp_path: Path) -> None:
    """A TLE file with a bad checksum exits 2 naming the file, line and field."""
    name, line1, line2 = JINAN1_TLE.splitlines()
    bad = tmp_path / "bad.tle"
    bad.write_text(f"{name}\n{line1}\n{line2[:-1]}0\n")
    result = runner.invoke(app, ["satellite", "passes", "--tle", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}:3: tle line 2: checksum" in result.stderr


def test_a_tle_file_replaces_the_built_in(tmp_path: Path) -> None:
    """A good TLE file is used: its name line names the satellite."""
    _name, line1, line2 = JINAN1_TLE.splitlines()
    good = tmp_path / "other.tle"
    good.write_text(f"OTHER-SAT\n{line1}\n{line2}\n")
    result = runner.invoke(app, ["satellite", "passes", "--days", "1", "--tle", str(good),
                                 "--format", "json"])
    assert result.exit_code == 0, result.output
    assert {r["satellite"] for r in json.loads(result.stdout)} == {"OTHER-SAT"}


def test_plot_writes_png_and_csv(tmp_path: Path) -> None:
    """satellite plot DIR draws the best pass: a PNG and its CSV with key and elevation."""
    result = runner.invoke(app, ["satellite", "plot", str(tmp_path), "--days", "2"])
    assert result.exit_code == 0, result.output
    pngs = list(tmp_path.glob("pass_*.png"))
    csvs = list(tmp_path.glob("pass_*.csv"))
    assert len(pngs) == 1 and pngs[0].stat().st_size > 10_000
    header = csvs[0].read_text().splitlines()[0]
    assert header.split(",") == ["t_s", "elevation_deg", "range_km", "loss_db",
                                 "sun_elevation_deg", "skr_bps"]
