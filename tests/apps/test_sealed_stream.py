"""The sealed-stream framing without a KME: what the sender seals, the receiver opens with the
same keys, and any change to the bytes, their order, their end or the keys is refused."""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence

import pytest

from qkdnet.apps.sae_client import Key
from qkdnet.apps.sealed_stream import (
    EndOfStream,
    FormatError,
    IntegrityError,
    KeysAnnounced,
    Opener,
    Plaintext,
    Sealer,
    StreamHeader,
    TruncatedError,
)
from qkdnet.errors import ParameterError

CHUNK = 64
PER_KEY = 3


def fresh_keys(number: int) -> list[Key]:
    return [Key(str(uuid.uuid4()), os.urandom(32)) for _ in range(number)]


def seal(data: bytes, keys: Sequence[Key], chunk: int = CHUNK, per_key: int = PER_KEY,
         batch: int = 1) -> bytes:
    """``data`` sealed from sae-a to sae-b, announcing ``batch`` keys at a time."""
    sealer = Sealer(StreamHeader("sae-a", "sae-b", chunk, per_key))
    out, supply = [sealer.start()], list(keys)
    pieces = [data[i:i + chunk] for i in range(0, len(data), chunk)] or [b""]
    for index, piece in enumerate(pieces):
        if sealer.keys_wanted():
            out.append(sealer.announce([supply.pop(0) for _ in range(batch)]))
        out.append(sealer.seal(piece, last=index == len(pieces) - 1))
    return b"".join(out)


def open_sealed(sealed: bytes, keys: Sequence[Key], feed: int = 1000) -> tuple[bytes, list[str]]:
    """The plaintext of ``sealed``, fed ``feed`` bytes at a time, and the key_IDs asked for."""
    opener, held = Opener(), {k.key_id: k for k in keys}
    plain, asked, at = [], [], 0
    while not isinstance(event := opener.next_event(), EndOfStream):
        if event is None:
            opener.receive_data(sealed[at:at + feed])
            at += feed
        elif isinstance(event, KeysAnnounced):
            asked.extend(event.key_ids)
            opener.add_keys([held[i] for i in event.key_ids])
        elif isinstance(event, Plaintext):
            plain.append(event.data)
    opener.receive_data(sealed[at:])
    opener.receive_data(b"")
    assert isinstance(opener.next_event(), EndOfStream)
    return b"".join(plain), asked


def records(sealed: bytes) -> tuple[bytes, list[bytes]]:
    """The header and the records of a stream sealed by :func:`seal`."""
    header_end = 7 + 1 + 8 + 1 + 5 + 1 + 5
    header, rest, out = sealed[:header_end], sealed[header_end:], []
    while rest:
        if rest[:1] == b"K":
            count, at = int.from_bytes(rest[1:3], "big"), 3
            for _ in range(count):
                at += 1 + rest[at]
        else:
            at = 5 + int.from_bytes(rest[1:5], "big")
        out.append(rest[:at])
        rest = rest[at:]
    return header, out


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 7 * CHUNK, 1000])
def test_what_is_sealed_opens_identical(size: int) -> None:
    """Any length, whole chunks or not, empty too, comes back byte for byte."""
    data, keys = os.urandom(size), fresh_keys(8)
    assert open_sealed(seal(data, keys), keys)[0] == data


@pytest.mark.parametrize("feed", [1, 7, 100_000])
def test_the_opener_takes_the_bytes_in_any_pieces(feed: int) -> None:
    """Fed one byte at a time or all at once, the opener gives the same plaintext."""
    data, keys = os.urandom(5 * CHUNK + 3), fresh_keys(2)
    assert open_sealed(seal(data, keys), keys, feed)[0] == data


