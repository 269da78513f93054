"""A deployment as a Compose file (the Compose Specification, ``docker compose``).

One service per node process, plus the controller, one EMS per region and the NMS. Every
service uses the host's network (``network_mode: host``), so the addresses and ports of
the deployment file are the real ones, on one host or many; each service carries the
profile of its host, so on host H ``docker compose --profile H up -d`` starts what is
placed there. The deployment file (and a scenario file, if any) are Compose configs
mounted in ``/etc/qkdnet``; certificates are Compose secrets read from a ``qkdnet pki``
folder and mounted as ``/etc/qkdnet/pki``, and a node process's vendor QKD device files
(read from where the deployment file names them) as ``/etc/qkdnet/vendor``; each node
process keeps its key stores in a named volume.

Every service runs as the image's user (:data:`~qkdnet.deploy.containers.RUN_AS_UID`).
Docker Compose mounts a file secret as a bind mount of the host's file, keeping its owner
and mode (it ignores a secret's ``uid``, ``gid`` and ``mode`` and warns), so none are
written: the PKI files on each host must be readable by that uid, keys staying 0600
(``chown -R 10001:10001 pki``).
"""

from __future__ import annotations

from typing import Any

import yaml

from qkdnet.deploy.containers import (
    CONFIG_DIR,
    DATA_DIR,
    PKI_DIR,
    RUN_AS_GID,
    RUN_AS_UID,
    VENDOR_DIR,
    config_files,
    containers,
)
from qkdnet.files.deployment import Deployment

COMPOSE_FILE = "compose.yaml"


def compose_files(deployment: Deployment, pki: str = "pki", image: str = "qkdnet:latest"
                  ) -> dict[str, str]:
    """File name -> text: ``compose.yaml`` and the config files it mounts, all to be
    written in one folder. ``pki``: the ``qkdnet pki`` folder, absolute or relative to that
    folder (only its path is written, never its contents)."""
    configs = config_files(deployment)
    services: dict[str, Any] = {}
    secrets: dict[str, Any] = {}
    volumes: dict[str, Any] = {}
    for c in containers(deployment):
        service: dict[str, Any] = {
            "image": image,
            "command": list(c.args),
            "user": f"{RUN_AS_UID}:{RUN_AS_GID}",
            "network_mode": "host",
            "restart": "unless-stopped",
            "profiles": [c.host],
            "configs": [{"source": _name(f), "target": f"{CONFIG_DIR}/{f}"} for f in configs],
            "secrets": [{"source": _name(f), "target": f"{PKI_DIR}/{f}"}
                        for f in c.pki_files]
            + [{"source": _name(f"vendor/{f}"), "target": f"{VENDOR_DIR}/{f}"}
               for f, _ in c.vendor_files],
            "labels": {"org.qkdnet.component": c.component, "org.qkdnet.host": c.host},
        }
        if c.stateful:
            volumes[c.name] = {}
            service["volumes"] = [{"type": "volume", "source": c.name, "target": DATA_DIR}]
        services[c.name] = service
        secrets.update({_name(f): {"file": f"{pki.rstrip('/')}/{f}"} for f in c.pki_files})
        secrets.update({_name(f"vendor/{f}"): {"file": str(path)}
                        for f, path in c.vendor_files})
    document = {
        "name": "qkdnet",
        "services": services,
        "configs": {_name(f): {"file": f"./{f}"} for f in configs},
        "secrets": secrets,
        "volumes": volumes,
    }
    text = ("# Written by `qkdnet deploy compose`; on each host H of the deployment:\n"
            "#   docker compose --profile H up -d\n"
            + yaml.safe_dump(document, sort_keys=False, width=100))
    return {COMPOSE_FILE: text, **configs}


def _name(path: str) -> str:
    """A Compose config or secret name for a file path (``kme/a.key`` -> ``kme-a.key``)."""
    return path.replace("/", "-")
