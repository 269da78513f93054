"""Sending and receiving a sealed file or stream between two SAEs: the sender takes fresh
256-bit keys for the receiver from its KME (Get key), the receiver takes the same keys from
its own KME by key_ID (Get key with key IDs). The framing is :mod:`qkdnet.apps.sealed_stream`.

Plaintext written to a file appears only once the whole stream is authenticated
(:func:`atomic_output`). Written to a pipe it is released chunk by chunk as each chunk
authenticates, as streaming tools do; a truncated or altered stream still ends in an error.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from qkdnet.apps.sae_client import SaeClient
from qkdnet.apps.sealed_stream import (
    DEFAULT_CHUNK_BYTES,
    DEFAULT_CHUNKS_PER_KEY,
    KEY_BITS,
    EndOfStream,
    KeysAnnounced,
    Opener,
    Plaintext,
    Sealer,
    StreamHeader,
)

__all__ = ["Transfer", "atomic_output", "receive", "send"]

#: Bytes read from the sealed input at a time.
READ_BYTES = 256 * 1024


@dataclass(frozen=True)
class Transfer:
    """What went through: plaintext bytes, chunks, and keys used (256 bits each)."""

    sender: str
    receiver: str
    plaintext_bytes: int
    chunks: int
    keys: int


def send(client: SaeClient, sender: str, receiver: str, source: BinaryIO, sink: BinaryIO,
         size: int | None = None, chunk_bytes: int = DEFAULT_CHUNK_BYTES,
         chunks_per_key: int = DEFAULT_CHUNKS_PER_KEY) -> Transfer:
    """Seal ``source`` for ``receiver`` into ``sink``, as ``sender`` whose KME ``client``
    reaches. With ``size`` (bytes) known, keys are asked for in as few calls as the KME
    allows; otherwise one key when the next chunk needs it."""
    sealer = Sealer(StreamHeader(sender, receiver, chunk_bytes, chunks_per_key))
    sink.write(sealer.start())
    batch = client.status(receiver).max_key_per_request if size is not None else 1
    done = chunks = keys = 0
    chunk = _read_full(source, chunk_bytes)
    while True:
        following = _read_full(source, chunk_bytes) if len(chunk) == chunk_bytes else b""
        wanted = sealer.keys_wanted(None if size is None else max(size - done, len(chunk)))
        if wanted:
            fresh = client.enc_keys(receiver, min(wanted, batch), KEY_BITS)
            sink.write(sealer.announce(fresh))
            keys += len(fresh)
        sink.write(sealer.seal(chunk, last=not following))
        done, chunks = done + len(chunk), chunks + 1
        if not following:
            return Transfer(sender, receiver, done, chunks, keys)
        chunk = following


def receive(client: SaeClient, source: BinaryIO, sink: BinaryIO) -> Transfer:
    """Open the sealed stream ``source`` into ``sink``, taking its keys from the KME that
    ``client`` (the receiving SAE) reaches. Raises a ``SealError`` or ``KmeError``."""
    opener = Opener()
    chunks = done = keys = 0
    while not isinstance(event := opener.next_event(), EndOfStream):
        if event is None:
            opener.receive_data(source.read(READ_BYTES))
        elif isinstance(event, KeysAnnounced):
            opener.add_keys(client.dec_keys(opener.header.sender, event.key_ids))
            keys += len(event.key_ids)
        elif isinstance(event, Plaintext):
            sink.write(event.data)
            done, chunks = done + len(event.data), chunks + 1
    _expect_end(opener, source)
    return Transfer(opener.header.sender, opener.header.receiver, done, chunks, keys)


def _expect_end(opener: Opener, source: BinaryIO) -> None:
    """Nothing may follow the last chunk."""
    while data := source.read(READ_BYTES):
        opener.receive_data(data)
        opener.next_event()
    opener.receive_data(b"")
    opener.next_event()  # raises if bytes follow the last chunk


def _read_full(source: BinaryIO, size: int) -> bytes:
    """``size`` bytes, fewer only at the end of the input (pipes return short reads)."""
    parts, missing = [], size
    while missing:
        part = source.read(missing)
        if not part:
            break
        parts.append(part)
        missing -= len(part)
    return b"".join(parts)


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[BinaryIO]:
    """A file that becomes ``path`` only if the block ends without an error; it is created
    readable by its owner only (mode 0600)."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part",
                                         dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            yield out
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise

