"""A sealed stream: data encrypted with AES-256-GCM under keys from ETSI GS QKD 014, framed
without I/O (bytes in, bytes or events out; the driver is :mod:`qkdnet.apps.sealed_files`).

Format version 1, integers big-endian::

    header   "QKDSEAL" | version u8 | chunk_bytes u32 | chunks_per_key u32
             | len u8 | sender SAE ID | len u8 | receiver SAE ID
    records  "K" | count u16 | (len u8 | key_ID) * count      key_IDs, before their chunks
             "C" | length u32 | ciphertext + 16-byte tag       a chunk
             "F" | length u32 | ciphertext + 16-byte tag       the last chunk

The plaintext is cut into chunks of ``chunk_bytes`` (default 64 KiB); only the last may be
shorter (or empty). Chunk ``i`` (counted from 0 over the whole stream) is sealed with the
256-bit key number ``i // chunks_per_key`` in the order the key_IDs were announced (default
256 chunks, 16 MiB, per key), under the 96-bit nonce ``i``. Every key is fresh from the KME
and used for this one stream, and no chunk index repeats, so no key+nonce pair is ever used
twice. The associated data of chunk ``i`` is SHA-256(header) | i u64 | last u8 | key_ID, so
a chunk moved, dropped, swapped for one of another stream, or marked last out of place fails
authentication, as does a changed header; a stream that ends before its last chunk is
truncated. Errors::

    QkdnetError
     └── SealError            the stream cannot be opened
          ├── FormatError     not a sealed stream, another version, a malformed record
          └── IntegrityError  a chunk fails authentication (altered, reordered, wrong key)
               └── TruncatedError   the stream ends before its last chunk

Key material never appears in a repr or a message.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from qkdnet.apps.sae_client import Key
from qkdnet.errors import ParameterError, QkdnetError

__all__ = [
    "KEY_BITS",
    "EndOfStream",
    "FormatError",
    "IntegrityError",
    "KeysAnnounced",
    "Opener",
    "Plaintext",
    "SealError",
    "Sealer",
    "StreamHeader",
    "TruncatedError",
]

MAGIC = b"QKDSEAL"
VERSION = 1
KEY_BITS = 256
TAG_BYTES = 16
DEFAULT_CHUNK_BYTES = 64 * 1024
DEFAULT_CHUNKS_PER_KEY = 256
#: Largest chunk a reader accepts (bytes): bounds its memory.
MAX_CHUNK_BYTES = 16 * 1024 * 1024
#: Most key_IDs in one "K" record: the KME's max_key_per_request is usually 128.
MAX_KEYS_PER_RECORD = 1024

KEY_RECORD, CHUNK_RECORD, LAST_RECORD = b"K", b"C", b"F"
_FIXED = struct.Struct(">7sBII")
_LENGTH = struct.Struct(">I")
_COUNT = struct.Struct(">H")


class SealError(QkdnetError):
    """A sealed stream cannot be opened."""


class FormatError(SealError):
    """The bytes are not a sealed stream of this version, or a record is malformed."""


class IntegrityError(SealError):
    """A chunk fails authentication: altered, reordered, or sealed under another key."""


class TruncatedError(IntegrityError):
    """The stream ends before its last chunk."""


@dataclass(frozen=True)
class StreamHeader:
    """Who sealed the stream for whom, and how it is cut (bytes per chunk, chunks per key)."""

    sender: str
    receiver: str
    chunk_bytes: int = DEFAULT_CHUNK_BYTES
    chunks_per_key: int = DEFAULT_CHUNKS_PER_KEY

    def __post_init__(self) -> None:
        if not 1 <= self.chunk_bytes <= MAX_CHUNK_BYTES:
            raise ParameterError("chunk_bytes", self.chunk_bytes, f"1..{MAX_CHUNK_BYTES}")
        if not 1 <= self.chunks_per_key < 2**32:
            raise ParameterError("chunks_per_key", self.chunks_per_key, "1..2^32-1")
        for name in ("sender", "receiver"):
            if not 1 <= len(getattr(self, name).encode()) <= 255:
                raise ParameterError(name, getattr(self, name), "an SAE ID of 1..255 bytes")

    def encode(self) -> bytes:
        """The header's bytes."""
        return (_FIXED.pack(MAGIC, VERSION, self.chunk_bytes, self.chunks_per_key)
                + _short(self.sender.encode()) + _short(self.receiver.encode()))


@dataclass(frozen=True)
class KeysAnnounced:
    """Event: the next chunks need these keys; hand them to :meth:`Opener.add_keys`."""

    key_ids: tuple[str, ...]


@dataclass(frozen=True)
class Plaintext:
    """Event: the authenticated plaintext of one chunk."""

    data: bytes = field(repr=False)


@dataclass(frozen=True)
class EndOfStream:
    """Event: the last chunk was authenticated; nothing may follow."""


Event = StreamHeader | KeysAnnounced | Plaintext | EndOfStream


