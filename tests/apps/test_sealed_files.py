"""Sealed files and streams between two SAEs of a real ``qkdnet serve`` (CN-QCN in a
subprocess, ETSI GS QKD 014 over mutual TLS on loopback), through the library and through
``qkdnet app send/receive``.

sae-harbin seals for sae-shenzhen, 64 KM-link hops away, so every key is relayed hop by hop.
A key goes to the slave once: a stream whose keys were fetched cannot be opened again, so
each refusal test seals its own. The last test reads the server's logs and every command's
output for the keys the tests saw.
"""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from qkdnet.apps.sae_client import Key, SaeClient, Unauthorized
from qkdnet.apps.sealed_files import receive, send
from qkdnet.apps.sealed_stream import KeysAnnounced, Opener
from qkdnet.live.launch import ServeFailed, ServeProcess, start_serve
from qkdnet.topology.cn_qcn import build_cn_qcn
from qkdnet.topology.paths import shortest_path

SENDER, RECEIVER, OUTSIDER = "sae-harbin", "sae-shenzhen", "sae-beijing"
CHUNK = 16 * 1024
PER_KEY = 4
COMMAND_TIMEOUT_S = 120.0


class RecordingClient(SaeClient):
    """An SAE client that keeps every key it is handed, for the log check at the end."""

    seen: ClassVar[list[Key]] = []
    calls = 0  # enc_keys calls of this client

    def enc_keys(self, slave: str, number: int = 1, size: int | None = None,
                 **options: Any) -> list[Key]:
        keys = super().enc_keys(slave, number, size, **options)
        self.seen.extend(keys)
        self.calls += 1
        return keys

    def dec_keys(self, master: str, key_ids: Sequence[str], **options: Any) -> list[Key]:
        keys = super().dec_keys(master, key_ids, **options)
        self.seen.extend(keys)
        return keys


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """The CN-QCN KMEs for the whole module, every KM-link prefilled."""
    folder = tmp_path_factory.mktemp("apps-serve")
    try:
        server = start_serve(folder, "cn-qcn", ["--prefill-bits", "300000",
                                                "--speedup", "0.01"])
    except ServeFailed as exc:
        pytest.fail(str(exc))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def manifest(served: ServeProcess) -> Path:
    return served.stdout.parent / "manifest.json"


@pytest.fixture(scope="module")
def outputs() -> list[str]:
    """Everything the commands printed, for the log check at the end."""
    return []


def client(manifest: Path, sae: str) -> RecordingClient:
    return RecordingClient.from_manifest(manifest, sae)


def qkdnet(outputs: list[str], *args: str, stdin: bytes = b""
           ) -> subprocess.CompletedProcess[bytes]:
    """Run ``python -m qkdnet *args``; its stderr (and stdout, if text) is recorded."""
    done = subprocess.run([sys.executable, "-m", "qkdnet", *args], input=stdin,
                          capture_output=True, timeout=COMMAND_TIMEOUT_S, check=False)
    outputs.append(done.stderr.decode(errors="replace"))
    return done


def sealed_by_library(manifest: Path, data: bytes, receiver: str = RECEIVER) -> bytes:
    """``data`` sealed by sae-harbin for ``receiver`` with :func:`send`."""
    out = io.BytesIO()
    with client(manifest, SENDER) as sender:
        send(sender, SENDER, receiver, io.BytesIO(data), out, len(data), CHUNK, PER_KEY)
    return out.getvalue()


def chunk_records(sealed: bytes) -> tuple[int, list[tuple[int, int]]]:
    """Where the chunk records of ``sealed`` start and end, and where the first starts."""
    header_end = 16 + 1 + len(SENDER) + 1 + len(RECEIVER)
    spans, at = [], header_end
    while at < len(sealed):
        if sealed[at:at + 1] == b"K":
            count, at = int.from_bytes(sealed[at + 1:at + 3], "big"), at + 3
            for _ in range(count):
                at += 1 + sealed[at]
            continue
        end = at + 5 + int.from_bytes(sealed[at + 1:at + 5], "big")
        spans.append((at, end))
        at = end
    return header_end, spans


