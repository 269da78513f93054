"""The ``qkdnet`` command line as a user drives it."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qkdnet.cli import app
from qkdnet.cli.quantum import parse_losses
from qkdnet.errors import ParameterError

runner = CliRunner()


def _json(*args: str) -> list[dict[str, object]]:
    result = runner.invoke(app, [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    rows: list[dict[str, object]] = json.loads(result.stdout)
    return rows


def test_skr_json_has_a_row_per_type_and_loss() -> None:
    """Default: all seven types; JSON rows carry type, loss_db, skr_bps, plob_bps."""
    rows = _json("skr", "--loss", "0:20:5")
    assert {r["type"] for r in rows} == {"I", "II", "III", "IV", "V", "VI", "VII"}
    assert len(rows) == 7 * 5
    for row in rows:
        assert {"type", "loss_db", "skr_bps", "plob_bps"} <= row.keys()
    at_zero = [r for r in rows if r["loss_db"] == 0]
    assert all(r["plob_bps"] is None for r in at_zero)  # infinite bound: JSON null


def test_skr_at_mean_backbone_loss_matches_the_library() -> None:
    """The command reports the same rate the model computes."""
    [row] = _json("skr", "--type", "I", "--loss", "18.61")
    assert row["loss_db"] == 18.61
    assert 70e3 < float(row["skr_bps"]) < 80e3  # type: ignore[arg-type]


def test_field_values_lower_the_rate() -> None:
    """--field uses the pessimistic field corner."""
    [ideal] = _json("skr", "--type", "II", "--loss", "18.61")
    [field] = _json("skr", "--type", "II", "--loss", "18.61", "--field")
    assert float(field["skr_bps"]) < 0.5 * float(ideal["skr_bps"])  # type: ignore[arg-type]


def test_set_overrides_a_parameter_only_where_it_applies() -> None:
    """--set mu=0.6 changes the DV types and leaves the CV types alone."""
    base = {r["type"]: r["skr_bps"] for r in _json("skr", "--loss", "10")}
    changed = {r["type"]: r["skr_bps"] for r in _json("skr", "--loss", "10", "--set", "mu=0.6")}
    assert changed["I"] != base["I"]
    assert changed["VI"] == base["VI"]


def test_block_size_gives_finite_key_and_asymptotic_for_comparison() -> None:
    """With --block-size each row carries both rates; finite is the smaller."""
    [row] = _json("skr", "--type", "IV", "--loss", "18.61", "--block-size", "1e8")
    assert 0 < float(row["skr_bps"]) < float(row["asymptotic_skr_bps"])  # type: ignore[arg-type]


def test_csv_output_parses_with_a_header() -> None:
    """CSV is one header line and a row per point."""
    result = runner.invoke(app, ["skr", "--type", "V,VI", "--loss", "0,10", "--format", "csv"])
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["type"] for r in rows] == ["V", "V", "VI", "VI"]


def test_table_output_shows_rates_with_units() -> None:
    """The table is for people: rates carry units."""
    result = runner.invoke(app, ["skr", "--type", "I", "--loss", "18.61"])
    assert result.exit_code == 0
    assert "kbit/s" in result.stdout


def test_reach_gives_limits_and_target_losses() -> None:
    """reach lists each type's maximum loss and the loss at a target rate, the latter less."""
    rows = _json("reach", "--target-skr", "10000")
    assert len(rows) == 7
    for row in rows:
        assert float(row["loss_at_target_db"]) < float(row["max_loss_db"])  # type: ignore[arg-type]


def test_devices_lists_parameters_with_meanings() -> None:
    """devices --params documents every parameter of every type."""
    rows = _json("devices", "--params")
    assert {"type": "I", "parameter": "mu", "value": 0.5} .items() <= next(
        r for r in rows if r["type"] == "I" and r["parameter"] == "mu").items()
    assert all(r["meaning"] for r in rows)


