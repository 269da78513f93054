"""End-to-end OTP key relay between Key Managers, driven by a tiny in-test driver."""

from __future__ import annotations

import hashlib
import hmac
import random
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qkdnet.keys.manager import KeyManager
from qkdnet.keys.memory_store import MemoryKeyStore
from qkdnet.keys.messages import (
    Action,
    Event,
    ForwardKey,
    KeyDelivered,
    KeyFailed,
    KeyRequest,
    Received,
    RelayComplete,
    Send,
    StartTimer,
    TimerExpired,
)
from qkdnet.keys.pool import UNIT_BYTES, KeyStore, UnitRange
from qkdnet.keys.relay_cost import pad_units
from qkdnet.keys.relay_crypto import OneTimePad, hmac_sha256, xor
from qkdnet.keys.route import Route
from qkdnet.keys.store import SQLiteKeyStore
from qkdnet.keys.supply import deliver
from qkdnet.quantum.key_source import KeyBlock


class RecordingStore(MemoryKeyStore):
    """A memory store that remembers every unit it handed out."""

    def __init__(self, node: str) -> None:
        super().__init__(node)
        self.taken: list[tuple[str, int, int]] = []

    def _note(self, km_link: str, ranges: tuple[UnitRange, ...]) -> None:
        self.taken += [(km_link, r.block, r.start + i) for r in ranges for i in range(r.count)]

    def take_outbound(self, km_link: str, units: int) -> tuple[tuple[UnitRange, ...], bytes]:
        ranges, pad = super().take_outbound(km_link, units)
        self._note(km_link, ranges)
        return ranges, pad

    def take_inbound(self, km_link: str, ranges: tuple[UnitRange, ...]) -> bytes:
        pad = super().take_inbound(km_link, ranges)
        self._note(km_link, ranges)
        return pad


class RecordingSQLiteStore(SQLiteKeyStore):
    """A SQLite store (a real file) that remembers every unit it handed out."""

    def __init__(self, path: Path, node: str) -> None:
        super().__init__(path, node)
        self.taken: list[tuple[str, int, int]] = []

    def take_outbound(self, km_link: str, units: int) -> tuple[tuple[UnitRange, ...], bytes]:
        ranges, pad = super().take_outbound(km_link, units)
        self.taken += [(km_link, r.block, r.start + i) for r in ranges for i in range(r.count)]
        return ranges, pad

    def take_inbound(self, km_link: str, ranges: tuple[UnitRange, ...]) -> bytes:
        pad = super().take_inbound(km_link, ranges)
        self.taken += [(km_link, r.block, r.start + i) for r in ranges for i in range(r.count)]
        return pad


