"""Key Managers of many nodes in one process, with messages handed over in memory: the
transport of the twin, of ``qkdnet serve`` and of tests, for running a network of KMs
without sockets (as httpx ships ``MockTransport``).

Sans-I/O like the KMs: the caller passes the time; a message is delivered in order through
a work queue (no recursion along a 64-hop route) until the network is quiet; timers a KM
starts go to ``on_timer`` for the driver to schedule (a driver whose relays always settle at
once, like the twin's, may ignore them). A node listed in :attr:`InMemoryKMs.stopped`
hears nothing: messages to it are lost and the sender's own timer fails the relay. A
message for a node that has no KM here goes to ``on_remote`` when given (the driver's
transport to the node's own process), else it is lost.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping

from qkdnet.keys.manager import DEFAULT_TIMEOUT_S, KeyManager
from qkdnet.keys.messages import (
    Event,
    KeyDelivered,
    KeyFailed,
    Received,
    Send,
    StartTimer,
)
from qkdnet.keys.pool import KeyStore
from qkdnet.keys.relay_crypto import RelayCrypto

Outcome = KeyDelivered | KeyFailed


class InMemoryKMs:
    """The KMs in ``managers`` (by node id), each reachable by the others."""

    def __init__(self, managers: Mapping[str, KeyManager],
                 on_timer: Callable[[str, StartTimer], None] | None = None,
                 on_lost: Callable[[str, Event], None] | None = None,
                 on_remote: Callable[[str, Received], None] | None = None) -> None:
        self.managers = dict(managers)
        self.stopped: set[str] = set()
        self._on_timer = on_timer
        self._on_lost = on_lost
        self._on_remote = on_remote
        self._queue: deque[tuple[str, Event]] = deque()

    @classmethod
    def over(cls, stores: Mapping[str, KeyStore], crypto: RelayCrypto,
             timeout_s: float = DEFAULT_TIMEOUT_S,
             on_timer: Callable[[str, StartTimer], None] | None = None,
             on_lost: Callable[[str, Event], None] | None = None,
             on_remote: Callable[[str, Received], None] | None = None) -> InMemoryKMs:
        """A Key Manager on each of ``stores`` (by node id), all handling material with
        ``crypto``, joined in memory."""
        return cls({node: KeyManager(node, store, crypto, timeout_s)
                    for node, store in stores.items()}, on_timer, on_lost, on_remote)

    def submit(self, node: str, event: Event, now: float) -> list[Outcome]:
        """Give ``event`` to the KM of ``node`` at time ``now`` (s) and carry every message
        that follows until none is left; the relays settled meanwhile, in order."""
        self._queue.append((node, event))
        settled: list[Outcome] = []
        while self._queue:
            at, event = self._queue.popleft()
            manager = self.managers.get(at)
            if manager is None and self._on_remote is not None \
                    and isinstance(event, Received):
                self._on_remote(at, event)
                continue
            if manager is None or at in self.stopped:
                if self._on_lost is not None:
                    self._on_lost(at, event)
                continue
            for action in manager.handle(event, now):
                if isinstance(action, Send):
                    self._queue.append((action.to, Received(at, action.message)))
                elif isinstance(action, StartTimer):
                    if self._on_timer is not None:
                        self._on_timer(at, action)
                else:
                    settled.append(action)
        return settled
