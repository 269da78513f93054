"""A key store that cannot be written, in process: the supply's back-off, a pump that
outlives any store error, a 503 naming the cause, and recovery once the store has room."""

from __future__ import annotations

import asyncio
import logging
import resource
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from chain_scenario import CHAIN_SCENARIO

from qkdnet.files.networks import load_network
from qkdnet.keys.etsi014 import ApiError
from qkdnet.keys.store import SQLiteKeyStore
from qkdnet.live import serve
from qkdnet.live.keynet import KeyNetwork, served_nodes
from qkdnet.live.store_faults import ROOM_PROBE_BYTES, StoreFaults, room_probe_file

FULL = "database or disk is full"


def _fill(store: SQLiteKeyStore) -> None:
    """Let the store's file grow no further: SQLite answers every write that needs a new
    page with SQLITE_FULL, as on a full disk."""
    db = store._db()
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages}")


def _free(store: SQLiteKeyStore) -> None:
    store._db().execute("PRAGMA max_page_count = 1073741823")


@pytest.fixture
def keynet(tmp_path: Path) -> KeyNetwork:
    (tmp_path / "chain.yaml").write_text(CHAIN_SCENARIO)
    network = load_network(tmp_path / "chain.yaml")
    return KeyNetwork(network, tmp_path / "stores", served_nodes(network),
                      capacity_bytes_per_link=2**24)


def test_back_off_doubles_up_to_its_cap_and_logs_a_fault_once(
        caplog: pytest.LogCaptureFixture) -> None:
    """Each failed try doubles the wait up to max_s; one log line per fault, one at its end."""
    faults = StoreFaults(first_s=0.1, max_s=0.5)
    with caplog.at_level(logging.INFO, logger="qkdnet.keys"):
        faults.failed("b", FULL, 10.0)
        assert not faults.due("b", 10.05) and faults.due("b", 10.1)
        waits = []
        for _ in range(5):
            faults.failed("b", FULL, 11.0)
            waits.append(faults.wait_s("b"))
        assert waits == [0.2, 0.4, 0.5, 0.5, 0.5]
        assert not faults.due("b", 11.4) and faults.due("b", 11.5)
        assert faults.cause("b") == FULL and faults.nodes == {"b"}
        faults.recovered("b")
    assert faults.cause("b") is None and not faults.due("b", 99.0)
    assert [r.levelname for r in caplog.records] == ["ERROR", "WARNING"]


def test_the_pump_survives_a_full_store_and_resumes_when_it_has_room(
        keynet: KeyNetwork) -> None:
    """A full store starves its links only, is tried again, and both ends end up alike."""
    supply = keynet.supply
    supply.start(0.0, speedup=5.0)
    supply.pump(1.0)
    supply.checkpoint_all()
    before = {s: keynet.stores["a"].pool_bytes("km:a~b", s) for s in (True, False)}
    _fill(keynet.stores["c"])
    for t in (2.0, 2.05, 2.3, 3.0):
        supply.pump(t)  # must not raise
    assert supply.store_fault("c") == FULL
    assert supply.store_fault("a") is None and supply.store_fault("b") is None
    grown = {s: keynet.stores["a"].pool_bytes("km:a~b", s) for s in (True, False)}
    assert sum(grown.values()) > sum(before.values())  # a~b still fills
    _free(keynet.stores["c"])
    for t in (6.0, 6.5, 7.0):
        supply.pump(t)
    assert supply.store_fault("c") is None
    for link, ends in (("km:a~b", ("a", "b")), ("km:b~c", ("b", "c"))):
        x, y = (keynet.stores[n] for n in ends)
        # a's outbound pool is b's inbound one, block for block: no end got a block alone
        assert x.pool_bytes(link, True) == y.pool_bytes(link, False) > 0
        assert x.pool_bytes(link, False) == y.pool_bytes(link, True) > 0
        assert x.next_block(link) == y.next_block(link)
    keynet.close()


