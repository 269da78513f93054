"""Keys across the border of separately managed domains: the KMs of
:class:`~qkdnet.live.keynet.KeyNetwork` plus, at each gateway the process hosts, an
ETSI GS QKD 020 interop KMS per operator, each served over mutual TLS on a port of its own
(``qkdnet serve``; a node process serves them on loopback only, see below).

A key whose route crosses a border (:func:`qkdnet.keys.domain_border.border_crossing`)
goes in two legs. The near operator's KMs relay it from the source node to the gateway
(one-time-pad hops), where it is taken from the store by the near operator's interop KMS
and pushed with ``POST /kmapi/v1/ext_keys`` (asynchronous, the callback its own
``/kmapi/v1/ext_keys/ack``) to the far operator's interop KMS at the same node, over real
HTTPS. That KMS relays the key on from the gateway to the target SAE's node (hops of its
own operator's KM-links, the same key: :class:`~qkdnet.keys.domain_border.StagedKeys`)
and acknowledges ``relayed`` once it is held there, or ``failed``. The initiating SAE gets
the keys only on ``relayed`` for every key; otherwise 503, the keys dropped at both ends.

In a deployment (``qkdnet node``) the source of a relay and the gateway may be in
different processes. The source's KM then asks the gateway's KM over KM-to-KM
(:class:`~qkdnet.keys.domain_border.CrossBorder`, mutual TLS through
:class:`~qkdnet.live.km_transport.RemoteKMs`) to take the keys across; the gateway's process
does the same take, push and far leg, and answers
:class:`~qkdnet.keys.domain_border.Crossed` (relayed or not). A far leg that reaches the
next border at a gateway of another process asks it the same way. A request sent again
(a lost acknowledgement) is recognised by the KM listener, and one that got through anyway
cannot push twice: its keys were taken from the gateway's store by the first, and the 020
ledger refuses a replayed key_id. Both interop KMSs of a gateway are in the gateway's
process and talk only to each other, so a node process serves them on loopback, on ports
the system picks: nothing outside the process needs to reach them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from qkdnet.apps.sae_client import tls_context
from qkdnet.errors import KeyNotFound, KeyStoreError, NoRoute, NotAuthorized
from qkdnet.keys.domain_border import (
    BorderCrossing,
    CrossBorder,
    Crossed,
    border_crossings,
    crossing_asked,
    gateways,
    interop_kms_id,
    link_operator,
)
from qkdnet.keys.etsi014 import ApiError
from qkdnet.keys.etsi020 import ExtKey, ExtKeys, InteropKms, Problem, Void
from qkdnet.keys.km_wire import Envelope
from qkdnet.keys.messages import KeyRequest
from qkdnet.keys.pool import UNIT_BYTES, HeldKey
from qkdnet.keys.relay_cost import pad_units
from qkdnet.keys.route import Route
from qkdnet.live.etsi020_app import ACK, CallbackPolicy, Etsi020App
from qkdnet.live.etsi020_client import Etsi020Client
from qkdnet.live.etsi020_ledger import SQLiteLedger
from qkdnet.live.key_ids import new_key_id
from qkdnet.live.keynet import KeyNetwork
from qkdnet.live.pki import Pki
from qkdnet.live.tls_server import TlsServer, make_server, server_ssl_context
from qkdnet.topology.model import Network

__all__ = ["BorderKeyNetwork"]

log = logging.getLogger("qkdnet.keys")


@dataclass
class _Push:
    """Keys pushed across a border, waiting for their acknowledgements."""

    waiting: set[str]
    done: asyncio.Future[bool] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())


class BorderKeyNetwork(KeyNetwork):
    """A :class:`KeyNetwork` whose relays cross borders between operators through the
    interop KMSs of the gateways among ``nodes`` (certificates from ``pki``, listening on
    ``host``); ``options`` are :class:`KeyNetwork`'s. Call :meth:`start_borders` in the
    event loop before serving keys, and :meth:`stop_borders` before :meth:`close`."""

    def __init__(self, network: Network, folder: Path, nodes: Iterable[str], pki: Pki, *,
                 host: str = "127.0.0.1", callbacks: CallbackPolicy | None = None,
                 **options: Any) -> None:
        self.timeout_s = float(options.get("timeout_s", 5.0))
        super().__init__(network, folder, nodes, **options)
        self.interop: dict[str, InteropKms] = {}
        self.apps: dict[str, Etsi020App] = {}
        self.servers: dict[str, TlsServer] = {}
        self.urls: dict[str, str] = {}
        self._client_ssl: dict[str, ssl.SSLContext] = {}
        self._ledgers: list[SQLiteLedger] = []
        self._tasks: list[asyncio.Task[None]] = []
        # by pushing KMS and key_id: a key crossing two borders is pushed twice, by two KMSs
        self._pushes: dict[tuple[str, str], _Push] = {}
        self._clients: dict[tuple[str, str], Etsi020Client] = {}  # by (near, far) KMS
        # crossings asked of gateways in other processes, by (gateway, key_ids)
        self._asked: dict[tuple[str, tuple[str, ...]], asyncio.Future[bool]] = {}
        # crossings other processes asked of this one's gateways, by (asker, key_ids)
        self._crossing: dict[tuple[str, tuple[str, ...]], asyncio.Task[None]] = {}
        for gateway, operators in gateways(network).items():
            if gateway not in self.stores:
                continue
            for operator in operators:
                self._open_kms(folder, pki, host, gateway, operator, operators, callbacks)

    def _open_kms(self, folder: Path, pki: Pki, host: str, gateway: str, operator: str,
                  operators: Sequence[str], callbacks: CallbackPolicy | None) -> None:
        name = interop_kms_id(gateway, operator)
        ledger = SQLiteLedger(folder / f"{name}.etsi020.sqlite")
        self._ledgers.append(ledger)
        kms = InteropKms(name, self.stores[gateway], ledger, lambda sae: False,
                         onward=self._reaches,
                         on_settled=partial(self._push_settled, name))
        client_ssl = tls_context(pki.kme_cert(name), pki.kme_key(name), pki.ca_cert)
        app = Etsi020App(kms, [interop_kms_id(gateway, o) for o in operators if o != operator],
                         self._now, client_ssl, on_released=partial(self._push_released, name),
                         onward=partial(self._far_leg, gateway, operator),
                         callbacks=callbacks)
        server = make_server(app, host, 0, server_ssl_context(
            pki.kme_cert(name), pki.kme_key(name), pki.ca_cert))
        self.interop[name], self.apps[name], self.servers[name] = kms, app, server
        self._client_ssl[name] = client_ssl
        self.urls[name] = f"https://{host}:{server.port}"

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()

    # --- serving --------------------------------------------------------------------------

    async def start_borders(self) -> None:
        """Serve every interop KMS (their sockets are bound already), once the relays on
        that a stop cut short are failed (never released)."""
        loop = asyncio.get_running_loop()
        for name, kms in self.interop.items():
            if lost := kms.recover(loop.time()):
                log.warning("interop KMS %s: %d keys being relayed on when it stopped are "
                            "failed", name, len(lost))
        self._tasks = [loop.create_task(s.serve()) for s in self.servers.values()]
        while not all(s.started for s in self.servers.values()):
            if ended := [t for t in self._tasks if t.done()]:
                ended[0].result()  # its error, if it had one
                raise RuntimeError("an interop KMS server ended while starting")
            await asyncio.sleep(0.01)

    async def stop_borders(self) -> None:
        """Stop serving, finish the callbacks under way, close the clients and ledgers."""
        for task in self._crossing.values():
            task.cancel()  # the asker's wait ends on its timer: not relayed
        await asyncio.gather(*self._crossing.values(), return_exceptions=True)
        for server in self.servers.values():
            server.request_stop()
            if not self._tasks:
                server.socket.close()  # bound, never served
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for client in self._clients.values():
            await client.aclose()
        for app in self.apps.values():
            await app.idle()
        for ledger in self._ledgers:
            ledger.close()

    # --- the near side: relay to the gateway, push, wait ----------------------------------

    async def enc_keys(self, master_sae: str, slave_sae: str, number: int, size: int
                       ) -> list[tuple[str, bytes]]:
        """As :meth:`KeyNetwork.enc_keys`; keys whose route crosses a border go over the
        gateway's interop KMSs and are returned only once held at the slave's node."""
        crossings = self._crossings(master_sae, slave_sae)
        crossing = crossings[0] if crossings else None
        if crossing is None or pad_units(size, number) * UNIT_BYTES > self.max_relay_bytes:
            return await super().enc_keys(master_sae, slave_sae, number, size)
        self._check_running(crossing.near.source)  # the far side is the other KMS's to tell
        self._check_stores(*crossing.near.nodes)
        ids = tuple(new_key_id() for _ in range(number))
        material = await self.relay(KeyRequest(ids, size, master_sae, slave_sae,
                                               crossing.near))
        if crossing.gateway in self.stores:
            held = await self._take(crossing.gateway, ids, master_sae, slave_sae)
            relayed = await self._push(crossing, held, master_sae, slave_sae, len(crossings))
        else:
            relayed = await self._ask(crossing, ids, master_sae, slave_sae, len(crossings))
        if not relayed:
            # the key never reaches the SAEs: the material here is dropped with this frame
            raise ApiError(503, f"keys not relayed across the domain border at node "
                           f"{crossing.gateway}")
        self.keys_relayed += number
        step = size // 8
        return [(key_id, material[i * step:(i + 1) * step]) for i, key_id in enumerate(ids)]

    def _crossings(self, master_sae: str, slave_sae: str) -> list[BorderCrossing]:
        """The borders the SAEs' route crosses, in order (none: a plain relay)."""
        try:
            route = self._route(master_sae, slave_sae)
        except ApiError:
            return []  # answered by the plain relay
        crossings = border_crossings(self.network, route)
        if crossings and not self._can_cross(crossings[0]):
            return []
        return crossings

    def _can_cross(self, crossing: BorderCrossing) -> bool:
        """Whether keys can cross at ``crossing``'s gateway from here: it is served in this
        process with its interop KMSs, or its process is reachable over KM-to-KM."""
        if crossing.gateway in self.stores:
            return interop_kms_id(crossing.gateway, crossing.near_operator) in self.interop
        return self.remote is not None and self.remote.hosts(crossing.gateway)

    async def _push(self, crossing: BorderCrossing, held: Sequence[HeldKey], master: str,
                    slave: str, borders: int) -> bool:
        """Push ``held`` to the far operator's KMS; whether every key was acknowledged
        ``relayed`` within four relay timeouts per border still ahead (``borders``, this
        one included: each far leg may relay to the next)."""
        near = interop_kms_id(crossing.gateway, crossing.near_operator)
        far = interop_kms_id(crossing.gateway, crossing.far_operator)
        push = _Push({k.key_id for k in held})
        for key in held:
            self._pushes[near, key.key_id] = push
        client = self._client(near, far)
        try:
            reply = await client.push([ExtKey(k.key_id, k.material) for k in held], master,
                                      [slave], callback_url=self.urls[near] + ACK)
            if reply.status == 202:
                async with asyncio.timeout(4 * self.timeout_s * borders):
                    return await push.done
            log.warning("interop KMS %s: push refused with %d", near, reply.status)
        except Problem as exc:  # a key_id this KMS pushed before: never pushed twice
            log.warning("interop KMS %s: %s", near, exc)
        except (httpx.HTTPError, TimeoutError) as exc:
            log.warning("interop KMS %s: push to %s: %s", near, far, type(exc).__name__)
            with contextlib.suppress(httpx.HTTPError):  # never released here in any case
                await client.void(Void(tuple(push.waiting), master, (slave,)))
        finally:
            for key in held:
                self._pushes.pop((near, key.key_id), None)
        return False

    def _client(self, near: str, far: str) -> Etsi020Client:
        """The client ``near`` pushes to ``far`` with (one per pair, its connections kept)."""
        client = self._clients.get((near, far))
        if client is None:
            client = self._clients[near, far] = Etsi020Client(
                self.interop[near], far, self.urls[far], self._client_ssl[near], self._now,
                self.timeout_s)
        return client

    def _push_released(self, kms: str, released: Sequence[tuple[ExtKey, ExtKeys]]) -> None:
        for key, _ in released:
            push = self._pushes.get((kms, key.key_id))
            if push is not None:
                push.waiting.discard(key.key_id)
                if not push.waiting and not push.done.done():
                    push.done.set_result(True)

    def _push_settled(self, kms: str, key_ids: Sequence[str], state: str) -> None:
        for key_id in key_ids:
            push = self._pushes.get((kms, key_id))
            if push is not None and not push.done.done():
                log.info("key pushed across a border settled %s", state)
                push.done.set_result(False)

    # --- the far side: relay on from the gateway ------------------------------------------

    def _reaches(self, sae: str) -> bool:
        """Whether keys for ``sae`` can be relayed on: it is an SAE of the network (whether
        a route within this operator's KM-links leads towards it is the relay's to find;
        none: the keys are acknowledged ``failed``)."""
        return self.sae_node(sae) is not None

    async def _far_leg(self, gateway: str, operator: str, request: ExtKeys,
                       keys: Sequence[ExtKey]) -> bool:
        """Relay ``keys`` (the same values) on from ``gateway`` over ``operator``'s KM-links:
        to the target SAE's node, or to the next gateway on the way, whose interop KMSs
        take them across the next border in turn; whether they are held at the target's
        node for the SAEs."""
        target = request.targets[0]
        node = self.sae_node(target)
        sizes = {len(k.value) for k in keys}
        if node is None or len(sizes) != 1:
            return False
        try:
            route = self.router.route(gateway, node)
        except NoRoute as exc:
            log.info("no relay on from gateway %s: %s", gateway, exc)
            return False
        onward = border_crossings(self.network, route)
        leg = onward[0].near if onward else route
        if any(link_operator(self.network, a, b) not in ("", operator)
               for a, b in itertools.pairwise(leg.nodes)) or (
                   onward and not self._can_cross(onward[0])):
            log.info("no route from gateway %s within %s's KM-links", gateway, operator)
            return False
        ids = tuple(k.key_id for k in keys)
        try:
            self._check_running(leg.destination)
            await self.relay(KeyRequest(ids, 8 * sizes.pop(), request.initiator, target,
                                        leg), b"".join(k.value for k in keys))
        except ApiError as exc:
            log.info("relay on from gateway %s failed: %s", gateway, exc.message)
            await self._drop(leg.destination, ids, request.initiator, target)
            return False
        if not onward:
            return True
        if onward[0].gateway not in self.stores:  # the next gateway is another process's
            return await self._ask(onward[0], ids, request.initiator, target, len(onward))
        try:  # the next border: this operator's KMS there pushes them on
            held = await self._take(onward[0].gateway, ids, request.initiator, target)
        except ApiError:
            return False
        return await self._push(onward[0], held, request.initiator, target, len(onward))

    # --- a gateway in another process -------------------------------------------------------

    async def _ask(self, crossing: BorderCrossing, ids: tuple[str, ...], master: str,
                   slave: str, borders: int) -> bool:
        """Ask the KM of ``crossing``'s gateway, in another process, to take the keys
        ``ids`` held there across (the near leg has brought them); whether it answers that
        every key was relayed, within the gateway's own wait and a relay timeout each way
        (no answer: not relayed)."""
        assert self.remote is not None  # _can_cross let this crossing through
        key = (crossing.gateway, ids)
        answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._asked[key] = answer
        self.remote.send(crossing.near.source, crossing.gateway, CrossBorder(
            ids, master, slave, crossing.near_operator, crossing.far_operator, borders))
        try:
            async with asyncio.timeout((4 * borders + 2) * self.timeout_s):
                return await answer
        except TimeoutError:
            log.warning("no answer from gateway %s on keys crossing the border there",
                        crossing.gateway)
            return False
        finally:
            self._asked.pop(key, None)

    async def receive(self, sender: str, envelopes: Sequence[Envelope]) -> list[str]:
        """As :meth:`KeyNetwork.receive`, and the border crossings asked of this process's
        gateways (done after the acknowledgement: a crossing takes relays' time) and their
        answers."""
        rest = []
        for envelope in envelopes:
            message = envelope.message
            if isinstance(message, CrossBorder):
                key = (sender, message.key_ids)
                if key not in self._crossing:  # the first time only
                    self._crossing[key] = asyncio.get_running_loop().create_task(
                        self._cross_here(sender, envelope.to, message))
            elif isinstance(message, Crossed):
                answer = self._asked.get((sender, message.key_ids))
                if answer is not None and not answer.done():
                    answer.set_result(message.relayed)
            else:
                rest.append(envelope)
        return await super().receive(sender, rest) if rest else []

    async def _cross_here(self, sender: str, gateway: str, asked: CrossBorder) -> None:
        """Take the keys ``asked`` names across at ``gateway`` (one of this process's) and
        answer ``sender`` whether they were relayed."""
        relayed = False
        try:
            if why := crossing_asked(self.network, gateway, sender, asked):
                log.info("border crossing asked by node %s refused: %s", sender, why)
            else:
                here = Route((gateway,), ())
                crossing = BorderCrossing(gateway, here, here, asked.near_operator,
                                          asked.far_operator)
                try:
                    held = await self._take(gateway, asked.key_ids, asked.master_sae,
                                            asked.slave_sae)
                except ApiError as exc:
                    log.info("border crossing asked by node %s: %s", sender, exc.message)
                else:
                    relayed = await self._push(crossing, held, asked.master_sae,
                                               asked.slave_sae, asked.borders)
        finally:
            if self.remote is not None:
                self.remote.send(gateway, sender, Crossed(asked.key_ids, relayed))
            # a request sent again later is not done again: the keys are gone from here
            loop = asyncio.get_running_loop()
            loop.call_later(4 * self.timeout_s, self._crossing.pop, (sender, asked.key_ids),
                            None)

    # --- keys at a gateway -----------------------------------------------------------------

    async def _take(self, node: str, ids: Sequence[str], master: str, slave: str
                    ) -> list[HeldKey]:
        """Take the keys held at ``node`` for the SAEs (ApiError 503 if the store cannot)."""
        try:
            with self.commits.member((node,)) as member:
                held = self.stores[node].release_keys(list(ids), master, slave)
        except (KeyNotFound, NotAuthorized, KeyStoreError) as exc:
            raise ApiError(503, f"keys not found at gateway {node}: {exc}") from None
        self._end_round_soon(member)
        await self._committed(member)
        for key_id in ids:
            self._held_at.pop(key_id, None)
        return held

    async def _drop(self, node: str, ids: Sequence[str], master: str, slave: str) -> None:
        """Erase whatever of ``ids`` a failed relay left held at ``node``."""
        left = [k for k in ids if node in self.stores and self.stores[node].held_for(k)]
        if left:
            with contextlib.suppress(ApiError):
                await self._take(node, left, master, slave)
