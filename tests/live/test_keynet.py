"""The in-process key network: relays over real SQLite stores, supply that resumes."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from qkdnet.control.controller import Controller
from qkdnet.errors import ParameterError
from qkdnet.files.networks import load_network
from qkdnet.keys.etsi014 import ApiError
from qkdnet.keys.store import SQLiteKeyStore
from qkdnet.live.keynet import KeyNetwork, served_nodes
from qkdnet.topology.model import SAE, Network, NodeKind

SCENARIO = """\
qkdnet_scenario: 1
name: chain
nodes:
  - {id: a, kind: backbone_access, lat: 30, lon: 110}
  - {id: b, kind: backbone_relay, lat: 30.3, lon: 110.3}
  - {id: c, kind: backbone_access, lat: 30.6, lon: 110.6}
qkd_links:
  - {a: a, b: b, length_km: 40, loss_db: 10, device_type: I}
  - {a: b, b: c, length_km: 40, loss_db: 10, device_type: I}
saes:
  - {id: sae-a, node: a}
  - {id: sae-c, node: c}
"""


@pytest.fixture
def chain(tmp_path: Path) -> Network:
    path = tmp_path / "chain.yaml"
    path.write_text(SCENARIO)
    return load_network(path)


def _run(keynet: KeyNetwork, master: str, slave: str, n: int) -> list[tuple[str, bytes]]:
    async def go() -> list[tuple[str, bytes]]:
        loop = asyncio.get_running_loop()
        keynet.supply.start(loop.time(), prefill_bits=100_000)
        keynet.supply.pump(loop.time())
        return await keynet.enc_keys(master, slave, n, 256)
    return asyncio.run(go())


def test_keys_relayed_over_sqlite_stores_reach_the_slave_once(chain: Network,
                                                             tmp_path: Path) -> None:
    """Master's keys are at the slave's node under the same IDs, and released once."""
    keynet = KeyNetwork(chain, tmp_path / "stores", served_nodes(chain))
    keys = _run(keynet, "sae-a", "sae-c", 3)
    assert asyncio.run(keynet.dec_keys("sae-c", "sae-a", [k for k, _ in keys])) == keys
    with pytest.raises(ApiError) as again:
        asyncio.run(keynet.dec_keys("sae-c", "sae-a", [keys[0][0]]))
    assert again.value.status == 400
    keynet.close()


def test_calls_of_one_turn_commit_each_store_once_and_answer_after_it(
        chain: Network, tmp_path: Path) -> None:
    """Eight Get key calls a -> c at once (as a KME's connections bring them): one round,
    each of the three stores on the route committed once, and every key reaches the slave
    once; eight in a row are eight rounds."""
    keynet = KeyNetwork(chain, tmp_path / "stores", served_nodes(chain))

    async def go() -> list[list[tuple[str, bytes]]]:
        loop = asyncio.get_running_loop()
        keynet.supply.start(loop.time(), prefill_bits=100_000)
        keynet.supply.pump(loop.time())
        before = (keynet.commits.rounds, keynet.commits.commits)
        at_once = await asyncio.gather(*(keynet.enc_keys("sae-a", "sae-c", 1, 256)
                                         for _ in range(8)))
        assert (keynet.commits.rounds - before[0], keynet.commits.commits - before[1]) \
            == (1, 3)
        in_a_row = [await keynet.enc_keys("sae-a", "sae-c", 1, 256) for _ in range(8)]
        assert keynet.commits.rounds - before[0] == 9
        return at_once + in_a_row

    keys = [key for call in asyncio.run(go()) for key in call]
    assert len({k for k, _ in keys}) == 16
    assert asyncio.run(keynet.dec_keys("sae-c", "sae-a", [k for k, _ in keys])) == keys
    keynet.close()


def test_a_restart_resumes_key_supply_past_the_blocks_held(chain: Network,
                                                          tmp_path: Path) -> None:
    """After a restart the emulators continue with new block numbers, so fresh key flows
    instead of replaying numbers the stores already know (which they would ignore)."""
    first = KeyNetwork(chain, tmp_path / "stores", served_nodes(chain))
    _run(first, "sae-a", "sae-c", 1)
    before = first.stores["a"].next_block("km:a~b")
    first.close()
    again = KeyNetwork(chain, tmp_path / "stores", served_nodes(chain))
    _run(again, "sae-a", "sae-c", 1)
    assert again.stores["a"].next_block("km:a~b") > before
    assert again.stores["b"].next_block("km:a~b") == again.stores["a"].next_block("km:a~b")
    again.close()


def test_a_block_only_one_end_received_is_discarded_on_restart(chain: Network,
                                                              tmp_path: Path) -> None:
    """A crash between the two deposits of a block leaves it at one end; the restart
    removes it so no relay pads with key the other end lacks."""
    keynet = KeyNetwork(chain, tmp_path / "stores", served_nodes(chain))
    _run(keynet, "sae-a", "sae-c", 1)
    lone = keynet.stores["a"].next_block("km:a~b")
    keynet.stores["a"].deposit("km:a~b", lone, bytes(range(32)) * 4, outbound=lone % 2 == 0)
    held = keynet.stores["a"].pool_bytes("km:a~b", outbound=lone % 2 == 0)
    keynet.close()
    again = KeyNetwork(chain, tmp_path / "stores", served_nodes(chain))
    asyncio.run(_start(again))
    assert again.stores["a"].pool_bytes("km:a~b", outbound=lone % 2 == 0) <= held - 128
    again.close()


async def _start(keynet: KeyNetwork) -> None:
    keynet.supply.start(asyncio.get_running_loop().time())


def test_served_nodes_skip_users_without_applications(chain: Network) -> None:
    """Users behind switches run no KME unless an SAE sits there."""
    from qkdnet.topology.cn_qcn import build_cn_qcn

    network = build_cn_qcn()
    nodes = set(served_nodes(network))
    users = {n.id for n in network.nodes_of(NodeKind.USER)}
    assert nodes & users == {"shanghai-m1-u1"}
    assert {"harbin", "shenzhen", "xinjiang-gs"} <= nodes
    assert SAE("sae-a", "a") in chain.saes


def test_a_stopped_node_makes_no_key_and_its_links_report_down(chain: Network,
                                                              tmp_path: Path) -> None:
    """While b is stopped its QKD-links fill no pool and its KM-links report down; a relay
    through it fails (its KM hears nothing) and the key the sender spent is not delivered;
    started again, b's links fill once more with the key its store kept."""
    keynet = KeyNetwork(chain, tmp_path / "stores", served_nodes(chain), timeout_s=0.2)

    async def go() -> None:
        loop = asyncio.get_running_loop()
        keynet.supply.start(loop.time(), prefill_bits=100_000)
        keynet.supply.pump(loop.time())
        kept = keynet.stores["b"].pool_bytes("km:b~c", outbound=True)
        keynet.faults.stop("b")
        assert keynet.faults.down_links() == {"a--b", "b--c"}
        assert [s.up for s in keynet.supply.link_states()] == [False, False]
        assert keynet.supply.pump(loop.time() + 60) == 0
        with pytest.raises(ApiError) as failed:
            await keynet.enc_keys("sae-a", "sae-c", 1, 256)
        assert failed.value.status == 503
        keynet.faults.stop("b", False)
        assert keynet.faults.down_links() == set()
        assert all(s.up for s in keynet.supply.link_states())
        assert keynet.stores["b"].pool_bytes("km:b~c", outbound=True) == kept
        assert keynet.supply.pump(loop.time() + 120) > 0
        with pytest.raises(ParameterError, match="nowhere"):
            keynet.faults.stop("nowhere")

    asyncio.run(go())
    keynet.close()


RING = """\
qkdnet_scenario: 1
name: ring
nodes:
  - {id: a, kind: backbone_access, lat: 30, lon: 110}
  - {id: b, kind: backbone_relay, lat: 30.3, lon: 110.3}
  - {id: c, kind: backbone_access, lat: 30.6, lon: 110.6}
  - {id: d, kind: backbone_relay, lat: 29.7, lon: 110.3}
  - {id: e, kind: backbone_relay, lat: 29.9, lon: 110.9}
qkd_links:
  - {a: a, b: b, length_km: 40, loss_db: 10, device_type: I}
  - {a: b, b: c, length_km: 40, loss_db: 10, device_type: I}
  - {a: a, b: d, length_km: 40, loss_db: 10, device_type: I}
  - {a: d, b: e, length_km: 40, loss_db: 10, device_type: I}
  - {a: e, b: c, length_km: 40, loss_db: 10, device_type: I}
saes:
  - {id: sae-a, node: a}
  - {id: sae-c, node: c}
"""


def test_a_cut_moves_the_kms_route_to_its_backup_as_the_twin_does(tmp_path: Path) -> None:
    """The live KMs take routes from the control layer's Controller: the first request
    routes a-b-c with a-d-e-c as backup; a cut of a--b reported to it switches the route to
    the backup ("switched to backup", the twin's reason too) and keys go the long way; the
    repair takes the route back ("reverted to the working route")."""
    path = tmp_path / "ring.yaml"
    path.write_text(RING)
    ring = load_network(path)
    keynet = KeyNetwork(ring, tmp_path / "stores", served_nodes(ring))
    controller = keynet.router
    assert isinstance(controller, Controller)

    async def go() -> list[str]:
        loop = asyncio.get_running_loop()
        keynet.supply.start(loop.time(), prefill_bits=100_000)
        keynet.supply.pump(loop.time())
        reasons = []
        assert controller.route("a", "c").nodes == ("a", "b", "c")
        await keynet.enc_keys("sae-a", "sae-c", 1, 256)
        keynet.faults.cut("a--b")
        reasons += [c.reason for c in controller.report(keynet.supply.link_states())]
        assert controller.route("a", "c").nodes == ("a", "d", "e", "c")
        before = keynet.stores["d"].pool_bytes("km:d~e", outbound=True)
        keys = await keynet.enc_keys("sae-a", "sae-c", 2, 256)
        assert await keynet.dec_keys("sae-c", "sae-a", [k for k, _ in keys]) == keys
        assert keynet.stores["d"].pool_bytes("km:d~e", outbound=True) < before
        keynet.faults.cut("a--b", False)
        reasons += [c.reason for c in controller.report(keynet.supply.link_states())]
        assert controller.route("a", "c").nodes == ("a", "b", "c")
        return reasons

    assert asyncio.run(go()) == ["switched to backup", "reverted to the working route"]
    keynet.close()


def test_a_one_way_stream_is_served_at_the_links_rate(chain: Network, tmp_path: Path) -> None:
    """Keys asked for only from a to c for a minute: the supply makes the key of each
    KM-link for the direction it is asked for, so the stream gets (nearly) all the key the
    slower link makes, not half of it, and never starves while the links make key."""
    from qkdnet.quantum.link_rate import link_skr_bps

    keynet = KeyNetwork(chain, tmp_path / "stores", served_nodes(chain),
                        capacity_bytes_per_link=2**20)
    rate = min(link_skr_bps(lk) for lk in chain.qkd_links)

    async def go() -> tuple[float, int]:
        start = asyncio.get_running_loop().time()
        keynet.supply.start(start)
        served, idle = 0, 0
        for second in range(1, 61):
            keynet.supply.pump(start + second)
            count = keynet.stored_key_count("sae-a", "sae-c", 8192, 128)
            idle += count == 0
            if count:
                served += 8192 * len(await keynet.enc_keys("sae-a", "sae-c", count, 8192))
        return served / 60, idle

    served_bps, idle = asyncio.run(go())
    keynet.close()
    assert served_bps > 0.8 * rate and idle <= 1


def test_dec_keys_finds_the_holder_of_a_key_id_without_asking_every_store(
        chain: Network, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """401 (held for another slave) vs 400 (unknown) from a key_ID index, also after restart."""
    first = KeyNetwork(chain, tmp_path / "stores", served_nodes(chain))
    held = [k for k, _ in _run(first, "sae-a", "sae-c", 2)]
    first.close()
    keynet = KeyNetwork(chain, tmp_path / "stores", served_nodes(chain))  # index from disk
    asked: list[str] = []
    original = SQLiteKeyStore.held_for

    def counting(store: SQLiteKeyStore, key_id: str) -> tuple[str, str] | None:
        asked.append(store.node)
        return original(store, key_id)

    monkeypatch.setattr(SQLiteKeyStore, "held_for", counting)
    unknown = [str(uuid.uuid4()) for _ in range(64)]
    with pytest.raises(ApiError) as err:
        asyncio.run(keynet.dec_keys("sae-a", "sae-a", unknown))
    assert (err.value.status, asked) == (400, [])
    with pytest.raises(ApiError) as err:
        asyncio.run(keynet.dec_keys("sae-a", "sae-a", held))  # sae-a is not the slave of these keys
    assert err.value.status == 401
    assert set(asked) == {"c"}
    assert asyncio.run(keynet.dec_keys("sae-c", "sae-a", held))[0][0] == held[0]
    keynet.close()


def test_delivered_keys_are_counted_and_summed_up_not_logged_one_by_one(
        chain: Network, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Serving N keys in N calls writes fewer than N INFO lines; the counters count N."""
    keynet = KeyNetwork(chain, tmp_path / "stores", served_nodes(chain))
    calls = 12

    async def go() -> list[tuple[str, bytes]]:
        loop = asyncio.get_running_loop()
        keynet.supply.start(loop.time(), prefill_bits=100_000)
        keynet.supply.pump(loop.time())
        return [key for _ in range(calls)
                for key in await keynet.enc_keys("sae-a", "sae-c", 1, 256)]

    with caplog.at_level("INFO", logger="qkdnet"):
        keys = asyncio.run(go())
        for key_id, material in keys:
            assert asyncio.run(keynet.dec_keys("sae-c", "sae-a", [key_id])) == [(key_id, material)]
        assert keynet.log_delivery_summary()
        assert not keynet.log_delivery_summary()  # nothing new: no line
    info = [r for r in caplog.records if r.levelname == "INFO"]
    assert keynet.keys_relayed == keynet.keys_released == calls
    assert len(info) < calls
    assert f"{calls} relayed, {calls} released" in info[-1].getMessage()
    keynet.close()
