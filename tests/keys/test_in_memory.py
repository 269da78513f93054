"""Key Managers of many nodes joined in memory: messages are carried in order through a
work queue (a 64-hop relay needs no deeper stack than a 1-hop one), a stopped node hears
nothing and the source's timer fails the relay, and each submit returns the relays it
settled, in order."""

from __future__ import annotations

import inspect
import random
from dataclasses import dataclass, field

from qkdnet.keys.in_memory import InMemoryKMs
from qkdnet.keys.manager import KeyManager
from qkdnet.keys.memory_store import MemoryKeyStore
from qkdnet.keys.messages import (
    Event,
    ForwardKey,
    KeyDelivered,
    KeyFailed,
    KeyRequest,
    Received,
    RelayAbort,
    StartTimer,
    TimerExpired,
)
from qkdnet.keys.pool import UNIT_BYTES, UnitRange
from qkdnet.keys.relay_crypto import OneTimePad
from qkdnet.keys.route import Route
from qkdnet.keys.supply import deliver
from qkdnet.quantum.key_source import KeyBlock


def _stack_depth() -> int:
    frame, depth = inspect.currentframe(), 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1
    return depth


class DepthStore(MemoryKeyStore):
    """A memory store that notes how deep the stack is whenever it takes a pad inbound."""

    def __init__(self, node: str) -> None:
        super().__init__(node)
        self.depths: list[int] = []

    def take_inbound(self, km_link: str, ranges: tuple[UnitRange, ...]) -> bytes:
        self.depths.append(_stack_depth())
        return super().take_inbound(km_link, ranges)


@dataclass
class Chain:
    """Nodes n0..n<hops> in a line, KM-link l<i> between n<i> and n<i+1>, pools filled,
    their KMs joined in memory; timers and lost messages recorded."""

    hops: int
    seed: int = 0
    stores: dict[str, DepthStore] = field(default_factory=dict)
    timers: list[tuple[str, StartTimer]] = field(default_factory=list)
    lost: list[tuple[str, Event]] = field(default_factory=list)

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        crypto = OneTimePad(rng.randbytes)
        self.stores = {f"n{i}": DepthStore(f"n{i}") for i in range(self.hops + 1)}
        for i in range(self.hops):
            for b in range(4):
                block = KeyBlock(f"l{i}", b, rng.randbytes(8 * UNIT_BYTES))
                assert deliver(block, self.stores[f"n{i}"], self.stores[f"n{i + 1}"])
        self.kms = InMemoryKMs(
            {n: KeyManager(n, store, crypto) for n, store in self.stores.items()},
            on_timer=lambda node, timer: self.timers.append((node, timer)),
            on_lost=lambda node, event: self.lost.append((node, event)))

    def request(self, key_id: str, a: int, b: int, size: int = 256) -> KeyRequest:
        step = 1 if b >= a else -1
        nodes = tuple(f"n{i}" for i in range(a, b + step, step))
        links = tuple(f"l{min(i, i + step)}" for i in range(a, b, step))
        return KeyRequest((key_id,), size, "master", "slave", Route(nodes, links))

    def held(self, node: str, key_id: str) -> bytes | None:
        store = self.stores[node]
        if store.held_for(key_id) is None:
            return None
        [key] = store.release_keys([key_id], "master", "slave")
        return key.material


def test_a_64_hop_relay_is_carried_without_recursion() -> None:
    """Every hop of a 64-hop relay is handled at the same stack depth, and the master's
    key is the one the slave's node holds."""
    chain = Chain(hops=64)
    [outcome] = chain.kms.submit("n0", chain.request("k", 0, 64), 0.0)
    assert isinstance(outcome, KeyDelivered) and len(outcome.material) == 32
    assert chain.held("n64", "k") == outcome.material
    depths = [d for i in range(1, 65) for d in chain.stores[f"n{i}"].depths]
    assert len(depths) == 64 and len(set(depths)) == 1
    assert chain.lost == []


def test_a_stopped_node_hears_nothing_and_the_sources_timer_fails_the_relay() -> None:
    """A message to a stopped node is lost (``on_lost`` hears of it), the source's timer
    goes to ``on_timer``; fed back, it fails the relay and the destination holds nothing,
    even when the lost hop is delivered late."""
    chain = Chain(hops=2)
    chain.kms.stopped.add("n1")
    assert chain.kms.submit("n0", chain.request("k", 0, 2), 0.0) == []
    [(node, late)] = chain.lost
    assert node == "n1" and isinstance(late, Received)
    assert isinstance(late.message, ForwardKey)
    [(source, timer)] = chain.timers
    assert source == "n0" and timer.tag == "k" and timer.deadline > 0.0
    [failed] = chain.kms.submit(source, TimerExpired(timer.tag), timer.deadline)
    assert isinstance(failed, KeyFailed) and failed.relay_id == "k"
    chain.kms.stopped.discard("n1")
    assert chain.kms.submit("n1", late, timer.deadline + 1.0) == []
    assert chain.held("n2", "k") is None


def test_messages_to_a_stopped_destination_or_an_unknown_node_are_lost() -> None:
    """The hop to a stopped destination and the source's abort are both lost to it; an
    event for a node without a KM is lost too; nothing is delivered."""
    chain = Chain(hops=2)
    chain.kms.stopped.add("n2")
    assert chain.kms.submit("n0", chain.request("k", 0, 2), 0.0) == []
    [(_, timer)] = chain.timers
    [failed] = chain.kms.submit("n0", TimerExpired(timer.tag), timer.deadline)
    assert isinstance(failed, KeyFailed)
    assert chain.kms.submit("n9", TimerExpired("x"), 0.0) == []
    assert [node for node, _ in chain.lost] == ["n2", "n2", "n9"]
    kinds = [type(e.message) for _, e in chain.lost[:2] if isinstance(e, Received)]
    assert kinds == [ForwardKey, RelayAbort]
    chain.kms.stopped.clear()
    assert chain.held("n2", "k") is None


def test_without_callbacks_lost_messages_and_timers_are_dropped_quietly() -> None:
    """A driver whose relays settle at once may give no callbacks: a lost hop then just
    leaves the relay pending."""
    chain = Chain(hops=1)
    kms = InMemoryKMs(chain.kms.managers)
    kms.stopped.add("n1")
    assert kms.submit("n0", chain.request("k", 0, 1), 0.0) == []
    assert kms.managers["n0"].pending == 1


def test_several_relays_settle_in_the_order_they_were_submitted() -> None:
    """Relays in both directions, a same-node one and refused ones each return their own
    outcome from their submit, in order; every delivered key is the one held at its
    destination."""
    chain = Chain(hops=3, seed=7)
    plan = [("a", 0, 3, 256), ("b", 3, 0, 512), ("c", 2, 2, 128), ("d", 1, 3, 100),
            ("e", 0, 3, 8 * 8 * UNIT_BYTES * 3), ("f", 3, 1, 64)]
    outcomes = [o for key_id, a, b, size in plan
                for o in chain.kms.submit(f"n{a}", chain.request(key_id, a, b, size), 0.0)]
    assert [o.relay_id for o in outcomes] == [key_id for key_id, *_ in plan]
    assert [type(o) for o in outcomes] == [KeyDelivered] * 3 + [KeyFailed] * 2 + \
        [KeyDelivered]
    for outcome, (key_id, _, b, size) in zip(outcomes, plan, strict=True):
        if isinstance(outcome, KeyDelivered):
            assert len(outcome.material) == size // 8
            assert chain.held(f"n{b}", key_id) == outcome.material
        else:
            assert chain.held(f"n{b}", key_id) is None