@dataclass
class Chain:
    """Nodes n0..nk in a line, KM-link ``l<i>`` between n<i> and n<i+1>, pools filled; the
    stores in memory, or SQLite files in ``folder``."""

    hops: int
    blocks_per_link: int = 8
    seed: int = 0
    folder: Path | None = None
    stores: dict[str, RecordingStore | RecordingSQLiteStore] = field(default_factory=dict)
    managers: dict[str, KeyManager] = field(default_factory=dict)
    delivered: dict[str, bytes] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    timers: list[tuple[str, StartTimer]] = field(default_factory=list)

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        for i in range(self.hops + 1):
            node = f"n{i}"
            self.stores[node] = (RecordingStore(node) if self.folder is None else
                                 RecordingSQLiteStore(self.folder / f"{node}.sqlite", node))
            self.managers[node] = KeyManager(node, self.stores[node],
                                             OneTimePad(rng.randbytes))
        for i in range(self.hops):
            for b in range(self.blocks_per_link):
                block = KeyBlock(f"l{i}", b, rng.randbytes(8 * UNIT_BYTES))
                assert deliver(block, self.stores[f"n{i}"], self.stores[f"n{i + 1}"])

    def route(self, a: int, b: int) -> Route:
        step = 1 if b >= a else -1
        nodes = tuple(f"n{i}" for i in range(a, b + step, step))
        links = tuple(f"l{min(i, i + step)}" for i in range(a, b, step))
        return Route(nodes, links)

    def request(self, key_id: str, a: int, b: int, size: int = 256, count: int = 1
                ) -> list[tuple[str, Event]]:
        """The first events of a relay of ``count`` keys (key_IDs ``key_id``, then
        ``key_id.1``...) from n<a> to n<b>; run them with :meth:`run`."""
        ids = (key_id, *(f"{key_id}.{i}" for i in range(1, count)))
        return [(f"n{a}", KeyRequest(ids, size, "master", "slave", self.route(a, b)))]

    def step(self, node: str, event: Event, now: float = 0.0) -> list[tuple[str, Event]]:
        return self._follow(node, self.managers[node].handle(event, now))

    def _follow(self, node: str, actions: list[Action]) -> list[tuple[str, Event]]:
        out: list[tuple[str, Event]] = []
        for a in actions:
            if isinstance(a, Send):
                out.append((a.to, Received(node, a.message)))
            elif isinstance(a, StartTimer):
                self.timers.append((node, a))
            elif isinstance(a, KeyDelivered):
                self.delivered[a.relay_id] = a.material
            elif isinstance(a, KeyFailed):
                self.failed[a.relay_id] = a.reason
        return out

    def run(self, events: list[tuple[str, Event]],
            pick: Callable[[int], int] = lambda n: 0,
            drop: Callable[[tuple[str, Event]], bool] = lambda e: False) -> None:
        """Deliver events until none is left, in the order ``pick`` chooses."""
        queue = list(events)
        while queue:
            node, event = queue.pop(pick(len(queue)))
            if not drop((node, event)):
                queue += self.step(node, event)

    def held(self, node: str, key_id: str) -> bytes | None:
        store: KeyStore = self.stores[node]
        if store.held_count("master", "slave") == 0:
            return None
        try:
            [key] = store.release_keys([key_id], "master", "slave")
        except Exception:
            return None
        return key.material


def test_a_key_crosses_three_hops_and_arrives_identical() -> None:
    """Source and destination end with the same key under the same key_ID."""
    chain = Chain(hops=3)
    chain.run(chain.request("k1", 0, 3))
    assert "k1" in chain.delivered
    assert chain.held("n3", "k1") == chain.delivered["k1"]


def test_every_hop_consumes_its_pad_once_at_both_ends() -> None:
    """Each KM-link loses the same units at both ends: one pad plus one MAC key."""
    chain = Chain(hops=4)
    before = {n: s.pool_bytes("l1", outbound=True) for n, s in chain.stores.items()
              if n in ("n1",)}
    chain.run(chain.request("k", 0, 4, size=512))
    used = pad_units(512)
    for i in range(4):
        ends = (chain.stores[f"n{i}"], chain.stores[f"n{i + 1}"])
        taken = [sorted(t for t in s.taken if t[0] == f"l{i}") for s in ends]
        assert taken[0] == taken[1] and len(taken[0]) == used
    assert chain.stores["n1"].pool_bytes("l1", outbound=True) == before["n1"] - used * UNIT_BYTES


def test_nothing_is_held_or_delivered_when_a_hop_has_no_key() -> None:
    """An empty KM-link in the middle fails the relay; the source delivers nothing."""
    chain = Chain(hops=3)
    while chain.stores["n1"].pool_bytes("l1", outbound=True):
        chain.stores["n1"].take_outbound("l1", 1)
    chain.run(chain.request("k", 0, 3))
    assert "k" not in chain.delivered
    assert "no key on KM-link l1" in chain.failed["k"]
    assert chain.held("n3", "k") is None


def test_a_lost_message_times_out_and_a_late_arrival_is_dropped() -> None:
    """Hop down: the source gives up at its deadline, tells the destination, and the key
    arriving afterwards is not held."""
    chain = Chain(hops=2)
    lost: list[tuple[str, Event]] = []

    def drop(item: tuple[str, Event]) -> bool:
        node, event = item
        if node == "n2" and isinstance(event, Received) and \
                isinstance(event.message, ForwardKey):
            lost.append(item)
            return True
        return False

    chain.run(chain.request("k", 0, 2), drop=drop)
    [(node, timer)] = chain.timers
    chain.run(chain.step(node, TimerExpired(timer.tag), now=timer.deadline))
    assert chain.failed["k"] == "relay timed out"
    chain.run(lost)  # the delayed hop finally arrives
    assert chain.held("n2", "k") is None
    assert "k" not in chain.delivered