def test_plot_writes_both_figures_and_their_data(tmp_path: Path) -> None:
    """--plot DIR writes Fig. 3 and Fig. 4 as PNG with the CSV behind each."""
    result = runner.invoke(app, ["skr", "--plot", str(tmp_path / "figs")])
    assert result.exit_code == 0, result.output
    for stem, types in (("fig3_backbone", {"I", "II", "III", "IV"}),
                        ("fig4_metro", {"V", "VI", "VII"})):
        png = tmp_path / "figs" / f"{stem}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert png.stat().st_size > 20_000
        rows = list(csv.DictReader((tmp_path / "figs" / f"{stem}.csv").open()))
        assert {r["type"] for r in rows} == types
        assert all(float(r["skr_field_worst_bps"]) <= float(r["skr_ideal_bps"]) for r in rows)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["skr", "--loss", "-3"], "--loss=-3"),
        (["skr", "--loss", "ten"], "--loss=ten"),
        (["skr", "--loss", "10:0"], "--loss=10:0"),
        (["skr", "--type", "VIII"], "type=VIII"),
        (["skr", "--set", "e_d=0.5"], "e_d=0.5"),
        (["skr", "--set", "nu=0.6"], "nu=0.6"),
        (["skr", "--set", "p_mu=0.9"], "p_mu+p_nu+p_vac="),
        (["skr", "--set", "colour=blue"], "--set=colour=blue"),
        (["skr", "--type", "I", "--block-size", "1000"], "--block-size=1000"),
        (["skr", "--format", "xml"], "--format=xml"),
        (["reach", "--target-skr", "-5"], "--target-skr=-5"),
    ],
)
def test_bad_input_is_one_line_naming_the_parameter_with_exit_code_2(
    args: list[str], named: str
) -> None:
    """Each mistake gets exit code 2 and one line on stderr naming what is wrong."""
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("qkdnet: error: ")
    assert named in lines[0]
    assert result.stdout == ""


def test_block_size_error_says_what_would_work() -> None:
    """The refusal of a too-small block gives the minimum that would yield key."""
    result = runner.invoke(app, ["skr", "--type", "I", "--block-size", "1000"])
    assert "needs at least" in result.stderr


def test_loss_ranges_include_their_end() -> None:
    """0:40:10 is 0, 10, 20, 30, 40."""
    assert list(parse_losses("0:40:10")) == [0, 10, 20, 30, 40]
    with pytest.raises(ParameterError):
        parse_losses("0:10:0")


def test_installed_entry_point_exits_2_on_bad_input() -> None:
    """The real ``qkdnet`` executable, as a shell would run it."""
    exe = shutil.which("qkdnet") or str(Path(sys.executable).with_name("qkdnet"))
    done = subprocess.run([exe, "skr", "--type", "X"], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "qkdnet: error: type=X is not allowed: device type must be one of "
        "I, II, III, IV, V, VI, VII"
    )


# --- qkdnet topology ---------------------------------------------------------------------


