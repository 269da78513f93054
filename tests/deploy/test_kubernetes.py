"""`qkdnet deploy kubernetes`: manifests every object of which the Kubernetes API schema
accepts, a workload and Service per process, Secrets with the PKI's PEM files only when a
PKI is given, and no key material otherwise."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from qkdnet.deploy.containers import DATA_DIR, RUN_AS_GID, RUN_AS_UID, STATE_DIR
from qkdnet.deploy.kubernetes import KUSTOMIZATION, kubernetes_files, secret_names
from qkdnet.files.deployment import Deployment, load_deployment, parse_deployment
from qkdnet.live.pki import init_pki
from qkdnet.topology.served import served_nodes
from qkdnet.topology.service_ids import service_ids

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "cn-qcn-deployment.yaml"
RING = """\
qkdnet_deployment: 1
scenario: ring.yaml
hosts: [{id: h1, address: 10.0.0.1}, {id: h2, address: 10.0.0.2}]
processes:
  - {id: west, host: h1, nodes: [hefei, nanjing], kme_port: 8443, km_port: 9443}
  - {id: rest, host: h2, regions: [east], kme_port: 8443, km_port: 9443}
controller: {host: h1, port: 7000}
ems: [{region: east, host: h2, port: 7100}]
nms: {host: h1, port: 8080}
"""


def _objects(files: dict[str, str]) -> list[dict[str, Any]]:
    return [d for name, text in files.items() if name != KUSTOMIZATION
            for d in yaml.safe_load_all(text)]


@pytest.fixture(scope="module")
def example() -> Deployment:
    return load_deployment(EXAMPLE)


@pytest.fixture(scope="module")
def ring(tmp_path_factory: pytest.TempPathFactory) -> tuple[Deployment, Path]:
    folder = tmp_path_factory.mktemp("ring")
    (folder / "ring.yaml").write_text((ROOT / "examples" / "three-city-ring.yaml").read_text())
    deployment = parse_deployment(RING, "dep.yaml", "yaml", folder)
    init_pki(folder / "pki", [*served_nodes(deployment.network),
                              *service_ids(deployment.network)], ["sae-a"])
    return deployment, folder / "pki"


def test_the_kubernetes_schema_accepts_every_object(example: Deployment) -> None:
    """kubernetes-validate (strict: no unknown fields) passes each object of the example."""
    objects = _objects(kubernetes_files(example, service_type="LoadBalancer"))
    kinds = [o["kind"] for o in objects]
    # the node processes and the devices (they fly the satellite); controller, NMS, EMSs
    assert kinds.count("StatefulSet") == 7 + 1 and kinds.count("Deployment") == 1 + 7 + 1
    assert kinds.count("Service") == 7 + 1 + 1 + 7 + 1 and kinds.count("ConfigMap") == 1
    for o in objects:
        kubernetes_validate.validate(o, kubernetes_validate.latest_version(), strict=True)


def test_the_schema_check_sees_a_broken_object(example: Deployment) -> None:
    """The same check refuses a misspelt field (so the check above can fail)."""
    service = _objects(kubernetes_files(example))[-1]
    service["spec"]["prots"] = service["spec"].pop("ports")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(service, kubernetes_validate.latest_version(),
                                     strict=True)


def test_each_process_has_a_stateful_set_and_a_service_with_its_ports(
        example: Deployment) -> None:
    """A node process: a StatefulSet with a volume claim, a Service with every KME port and
    its KM port, the same on the container."""
    objects = _objects(kubernetes_files(example, image="registry.example/qkdnet:2"))
    by_name = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    for p in example.processes:
        ports = [*p.kme_ports, p.km_port]
        service = by_name["Service", f"qkdnet-node-{p.id}"]
        assert [x["port"] for x in service["spec"]["ports"]] == ports
        workload = by_name["StatefulSet", f"qkdnet-node-{p.id}"]
        assert workload["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
        container = workload["spec"]["template"]["spec"]["containers"][0]
        assert [x["containerPort"] for x in container["ports"]] == ports
        assert container["image"] == "registry.example/qkdnet:2"
        assert container["args"][container["args"].index("--process") + 1] == p.id
        assert service["spec"]["selector"] == workload["spec"]["selector"]["matchLabels"]


def test_the_config_map_holds_the_deployment_as_the_cluster_sees_it(
        example: Deployment) -> None:
    """Each process's host is its Service; placements and ports are the given ones."""
    config = next(o for o in _objects(kubernetes_files(example)) if o["kind"] == "ConfigMap")
    inside = parse_deployment(config["data"]["deployment.yaml"], "cm", "yaml")
    assert [p.nodes for p in inside.processes] == [p.nodes for p in example.processes]
    assert inside.km_address("harbin") == ("qkdnet-node-northeast", 9401)
    assert inside.kme_url("beijing") == example.kme_url("beijing").replace(
        "127.0.0.1", "qkdnet-node-north")
    assert inside.nms_address() == ("qkdnet-nms", 8080)
    assert inside.devices_address() == ("qkdnet-devices", 7200)


