"""The key supply's pump on real SQLite stores: blocks are made only as fast as they are
stored (none made and dropped), a store gets a pump's blocks in one transaction, links share
a short budget fairly, and key that finds its pools full is counted as discarded."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from chain_scenario import CHAIN_SCENARIO
from prometheus_client.parser import text_string_to_metric_families

from qkdnet.files.networks import load_network
from qkdnet.keys.store import SQLiteKeyStore
from qkdnet.live import serve
from qkdnet.live.keynet import KeyNetwork, served_nodes
from qkdnet.live.launch import start_serve
from qkdnet.live.supply_pump import (
    CHECKPOINT_EVERY_S,
    CHECKPOINT_SCAN_PUMPS,
    FULL_RECHECK_S,
    FULL_RECOUNT_S,
    SupplyPump,
    _turn_shares,
)

BLOCK_BYTES = 1024


def _keynet(tmp_path: Path, capacity: int = 2**24) -> KeyNetwork:
    (tmp_path / "chain.yaml").write_text(CHAIN_SCENARIO)
    network = load_network(tmp_path / "chain.yaml")
    return KeyNetwork(network, tmp_path / "stores", served_nodes(network),
                      capacity_bytes_per_link=capacity)


def _held_blocks(store: SQLiteKeyStore, km_link: str) -> int:
    """Blocks of a KM-link a store holds unused (both directions)."""
    return (store.pool_bytes(km_link, True) + store.pool_bytes(km_link, False)) // BLOCK_BYTES


def _made(pump: SupplyPump) -> dict[str, int]:
    return {s.km_link: s.emulator.blocks_out for s in pump._supplies}


@pytest.fixture
def keynet(tmp_path: Path) -> KeyNetwork:
    return _keynet(tmp_path)


def test_blocks_wait_for_time_to_store_them_and_none_is_lost(keynet: KeyNetwork) -> None:
    """With no time to spare a pump stores one block; the rest wait in their devices, and a
    pump without a budget then stores every one of them: every block made is held at both
    ends, its numbers without a gap."""
    pump = keynet.supply
    pump.start(0.0, speedup=200.0)
    for _ in range(10):
        assert pump.pump(1.0, budget_s=0.0) == 1
    assert sum(_made(pump).values()) == 10
    assert pump.pump(1.0) > 0
    for s in pump._supplies:
        ends = (keynet.stores[s.a], keynet.stores[s.b])
        made = s.emulator.blocks_out
        assert s.emulator.pending(1.0) == 0 and made > 0
        assert [_held_blocks(e, s.km_link) for e in ends] == [made, made]
        assert [e.next_block(s.km_link) for e in ends] == [made, made]
    assert pump.deposited_blocks == sum(_made(pump).values())
    assert pump.discarded_bits == 0 and sum(pump.backlog_lost_bits.values()) == 0


def test_a_slow_link_gets_its_blocks_beside_a_fast_one(keynet: KeyNetwork) -> None:
    """One block per pump: the slow link's few waiting blocks are all stored within as many
    pumps as it has blocks times two, while the fast link's thousands wait."""
    pump = keynet.supply
    fast, slow = sorted(keynet.network.link)
    pump.start(0.0)
    pump.set_rates({fast: 4e6, slow: 3 * 8 * BLOCK_BYTES}, 0.0)
    pending = {s.link: s.emulator.pending(1.0) for s in pump._supplies}
    assert pending[slow] == 3 and pending[fast] > 400
    for _ in range(6):
        pump.pump(1.0, budget_s=0.0)
    out = {s.link: s.emulator.blocks_out for s in pump._supplies}
    assert out == {slow: 3, fast: 3}


def test_a_store_takes_a_pumps_blocks_in_one_transaction(keynet: KeyNetwork) -> None:
    """The middle node b, an end of both KM-links, commits all of a pump's blocks at once."""
    pump = keynet.supply
    pump.start(0.0)
    pump.set_rates(dict.fromkeys(keynet.network.link, 100 * 8 * BLOCK_BYTES), 0.0)
    begun: list[str] = []
    keynet.stores["b"]._db().set_trace_callback(
        lambda sql: begun.append(sql) if sql.startswith("BEGIN") else None)
    assert pump.pump(1.0) == 200
    assert begun == ["BEGIN IMMEDIATE"]