class _Keyring:
    """The stream's keys in announcement order, and which key and nonce seal chunk ``i``."""

    def __init__(self, header: StreamHeader) -> None:
        self.header = header
        self.digest = hashlib.sha256(header.encode()).digest()
        self.key_ids: list[str] = []
        self.ciphers: dict[int, AESGCM] = {}

    def covers(self, chunk: int) -> bool:
        return chunk // self.header.chunks_per_key < len(self.key_ids)

    def add(self, keys: Sequence[Key]) -> None:
        for key in keys:
            if key.size != KEY_BITS:
                raise FormatError(f"key {key.key_id} is {key.size} bits, not {KEY_BITS}")
            self.ciphers[len(self.key_ids)] = AESGCM(key.material)
            self.key_ids.append(key.key_id)

    def parts(self, chunk: int, last: bool) -> tuple[AESGCM, bytes, bytes]:
        """Cipher, nonce and associated data of chunk ``chunk``; earlier keys are dropped."""
        index = chunk // self.header.chunks_per_key
        for old in [i for i in self.ciphers if i < index]:
            del self.ciphers[old]
        aad = (self.digest + struct.pack(">QB", chunk, last)
               + self.key_ids[index].encode())
        return self.ciphers[index], chunk.to_bytes(12, "big"), aad