def test_tampered_ciphertext_fails_authentication() -> None:
    """A flipped bit on the way is caught by the hop's MAC; nothing is delivered."""
    chain = Chain(hops=2)
    [(node, event)] = chain.step(*chain.request("k", 0, 2)[0])
    assert isinstance(event, Received) and isinstance(event.message, ForwardKey)
    bad = event.message
    forged = ForwardKey(bad.key_ids, bad.size_bits, bad.master_sae, bad.slave_sae, bad.route,
                        bad.hop, bad.pad, xor(bad.ciphertext, b"\x01" + bytes(31)), bad.tag)
    chain.run([(node, Received(event.sender, forged))])
    assert "authentication failed" in chain.failed["k"]


def test_the_hop_mac_is_hmac_sha256_over_every_field_and_any_change_fails() -> None:
    """A hop's tag is HMAC-SHA256, keyed by the pad's last unit, over the SHA-256 of the
    relay's shared fields, the hop's fields and the ciphertext, however often the same
    relay's fields were sealed before; a message whose fields differ, even in an object
    equal to the sealed one but for one node, fails."""
    crypto = OneTimePad(random.Random(3).randbytes)
    route = Route(tuple(f"n{i}" for i in range(5)), tuple(f"l{i}" for i in range(4)))
    pad = random.Random(4).randbytes(2 * UNIT_BYTES)
    keys = random.Random(5).randbytes(UNIT_BYTES)
    sealed = [crypto.seal(ForwardKey(("k",), 256, "m", "s", route, hop,
                                     (UnitRange(7, hop, 2),), b"", b""), keys, pad)
              for hop in range(3)]
    shared = hashlib.sha256(b"k|256|m|s|n0,n1,n2,n3,n4|l0,l1,l2,l3").digest()
    header = shared + b"2|7:2:2"
    assert sealed[2].tag == hmac.new(pad[-UNIT_BYTES:], header + sealed[2].ciphertext,
                                     hashlib.sha256).digest()
    assert crypto.unseal(sealed[2], pad) == keys
    copy = Route(tuple(route.nodes), tuple(route.km_links))
    assert crypto.unseal(sealed[2]._replace(route=copy), pad) == keys
    changes = {"route": Route(("n0", "n1", "x", "n3", "n4"), route.km_links),
               "key_ids": ("j",), "size_bits": 128, "master_sae": "m2", "slave_sae": "s2",
               "hop": 1, "pad": (UnitRange(7, 2, 1),)}
    for name, value in changes.items():
        assert crypto.unseal(sealed[2]._replace(**{name: value}), pad) is None, name
        assert crypto.unseal(sealed[2], pad) == keys  # the cache was not fooled either way


@given(st.binary(max_size=100), st.binary(max_size=600))
def test_hmac_sha256_is_the_standard_library_hmac(key: bytes, message: bytes) -> None:
    """The hop MAC's own HMAC-SHA256 gives hmac's tag for any key and message."""
    assert hmac_sha256(key, message) == hmac.digest(key, message, "sha256")


def test_a_replayed_hop_is_refused_because_its_pad_is_gone() -> None:
    """The same ForwardKey twice: the second finds its pad units deleted."""
    chain = Chain(hops=2)
    [(node, event)] = chain.step(*chain.request("k", 0, 2)[0])
    chain.run([(node, event)])
    assert "k" in chain.delivered
    replies = chain.step(node, event)
    assert any("pad not held" in getattr(e.message, "reason", "") for _, e in replies
               if isinstance(e, Received))


def test_a_forged_completion_is_ignored() -> None:
    """Only the destination, which knows the key, can complete the relay."""
    chain = Chain(hops=2)
    chain.run(chain.request("k", 0, 2), drop=lambda item: item[0] == "n2")
    chain.run([("n0", Received("n2", RelayComplete("k", bytes(32))))])
    assert "k" not in chain.delivered