def test_key_that_finds_its_pools_full_is_counted_as_discarded(tmp_path: Path) -> None:
    """Pools of 16 blocks a link: every block made beyond them is discarded and counted, in
    bits; made = stored + discarded."""
    keynet = _keynet(tmp_path, capacity=16 * BLOCK_BYTES)
    pump = keynet.supply
    pump.start(0.0, speedup=200.0)
    pump.pump(5.0)
    pump.pump(10.0, budget_s=0.005)
    for s in pump._supplies:
        end = keynet.stores[s.a]
        assert _held_blocks(end, s.km_link) == 16
        made = s.emulator.blocks_out
        assert made > 16
        assert pump.discarded_full_bits[s.km_link] == (made - 16) * BLOCK_BYTES * 8
    assert pump.discarded_bits == sum(pump.discarded_full_bits.values()) > 0


def test_a_full_link_is_looked_at_again_after_the_recheck_and_loses_nothing_uncounted(
        tmp_path: Path) -> None:
    """Pools of 16 blocks, full: pumps within FULL_RECHECK_S make nothing and run no SQL in
    any store (an idle network's pump is free); after it, room a KM freed is refilled and
    every block made is held or counted as discarded."""
    keynet = _keynet(tmp_path, capacity=16 * BLOCK_BYTES)
    pump = keynet.supply
    pump.start(0.0, speedup=200.0)
    pump.pump(5.0)
    for t in (5.01, 5.02, 5.03):  # the checkpoints of the filling writes, one store a pump
        pump.pump(t)
    made = _made(pump)
    statements: list[str] = []
    for store in keynet.stores.values():
        store._db().set_trace_callback(statements.append)
    for step in range(1, 5):
        assert pump.pump(5.03 + step * FULL_RECHECK_S / 5) == 0
    assert _made(pump) == made and statements == []

    s = pump._supplies[0]
    a, b = keynet.stores[s.a], keynet.stores[s.b]
    out = a.pool_bytes(s.km_link, True) > 0  # a's fuller direction
    sender, receiver = (a, b) if out else (b, a)
    ranges, _ = sender.take_outbound(s.km_link, 2 * BLOCK_BYTES // 32)
    receiver.take_inbound(s.km_link, ranges)
    assert _held_blocks(a, s.km_link) == 14
    pump.pump(5.04 + FULL_RECHECK_S)
    for supply in pump._supplies:
        end = keynet.stores[supply.a]
        assert _held_blocks(end, supply.km_link) == 16
        taken = 2 if supply is s else 0
        assert (supply.emulator.blocks_out - 16 - taken) * BLOCK_BYTES * 8 \
            == pump.discarded_full_bits[supply.km_link]


def _full_keynet(tmp_path: Path) -> tuple[KeyNetwork, SupplyPump, float]:
    """Pools of 16 blocks, filled, and every write checkpointed (one store a pump, each at
    most once a CHECKPOINT_EVERY_S); with the time (s) of the last pump."""
    keynet = _keynet(tmp_path, capacity=16 * BLOCK_BYTES)
    pump = keynet.supply
    pump.start(0.0, speedup=200.0)
    t = 5.0
    pump.pump(t)
    while any(store.written for store in keynet.stores.values()):
        assert t < 5.0 + 2 * CHECKPOINT_EVERY_S
        t += 0.05
        pump.pump(t)
    return keynet, pump, t


def _count_room_calls(keynet: KeyNetwork, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    for node, store in keynet.stores.items():
        room = store.room
        monkeypatch.setattr(store, "room", lambda *a, room=room, node=node: (
            calls.append(node), room(*a))[1])
    return calls


def test_a_full_link_nobody_takes_from_is_not_recounted_but_its_key_is_counted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Full pools no store has written to since: at each recheck the key made meanwhile is
    counted as discarded without counting the room again, until FULL_RECOUNT_S."""
    keynet, pump, start = _full_keynet(tmp_path)
    t = start + FULL_RECHECK_S  # every link counted full once more: now at rest
    pump.pump(t)
    calls = _count_room_calls(keynet, monkeypatch)
    while t < start + FULL_RECOUNT_S - FULL_RECHECK_S:
        t += FULL_RECHECK_S
        assert pump.pump(t) == 0
    assert calls == []
    for s in pump._supplies:
        assert (s.emulator.blocks_out - 16) * BLOCK_BYTES * 8 \
            == pump.discarded_full_bits[s.km_link] > 0
    pump.pump(t + FULL_RECOUNT_S)
    assert calls  # counted again at last


def test_a_take_hidden_by_a_checkpoint_still_wakes_a_full_link(tmp_path: Path) -> None:
    """Key taken from a full link, then its stores checkpointed by the pump (no longer
    written) before the link's recheck: the recheck still finds the room and refills it."""
    keynet, pump, start = _full_keynet(tmp_path)
    t = start
    while t < start + CHECKPOINT_EVERY_S:  # at rest, full; the stores' checkpoints long past
        t += FULL_RECHECK_S
        pump.pump(t)
    s = pump._supplies[0]
    a, b = keynet.stores[s.a], keynet.stores[s.b]
    out = a.pool_bytes(s.km_link, True) > 0
    sender, receiver = (a, b) if out else (b, a)
    ranges, _ = sender.take_outbound(s.km_link, 2 * BLOCK_BYTES // 32)
    receiver.take_inbound(s.km_link, ranges)
    for step in range(1, 4):  # within the rest: the pump checkpoints both stores
        pump.pump(t + step * 0.01)
    assert not a.written and not b.written
    assert _held_blocks(a, s.km_link) == 14
    pump.pump(t + FULL_RECHECK_S)
    assert _held_blocks(a, s.km_link) == 16


def test_a_store_written_after_a_quiet_spell_is_found_within_the_scan(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing written, then one store written: each pump asks only its share of the stores
    whether they have written, and the written one is checkpointed within
    CHECKPOINT_SCAN_PUMPS pumps."""
    keynet, pump, t = _full_keynet(tmp_path)
    t += CHECKPOINT_EVERY_S  # every store's last checkpoint long past
    pump.pump(t)  # every full link looked at: none again within FULL_RECHECK_S
    asked: list[str] = []
    written = SQLiteKeyStore.written
    monkeypatch.setattr(SQLiteKeyStore, "written", property(
        lambda store: (asked.append(store.node), written.fget(store))[1]))  # type: ignore[attr-defined]
    checkpoints: list[str] = []
    for node, store in keynet.stores.items():
        store._db().set_trace_callback(
            lambda sql, node=node: checkpoints.append(node) if "wal_checkpoint" in sql else None)
    pump.pump(t + 0.01)
    assert 0 < len(asked) < len(keynet.stores) and checkpoints == []
    keynet.stores["c"].probe()  # one small write
    for step in range(1, CHECKPOINT_SCAN_PUMPS + 1):
        pump.pump(t + 0.01 + step * FULL_RECHECK_S / (CHECKPOINT_SCAN_PUMPS + 1))
    assert checkpoints == ["c"]


def test_a_busy_store_is_checkpointed_at_most_once_a_period(keynet: KeyNetwork) -> None:
    """Stores written at every pump are checkpointed in turn, each at most once per
    CHECKPOINT_EVERY_S, and again once that has passed."""
    pump = keynet.supply
    pump.start(0.0, speedup=50.0)
    checkpoints: dict[str, int] = dict.fromkeys(keynet.stores, 0)
    for node, store in keynet.stores.items():
        store._db().set_trace_callback(
            lambda sql, node=node: checkpoints.__setitem__(node, checkpoints[node] + 1)
            if "wal_checkpoint" in sql else None)
    steps = 20
    for step in range(1, steps + 1):
        assert pump.pump(step * CHECKPOINT_EVERY_S / steps) > 0  # every store written
    assert checkpoints == dict.fromkeys(keynet.stores, 1)
    for step in range(1, 7):
        pump.pump(CHECKPOINT_EVERY_S * (1 + step / steps))
    assert checkpoints == dict.fromkeys(keynet.stores, 2)


def test_shares_go_in_turns_of_at_most_a_quantum() -> None:
    """Links get what they want up to the quantum, in turn from the first position, round
    again while blocks are left; everything wanted when it fits; the last served is named."""
    assert _turn_shares([3, 100, 50], 20, 0, quantum=8) == ([3, 9, 8], 1)
    assert _turn_shares([3, 100, 50], 10, 1, quantum=8) == ([0, 8, 2], 2)
    assert _turn_shares([2, 5], None, 0) == ([2, 5], 1)
    assert _turn_shares([0, 0], 4, 0) == ([0, 0], None)
    assert [_turn_shares([9, 9], 1, first) for first in range(2)] == [([1, 0], 0),
                                                                       ([0, 1], 1)]


def test_blocks_only_one_end_received_are_all_discarded_on_restart(tmp_path: Path) -> None:
    """A crash between two stores' transactions can leave a pump's blocks at one end only:
    the restart discards every one of them, and the ends then resume at the same number."""
    keynet = _keynet(tmp_path)
    keynet.supply.start(0.0, speedup=50.0)
    keynet.supply.pump(1.0)
    a = keynet.stores["a"]
    lone = a.next_block("km:a~b")
    held = a.pool_bytes("km:a~b", True)
    for number in range(lone, lone + 3):
        a.deposit("km:a~b", number, bytes(BLOCK_BYTES), outbound=True)
    keynet.close()
    again = _keynet(tmp_path)
    again.supply.start(0.0)
    assert again.stores["a"].pool_bytes("km:a~b", True) == held
    assert again.stores["b"].next_block("km:a~b") < again.stores["a"].next_block("km:a~b")
    again.supply.pump(5.0)
    assert again.stores["a"].next_block("km:a~b") == again.stores["b"].next_block("km:a~b")
    again.close()


def test_serve_counts_key_discarded_for_full_pools_on_metrics(tmp_path: Path) -> None:
    """`qkdnet serve` prefilled with twice what its pools hold: /metrics has a counter per
    KM-link of the bits discarded, at least the prefill that did not fit."""
    (tmp_path / "scenario.yaml").write_text(CHAIN_SCENARIO)
    served = start_serve(tmp_path / "live", str(tmp_path / "scenario.yaml"),
                         ["--prefill-bits", str(2**18), "--pool-capacity-bits", str(2**17),
                          "--no-dynamics"])
    try:
        text = httpx.get(f"{served.manifest['om_url']}/metrics", timeout=10).text
    finally:
        served.stop()
    [family] = [f for f in text_string_to_metric_families(text)
                if f.name == "qkdnet_kmlink_discarded_bits"]
    found = {s.labels["km_link"]: s.value for s in family.samples if s.name.endswith("_total")}
    assert set(found) == {"km:a~b", "km:b~c"}
    assert all(bits >= 2**17 for bits in found.values()), found


def test_the_pump_takes_more_time_while_no_kme_delivers_keys(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Serve's pump runs with the idle budget after a pause with no key delivered, and
    with the short one after a pause in which a KME delivered keys."""
    budgets: list[float] = []

    class Supply:
        def pump(self, now: float, budget_s: float) -> int:
            budgets.append(budget_s)
            if len(budgets) == 2:
                Net.keys_relayed += 1  # a key delivered before the third pump
            return 0

    class Net:
        supply = Supply()
        keys_relayed = keys_released = 0

    class Live:
        def report_now(self) -> None:
            pass

    monkeypatch.setattr(serve, "PUMP_INTERVAL_S", 0.0)

    async def go() -> None:
        task = asyncio.create_task(serve._pump(Net(), Live()))  # type: ignore[arg-type]
        while len(budgets) < 4:
            await asyncio.sleep(0)
        task.cancel()

    asyncio.run(go())
    assert budgets[:4] == [serve.PUMP_IDLE_BUDGET_S, serve.PUMP_IDLE_BUDGET_S,
                           serve.PUMP_BUDGET_S, serve.PUMP_IDLE_BUDGET_S]
