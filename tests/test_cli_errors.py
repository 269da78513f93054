"""One line and exit code 2, never a traceback: outputs that cannot be written, busy ports,
an existing PKI, misspelt scenario keys; and the options that make the CLI say what it does
(`--version`, `topology export --format`, `skr --km`)."""

from __future__ import annotations

import errno
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from qkdnet.cli import app
from qkdnet.cli.guard import guard

runner = CliRunner()
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _refused(args: list[str], *named: str) -> str:
    """Run ``qkdnet args``: exit 2, one line on stderr holding each of ``named``."""
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("qkdnet: error: ")
    for text in named:
        assert text in result.stderr, result.stderr
    return result.stderr


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    """A regular file where a command's output folder would have to be (unwritable as a
    folder whoever runs the test, root too)."""
    path = tmp_path / "plain.txt"
    path.write_text("not a folder\n")
    return path


@pytest.mark.parametrize("args", [
    ["twin", "--weeks", "0.01", "--out", "{f}/report"],
    ["skr", "--plot", "{f}/figures"],
    ["topology", "export", "-o", "{f}/cn.graphml"],
    ["topology", "export", "-f", "yaml", "-o", "{f}/cn.yaml"],
    ["topology", "map", "-o", "{f}/map.png"],
    ["topology", "generate", "--nodes", "100", "-o", "{f}/net.yaml"],
    ["deploy", "alert-rules", "-o", "{f}/rules.yml"],
    ["deploy", "compose", str(EXAMPLES / "cn-qcn-deployment.yaml"), "-o", "{f}/compose"],
    ["pki", "init", "{f}/pki"],
    ["serve", "--dir", "{f}/live"],
    ["app", "receive", "--as", "sae-a", "-", "{f}/out.bin"],
], ids=lambda args: " ".join(args[:2]))
def test_an_output_under_a_file_is_one_line_naming_the_option(a_file: Path,
                                                               args: list[str]) -> None:
    """Every command that writes files refuses an output folder that cannot be made (a file
    is in the way) in one line naming the path, before any work."""
    _refused([a.replace("{f}", str(a_file)) for a in args], str(a_file))


def test_a_missing_output_folder_is_made_a_file_s_folder_is_not(tmp_path: Path) -> None:
    """An output folder (twin --out, skr --plot) is made, parents too; the folder of an
    output file must exist (a typo in it is more likely than a wish): one line naming it."""
    plots = tmp_path / "new" / "deeper"
    result = runner.invoke(app, ["skr", "--plot", str(plots)])
    assert result.exit_code == 0, result.output
    assert (plots / "fig3_backbone.png").is_file()
    out = tmp_path / "missing" / "cn.yaml"
    _refused(["topology", "export", "-o", str(out)], f"--output={out}",
             f"folder {out.parent} does not exist")
    assert not out.parent.exists()


def test_an_output_that_is_a_folder_is_refused(tmp_path: Path) -> None:
    """-o naming a folder where a file is meant: one line saying so."""
    _refused(["topology", "map", "-o", str(tmp_path)], "--output", "is a folder")


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port another server listens on."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield int(server.getsockname()[1])


def test_console_on_a_busy_port_is_one_line(busy_port: int, tmp_path: Path) -> None:
    """qkdnet console --port N where another server holds N: exit 2, the port named."""
    _refused(["console", str(tmp_path), "--port", str(busy_port)],
             f"--port={busy_port}", "in use")


def test_serve_on_a_busy_om_port_is_one_line(busy_port: int, tmp_path: Path) -> None:
    """qkdnet serve --om-port N where another server holds N: exit 2, before any store."""
    _refused(["serve", "--dir", str(tmp_path / "live"), "--om-port", str(busy_port)],
             f"--om-port={busy_port}", "in use")
    assert not (tmp_path / "live").exists()