@contextmanager
def _files_smaller_than(size: int) -> Iterator[None]:
    """No file of this process may grow to ``size`` bytes (RLIMIT_FSIZE; a write past it
    fails with EFBIG instead of raising SIGXFSZ): room for small writes only, as on a disk
    that is nearly full."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size - 1, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


def test_a_fault_ends_only_when_the_folder_takes_new_room(keynet: KeyNetwork) -> None:
    """SQLite takes small writes again but the folder cannot hold a scratch file of
    ROOM_PROBE_BYTES: the fault goes on; once it can, the fault ends."""
    supply = keynet.supply
    supply.start(0.0, speedup=0.2)  # little key: the store files stay small
    supply.pump(1.0)
    supply.checkpoint_all()
    _fill(keynet.stores["c"])
    supply.pump(2.0)
    assert supply.store_fault("c") == FULL
    _free(keynet.stores["c"])
    # every store file well below the limit: SQLite's own probe has room, the scratch not
    assert max(f.stat().st_size for f in keynet.stores["c"].path.parent.iterdir()) \
        < ROOM_PROBE_BYTES - (1 << 16)
    with _files_smaller_than(ROOM_PROBE_BYTES):
        for t in (3.0, 4.0, 6.0, 9.0):
            supply.pump(t)
            assert supply.store_fault("c") == FULL, t
            assert not room_probe_file(keynet.stores["c"].path).exists()
        keynet.stores["c"].probe()  # what the supply probed before: it passes on its own
    for t in (12.0, 13.0):
        supply.pump(t)
    assert supply.store_fault("c") is None
    keynet.close()


def test_kme_calls_get_503_naming_the_cause_and_held_keys_stay(keynet: KeyNetwork) -> None:
    """Get key answers 503 'cannot be written (... full)', not 500 or 'not enough key';
    keys held before are released once the store has room, and new ones relayed."""
    async def go() -> None:
        loop = asyncio.get_running_loop()
        keynet.supply.start(loop.time(), prefill_bits=200_000)
        keynet.supply.pump(loop.time())
        keys = await keynet.enc_keys("sae-a", "sae-c", 2, 256)
        _fill(keynet.stores["c"])
        keynet.supply.pump(loop.time() + 1.0)  # new blocks find the store full
        with pytest.raises(ApiError) as more:
            await keynet.enc_keys("sae-a", "sae-c", 1, 256)
        assert more.value.status == 503
        assert "node c cannot be written (database or disk is full)" in more.value.message
        _free(keynet.stores["c"])
        keynet.supply.pump(loop.time() + 5.0)
        assert await keynet.dec_keys("sae-c", "sae-a", [k for k, _ in keys]) == keys
        assert len(await keynet.enc_keys("sae-a", "sae-c", 1, 256)) == 1
    asyncio.run(go())
    keynet.close()


def test_the_pump_task_outlives_any_error_and_keeps_reporting(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A supply that raises on every pump neither ends the task nor stops the reports, and
    is logged once."""
    class Supply:
        calls = 0

        def pump(self, now: float, budget_s: float) -> int:
            Supply.calls += 1
            raise RuntimeError("store exploded")

    class Net:
        supply = Supply()
        satellite = None  # no satellite segment
        keys_relayed = keys_released = 0

    class Live:
        reports = 0

        def report_now(self) -> None:
            Live.reports += 1
            if Live.reports == 1:
                raise OSError("disk I/O error")

    monkeypatch.setattr(serve, "PUMP_INTERVAL_S", 0.0)
    monkeypatch.setattr(serve, "STATE_INTERVAL_S", 0.0)

    async def go() -> bool:
        task = asyncio.create_task(serve._pump(Net(), Live()))  # type: ignore[arg-type]
        while Live.reports < 20:
            await asyncio.sleep(0)
            assert not task.done()
        task.cancel()
        return task.done()

    with caplog.at_level(logging.ERROR, logger="qkdnet.keys"):
        asyncio.run(go())
    assert Supply.calls >= 20
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        "key supply failed, retried every pump", "report to the NMS failed, retried every pump"]
