"""``qkdnet plan`` as a planner drives it, on a chain with one bypass."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qkdnet.cli import app
from qkdnet.twin.scenario import load_twin_scenario

runner = CliRunner()


@pytest.fixture
def chain(plan_chain: Path) -> Path:
    """The chain's twin file (tests/conftest.py)."""
    return plan_chain


def test_json_names_the_bypass_and_out_writes_a_runnable_whatif(chain: Path,
                                                                tmp_path: Path) -> None:
    """--format json: a--d, 5 h -> 0 h; --out: plan.yaml loads (network found from there)."""
    out = tmp_path / "proposal"
    result = runner.invoke(app, ["plan", str(chain), "--budget", "1", "--seeds", "1:2",
                                 "--format", "json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    [chosen] = summary["chosen"]
    assert chosen["link"] == "a--d" and chosen["before_h"] == 5 and chosen["after_h"] == 0
    assert summary["confirm_seeds"] == [3, 4]
    assert {r["variant"] for r in summary["confirm"]} == {"base", "plan"}
    whatif = load_twin_scenario(out / "plan.yaml")
    assert "a--d" in whatif.network.link and whatif.segments == ("a", "c")
    assert json.loads((out / "plan.json").read_text())["chosen"][0]["link"] == "a--d"


def test_table_shows_the_proposal(chain: Path) -> None:
    """The table names the proposed link and its before and after figures."""
    result = runner.invoke(app, ["plan", str(chain), "--seeds", "1",
                                 "--confirm-seeds", "none"])
    assert result.exit_code == 0, result.output
    assert "proposed: a--d" in result.stdout and "5.000 h -> 0.000 h" in result.stdout
    assert "A–C, search: -5.000 h a run on average; lower in 1 of 1 runs" in result.stdout


def test_device_pairs_for_a_service_short_of_key(chain: Path, tmp_path: Path) -> None:
    """--device-pairs --objective shortfall --watch bulk: a service asking 120 kbit/s of
    a chain that makes ~69 kbit/s gets the two pairs, printed as such, and plan.yaml adds
    them under add_device_pairs."""
    chain.write_text(chain.read_text() + "demands:\n  - {id: bulk, source: a, target: c, "
                     "rate_bps: 120000, key_bits: 4096}\n")
    out = tmp_path / "pairs"
    result = runner.invoke(app, ["plan", str(chain), "--seeds", "1", "--confirm-seeds",
                                 "none", "--budget", "2", "--exact", "--device-pairs",
                                 "--objective", "shortfall", "--watch", "bulk",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "objective: hours short" in result.stdout
    assert "proposed: +1 pair a--b (then 2 x type III" in result.stdout
    assert "proposed: +1 pair b--c" in result.stdout
    whatif = load_twin_scenario(out / "plan.yaml")
    assert whatif.network.link["a--b"].device_pairs == 2 and not whatif.added_links


@pytest.mark.parametrize(("args", "named"), [
    (["--budget", "0"], "--budget"),
    (["--max-km", "-1"], "--max-km"),
    (["--seeds", "one"], "--seeds"),
    (["--format", "xml"], "--format"),
    (["--endpoints", "users"], "--endpoints"),
    (["--watch", "Harbin-Beijing"], "--watch"),
    (["--workers", "0"], "--workers"),
    (["--exact", "--budget", "3"], "--budget"),
    (["--objective", "cost"], "--objective"),
])
def test_a_bad_option_is_a_one_line_error(chain: Path, args: list[str], named: str) -> None:
    """Each bad option exits 2 with one line naming it."""
    result = runner.invoke(app, ["plan", str(chain), "--seeds", "1", *args])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("qkdnet: error: ") and named in lines[0]
