"""A deployment as Kubernetes manifests, with a ``kustomization.yaml`` to apply them all
(``kubectl apply -k DIR``).

Per node process: a StatefulSet of one replica and a Service exposing its KME ports and its
KM port. A StatefulSet, not a Deployment, because the process holds key stores (SQLite
files of key shared with neighbouring nodes): its PersistentVolumeClaim must outlive the
pod and stay bound to this process, or a restart would lose the pools and the state that
keeps each pad used once. The emulated QKD devices are a StatefulSet too where they fly
satellites (the satellites' pools and clock, ``satellite.sqlite``). The controller, each
EMS, the NMS and devices without satellites keep no state of their own (a restarted
controller rebuilds from node reports; key a restarted device pair handed to one end only
is discarded by the border supply): a Deployment of one replica and a Service each.

Inside the cluster, processes find each other by Service name, so the deployment file in
the ConfigMap is the one given with each host replaced by the Services placed on it (one
host per Service), ports unchanged; the containers listen on 0.0.0.0. Certificates come
from Secrets: written from a ``qkdnet pki`` folder when one is given (PEM files,
base64-encoded as Kubernetes stores them), else only referenced by name (created by the
operator, see :func:`secret_names`).

Pods run as the image's user, never root (``runAsUser``/``runAsGroup``
:data:`~qkdnet.deploy.containers.RUN_AS_UID`/``GID``, ``runAsNonRoot``), and with that
group as ``fsGroup``: the kubelet gives the Secret's files (root-owned) that group, so
mode 0440 lets the process read its keys and no one else, and makes the volume claim's
root writable by the process (mode 2770), which keeps its data folder in a private
sub-folder (:data:`~qkdnet.deploy.containers.STATE_DIR`). ``fsGroupChangePolicy:
OnRootMismatch``: the kubelet changes ownership and modes only on a volume's first mount,
not the key stores (0600) on every restart.
"""

from __future__ import annotations

import base64
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import yaml

from qkdnet.deploy.containers import (
    CONFIG_DIR,
    DATA_DIR,
    DEFAULT_IMAGE,
    PKI_DIR,
    RUN_AS_GID,
    RUN_AS_UID,
    VENDOR_DIR,
    Container,
    config_files,
    containers,
    label,
)
from qkdnet.errors import ParameterError
from qkdnet.files.deployment import Deployment, EmsPlacement, Host, ServicePlacement

KUSTOMIZATION = "kustomization.yaml"
CONFIG_MAP = "qkdnet-deployment"
PREFIX = "qkdnet-"
ServiceType = Literal["ClusterIP", "NodePort", "LoadBalancer"]
#: Space for each node process's key stores.
DEFAULT_STORAGE = "1Gi"
_APP = "qkdnet"
#: Owner (root) and group (fsGroup: the process's group) read: a KME's private key.
SECRET_MODE = 0o440


def service_name(container: Container) -> str:
    """The Service (and workload) name of a container: ``qkdnet-<name>``."""
    return PREFIX + container.name


def secret_name(container: Container) -> str:
    """The Secret holding a container's certificates and keys: one per container (a node
    process: its KMEs' key pairs; the controller, an EMS, the NMS: its own pair; each with
    the CA certificate), so no container holds another's private key."""
    return f"{service_name(container)}-tls"


def secret_names(deployment: Deployment) -> list[str]:
    """The Secrets the manifests use, in order: what to create when no PKI is given."""
    return list(dict.fromkeys(secret_name(c) for c in containers(deployment)))


def cluster_deployment(deployment: Deployment) -> Deployment:
    """``deployment`` as seen inside the cluster: one host per Service, named and
    addressed by the Service's name; placements and ports unchanged."""
    cs = containers(deployment)
    services = {c.name: service_name(c) for c in cs}
    names = list(services.values())
    if len(set(names)) != len(names):
        raise ParameterError("deployment", deployment.scenario,
                             "two containers would share a Service name: " + ", ".join(names))
    hosts = tuple(Host(n, n) for n in names)
    ems = tuple(EmsPlacement(e.region, services[f"ems-{label(e.region)}"], e.port)
                for e in deployment.ems)
    return replace(
        deployment, hosts=hosts,
        processes=tuple(replace(p, host=services[f"node-{p.id}"])
                        for p in deployment.processes),
        controller=ServicePlacement(services["controller"], deployment.controller.port),
        ems=ems, nms=replace(deployment.nms, host=services["nms"]),
        devices=None if deployment.devices is None
        else ServicePlacement(services["devices"], deployment.devices.port))