class Sealer:
    """Seals one stream: :meth:`announce` keys before the chunks that need them, then
    :meth:`seal` the chunks in order, the last with ``last=True``."""

    def __init__(self, header: StreamHeader) -> None:
        self.header = header
        self._keys = _Keyring(header)
        self._chunk = 0
        self._done = False

    def start(self) -> bytes:
        """The header's bytes: the first of the stream."""
        return self.header.encode()

    def keys_wanted(self, remaining_bytes: int | None = None) -> int:
        """How many keys to announce before the next chunk: enough for ``remaining_bytes``
        (this chunk's included) if the length is known, else the one the next chunk needs."""
        if remaining_bytes is None:
            return 0 if self._keys.covers(self._chunk) else 1
        chunks = max(1, -(-remaining_bytes // self.header.chunk_bytes))
        last_key = (self._chunk + chunks - 1) // self.header.chunks_per_key
        return max(0, last_key + 1 - len(self._keys.key_ids))

    def announce(self, keys: Sequence[Key]) -> bytes:
        """A "K" record for ``keys`` (fresh 256-bit keys shared with the receiver)."""
        if not 1 <= len(keys) <= MAX_KEYS_PER_RECORD:
            raise ParameterError("keys", len(keys), f"1..{MAX_KEYS_PER_RECORD} per record")
        self._keys.add(keys)
        ids = b"".join(_short(k.key_id.encode()) for k in keys)
        return KEY_RECORD + _COUNT.pack(len(keys)) + ids

    def seal(self, data: bytes, last: bool) -> bytes:
        """The record of the next chunk: ``chunk_bytes`` of plaintext, or up to that if
        ``last``."""
        if self._done:
            raise RuntimeError("the last chunk is already sealed")
        size = len(data)
        if size > self.header.chunk_bytes or (not last and size != self.header.chunk_bytes):
            raise ValueError(f"a chunk holds {self.header.chunk_bytes} bytes (the last at "
                             f"most that), not {size}")
        if not self._keys.covers(self._chunk):
            raise RuntimeError(f"chunk {self._chunk} has no key: announce keys first")
        cipher, nonce, aad = self._keys.parts(self._chunk, last)
        sealed = cipher.encrypt(nonce, data, aad)
        self._chunk += 1
        self._done = last
        return (LAST_RECORD if last else CHUNK_RECORD) + _LENGTH.pack(len(sealed)) + sealed


class Opener:
    """Opens one stream: feed bytes with :meth:`receive_data` (``b""`` at the end of input)
    and take events from :meth:`next_event` until :class:`EndOfStream` (given again on every
    call after the last chunk, unless bytes follow it); after
    :class:`KeysAnnounced`, :meth:`add_keys` before the next event. An error is final."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._ended = False
        self._keys: _Keyring | None = None
        self._pending: tuple[str, ...] = ()
        self._chunk = 0
        self._done = False
        self._error: SealError | None = None

    @property
    def header(self) -> StreamHeader:
        """The stream's header, once the first event has given it."""
        if self._keys is None:
            raise RuntimeError("the header has not been read yet")
        return self._keys.header

    def receive_data(self, data: bytes) -> None:
        """More bytes of the stream; ``b""`` says there are no more."""
        if data:
            self._buffer += data
        else:
            self._ended = True

    def add_keys(self, keys: Sequence[Key]) -> None:
        """The keys of the last :class:`KeysAnnounced`, in any order."""
        if self._keys is None or not self._pending:
            raise RuntimeError("no keys were announced")
        by_id = {k.key_id: k for k in keys}
        if set(by_id) != set(self._pending) or len(keys) != len(self._pending):
            raise ValueError("these are not the announced keys")
        self._keys.add([by_id[key_id] for key_id in self._pending])
        self._pending = ()

    def next_event(self) -> Event | None:
        """The next event, or None if more bytes are needed."""
        if self._error is not None:
            raise self._error
        if self._pending:
            raise RuntimeError("add the announced keys first")
        try:
            return self._next()
        except SealError as exc:
            self._error = exc
            raise

    def _next(self) -> Event | None:
        if self._keys is None:
            return self._read_header()
        if self._done:
            if self._buffer:
                raise FormatError("bytes follow the last chunk")
            return EndOfStream()
        if not self._buffer:
            if self._ended:
                raise TruncatedError(f"the stream ends after chunk {self._chunk - 1} "
                                     "without its last chunk: it was truncated")
            return None
        kind = bytes(self._buffer[:1])
        if kind == KEY_RECORD:
            return self._read_key_ids()
        if kind in (CHUNK_RECORD, LAST_RECORD):
            return self._read_chunk(self._keys, kind == LAST_RECORD)
        raise FormatError(f"unknown record type {kind!r} after chunk {self._chunk - 1}")

    def _incomplete(self) -> None:
        """A record has not all arrived: wait for more, unless the input has ended."""
        if self._ended:
            raise TruncatedError(f"the stream ends inside a record (chunk {self._chunk})")

    def _peek(self, size: int) -> bytes | None:
        """The next ``size`` bytes, left in the buffer; None while they have not arrived."""
        if len(self._buffer) < size:
            self._incomplete()
            return None
        return bytes(self._buffer[:size])

    def _take(self, size: int) -> bytes | None:
        """The next ``size`` bytes, taken from the buffer; None while they have not arrived."""
        taken = self._peek(size)
        if taken is not None:
            del self._buffer[:size]
        return taken

    def _read_header(self) -> StreamHeader | None:
        fixed = self._peek(_FIXED.size)
        if fixed is None:
            return None
        magic, version, chunk_bytes, per_key = _FIXED.unpack(fixed)
        if magic != MAGIC:
            raise FormatError("not a qkdnet sealed stream (no QKDSEAL header)")
        if version != VERSION:
            raise FormatError(f"sealed stream format version {version}; this reads {VERSION}")
        names = _short_strings(self._buffer, _FIXED.size, 2)
        if names is None:
            self._incomplete()
            return None
        (sender, receiver), end = names
        try:
            header = StreamHeader(sender, receiver, chunk_bytes, per_key)
        except ParameterError as exc:
            raise FormatError(f"malformed header: {exc}") from None
        del self._buffer[:end]
        self._keys = _Keyring(header)
        return header

    def _read_key_ids(self) -> KeysAnnounced | None:
        head = self._peek(1 + _COUNT.size)
        if head is None:
            return None
        (count,) = _COUNT.unpack(head[1:])
        if not 1 <= count <= MAX_KEYS_PER_RECORD:
            raise FormatError(f"a key record announces {count} keys")
        found = _short_strings(self._buffer, len(head), count)
        if found is None:
            self._incomplete()
            return None
        ids, end = found
        del self._buffer[:end]
        self._pending = tuple(ids)
        return KeysAnnounced(self._pending)

    def _read_chunk(self, keys: _Keyring, last: bool) -> Plaintext | None:
        head = self._peek(1 + _LENGTH.size)
        if head is None:
            return None
        (length,) = _LENGTH.unpack(head[1:])
        chunk_bytes = keys.header.chunk_bytes
        if not TAG_BYTES <= length <= chunk_bytes + TAG_BYTES or \
                (not last and length != chunk_bytes + TAG_BYTES):
            raise FormatError(f"chunk {self._chunk} is {length} bytes long")
        record = self._take(len(head) + length)
        if record is None:
            return None
        if not keys.covers(self._chunk):
            raise FormatError(f"chunk {self._chunk} comes before its key_ID")
        cipher, nonce, aad = keys.parts(self._chunk, last)
        try:
            data = cipher.decrypt(nonce, record[len(head):], aad)
        except InvalidTag:
            raise IntegrityError(
                f"chunk {self._chunk} fails authentication under key "
                f"{keys.key_ids[self._chunk // keys.header.chunks_per_key]}: the stream was "
                "altered or reordered, or the key is not the sender's") from None
        self._chunk += 1
        self._done = last
        return Plaintext(data)


def _short(value: bytes) -> bytes:
    """``value`` after its length in one byte."""
    return bytes([len(value)]) + value


def _short_strings(buffer: bytearray, start: int, count: int
                   ) -> tuple[list[str], int] | None:
    """``count`` length-prefixed UTF-8 strings from ``start``, and where they end; None if
    the buffer does not hold them all yet."""
    out, at = [], start
    for _ in range(count):
        if at >= len(buffer) or at + 1 + buffer[at] > len(buffer):
            return None
        raw = bytes(buffer[at + 1:at + 1 + buffer[at]])
        try:
            out.append(raw.decode())
        except UnicodeDecodeError:
            raise FormatError("an SAE ID or key_ID is not UTF-8") from None
        at += 1 + buffer[at]
    return out, at