def test_a_bind_that_fails_later_is_still_one_line(busy_port: int,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """guard turns the OSError of a real bind on a busy port into one line, exit 2."""
    def bind() -> None:
        with socket.socket() as again:
            again.bind(("127.0.0.1", busy_port))

    with pytest.raises(typer.Exit) as stopped:
        guard(bind)
    assert stopped.value.exit_code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "address in use" in err
    assert errno.EADDRINUSE  # the errno the message stands for


def test_pki_init_over_a_pki_names_overwrite(tmp_path: Path) -> None:
    """A second `pki init` into a PKI folder is refused naming --overwrite; with it, done."""
    chain = tmp_path / "chain.yaml"
    chain.write_text((EXAMPLES / "three-city-ring.yaml").read_text())
    args = ["pki", "init", str(tmp_path / "pki"), "--scenario", str(chain)]
    assert runner.invoke(app, args).exit_code == 0
    _refused(args, "already holds a PKI", "--overwrite")
    assert runner.invoke(app, [*args, "--overwrite"]).exit_code == 0


def test_version_prints_the_installed_version() -> None:
    """qkdnet --version: the package's version, exit 0."""
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"qkdnet {version('qkdnet')}\n"


def test_export_format_wins_over_the_suffix(tmp_path: Path) -> None:
    """-o x.txt --format yaml writes YAML to x.txt itself (no x.yaml beside it), a scenario
    that reads back; -o x.json --format yaml is YAML too."""
    out = tmp_path / "x.txt"
    result = runner.invoke(app, ["topology", "export", "-o", str(out), "--format", "yaml"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.txt"]
    assert yaml.safe_load(out.read_text())["qkdnet_scenario"] == 1
    json_named = tmp_path / "x.json"
    assert runner.invoke(app, ["topology", "export", "-o", str(json_named), "-f",
                               "yaml"]).exit_code == 0
    with pytest.raises(json.JSONDecodeError):
        json.loads(json_named.read_text())


@pytest.mark.parametrize(("name", "kind"), [("net.yaml", "qkdnet_scenario:"),
                                            ("net.json", '"qkdnet_scenario"'),
                                            ("net.geojson", '"FeatureCollection"'),
                                            ("net.graphml", "<graphml")])
def test_export_without_format_follows_the_suffix(tmp_path: Path, name: str,
                                                  kind: str) -> None:
    """Without --format the suffix picks the format (a .yaml file is YAML, not GraphML)."""
    out = tmp_path / name
    assert runner.invoke(app, ["topology", "export", "-o", str(out)]).exit_code == 0
    assert kind in out.read_text()[:2000]


def test_skr_km_is_loss_at_the_attenuation() -> None:
    """--km 100 is the rate at 20 dB (0.2 dB/km); --db-per-km 0.16 at 16 dB; rows carry
    length_km."""
    def rows(*args: str) -> list[dict[str, float]]:
        result = runner.invoke(app, ["skr", "-t", "I", *args, "-f", "json"])
        assert result.exit_code == 0, result.output
        data: list[dict[str, float]] = json.loads(result.stdout)
        return data

    by_km, by_loss = rows("--km", "100"), rows("--loss", "20")
    assert by_km[0]["length_km"] == 100 and by_km[0]["loss_db"] == 20
    assert by_km[0]["skr_bps"] == by_loss[0]["skr_bps"]
    low = rows("--km", "0:100:50", "--db-per-km", "0.16")
    assert [r["loss_db"] for r in low] == [0, 8, 16]
    assert low[-1]["skr_bps"] == rows("--loss", "16")[0]["skr_bps"]


@pytest.mark.parametrize(("args", "named"), [
    (["skr", "--km", "100", "--loss", "20"], "--km=100"),
    (["skr", "--db-per-km", "0.3"], "--db-per-km=0.3"),
    (["skr", "--km", "100", "--db-per-km", "0"], "--db-per-km=0"),
    (["skr", "--km", "-5"], "--km=-5"),
])
def test_skr_km_bad_input_is_one_line(args: list[str], named: str) -> None:
    """--km with --loss, an attenuation without --km or out of range, a negative length."""
    _refused(args, named)


def test_a_misspelt_network_key_suggests_the_right_one(tmp_path: Path) -> None:
    """A scenario file with lenght_km: file, line, path and "did you mean 'length_km'"."""
    text = (EXAMPLES / "three-city-ring.yaml").read_text()
    bad = tmp_path / "ring.yaml"
    bad.write_text(text.replace("length_km: 120", "lenght_km: 120", 1))
    line = next(i for i, t in enumerate(bad.read_text().splitlines(), 1) if "lenght" in t)
    _refused(["topology", "summary", "--scenario", str(bad)],
             f"{bad}:{line}: qkd_links[0].lenght_km", "did you mean 'length_km'?")


def test_a_misspelt_twin_key_suggests_the_right_one(tmp_path: Path) -> None:
    """A twin scenario with faults[0].duraton_h: did you mean 'duration_h'."""
    text = (EXAMPLES / "twin-whatif-no-ring.yaml").read_text()
    bad = tmp_path / "whatif.yaml"
    bad.write_text(text.replace("duration_h", "duraton_h", 1))
    _refused(["twin", "--scenario", str(bad)], "faults[0].duraton_h",
             "did you mean 'duration_h'?")


def test_a_key_far_from_any_lists_the_keys_there(tmp_path: Path) -> None:
    """A key like no other: no guess, the keys the place takes instead."""
    text = (EXAMPLES / "three-city-ring.yaml").read_text()
    bad = tmp_path / "ring.yaml"
    bad.write_text(text.replace("qkdnet_scenario: 1", "qkdnet_scenario: 1\nzzz: 3", 1))
    message = _refused(["topology", "summary", "--scenario", str(bad)], ": zzz:")
    assert "did you mean" not in message and "keys here: " in message
    assert "qkd_links" in message


def test_the_installed_command_has_no_traceback_for_an_unwritable_output(a_file: Path) -> None:
    """The real entry point (a subprocess): one line, exit 2, no 'Traceback'."""
    done = subprocess.run([sys.executable, "-m", "qkdnet", "topology", "export", "-o",
                           str(a_file / "x.yaml")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1