def test_topology_summary_json_has_the_headline_figures() -> None:
    """The JSON object carries the paper's headline figures for cn-qcn."""
    result = runner.invoke(app, ["topology", "summary", "--format", "json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["backbone_nodes"] == 145
    assert figures["backbone_links"] == 144
    assert figures["access_nodes"] == 41 and figures["relay_nodes"] == 104
    assert figures["bsbn_nodes"] == 32
    assert figures["metro_networks"] == 20 and figures["metro_access_nodes"] == 36
    assert figures["user_nodes"] >= 800 and figures["ground_stations"] == 6
    assert abs(figures["backbone_fibre_km"] - 10_103) < 101
    assert abs(figures["mean_backbone_link_loss_db"] - 18.61) < 0.1


def test_topology_export_yaml_reloads_as_a_scenario(tmp_path: Path) -> None:
    """export --format yaml writes a scenario file that summary reads back identically."""
    out = tmp_path / "cn.yaml"
    assert runner.invoke(app, ["topology", "export", "-f", "yaml", "-o", str(out)]).exit_code == 0
    built_in = runner.invoke(app, ["topology", "summary", "-f", "json"]).stdout
    from_file = runner.invoke(app, ["topology", "summary", "-f", "json", "--scenario", str(out)])
    assert json.loads(from_file.stdout) == json.loads(built_in)


def test_topology_export_graphml_reads_back_in_networkx(tmp_path: Path) -> None:
    """The GraphML export has one node per node and one edge per QKD-link."""
    import networkx as nx

    out = tmp_path / "cn.graphml"
    assert runner.invoke(app, ["topology", "export", "-o", str(out)]).exit_code == 0
    figures = json.loads(runner.invoke(app, ["topology", "summary", "-f", "json"]).stdout)
    g = nx.read_graphml(out)
    assert (g.number_of_nodes(), g.number_of_edges()) == (figures["nodes"],
                                                          figures["qkd_links"])


def test_topology_map_writes_a_png(tmp_path: Path) -> None:
    """map -o FILE.png draws the network."""
    out = tmp_path / "map.png"
    result = runner.invoke(app, ["topology", "map", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_topology_generate_writes_a_loadable_network_of_that_size(tmp_path: Path) -> None:
    """generate --nodes N --seed S writes a scenario with N nodes; same seed, same file."""
    first, again = tmp_path / "a.json", tmp_path / "b.json"
    for out in (first, again):
        result = runner.invoke(app, ["topology", "generate", "--nodes", "500", "--seed", "3",
                                     "-o", str(out)])
        assert result.exit_code == 0, result.output
    assert first.read_text() == again.read_text()
    figures = json.loads(runner.invoke(
        app, ["topology", "summary", "-f", "json", "--scenario", str(first)]).stdout)
    assert figures["nodes"] == 500


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["topology", "summary", "--scenario", "atlantis"], "--scenario: 'atlantis'"),
        (["topology", "export", "-f", "kml", "-o", "x.kml"], "--format=kml"),
        (["topology", "generate", "--nodes", "3", "-o", "x.yaml"], "--nodes=3"),
    ],
)
def test_topology_bad_input_is_one_line_with_exit_code_2(args: list[str], named: str) -> None:
    """Unknown scenarios, formats and sizes are refused with the parameter named."""
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and named in result.stderr


def test_a_bad_scenario_file_is_refused_naming_file_line_and_path(tmp_path: Path) -> None:
    """The user sees where in their file the problem is."""
    bad = tmp_path / "net.yaml"
    bad.write_text(
        "qkdnet_scenario: 1\nname: t\nnodes:\n"
        "  - {id: a, kind: backbone_access, lat: 30, lon: 110}\n"
        "  - {id: b, kind: backbone_access, lat: 31, lon: 111}\n"
        "qkd_links:\n"
        "  - {a: a, b: c, length_km: 70, device_type: I}\n"
    )
    result = runner.invoke(app, ["topology", "summary", "--scenario", str(bad)])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"qkdnet: error: {bad}:7: qkd_links[0].b: unknown node 'c'")


# --- qkdnet pki / serve -----------------------------------------------------------------