def test_the_kustomization_lists_every_manifest(example: Deployment, tmp_path: Path) -> None:
    """kustomization.yaml names each file written, and nothing else."""
    files = kubernetes_files(example)
    kustomization = yaml.safe_load(files[KUSTOMIZATION])
    assert sorted(kustomization["resources"]) == sorted(set(files) - {KUSTOMIZATION})


def test_without_a_pki_no_manifest_holds_key_material(
        ring: tuple[Deployment, Path]) -> None:
    """Without --pki the Secrets are only named: no PEM, no key bytes in any manifest."""
    deployment, pki = ring
    files = kubernetes_files(deployment)
    text = "".join(files.values())
    assert "PRIVATE KEY" not in text and "CERTIFICATE" not in text
    assert "secrets.yaml" not in files
    key = (pki / "kme" / "hefei.key").read_bytes()
    assert base64.b64encode(key).decode() not in text
    names = {v["secret"]["secretName"] for o in _objects(files)
             if o["kind"] in ("StatefulSet", "Deployment")
             for v in o["spec"]["template"]["spec"]["volumes"] if "secret" in v}
    assert names == set(secret_names(deployment))


def test_with_a_pki_the_secrets_hold_its_pem_files(ring: tuple[Deployment, Path]) -> None:
    """With --pki each container's Secret holds the CA certificate and its own pairs: a
    node process its KMEs', a service its own (no container sees another's key)."""
    deployment, pki = ring
    files = kubernetes_files(deployment, pki=pki)
    secrets = {o["metadata"]["name"]: o["data"] for o in yaml.safe_load_all(files["secrets.yaml"])}
    west = {k: base64.b64decode(v) for k, v in secrets["qkdnet-node-west-tls"].items()}
    assert west == {"ca.crt": (pki / "ca.crt").read_bytes(),
                    "kme.hefei.crt": (pki / "kme/hefei.crt").read_bytes(),
                    "kme.hefei.key": (pki / "kme/hefei.key").read_bytes(),
                    "kme.nanjing.crt": (pki / "kme/nanjing.crt").read_bytes(),
                    "kme.nanjing.key": (pki / "kme/nanjing.key").read_bytes()}
    assert set(secrets["qkdnet-controller-tls"]) == \
        {"ca.crt", "kme.qkdnet-controller.crt", "kme.qkdnet-controller.key"}
    assert set(secrets["qkdnet-nms-tls"]) == {"ca.crt", "kme.qkdnet-nms.crt",
                                              "kme.qkdnet-nms.key"}
    ca_key = base64.b64encode((pki / "ca.key").read_bytes()).decode()
    assert ca_key not in "".join(files.values())  # the CA key stays off the cluster
    for o in yaml.safe_load_all(files["secrets.yaml"]):
        kubernetes_validate.validate(o, kubernetes_validate.latest_version(), strict=True)


