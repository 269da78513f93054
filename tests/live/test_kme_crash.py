"""Crash safety of ``qkdnet serve``: the server is SIGKILLed while a master SAE streams Get key
calls, three times over, and restarted on the same data folder each time. Every key the
master received is then delivered to the slave, identical and once, and no key (so no pad)
was ever handed out twice, across the restarts."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from qkdnet.apps.sae_client import KmeError, KmeUnreachable, SaeClient
from qkdnet.keys.store import SQLiteKeyStore
from qkdnet.live.launch import ServeFailed, ServeProcess, start_serve

SCENARIO = """\
qkdnet_scenario: 1
name: crash-chain
nodes:
  - {id: a, kind: backbone_access, lat: 30.0, lon: 110.0}
  - {id: b, kind: backbone_access, lat: 30.3, lon: 110.3}
  - {id: c, kind: backbone_access, lat: 30.6, lon: 110.6}
  - {id: d, kind: backbone_access, lat: 30.9, lon: 110.9}
qkd_links:
  - {a: a, b: b, length_km: 40, loss_db: 10, device_type: I}
  - {a: b, b: c, length_km: 40, loss_db: 10, device_type: I}
  - {a: c, b: d, length_km: 40, loss_db: 10, device_type: I}
saes:
  - {id: sae-a, node: a}
  - {id: sae-d, node: d}
"""
MASTER, SLAVE = "sae-a", "sae-d"
KM_LINKS = ("km:a~b", "km:b~c", "km:c~d")
KILL_CYCLES = 3
START_TIMEOUT_S = 30.0
CALL_TIMEOUT_S = 10.0
BATCH = 128  # the KME's max_key_per_request


def open_client(served: ServeProcess, sae: str) -> SaeClient:
    """A keep-alive SAE client that authenticates as ``sae``."""
    (cert, key), ca = served.tls(sae)
    return SaeClient(served.kme_url(sae), cert, key, ca, timeout_s=CALL_TIMEOUT_S)


@dataclass
class Stream:
    """What a master's stream of Get key calls saw: keys received, other replies, and
    whether a call failed for want of a server before the server was killed."""

    received: list[tuple[str, bytes]] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)
    lost_early: list[str] = field(default_factory=list)
    killed: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    """A data folder, and the scenario file beside it."""
    (tmp_path / "crash.yaml").write_text(SCENARIO)
    yield tmp_path / "live"


def _start(folder: Path, run: int) -> ServeProcess:
    """Start ``qkdnet serve`` on ``folder`` and wait for a fresh manifest."""
    try:
        served = start_serve(folder, str(folder.parent / "crash.yaml"),
                             ["--prefill-bits", "2000000", "--pool-capacity-bits", "4000000"],
                             logs=folder.parent / f"serve-{run}", timeout_s=START_TIMEOUT_S)
    except ServeFailed as exc:
        pytest.fail(f"run {run}: {exc}")
    assert served.manifest["pid"] == served.process.pid
    return served


def _stream_keys(served: ServeProcess, stream: Stream) -> None:
    """Get key (one 256-bit key per call) as the master until the server is gone."""
    with open_client(served, MASTER) as kme:
        while True:
            try:
                keys = kme.enc_keys(SLAVE, 1, 256)
            except KmeUnreachable as exc:
                if not stream.killed.is_set():
                    stream.lost_early.append(repr(exc))
                return  # the reply did not arrive: this call delivered nothing
            except KmeError as exc:
                stream.refused.append((exc.status, str(exc)))
                continue
            stream.received.extend((k.key_id, k.material) for k in keys)


def _kill_cycle(folder: Path, run: int, stream: Stream, rng: random.Random) -> int:
    """Serve, stream Get key calls, SIGKILL the server mid-stream; keys received."""
    served = _start(folder, run)
    before = len(stream.received)
    stream.killed.clear()
    client = threading.Thread(target=_stream_keys, args=(served, stream), daemon=True)
    client.start()
    time.sleep(rng.uniform(0.3, 1.5))
    assert served.process.poll() is None, f"run {run} died on its own:\n{served.log()}"
    stream.killed.set()
    served.kill()
    client.join(CALL_TIMEOUT_S + 5)
    assert not client.is_alive(), "the client still waits for a killed server"
    _assert_clean_log(served, run)
    return len(stream.received) - before


def _assert_clean_log(served: ServeProcess, run: int) -> None:
    log = served.log()
    assert "KMEs serving" in log, f"run {run}:\n{log}"
    assert "Traceback" not in log and " ERROR " not in log, f"run {run}:\n{log}"


def _fetch_all(served: ServeProcess, ids: list[str]) -> dict[str, bytes]:
    """Every key of ``ids`` from the slave's KME, as the slave, in batches."""
    fetched: dict[str, bytes] = {}
    with open_client(served, SLAVE) as kme:
        for i in range(0, len(ids), BATCH):
            batch = ids[i:i + BATCH]
            keys = kme.dec_keys(MASTER, batch)
            assert [k.key_id for k in keys] == batch
            fetched.update((k.key_id, k.material) for k in keys)
    return fetched


def _second_fetch_statuses(served: ServeProcess, ids: list[str]) -> set[int]:
    """The status of asking for each key of ``ids`` once more (200 if delivered again)."""
    statuses = set()
    with open_client(served, SLAVE) as kme:
        for key_id in ids:
            try:
                kme.dec_keys(MASTER, [key_id])
                statuses.add(200)
            except KmeError as exc:
                statuses.add(exc.status)
    return statuses


def _stop(served: ServeProcess) -> None:
    code = served.stop(15)
    assert code == 0, served.log()


def _next_blocks(folder: Path) -> dict[str, tuple[int, int]]:
    """Per KM-link, the next block number at its two ends."""
    ends = {km: km.removeprefix("km:").split("~") for km in KM_LINKS}
    stores = {n: SQLiteKeyStore(folder / "stores" / f"{n}.sqlite", n) for n in "abcd"}
    try:
        return {km: (stores[a].next_block(km), stores[b].next_block(km))
                for km, (a, b) in ends.items()}
    finally:
        for store in stores.values():
            store.close()


def test_keys_survive_sigkill_mid_stream_once_and_unique(folder: Path) -> None:
    """Three SIGKILLs mid-stream: what the master got, the slave gets, identical and once,
    and no key is ever repeated."""
    rng = random.Random()
    stream = Stream()
    per_cycle = [_kill_cycle(folder, run, stream, rng) for run in range(KILL_CYCLES)]
    assert stream.lost_early == [], "calls failed before the server was killed"
    assert stream.refused == [], "Get key refused while the pools held key"
    assert all(n > 0 for n in per_cycle), f"keys received per run: {per_cycle}"

    served = _start(folder, KILL_CYCLES)
    try:
        with open_client(served, MASTER) as kme:
            assert kme.status(SLAVE).stored_key_count > 0  # the supply resumed
        ids = [key_id for key_id, _ in stream.received]
        assert len(set(ids)) == len(ids), "a key_ID was handed to the master twice"
        keys = [material for _, material in stream.received]
        assert len(set(keys)) == len(keys), "two key_IDs share a key: pad reuse"
        assert all(len(k) == 32 for k in keys)
        fetched = _fetch_all(served, ids)
        assert fetched == dict(stream.received), "the slave got other keys than the master"
        assert _second_fetch_statuses(served, ids) == {400}, "a key was delivered twice"
    finally:
        _stop(served)
    _assert_clean_log(served, KILL_CYCLES)
    blocks = _next_blocks(folder)
    assert all(a == b for a, b in blocks.values()), f"link ends disagree: {blocks}"
