"""`qkdnet deploy compose`: a Compose file for the cn-qcn example that the Compose
Specification's schema accepts, a service per process, secrets by path only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from qkdnet.deploy.compose import COMPOSE_FILE, compose_files
from qkdnet.deploy.containers import RUN_AS_GID, RUN_AS_UID
from qkdnet.files.deployment import Deployment, load_deployment

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cn-qcn-deployment.yaml"


@pytest.fixture(scope="module")
def deployment() -> Deployment:
    return load_deployment(EXAMPLE)


@pytest.fixture(scope="module")
def written(deployment: Deployment, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("compose")
    for name, text in compose_files(deployment, "/srv/pki", "registry.example/qkdnet:1").items():
        (folder / name).write_text(text)
    return folder


def _compose(folder: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((folder / COMPOSE_FILE).read_text())
    return document


def test_the_compose_spec_schema_accepts_the_file(written: Path) -> None:
    """check-jsonschema with the Compose Specification's schema validates compose.yaml."""
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
         str(written / COMPOSE_FILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_sees_a_broken_file(written: Path, tmp_path: Path) -> None:
    """The same check refuses a service with a misspelt key (so the check above can fail)."""
    document = _compose(written)
    document["services"]["nms"]["comand"] = document["services"]["nms"].pop("command")
    (tmp_path / COMPOSE_FILE).write_text(yaml.safe_dump(document))
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
         str(tmp_path / COMPOSE_FILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 1


def test_each_process_and_service_runs_its_command(written: Path,
                                                   deployment: Deployment) -> None:
    """A service per node process, the controller, the devices, an EMS per region and the
    NMS."""
    services = _compose(written)["services"]
    expected = ([f"node-{p.id}" for p in deployment.processes] + ["controller", "devices"]
                + [f"ems-{e.region}" for e in deployment.ems] + ["nms"])
    assert list(services) == expected
    dep = ["--deployment", "/etc/qkdnet/deployment.yaml", "--pki", "/etc/qkdnet/pki"]
    assert services["node-east"]["command"] == [
        "node", *dep, "--process", "east", "--dir", "/var/lib/qkdnet/state"]
    assert services["controller"]["command"] == ["controller", *dep]
    # it flies cn-qcn's satellite: its pools and clock in its state volume
    assert services["devices"]["command"] == ["qkd-devices", *dep, "--dir",
                                              "/var/lib/qkdnet/state"]
    assert services["ems-north"]["command"] == ["ems", *dep, "--region", "north"]
    assert services["nms"]["command"] == ["nms", *dep]
    for service in services.values():
        assert service["image"] == "registry.example/qkdnet:1"
        assert service["network_mode"] == "host" and service["profiles"] == ["local"]
        assert {"source": "deployment.yaml", "target": "/etc/qkdnet/deployment.yaml"} \
            in service["configs"]


def test_a_node_service_gets_each_of_its_kmes_key_pair(written: Path,
                                                       deployment: Deployment) -> None:
    """Secrets: the CA certificate and every node's KME pair, read from the PKI folder."""
    document = _compose(written)
    east = deployment.process("east")
    targets = {s["target"] for s in document["services"]["node-east"]["secrets"]}
    assert targets == {"/etc/qkdnet/pki/ca.crt"} | {
        f"/etc/qkdnet/pki/kme/{n}.{k}" for n in east.nodes for k in ("crt", "key")}
    assert document["secrets"]["kme-hefei.key"] == {"file": "/srv/pki/kme/hefei.key"}
    assert document["volumes"] == {f"node-{p.id}": {} for p in deployment.processes} | {
        "devices": {}}  # the satellites' pools


def test_the_mounted_deployment_is_the_one_given(written: Path, deployment: Deployment) -> None:
    """The deployment.yaml written beside compose.yaml loads back as the same placements."""
    again = load_deployment(written / "deployment.yaml")
    assert again.processes == deployment.processes and again.hosts == deployment.hosts


def test_a_scenario_file_travels_with_the_deployment(tmp_path: Path) -> None:
    """A deployment of a scenario file ships that scenario beside it, named scenario.yaml."""
    ring = Path(__file__).resolve().parents[2] / "examples" / "three-city-ring.yaml"
    (tmp_path / "nets").mkdir()
    (tmp_path / "nets" / "ring.yaml").write_text(ring.read_text())
    (tmp_path / "dep.yaml").write_text(
        "qkdnet_deployment: 1\nscenario: nets/ring.yaml\nhosts: [{id: h, address: 10.1.1.1}]\n"
        "processes: [{id: all, host: h, regions: [east], kme_port: 8443, km_port: 9443}]\n"
        "controller: {host: h, port: 7000}\nems: [{region: east, host: h, port: 7100}]\n"
        "nms: {host: h, port: 8080}\n")
    out = tmp_path / "out"
    out.mkdir()
    files = compose_files(load_deployment(tmp_path / "dep.yaml"))
    assert set(files) == {COMPOSE_FILE, "deployment.yaml", "scenario.yaml"}
    for name, text in files.items():
        (out / name).write_text(text)
    again = load_deployment(out / "deployment.yaml")
    assert again.scenario == "scenario.yaml" and again.nodes == ("hefei", "nanjing",
                                                                 "shanghai", "sh-m1")


def test_services_run_as_the_images_user_and_secrets_keep_the_hosts_modes(
        written: Path) -> None:
    """Every service runs as uid:gid 10001 (the Dockerfile's USER), never root; no secret
    claims a uid, gid or mode, which Docker Compose ignores for file secrets."""
    document = _compose(written)
    for service in document["services"].values():
        assert service["user"] == f"{RUN_AS_UID}:{RUN_AS_GID}" and RUN_AS_UID != 0
        for secret in service["secrets"]:
            assert set(secret) == {"source", "target"}


def test_a_node_service_gets_its_vendor_device_files_where_the_deployment_names_them(
        tmp_path: Path) -> None:
    """A vendor device pair on hefei-nanjing (both in process `all`): the node service
    gets the six files as secrets read from where the deployment file names them, mounted
    under /etc/qkdnet/vendor, and the mounted deployment names them there, so it loads in
    the container."""
    ring = Path(__file__).resolve().parents[2] / "examples" / "three-city-ring.yaml"
    (tmp_path / "ring.yaml").write_text(ring.read_text())
    (tmp_path / "dev").mkdir()
    for name in ("ca.crt", "a.crt", "a.key", "b.crt", "b.key"):
        (tmp_path / "dev" / name).write_text(f"PEM {name}\n")
    (tmp_path / "dep.yaml").write_text(
        "qkdnet_deployment: 1\nscenario: ring.yaml\nhosts: [{id: h, address: 10.1.1.1}]\n"
        "processes: [{id: all, host: h, regions: [east], kme_port: 8443, km_port: 9443}]\n"
        "controller: {host: h, port: 7000}\nems: [{region: east, host: h, port: 7100}]\n"
        "nms: {host: h, port: 8080}\nvendor_devices:\n  - km_link: km-hefei-nanjing\n"
        "    a: {url: 'https://qkd-a.example', ca: dev/ca.crt, cert: dev/a.crt, "
        "key: dev/a.key}\n"
        "    b: {url: 'https://qkd-b.example', ca: dev/ca.crt, cert: dev/b.crt, "
        "key: dev/b.key}\n")
    files = compose_files(load_deployment(tmp_path / "dep.yaml"))
    compose = yaml.safe_load(files[COMPOSE_FILE])
    node = compose["services"]["node-all"]
    mounted = {s["target"]: compose["secrets"][s["source"]]["file"] for s in node["secrets"]}
    assert mounted["/etc/qkdnet/vendor/km-hefei-nanjing/b.key"] == \
        str((tmp_path / "dev" / "b.key").resolve())
    assert sum(t.startswith("/etc/qkdnet/vendor/") for t in mounted) == 6
    assert not any(s["target"].startswith("/etc/qkdnet/vendor/")
                   for s in compose["services"]["controller"]["secrets"])
    inside = tmp_path / "etc"  # the container's /etc/qkdnet, files where they are mounted
    for target, source in mounted.items():
        if target.startswith("/etc/qkdnet/vendor/"):
            path = inside / target.removeprefix("/etc/qkdnet/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(Path(source).read_text())
    for name in ("deployment.yaml", "scenario.yaml"):
        (inside / name).write_text(files[name])
    again = load_deployment(inside / "deployment.yaml", vendor_files_at=["hefei", "nanjing"])
    assert again.vendor_devices["km-hefei-nanjing"].b.key == \
        (inside / "vendor" / "km-hefei-nanjing" / "b.key").resolve()