def test_one_key_seals_chunks_per_key_chunks_and_each_key_is_announced_once() -> None:
    """10 chunks at 3 per key use 4 keys, announced in order, whether one or two at a time."""
    data, keys = os.urandom(10 * CHUNK), fresh_keys(4)
    assert open_sealed(seal(data, keys), keys) == (data, [k.key_id for k in keys])
    assert open_sealed(seal(data, keys, batch=2), keys)[0] == data


def test_keys_wanted_covers_a_known_length_in_one_announcement() -> None:
    """With the length known, the sealer asks for every key it will need at once."""
    sealer = Sealer(StreamHeader("sae-a", "sae-b", CHUNK, PER_KEY))
    assert sealer.keys_wanted(10 * CHUNK) == 4
    assert sealer.keys_wanted(0) == 1  # an empty stream still has its last chunk
    sealer.announce(fresh_keys(1))
    assert sealer.keys_wanted(3 * CHUNK) == 0
    assert sealer.keys_wanted(3 * CHUNK + 1) == 1


def test_the_same_plaintext_under_two_keys_differs() -> None:
    """Each stream has its own keys: equal plaintexts do not give equal ciphertexts."""
    data = bytes(3 * CHUNK)
    assert records(seal(data, fresh_keys(1)))[1][1] != records(seal(data, fresh_keys(1)))[1][1]


def test_key_material_stays_out_of_reprs() -> None:
    """A key's repr and a plaintext event's repr show no bytes of either."""
    key = Key("k1", bytes(range(32)))
    assert "material" not in repr(key) and bytes(range(32)).hex() not in repr(key)
    assert "secret" not in repr(Plaintext(b"secret"))


# --- what the receiver refuses ---------------------------------------------------------------

def refused(sealed: bytes, keys: Sequence[Key]) -> Exception:
    with pytest.raises((IntegrityError, FormatError)) as caught:
        open_sealed(sealed, keys)
    return caught.value


def test_a_flipped_bit_anywhere_in_a_chunk_fails_authentication() -> None:
    """One bit flipped in a chunk's ciphertext or tag: IntegrityError naming the chunk."""
    data, keys = os.urandom(4 * CHUNK), fresh_keys(2)
    sealed = bytearray(seal(data, keys))
    sealed[-1] ^= 0x01
    error = refused(bytes(sealed), keys)
    assert isinstance(error, IntegrityError) and "chunk 3" in str(error)


def test_a_changed_header_fails_authentication() -> None:
    """The receiver named in the header changed: the first chunk no longer authenticates."""
    keys = fresh_keys(1)
    sealed = seal(b"hello", keys).replace(b"sae-b", b"sae-x", 1)
    assert isinstance(refused(sealed, keys), IntegrityError)


def test_swapped_chunks_fail_authentication() -> None:
    """Two chunks under one key, swapped: the chunk index in the associated data differs."""
    keys = fresh_keys(1)
    header, recs = records(seal(os.urandom(3 * CHUNK), keys))
    recs[1], recs[2] = recs[2], recs[1]
    assert "chunk 0" in str(refused(header + b"".join(recs), keys))


def test_a_dropped_chunk_fails_authentication() -> None:
    """A middle chunk removed: the next one is read as the dropped one and fails."""
    keys = fresh_keys(2)
    header, recs = records(seal(os.urandom(5 * CHUNK), keys))
    del recs[2]
    assert isinstance(refused(header + b"".join(recs), keys), IntegrityError)


def test_a_stream_cut_after_a_whole_chunk_is_truncated() -> None:
    """The last chunk dropped: every chunk left authenticates, but the end is missing."""
    keys = fresh_keys(2)
    header, recs = records(seal(os.urandom(4 * CHUNK), keys))
    assert isinstance(refused(header + b"".join(recs[:-1]), keys), TruncatedError)


def test_a_stream_cut_inside_a_record_is_truncated() -> None:
    """Cut in the middle of a chunk: TruncatedError."""
    keys = fresh_keys(1)
    sealed = seal(os.urandom(2 * CHUNK), keys)
    assert isinstance(refused(sealed[:-10], keys), TruncatedError)


