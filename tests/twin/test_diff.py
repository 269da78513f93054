"""``qkdnet twin diff A B``: the what-if example (the Beijing-Wuhan ring without Hefei-Lu'an)
against its baseline (the ring intact), both as in examples/ but for 1 week instead of 2
(the scripted cut is at hour 100): the diff names Beijing-Wuhan's extra 3 hours unserved
and nothing else on the watched path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qkdnet.cli import app

EXAMPLES = Path(__file__).parents[2] / "examples"
runner = CliRunner()


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("diff")
    for name, example in (("baseline", "twin-baseline-ring.yaml"),
                          ("whatif", "twin-whatif-no-ring.yaml")):
        result = runner.invoke(app, ["twin", "--scenario", str(EXAMPLES / example),
                                     "--weeks", "1", "-o", str(folder / name)])
        assert result.exit_code == 0, result.output
    return folder / "baseline", folder / "whatif"


def test_the_diff_names_beijing_wuhans_extra_three_hours(reports: tuple[Path, Path]) -> None:
    """JSON: Beijing–Wuhan 0 h unserved in the baseline, 3 h in the what-if; the other
    segments unchanged; the demands crossing Beijing-Wuhan lose the same 3 h."""
    result = runner.invoke(app, ["twin", "diff", *map(str, reports), "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    change = {r["segment"]: r["hours_unserved_change"] for r in rows["segments"]}
    assert change == {"Harbin–Beijing": 0.0, "Beijing–Wuhan": 3.0, "Wuhan–Guangzhou": 0.0,
                      "Guangzhou–Shenzhen": 0.0}
    [bw] = [r for r in rows["segments"] if r["segment"] == "Beijing–Wuhan"]
    assert (bw["hours_unserved_a"], bw["hours_unserved_b"]) == (0.0, 3.0)
    services = {r["service"]: r["hours_unserved_change"] for r in rows["services"]}
    assert services["aes-wuhan-jinan"] == 3.0 and services["otp-guangzhou-shenzhen"] == 0.0
    assert {r["figure"] for r in rows["totals"]} >= {"key_made_bits", "alarms"}


def test_the_table_puts_both_side_by_side_and_names_what_changed(
        reports: tuple[Path, Path]) -> None:
    """The human table shows both runs' hours and SKR with units, and a line naming
    Beijing–Wuhan's +3 h."""
    result = runner.invoke(app, ["twin", "diff", *map(str, reports)],
                           env={"COLUMNS": "140"})
    assert result.exit_code == 0, result.output
    assert "Beijing–Wuhan: +3.00 h unserved in B (3.00 h against 0.00 h)" in result.output
    assert "kbit/s" in result.output and "Tbit" in result.output
    assert "Harbin–Beijing: " not in result.output  # unchanged: not named


def test_a_folder_that_is_no_report_is_one_line_exit_2(reports: tuple[Path, Path],
                                                       tmp_path: Path) -> None:
    """B without summary.json: exit 2, one line naming B and the missing file."""
    result = runner.invoke(app, ["twin", "diff", str(reports[0]), str(tmp_path)])
    assert result.exit_code == 2
    assert f"B={tmp_path}" in result.output and "summary.json" in result.output
    assert "Traceback" not in result.output


def test_a_segment_or_service_in_one_report_only_is_empty_on_the_other_side(
        tmp_path: Path) -> None:
    """Reports watching different paths: each segment on its own side, no change given."""
    from qkdnet.twin.diff import diff

    for name, segment, service in (("a", "A–B", "s1"), ("b", "B–C", "s1")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text(json.dumps({
            "segments": [{"name": segment, "mean_skr_kbps": 10.0, "hours_unserved": 1.0}],
            "services": [{"id": service, "hours_unserved": 2.0, "served_fraction": 1.0}],
            "key_made_bits": 5.0}))
    rows = diff(tmp_path / "a", tmp_path / "b")
    assert [(r["segment"], r["hours_unserved_a"], r["hours_unserved_b"],
             r["hours_unserved_change"]) for r in rows["segments"]] == [
        ("A–B", 1.0, None, None), ("B–C", None, 1.0, None)]
    assert rows["services"][0]["hours_unserved_change"] == 0.0
    [made] = [r for r in rows["totals"] if r["figure"] == "key_made_bits"]
    assert made["key_made_bits_change"] == 0.0