def kubernetes_files(deployment: Deployment, image: str = DEFAULT_IMAGE,
                     pki: Path | None = None, service_type: ServiceType = "ClusterIP",
                     storage: str = DEFAULT_STORAGE) -> dict[str, str]:
    """File name -> text of every manifest and the kustomization listing them. ``pki``: a
    ``qkdnet pki`` folder to write the Secrets from (else they are referenced only)."""
    inside = cluster_deployment(deployment)
    configs = config_files(inside, {h.id: h.address for h in inside.hosts})
    files: dict[str, str] = {"configmap.yaml": _dump(_config_map(configs))}
    cs = containers(inside, listen="0.0.0.0")
    if pki is not None:
        secrets: dict[str, dict[str, str]] = {}
        for c in cs:
            secrets.setdefault(secret_name(c), {}).update(
                {_key(f): _read_base64(pki, f) for f in c.pki_files})
            secrets[secret_name(c)].update(
                {_key(f"vendor/{f}"): _read_vendor(path) for f, path in c.vendor_files})
        files["secrets.yaml"] = _dump_all(_secret(n, data) for n, data in secrets.items())
    for c in cs:
        files[f"{c.name}.yaml"] = _dump_all(
            [_workload(c, image, list(configs), storage), _service(c, service_type)])
    kustomization = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                     "labels": [{"pairs": {"app.kubernetes.io/part-of": _APP}}],
                     "resources": list(files)}
    files[KUSTOMIZATION] = _dump(kustomization)
    return files


def _config_map(configs: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": CONFIG_MAP},
            "data": configs}


def _secret(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
            "type": "Opaque", "data": data}


def _key(path: str) -> str:
    """A Secret key for a PKI path (keys may not hold '/'): ``kme/a.key`` -> ``kme.a.key``."""
    return path.replace("/", ".")


def _read_base64(pki: Path, path: str) -> str:
    try:
        return base64.b64encode((pki / path).read_bytes()).decode("ascii")
    except OSError as exc:
        raise ParameterError("--pki", str(pki), f"cannot read {path}: {exc.strerror} (made "
                             "by `qkdnet pki init` for this scenario?)") from None


def _read_vendor(path: Path) -> str:
    try:
        return base64.b64encode(path.read_bytes()).decode("ascii")
    except OSError as exc:
        raise ParameterError("vendor_devices", str(path),
                             f"cannot read it: {exc.strerror}") from None


def _labels(c: Container) -> dict[str, str]:
    return {"app.kubernetes.io/name": _APP, "app.kubernetes.io/component": c.component,
            "app.kubernetes.io/instance": service_name(c)}


def _port_names(c: Container) -> list[tuple[str, int]]:
    if c.component != "node":
        return [(c.component, c.ports[0])]
    *kme, km = c.ports
    return [*((f"kme-{i}", p) for i, p in enumerate(kme)), ("km", km)]


def _workload(c: Container, image: str, configs: list[str], storage: str) -> dict[str, Any]:
    name = service_name(c)
    mounts: list[dict[str, Any]] = [
        {"name": "config", "mountPath": f"{CONFIG_DIR}/{f}", "subPath": f, "readOnly": True}
        for f in configs]
    mounts.append({"name": "pki", "mountPath": PKI_DIR, "readOnly": True})
    volumes: list[dict[str, Any]] = [
        {"name": "config", "configMap": {"name": CONFIG_MAP}},
        {"name": "pki", "secret": {"secretName": secret_name(c), "defaultMode": SECRET_MODE,
                                   "items": [{"key": _key(f), "path": f}
                                             for f in c.pki_files]}}]
    if c.vendor_files:  # from the same Secret: the vendor devices' certificates and keys
        mounts.append({"name": "vendor", "mountPath": VENDOR_DIR, "readOnly": True})
        volumes.append({"name": "vendor", "secret": {
            "secretName": secret_name(c), "defaultMode": SECRET_MODE,
            "items": [{"key": _key(f"vendor/{f}"), "path": f} for f, _ in c.vendor_files]}})
    if c.stateful:
        mounts.append({"name": "data", "mountPath": DATA_DIR})
    pod = {"metadata": {"labels": _labels(c)},
           "spec": {"containers": [{
               "name": c.component, "image": image, "command": ["qkdnet"],
               "args": list(c.args),
               "ports": [{"name": n, "containerPort": p, "protocol": "TCP"}
                         for n, p in _port_names(c)],
               "volumeMounts": mounts,
               "securityContext": {"allowPrivilegeEscalation": False,
                                   "capabilities": {"drop": ["ALL"]}}}],
               "securityContext": {"runAsUser": RUN_AS_UID, "runAsGroup": RUN_AS_GID,
                                   "runAsNonRoot": True, "fsGroup": RUN_AS_GID,
                                   "fsGroupChangePolicy": "OnRootMismatch"},
               "volumes": volumes}}
    spec: dict[str, Any] = {"replicas": 1,
                            "selector": {"matchLabels": _labels(c)}, "template": pod}
    if not c.stateful:
        return {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": name, "labels": _labels(c)}, "spec": spec}
    spec["serviceName"] = name
    spec["volumeClaimTemplates"] = [{
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": storage}}}}]
    return {"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": name, "labels": _labels(c)}, "spec": spec}


def _service(c: Container, service_type: ServiceType) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": service_name(c), "labels": _labels(c)},
            "spec": {"type": service_type, "selector": _labels(c),
                     "ports": [{"name": n, "port": p, "targetPort": p, "protocol": "TCP"}
                               for n, p in _port_names(c)]}}


class _Dumper(yaml.SafeDumper):
    """Writes text of several lines (the files in the ConfigMap) as YAML literal blocks, so
    a reader sees the deployment file as it is."""


def _text(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _text)


def _dump(document: dict[str, Any]) -> str:
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=100)


def _dump_all(documents: Any) -> str:
    return yaml.dump_all(list(documents), Dumper=_Dumper, sort_keys=False, width=100)