def test_a_chunk_marked_last_too_early_fails_authentication() -> None:
    """A "C" record relabelled "F" to end the stream early: the last flag is authenticated."""
    keys = fresh_keys(1)
    header, recs = records(seal(os.urandom(3 * CHUNK), keys))
    early = b"F" + recs[1][1:]
    assert isinstance(refused(header + recs[0] + early, keys), IntegrityError)


def test_a_chunk_from_another_stream_fails_authentication() -> None:
    """A chunk from a second stream under the same key and index: the header digest and key
    differ."""
    keys, other_keys = fresh_keys(1), fresh_keys(1)
    header, recs = records(seal(os.urandom(2 * CHUNK), keys))
    _, other = records(seal(os.urandom(2 * CHUNK), other_keys))
    assert isinstance(refused(header + recs[0] + other[1] + recs[2], keys), IntegrityError)


def test_the_wrong_key_under_the_announced_key_id_fails_authentication() -> None:
    """Keys with the announced key_IDs but other bytes (not the sender's): IntegrityError."""
    keys = fresh_keys(1)
    wrong = [Key(k.key_id, os.urandom(32)) for k in keys]
    assert isinstance(refused(seal(b"attack at dawn", keys), wrong), IntegrityError)


def test_bytes_after_the_last_chunk_are_refused() -> None:
    """Anything appended after the last chunk is a FormatError."""
    keys = fresh_keys(1)
    error = refused(seal(b"data", keys) + b"C", keys)
    assert isinstance(error, FormatError) and "follow the last chunk" in str(error)


@pytest.mark.parametrize(("stream", "says"), [
    (b"PK\x03\x04 a zip file, not a sealed stream", "not a qkdnet sealed stream"),
    (b"QKDSEAL\x02" + bytes(20), "version 2"),
])
def test_other_bytes_are_not_a_sealed_stream(stream: bytes, says: str) -> None:
    """Another format or another version is named as such."""
    error = refused(stream, [])
    assert isinstance(error, FormatError) and says in str(error)


def test_an_error_is_final() -> None:
    """After an error the opener raises it again instead of reading on."""
    opener = Opener()
    opener.receive_data(b"not sealed at all, and long enough")
    for _ in range(2):
        with pytest.raises(FormatError):
            opener.next_event()


def test_a_key_of_another_size_is_refused_by_name() -> None:
    """A 128-bit key is refused, naming its key_ID and not its bytes."""
    sealer = Sealer(StreamHeader("sae-a", "sae-b"))
    short = Key("k-short", os.urandom(16))
    with pytest.raises(FormatError, match="k-short is 128 bits") as caught:
        sealer.announce([short])
    assert short.material.hex() not in str(caught.value)


def test_misuse_of_the_sealer_is_refused() -> None:
    """No chunk without a key, a short chunk only last, nothing after the last."""
    sealer = Sealer(StreamHeader("sae-a", "sae-b", CHUNK, PER_KEY))
    with pytest.raises(RuntimeError, match="announce keys first"):
        sealer.seal(bytes(CHUNK), last=False)
    sealer.announce(fresh_keys(1))
    with pytest.raises(ValueError, match="not 3"):
        sealer.seal(b"abc", last=False)
    sealer.seal(b"abc", last=True)
    with pytest.raises(RuntimeError, match="already sealed"):
        sealer.seal(b"", last=True)


@pytest.mark.parametrize(("field", "value"), [("chunk_bytes", 0), ("chunks_per_key", 0),
                                              ("sender", ""), ("receiver", "x" * 256)])
def test_a_header_out_of_range_is_refused(field: str, value: object) -> None:
    """Chunk size, chunks per key and SAE IDs out of range name the parameter."""
    arguments: dict[str, object] = {"sender": "sae-a", "receiver": "sae-b", field: value}
    with pytest.raises(ParameterError, match=field):
        StreamHeader(**arguments)  # type: ignore[arg-type]