def test_keys_of_one_request_travel_together_and_pay_one_mac_key_per_hop() -> None:
    """Three keys in one relay: each hop takes three pads and one MAC key, and the slave's
    node holds each key under its own key_ID, equal to its slice of what the master got."""
    chain = Chain(hops=2)
    chain.run(chain.request("k", 0, 2, size=256, count=3))
    material = chain.delivered["k"]
    assert len(material) == 3 * 32
    for hop in range(2):
        assert len([t for t in chain.stores[f"n{hop}"].taken if t[0] == f"l{hop}"]) == 4
    for i, key_id in enumerate(("k", "k.1", "k.2")):
        assert chain.held("n2", key_id) == material[32 * i:32 * (i + 1)]


def test_same_node_pairs_get_a_key_without_relay() -> None:
    """Master and slave at one node: the key is held there at once."""
    chain = Chain(hops=1)
    chain.run(chain.request("k", 1, 1))
    assert chain.held("n1", "k") == chain.delivered["k"]


def test_sizes_must_be_whole_bytes() -> None:
    """ETSI sizes are multiples of 8 bits."""
    chain = Chain(hops=1)
    chain.run(chain.request("k", 0, 1, size=100))
    assert "multiple of 8" in chain.failed["k"]


@contextmanager
def _chain(kind: str, hops: int, seed: int) -> Iterator[Chain]:
    """A Chain of 4 blocks per link with memory stores, or SQLite files in a fresh folder."""
    if kind == "memory":
        yield Chain(hops=hops, blocks_per_link=4, seed=seed)
        return
    with tempfile.TemporaryDirectory() as folder:
        chain = Chain(hops=hops, blocks_per_link=4, seed=seed, folder=Path(folder))
        try:
            yield chain
        finally:
            for store in chain.stores.values():
                store.close()


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
@settings(max_examples=60, deadline=None)
@given(hops=st.integers(1, 5), requests=st.lists(
    st.tuples(st.integers(0, 5), st.integers(0, 5), st.sampled_from([64, 256, 1024])),
    min_size=1, max_size=8), order_seed=st.integers(0, 2**32 - 1))
def test_any_interleaving_delivers_matching_keys_and_never_reuses_a_pad(
        kind: str, hops: int, requests: list[tuple[int, int, int]], order_seed: int) -> None:
    """Whatever the routes and the order messages are handled in, every delivered key is
    the one held at its destination, no unit of key is used twice, and a relay that fails
    leaves nothing held (memory stores and SQLite files alike)."""
    with _chain(kind, hops, order_seed) as chain:
        _interleave(chain, hops, requests, order_seed)


def _interleave(chain: Chain, hops: int, requests: list[tuple[int, int, int]],
                order_seed: int) -> None:
    rng = random.Random(order_seed)
    events: list[tuple[str, Event]] = []
    ends = {}
    for i, (a, b, size) in enumerate(requests):
        a, b = a % (hops + 1), b % (hops + 1)
        ends[f"k{i}"] = f"n{b}"
        events += chain.request(f"k{i}", a, b, size)
    chain.run(events, pick=lambda n: rng.randrange(n))
    for key_id, node in ends.items():
        held = chain.held(node, key_id)
        if key_id in chain.delivered:
            assert held == chain.delivered[key_id]
        else:
            assert key_id in chain.failed and held is None
    for store in chain.stores.values():
        assert len(store.taken) == len(set(store.taken))


def test_a_relay_hop_commits_its_two_store_calls_once(tmp_path: Path) -> None:
    """On SQLite files, the middle node's inbound and outbound takes, and the destination's
    take and hold, are each one BEGIN IMMEDIATE; the key still arrives."""
    chain = Chain(hops=2, folder=tmp_path)
    begun: dict[str, list[str]] = {"n1": [], "n2": []}
    for node, seen in begun.items():
        store = chain.stores[node]
        assert isinstance(store, SQLiteKeyStore)
        store._db().set_trace_callback(
            lambda sql, seen=seen: seen.append(sql) if sql.startswith("BEGIN") else None)
    chain.run(chain.request("k", 0, 2))
    assert begun == {"n1": ["BEGIN IMMEDIATE"], "n2": ["BEGIN IMMEDIATE"]}
    assert chain.held("n2", "k") == chain.delivered["k"]
    for store in chain.stores.values():
        store.close()