def test_pki_init_makes_certificates_for_every_kme_and_sae(tmp_path: Path) -> None:
    """pki init writes a CA and one certificate per served node and per SAE; a second
    run refuses to overwrite it."""
    out = tmp_path / "pki"
    result = runner.invoke(app, ["pki", "init", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "ca.crt").is_file()
    assert (out / "sae" / "sae-harbin.crt").is_file() and (out / "kme" / "harbin.crt").is_file()
    again = runner.invoke(app, ["pki", "init", str(out)])
    assert again.exit_code == 2 and str(out) in again.stderr


def test_pki_init_certifies_the_interop_kmss_of_a_gateway_between_operators(
        tmp_path: Path) -> None:
    """For a scenario with two operators' domains, pki init also certifies each operator's
    ETSI GS QKD 020 interop KMS at the gateway (kme-id ``<node>.<operator>``)."""
    example = Path(__file__).resolve().parents[1] / "examples" / "two-operators.yaml"
    out = tmp_path / "pki"
    result = runner.invoke(app, ["pki", "init", str(out), "--scenario", str(example)])
    assert result.exit_code == 0, result.output
    for kme in ("shanghai", "shanghai.backbone-operator", "shanghai.shanghai-metro-operator"):
        assert (out / "kme" / f"{kme}.crt").is_file(), kme


def test_pki_init_names_the_kme_addresses_and_revoke_needs_the_ca_key(tmp_path: Path) -> None:
    """--kme-name reaches the KME certificates; revoke on a copy without ca.key is refused
    with a clear error, and on the CA folder writes crl.pem."""
    from qkdnet.live.pki import copy_public_pki, load_pki, names_not_certified

    out = tmp_path / "pki"
    result = runner.invoke(app, ["pki", "init", str(out), "--kme-name", "10.9.8.7",
                                 "--kme-name", "kme.example.net"])
    assert result.exit_code == 0, result.output
    assert names_not_certified(out / "kme" / "harbin.crt", ["10.9.8.7", "kme.example.net"]) == []
    assert names_not_certified(out / "kme" / "harbin.crt", ["10.9.8.6"]) == ["10.9.8.6"]
    served = copy_public_pki(load_pki(out), tmp_path / "served")
    refused = runner.invoke(app, ["pki", "revoke", "sae-harbin", "--dir", str(served.folder)])
    assert refused.exit_code == 2 and "holds no ca.key" in refused.stderr
    done = runner.invoke(app, ["pki", "revoke", "sae-harbin", "--dir", str(out)])
    assert done.exit_code == 0, done.output
    assert (out / "crl.pem").read_bytes().startswith(b"-----BEGIN X509 CRL-----")


@pytest.mark.parametrize(("args", "named"), [
    (["serve", "--speedup", "0"], "--speedup=0"),
    (["serve", "--prefill-bits", "-1"], "--prefill-bits=-1"),
    (["serve", "--pool-capacity-bits", "100"], "--pool-capacity-bits=100"),
    (["serve", "--idle-timeout", "0"], "--idle-timeout=0"),
    (["serve", "--scenario", "atlantis"], "--scenario"),
    (["serve", "--satellite-start", "noon"], "--satellite-start=noon"),
    (["serve", "--satellite-start", "2025-01-01T12:00"], "--satellite-start=2025-01-01T12:00"),
    (["serve", "--satellite-prefill-bits", "-1"], "--satellite-prefill-bits=-1"),
    (["serve", "--satellite-cloud", "atlantis"], "--satellite-cloud=atlantis"),
])
def test_serve_refuses_bad_options_before_starting(args: list[str], named: str,
                                                   tmp_path: Path) -> None:
    """Impossible settings are refused with the option named, nothing started."""
    result = runner.invoke(app, [*args, "--dir", str(tmp_path / "d")])
    assert result.exit_code == 2
    assert named in result.stderr
    assert not (tmp_path / "d" / "manifest.json").exists()


# --- qkdnet deploy -----------------------------------------------------------------------


def _ring_deployment(folder: Path) -> Path:
    shutil.copy(Path(__file__).parents[1] / "examples" / "three-city-ring.yaml",
                folder / "ring.yaml")
    path = folder / "dep.yaml"
    path.write_text(
        "qkdnet_deployment: 1\nscenario: ring.yaml\nhosts: [{id: h, address: 10.1.1.1}]\n"
        "processes: [{id: all, host: h, regions: [east], kme_port: 8443, km_port: 9443}]\n"
        "controller: {host: h, port: 7000}\nems: [{region: east, host: h, port: 7100}]\n"
        "nms: {host: h, port: 8080}\n")
    return path


def test_deploy_writes_compose_and_kubernetes_manifests(tmp_path: Path) -> None:
    """Both generators write their files; kubernetes names the Secrets to create."""
    dep = _ring_deployment(tmp_path)
    result = runner.invoke(app, ["deploy", "compose", str(dep), "-o", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    assert {p.name for p in (tmp_path / "c").iterdir()} == {
        "compose.yaml", "deployment.yaml", "scenario.yaml"}
    result = runner.invoke(app, ["deploy", "kubernetes", str(dep), "-o", str(tmp_path / "k"),
                                 "--image", "reg.example/qkdnet:3"])
    assert result.exit_code == 0, result.output
    assert "qkdnet-node-all-tls, qkdnet-controller-tls" in result.stdout
    assert "reg.example/qkdnet:3" in (tmp_path / "k" / "node-all.yaml").read_text()
    assert (tmp_path / "k" / "kustomization.yaml").is_file()


def test_deploy_refuses_a_bad_file_naming_line_and_a_pki_without_the_keys(
        tmp_path: Path) -> None:
    """A mistake is one line, file:line: path: problem; a PKI lacking a key names the file."""
    dep = _ring_deployment(tmp_path)
    dep.write_text(dep.read_text().replace("port: 7100", "port: 9443"))
    result = runner.invoke(app, ["deploy", "compose", str(dep), "-o", str(tmp_path / "c")])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"qkdnet: error: {dep}:6: ems[0].port: port 9443 on host 'h' clashes with "
        "processes[0].km_port (port 9443)")
    dep = _ring_deployment(tmp_path)
    (tmp_path / "pki").mkdir()
    result = runner.invoke(app, ["deploy", "kubernetes", str(dep), "-o", str(tmp_path / "k"),
                                 "--pki", str(tmp_path / "pki")])
    assert result.exit_code == 2 and "cannot read ca.crt" in result.stderr
