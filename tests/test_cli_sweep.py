"""``qkdnet twin sweep`` as a user drives it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from qkdnet.cli import app

runner = CliRunner()


def test_sweep_writes_runs_statistics_report_and_figures(tmp_path: Path) -> None:
    """Two seeds of cn-qcn in process: runs.parquet holds both runs, availability.parquet a
    row per segment and service, report.md the table with the paper's 5.13 h, and PNGs."""
    out = tmp_path / "sweep"
    result = runner.invoke(app, ["twin", "sweep", "cn-qcn", "--seeds", "3:4", "--weeks",
                                 "0.1", "--workers", "0", "--out", str(out)])
    assert result.exit_code == 0, result.output
    runs = pd.read_parquet(out / "runs.parquet")
    assert sorted(set(runs["seed"])) == [3, 4]
    stats = pd.read_parquet(out / "availability.parquet")
    assert set(stats["kind"]) == {"network", "segment", "service"}
    assert (stats["runs"] == 2).all()
    page = (out / "report.md").read_text()
    assert "| base | Harbin–Beijing | 2 |" in page and "| 5.13 |" in page
    assert "Clopper–Pearson" in page
    for png in ("hours_unserved.png", "skr.png"):
        assert (out / png).read_bytes().startswith(b"\x89PNG")
        assert f"]({png})" in page


def test_bad_seeds_and_scenario_are_named(tmp_path: Path) -> None:
    """--seeds 10:1 and a missing scenario file exit 2 naming the problem."""
    result = runner.invoke(app, ["twin", "sweep", "cn-qcn", "--seeds", "10:1"])
    assert result.exit_code == 2 and "--seeds" in result.stderr
    result = runner.invoke(app, ["twin", "sweep", str(tmp_path / "none.yaml"), "--seeds",
                                 "1", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "none.yaml" in result.stderr
