"""Push keys to a peer interop KMS (ETSI GS QKD 020) and void them, over mutual TLS with
this node's KME certificate. Each push is recorded in this node's ledger first (so a key_id
is never pushed for two different keys); the peer's acknowledgements, in the reply
(synchronous mode) or at this node's own ``/kmapi/v1/ext_keys/ack`` (asynchronous mode,
served by :mod:`qkdnet.live.etsi020_app`), decide when a key may be released here."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from qkdnet.keys.etsi020 import (
    Ack,
    ExtKey,
    ExtKeys,
    InteropKms,
    Problem,
    Void,
    parse_acks,
)
from qkdnet.live.etsi020_app import EXT_KEYS, VERSIONS, VOID


@dataclass(frozen=True, slots=True)
class Reply:
    """The peer's answer: HTTP ``status``, its acknowledgements (synchronous mode), the
    keys now relayed to every target (to release), its problem document (on error)."""

    status: int
    acks: tuple[Ack, ...] = ()
    released: tuple[tuple[ExtKey, ExtKeys], ...] = ()
    problem: Mapping[str, Any] | None = None


class Etsi020Client:
    """The client of peer KMS ``peer`` at ``base_url`` (``https://host:port``) for the
    interop KMS ``kms`` of this node; ``clock()`` gives the driver's time (s)."""

    def __init__(self, kms: InteropKms, peer: str, base_url: str, ssl_context: ssl.SSLContext,
                 clock: Callable[[], float], timeout_s: float = 10.0) -> None:
        self.kms, self.peer, self.clock = kms, peer, clock
        self._http = httpx.AsyncClient(base_url=base_url, verify=ssl_context,
                                       timeout=timeout_s)

    async def versions(self) -> dict[str, Any]:
        """The peer's ``/kmapi/versions`` document."""
        reply = await self._http.get(VERSIONS)
        reply.raise_for_status()
        document: dict[str, Any] = reply.json()
        return document

    async def push(self, keys: Sequence[ExtKey], initiator: str, targets: Sequence[str], *,
                   callback_url: str | None = None,
                   extension_optional: Sequence[Mapping[str, Any]] = ()) -> Reply:
        """Push ``keys`` of ``initiator`` for ``targets``: asynchronous with
        ``callback_url`` (this node's ack endpoint), else synchronous. 400 or 401: the peer
        kept nothing, the keys are failed here. Any other error or no answer: the keys may
        be associated there; retry them (same key_ids) or void them."""
        request = ExtKeys(tuple(keys), initiator, tuple(targets), callback_url, (),
                          tuple(extension_optional))
        self.kms.send(self.peer, request, self.clock())
        reply = await self._http.post(EXT_KEYS, json=request.document())
        if reply.status_code in (400, 401):
            self.kms.refused([k.key_id for k in keys], self.clock())
            return Reply(reply.status_code, problem=_problem(reply))
        if reply.status_code == 200:
            acks = parse_acks(reply.json(), self.kms.limits, empty=True)
            released = self.kms.acknowledge(self.peer, acks, self.clock())
            return Reply(200, acks, tuple(released))
        return Reply(reply.status_code,
                     problem=_problem(reply) if reply.status_code >= 400 else None)

    async def void(self, request: Void) -> Reply:
        """Ask the peer to void keys pushed to it (never released here afterwards); its
        acknowledgements in the reply, or at ``request.callback_url``."""
        self.kms.voiding(self.peer, request, self.clock())
        reply = await self._http.post(VOID, json=request.document())
        if reply.status_code == 200:
            acks = parse_acks(reply.json(), self.kms.limits, empty=True)
            return Reply(200, acks)
        return Reply(reply.status_code,
                     problem=_problem(reply) if reply.status_code >= 400 else None)

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()


def _problem(reply: httpx.Response) -> Mapping[str, Any] | None:
    try:
        document = reply.json()
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


__all__ = ["Etsi020Client", "Problem", "Reply"]
