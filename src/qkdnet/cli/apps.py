"""``qkdnet app send`` and ``qkdnet app receive``: a file or stream sealed with AES-256-GCM
under ETSI GS QKD 014 keys between two SAEs of a running ``qkdnet serve``."""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, BinaryIO

import typer

from qkdnet.cli.guard import fail, guard, writable_file
from qkdnet.cli.options import DATA_FOLDER

commands = typer.Typer(help="Applications that use the keys: a file or stream sealed with "
                       "AES-256-GCM between two SAEs.", no_args_is_help=True)

ManifestOption = Annotated[Path, typer.Option(help="The manifest.json of qkdnet serve.")]
#: Where `qkdnet serve` writes its manifest by default.
DEFAULT_MANIFEST = DATA_FOLDER / "manifest.json"
InArgument = Annotated[str, typer.Argument(metavar="IN", help="Input file; - for stdin.")]
OutArgument = Annotated[str, typer.Argument(
    metavar="OUT", help="Output file, written only if all goes well; - for stdout.")]


@commands.command("send")
def send_command(
    source: InArgument,
    target: OutArgument,
    sender: Annotated[str, typer.Option("--from", help="The sending SAE (master).")],
    receiver: Annotated[str, typer.Option("--to", help="The receiving SAE (slave).")],
    manifest: ManifestOption = DEFAULT_MANIFEST,
    chunk_bytes: Annotated[int, typer.Option(help="Plaintext bytes per chunk.")] = 64 * 1024,
    chunks_per_key: Annotated[int, typer.Option(help="Chunks sealed under one 256-bit "
                                                "key.")] = 256,
) -> None:
    """Seal IN for the receiving SAE with fresh keys from the sender's KME."""
    from qkdnet.apps.sae_client import SaeClient
    from qkdnet.apps.sealed_files import send

    def run() -> None:
        _check_output(target)
        with SaeClient.from_manifest(manifest, sender) as client, \
                _input(source) as (stream, size), _output(target) as out:
            done = send(client, sender, receiver, stream, out, size, chunk_bytes,
                        chunks_per_key)
        print(f"sealed {done.plaintext_bytes} bytes for {done.receiver}: {done.chunks} "
              f"chunks under {done.keys} keys", file=sys.stderr)

    guard(run)


@commands.command("receive")
def receive_command(
    source: InArgument,
    target: OutArgument,
    sae: Annotated[str, typer.Option("--as", help="The receiving SAE.")],
    manifest: ManifestOption = DEFAULT_MANIFEST,
) -> None:
    """Open a sealed IN with the keys from the receiving SAE's KME, authenticating it all."""
    from qkdnet.apps.sae_client import SaeClient
    from qkdnet.apps.sealed_files import receive

    def run() -> None:
        _check_output(target)
        with SaeClient.from_manifest(manifest, sae) as client, \
                _input(source) as (stream, _), _output(target) as out:
            done = receive(client, stream, out)
        print(f"opened {done.plaintext_bytes} bytes from {done.sender}: {done.chunks} "
              f"chunks under {done.keys} keys, all authenticated", file=sys.stderr)

    guard(run)


def _check_output(name: str) -> None:
    """OUT's folder, made if missing and writable, before any key is asked for."""
    if name != "-":
        writable_file("OUT", Path(name))


@contextlib.contextmanager
def _input(name: str) -> Iterator[tuple[BinaryIO, int | None]]:
    """The input stream and its size in bytes if it is a regular file."""
    if name == "-":
        yield sys.stdin.buffer, _size(sys.stdin.buffer)
        return
    with contextlib.ExitStack() as stack:
        try:
            stream = stack.enter_context(Path(name).open("rb"))
        except OSError as exc:
            fail(f"cannot read {name}: {exc.strerror}")
        yield stream, _size(stream)


@contextlib.contextmanager
def _output(name: str) -> Iterator[BinaryIO]:
    """stdout, or a file that appears only if the block succeeds."""
    from qkdnet.apps.sealed_files import atomic_output

    if name == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    with atomic_output(Path(name)) as out:
        yield out


def _size(stream: BinaryIO) -> int | None:
    try:
        info = os.fstat(stream.fileno())
    except (OSError, ValueError):
        return None  # not backed by a file descriptor (a test runner's stdin)
    return info.st_size if stat.S_ISREG(info.st_mode) else None