def test_a_few_megabytes_cross_64_hops_identical(manifest: Path, tmp_path: Path,
                                                 outputs: list[str]) -> None:
    """3 MiB sealed at Harbin with `qkdnet app send` opens identical at Shenzhen with
    `qkdnet app receive`: 192 chunks under 48 keys, each relayed over the 64-hop route."""
    assert len(shortest_path(build_cn_qcn(), "harbin", "shenzhen", weight="hops")) - 1 >= 3
    plain, sealed, opened = tmp_path / "plain.bin", tmp_path / "sealed.qks", tmp_path / "out"
    data = os.urandom(3 * 1024 * 1024)
    plain.write_bytes(data)
    sent = qkdnet(outputs, "app", "send", "--from", SENDER, "--to", RECEIVER, "--manifest",
                  str(manifest), "--chunk-bytes", str(CHUNK), "--chunks-per-key",
                  str(PER_KEY), str(plain), str(sealed))
    assert sent.returncode == 0, sent.stderr
    assert b"192 chunks under 48 keys" in sent.stderr
    assert data[:4096] not in sealed.read_bytes()
    got = qkdnet(outputs, "app", "receive", "--as", RECEIVER, "--manifest", str(manifest),
                 str(sealed), str(opened))
    assert got.returncode == 0, got.stderr
    assert opened.read_bytes() == data
    assert f"from {SENDER}".encode() in got.stderr and b"all authenticated" in got.stderr


