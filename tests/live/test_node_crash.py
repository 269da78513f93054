"""Crash safety of a deployment (tests/live/test_kme_crash.py's guarantees, distributed): the
chain a-b | c-d runs as two node processes and the controller; while sae-a streams Get key
calls to sae-d, the master's process and the slave's process are SIGKILLed in turn and
started again with `qkdnet up`. Every key the master received is then delivered to the
slave, identical and once; no key (so no pad) was handed out twice; and across the border
KM-link, every unit one end can send with, the other end holds to receive with."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from node_deployment import SETTLE_S, chain_deployment, qkdnet

from qkdnet.apps.sae_client import KmeError, KmeUnreachable, SaeClient
from qkdnet.keys.store import SQLiteKeyStore

BATCH = 128  # the KME's max_key_per_request
CYCLES = (("left", 0.8), ("right", 0.6), ("left", 1.2), ("right", 1.0))


@dataclass
class Stream:
    """What the master's stream saw: keys received, and refusals (while a process was
    down, Get key is refused: 503, or no reply from a killed KME)."""

    received: list[tuple[str, bytes]] = field(default_factory=list)
    refused: int = 0
    stop: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    chain_deployment(tmp_path)
    yield tmp_path
    qkdnet("down", "deploy.yaml", "--dir", "base", "--kill", cwd=tmp_path)


def _client(folder: Path, process: str, sae: str) -> SaeClient:
    manifest = json.loads((folder / "base" / process / "manifest.json").read_text())
    return SaeClient.from_manifest(manifest, sae, timeout_s=10)


def _stream(folder: Path, stream: Stream) -> None:
    """Get key as sae-a until told to stop, reconnecting when the master's KME is back."""
    while not stream.stop.is_set():
        try:
            with _client(folder, "left", "sae-a") as kme:
                while not stream.stop.is_set():
                    keys = kme.enc_keys("sae-d", 1, 256)
                    stream.received.extend((k.key_id, k.material) for k in keys)
        except (KmeError, KmeUnreachable, OSError, ValueError):
            stream.refused += 1  # a killed process, or a relay refused meanwhile
            time.sleep(0.1)


def _flowing(stream: Stream, keys: int = 20, limit_s: float = 60.0) -> None:
    """Wait until the master has received ``keys`` more keys (at most ``limit_s``)."""
    target, deadline = len(stream.received) + keys, time.monotonic() + limit_s
    while len(stream.received) < target:
        assert time.monotonic() < deadline, "keys did not flow again after a restart"
        time.sleep(0.05)


def _up(folder: Path) -> None:
    done = qkdnet("up", "deploy.yaml", "--dir", "base", "--prefill-bits", "2000000",
                  "--speedup", "20", cwd=folder)
    assert done.returncode == 0, done.stdout + done.stderr


def test_keys_survive_sigkills_of_either_process_once_and_unique(folder: Path) -> None:
    _up(folder)
    time.sleep(SETTLE_S)
    stream = Stream()
    client = threading.Thread(target=_stream, args=(folder, stream), daemon=True)
    client.start()
    counts = []
    for process, after_s in CYCLES:
        _flowing(stream)  # keys flow again (relays caught by the last kill time out: 5 s)
        before = len(stream.received)
        time.sleep(after_s)
        pid = int((folder / "base" / process / "node.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        counts.append(len(stream.received) - before)
        time.sleep(0.5)
        _up(folder)
    _flowing(stream)
    stream.stop.set()
    client.join(30)
    assert not client.is_alive()
    assert all(n > 0 for n in counts), f"keys received before each kill: {counts}"

    ids = [key_id for key_id, _ in stream.received]
    assert len(set(ids)) == len(ids), "a key_ID was handed to the master twice"
    keys = [material for _, material in stream.received]
    assert len(set(keys)) == len(keys), "two key_IDs share a key: pad reuse"
    fetched: dict[str, bytes] = {}
    with _client(folder, "right", "sae-d") as kme:
        for i in range(0, len(ids), BATCH):
            batch = ids[i:i + BATCH]
            got = kme.dec_keys("sae-a", batch)
            assert [k.key_id for k in got] == batch
            fetched.update((k.key_id, k.material) for k in got)
        assert fetched == dict(stream.received), "the slave got other keys than the master"
        for key_id in ids[:20]:
            with pytest.raises(KmeError) as again:
                kme.dec_keys("sae-a", [key_id])
            assert again.value.status == 400, "a key was delivered twice"

    stopped = qkdnet("down", "deploy.yaml", "--dir", "base", cwd=folder)
    assert "stopped 4 processes" in stopped.stdout
    b = SQLiteKeyStore(folder / "base" / "left" / "stores" / "b.sqlite", "b")
    c = SQLiteKeyStore(folder / "base" / "right" / "stores" / "c.sqlite", "c")
    try:
        link = "km:b~c"
        assert b.pool_bytes(link, True) <= c.pool_bytes(link, False)
        assert c.pool_bytes(link, True) <= b.pool_bytes(link, False)
    finally:
        b.close()
        c.close()
