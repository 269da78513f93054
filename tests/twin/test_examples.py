"""Every file in ``examples/`` runs: ``qkdnet twin`` on each scenario (a twin file or a
network's scenario file; deployment files are for ``qkdnet nodes``), ``qkdnet serve`` on each
network's scenario file, fetching a key between its SAEs where it has any."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from qkdnet.apps.sae_client import SaeClient
from qkdnet.cli import app
from qkdnet.live.launch import start_serve

EXAMPLES = Path(__file__).parents[2] / "examples"
#: Long enough for the scripted faults of the what-if examples (hour 100) to happen.
WEEKS = "0.7"


def _kind(path: Path) -> str:
    document = yaml.safe_load(path.read_text())
    return next(k for k in ("qkdnet_twin", "qkdnet_scenario", "qkdnet_deployment")
                if k in document)


FILES = sorted(EXAMPLES.glob("*.yaml"))
SCENARIOS = [p for p in FILES if _kind(p) != "qkdnet_deployment"]
NETWORKS = [p for p in FILES if _kind(p) == "qkdnet_scenario"]


def test_the_examples_hold_twin_files_and_network_scenarios() -> None:
    """The lists below are not empty (a renamed folder would make the tests vacuous)."""
    assert len(SCENARIOS) >= 4 and len(NETWORKS) >= 2
    assert {p.name for p in NETWORKS} >= {"three-city-ring.yaml", "two-operators.yaml"}


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_twin_runs_on_every_scenario_of_the_examples(path: Path, tmp_path: Path) -> None:
    """``qkdnet twin --scenario FILE`` exits 0 and writes a report whose key accounting
    holds on every KM-link pool, and every QKD-link is in it."""
    result = CliRunner().invoke(app, ["twin", "--scenario", str(path), "--weeks", WEEKS,
                                      "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["km_link_pools"] > 0 and summary["key_made_bits"] > 0
    assert summary["max_conservation_error_bits"] <= 1e-6 * summary["key_made_bits"]
    links = (tmp_path / "links.csv").read_text().splitlines()
    assert len(links) - 1 == summary["qkd_links"]


@pytest.mark.parametrize("path", NETWORKS, ids=lambda p: p.name)
def test_serve_starts_on_every_network_of_the_examples(path: Path, tmp_path: Path) -> None:
    """``qkdnet serve --scenario FILE`` starts (writes its manifest) and, where the scenario
    has SAEs, the first SAE gets a key for each other SAE and that SAE fetches it."""
    served = start_serve(tmp_path / "live", str(path),
                         ["--prefill-bits", "65536", "--no-dynamics"], timeout_s=120.0)
    try:
        assert served.process.poll() is None, served.log()
        saes = list(served.manifest["saes"])
        for slave in saes[1:]:
            (cert, key), ca = served.tls(saes[0])
            with SaeClient(served.kme_url(saes[0]), cert, key, ca, timeout_s=30.0) as master:
                [sent] = master.enc_keys(slave, 1)
            (cert, key), ca = served.tls(slave)
            with SaeClient(served.kme_url(slave), cert, key, ca, timeout_s=30.0) as other:
                [got] = other.dec_keys(saes[0], [sent.key_id])
            assert got.key_id == sent.key_id and got.material == sent.material
    finally:
        assert served.stop() == 0, served.log()


@pytest.mark.parametrize("path", [p for p in FILES if _kind(p) == "qkdnet_deployment"],
                         ids=lambda p: p.name)
def test_twin_refuses_a_deployment_file_naming_what_it_is(path: Path, tmp_path: Path) -> None:
    """A deployment file given as ``--scenario``: exit 2, one line placing it and saying
    what it is for; no report folder."""
    result = CliRunner().invoke(app, ["twin", "--scenario", str(path), "-o", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert f"{path}:7: qkdnet_deployment: a deployment file" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "r").exists()