def test_a_stream_goes_from_stdin_through_a_pipe_to_stdout(manifest: Path,
                                                          outputs: list[str]) -> None:
    """`send - -` piped into `receive - -`: the bytes of stdin come out of stdout; of
    unknown length, the sender takes a key when the next chunk needs one."""
    data = os.urandom(5 * PER_KEY * CHUNK + 123)
    common = ["--manifest", str(manifest)]
    sender = subprocess.Popen(
        [sys.executable, "-m", "qkdnet", "app", "send", "--from", SENDER, "--to", RECEIVER,
         "--chunk-bytes", str(CHUNK), "--chunks-per-key", str(PER_KEY), *common, "-", "-"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    receiver = subprocess.Popen(
        [sys.executable, "-m", "qkdnet", "app", "receive", "--as", RECEIVER, *common, "-",
         "-"], stdin=sender.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert sender.stdin is not None and sender.stdout is not None
    sender.stdout.close()  # the receiver holds the pipe now

    def feed() -> None:  # while the receiver's stdout is drained below
        assert sender.stdin is not None
        sender.stdin.write(data)
        sender.stdin.close()

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    out, err = receiver.communicate(timeout=COMMAND_TIMEOUT_S)
    feeder.join(COMMAND_TIMEOUT_S)
    sender_err = sender.stderr.read() if sender.stderr else b""
    assert sender.wait(COMMAND_TIMEOUT_S) == 0, sender_err
    outputs.extend([sender_err.decode(), err.decode()])
    assert receiver.returncode == 0, err
    assert out == data
    assert b"under 6 keys" in sender_err


def test_the_library_takes_a_known_lengths_keys_in_one_call(manifest: Path) -> None:
    """send() with the length known asks the KME once for all 6 keys; without it, once per
    key; receive() opens both."""
    data = os.urandom(5 * PER_KEY * CHUNK + 1)
    for size, calls in ((len(data), 1), (None, 6)):
        sealed = io.BytesIO()
        with client(manifest, SENDER) as sender:
            done = send(sender, SENDER, RECEIVER, io.BytesIO(data), sealed, size, CHUNK,
                        PER_KEY)
            assert (done.keys, sender.calls) == (6, calls)
        opened = io.BytesIO()
        with client(manifest, RECEIVER) as receiver:
            assert receive(receiver, io.BytesIO(sealed.getvalue()), opened).keys == 6
        assert opened.getvalue() == data


# --- refusals: a clear error, and no output file ---------------------------------------------

def flip_last_byte(sealed: bytes) -> bytes:
    return sealed[:-1] + bytes([sealed[-1] ^ 0x01])


def drop_last_chunk(sealed: bytes) -> bytes:
    _, spans = chunk_records(sealed)
    return sealed[:spans[-1][0]]


def swap_two_chunks(sealed: bytes) -> bytes:
    _, spans = chunk_records(sealed)
    (a0, a1), (b0, b1) = spans[0], spans[1]
    return sealed[:a0] + sealed[b0:b1] + sealed[a0:a1] + sealed[b1:]


TAMPERING = {"flipped-byte": (flip_last_byte, "chunk 4 fails authentication"),
             "truncated": (drop_last_chunk, "truncated"),
             "swapped-chunks": (swap_two_chunks, "chunk 0 fails authentication")}


@pytest.mark.parametrize("case", TAMPERING.values(), ids=TAMPERING.keys())
def test_a_tampered_stream_fails_and_writes_nothing(case: tuple[Any, str], manifest: Path,
                                                   tmp_path: Path, outputs: list[str]
                                                   ) -> None:
    """A flipped byte, a dropped last chunk or two swapped chunks: exit 2, one line naming
    what failed, and no output file (not even a partial one) in the folder."""
    tamper, says = case
    sealed = tmp_path / "sealed.qks"
    sealed.write_bytes(tamper(sealed_by_library(manifest, os.urandom(4 * CHUNK + 9))))
    out = tmp_path / "plain.out"
    got = qkdnet(outputs, "app", "receive", "--as", RECEIVER, "--manifest", str(manifest),
                 str(sealed), str(out))
    assert got.returncode == 2
    lines = got.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("qkdnet: error: ") and says in lines[0]
    assert got.stdout == b""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sealed.qks"]


def test_a_third_sae_cannot_open_it_and_the_receiver_still_can(
        manifest: Path, tmp_path: Path, outputs: list[str]) -> None:
    """sae-beijing's KME refuses it the keys (401): exit 2, no output; sae-shenzhen then
    opens the same file."""
    data = os.urandom(CHUNK + 1)
    sealed = tmp_path / "sealed.qks"
    sealed.write_bytes(sealed_by_library(manifest, data))
    stolen = qkdnet(outputs, "app", "receive", "--as", OUTSIDER, "--manifest", str(manifest),
                    str(sealed), str(tmp_path / "stolen"))
    assert stolen.returncode == 2
    assert stolen.stderr.decode().startswith("qkdnet: error: KME refused (401): ")
    assert not (tmp_path / "stolen").exists()
    opened = tmp_path / "opened"
    got = qkdnet(outputs, "app", "receive", "--as", RECEIVER, "--manifest", str(manifest),
                 str(sealed), str(opened))
    assert got.returncode == 0, got.stderr
    assert opened.read_bytes() == data


def test_a_stream_for_another_receiver_does_not_open_with_my_keys(manifest: Path) -> None:
    """Sealed for sae-beijing, its keys are not sae-shenzhen's to take: 401 at dec_keys."""
    sealed = sealed_by_library(manifest, b"for beijing only", receiver=OUTSIDER)
    with client(manifest, RECEIVER) as receiver, pytest.raises(Unauthorized) as caught:
        receive(receiver, io.BytesIO(sealed), io.BytesIO())
    assert caught.value.status == 401


def test_bad_arguments_are_one_line_errors(manifest: Path, tmp_path: Path,
                                           outputs: list[str]) -> None:
    """An SAE not in the manifest, a missing input and a chunk size of 0 each exit 2 with
    one line naming the problem."""
    plain = tmp_path / "plain"
    plain.write_bytes(b"x")
    cases = [
        (["send", "--from", "sae-nowhere", "--to", RECEIVER, str(plain), "-"], "sae-nowhere"),
        (["receive", "--as", RECEIVER, str(tmp_path / "missing"), "-"], "cannot read"),
        (["send", "--from", SENDER, "--to", RECEIVER, "--chunk-bytes", "0", str(plain),
          str(tmp_path / "out")], "chunk_bytes=0"),
    ]
    for args, says in cases:
        done = qkdnet(outputs, "app", *args, "--manifest", str(manifest))
        lines = done.stderr.decode().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and says in lines[0], lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain"]


# --- last: the logs ----------------------------------------------------------------------------

def test_no_key_appears_in_the_output_or_the_logs(served: ServeProcess, manifest: Path,
                                                  tmp_path: Path, outputs: list[str]) -> None:
    """Runs last: the keys of a `send` (fetched afterwards as the receiver) and of every
    stream above are in no command's output and not in the server's logs, in base64 or
    hex."""
    if not RecordingClient.seen:
        pytest.skip("the tests above collect the keys to look for: run the whole module")
    plain, sealed = tmp_path / "plain", tmp_path / "sealed"
    plain.write_bytes(os.urandom(2 * CHUNK))
    sent = qkdnet(outputs, "app", "send", "--from", SENDER, "--to", RECEIVER, "--manifest",
                  str(manifest), str(plain), str(sealed))
    assert sent.returncode == 0, sent.stderr
    opener = Opener()
    opener.receive_data(sealed.read_bytes())
    while not isinstance(event := opener.next_event(), KeysAnnounced):
        pass
    with client(manifest, RECEIVER) as receiver:
        receiver.dec_keys(SENDER, event.key_ids)
    keys = {k.material for k in RecordingClient.seen}
    assert len(keys) > 10
    text = "\n".join(outputs) + served.log()
    for key in keys:
        for form in (key.hex(), key.hex().upper(), base64.b64encode(key).decode()):
            assert form not in text