def test_pods_run_as_the_images_user_and_can_read_their_keys(example: Deployment) -> None:
    """Pods run as uid 10001 (never root) with group 10001 as fsGroup, so the kubelet gives
    the Secret's files that group: mode 0440 lets the process read its keys, others not;
    the volume claim's root is the mount, the data folder a private folder inside it."""
    objects = _objects(kubernetes_files(example))
    workloads = [o for o in objects if o["kind"] in ("StatefulSet", "Deployment")]
    for w in workloads:
        pod = w["spec"]["template"]["spec"]
        assert pod["securityContext"] == {
            "runAsUser": RUN_AS_UID, "runAsGroup": RUN_AS_GID, "runAsNonRoot": True,
            "fsGroup": RUN_AS_GID, "fsGroupChangePolicy": "OnRootMismatch"}
        assert RUN_AS_UID != 0 and RUN_AS_GID != 0
        mode = next(v for v in pod["volumes"] if v["name"] == "pki")["secret"]["defaultMode"]
        assert mode & 0o040 and not mode & 0o007 and not mode & 0o222
        container = pod["containers"][0]
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        if w["kind"] == "StatefulSet":
            data = next(m for m in container["volumeMounts"] if m["name"] == "data")
            state = container["args"][container["args"].index("--dir") + 1]
            assert data["mountPath"] == DATA_DIR and state == STATE_DIR
            assert state.startswith(DATA_DIR + "/")


def test_a_node_process_gets_its_vendor_device_files_from_its_secret(
        ring: tuple[Deployment, Path]) -> None:
    """A vendor device pair on hefei-nanjing: with --pki, process west's Secret also holds
    the six vendor files (read from where the deployment names them), mounted under
    /etc/qkdnet/vendor where the ConfigMap's deployment names them; every object still
    passes the schema, and no other container gets them."""
    _, pki = ring
    folder = pki.parent
    (folder / "dev").mkdir(exist_ok=True)
    for name in ("ca.crt", "a.crt", "a.key", "b.crt", "b.key"):
        (folder / "dev" / name).write_text(f"PEM {name}\n")
    vendor = RING + ("vendor_devices:\n  - km_link: km-hefei-nanjing\n"
                     "    a: {url: 'https://qkd-a.example', ca: dev/ca.crt, cert: dev/a.crt, "
                     "key: dev/a.key}\n"
                     "    b: {url: 'https://qkd-b.example', ca: dev/ca.crt, cert: dev/b.crt, "
                     "key: dev/b.key}\n")
    files = kubernetes_files(parse_deployment(vendor, "dep.yaml", "yaml", folder), pki=pki)
    secrets = {o["metadata"]["name"]: o["data"] for o in yaml.safe_load_all(files["secrets.yaml"])}
    west = secrets["qkdnet-node-west-tls"]
    assert base64.b64decode(west["vendor.km-hefei-nanjing.b.key"]) == b"PEM b.key\n"
    assert sum(k.startswith("vendor.") for k in west) == 6
    assert not any(k.startswith("vendor.") for k in secrets["qkdnet-node-rest-tls"])
    workload = next(yaml.safe_load_all(files["node-west.yaml"]))
    pod = workload["spec"]["template"]["spec"]
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "vendor")
    volume = next(v for v in pod["volumes"] if v["name"] == "vendor")
    assert mount["mountPath"] == "/etc/qkdnet/vendor"
    assert {"key": "vendor.km-hefei-nanjing.a.cert", "path": "km-hefei-nanjing/a.cert"} in \
        volume["secret"]["items"]
    config = yaml.safe_load(yaml.safe_load(files["configmap.yaml"])["data"]["deployment.yaml"])
    assert config["vendor_devices"][0]["a"]["cert"] == "vendor/km-hefei-nanjing/a.cert"
    for o in _objects(files):
        kubernetes_validate.validate(o, kubernetes_validate.latest_version(), strict=True)
