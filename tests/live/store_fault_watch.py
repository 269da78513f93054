"""What the live store-fault tests watch from outside a served network: the nodes the
key-store-fault alarm names, and whether Get key is refused naming a faulty store."""

from __future__ import annotations

import httpx

from qkdnet.apps.sae_client import KmeUnavailable, SaeClient


def faulty_nodes(viewer: httpx.Client, om: str) -> set[str]:
    """The nodes of the active ``key-store-fault`` alarms on the O&M console at ``om``."""
    alarms = viewer.get(f"{om}/api/alarms", timeout=10).json()["active"]
    return {a["subject"] for a in alarms if a["rule"] == "key-store-fault"}


def refused_naming(master: SaeClient, text: str, refusal: list[str]) -> bool:
    """Whether one Get key of 256 bits for ``sae-c`` is refused (503) with ``text`` in its
    message; the last refusal's message is kept in ``refusal`` (for the assert's report)."""
    try:
        master.enc_keys("sae-c", number=1, size=256)
    except KmeUnavailable as exc:
        refusal[:] = [exc.message]
        return text in exc.message
    return False
