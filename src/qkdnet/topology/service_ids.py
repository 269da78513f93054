"""The certificate ids (``kme-id:`` URIs, KME-type certificates of the network's CA) of a
deployment's services: the controller, the NMS, each region's EMS and the emulated QKD
devices. ``qkdnet pki init``
and ``qkdnet up`` issue them with the nodes' certificates; the services present them, and
the manifests mount each service's pair. Kept in the topology layer, as the served-node
rule is, so the file formats and manifest writers need not import the live driver."""

from __future__ import annotations

from qkdnet.topology.model import Network

CONTROLLER_ID = "qkdnet-controller"
NMS_ID = "qkdnet-nms"
DEVICES_ID = "qkdnet-devices"
EMS_PREFIX = "qkdnet-ems-"


def ems_id(region: str) -> str:
    """The certificate id of ``region``'s EMS."""
    return EMS_PREFIX + region


def service_ids(network: Network) -> list[str]:
    """Every service certificate id a deployment of ``network`` needs: the controller, the
    NMS, one EMS per region of the network and the devices service (used where the
    deployment places one)."""
    return [CONTROLLER_ID, NMS_ID, *(ems_id(r.id) for r in network.regions), DEVICES_ID]
