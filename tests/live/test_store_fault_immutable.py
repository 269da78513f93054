"""Store files made immutable under a real ``qkdnet serve`` (``chattr +i``, as a careless
operator or a security tool might): the node raises ``key-store-fault`` and Get key answers
503 naming it, the process lives on (a shared-memory WAL index died of SIGBUS here), and once
the flag is cleared supply and key delivery resume by themselves.

Needs root and a file system with the immutable flag (ext4, xfs, btrfs); skipped otherwise."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from chain_scenario import CHAIN_SCENARIO
from om_login import logged_in
from polling import wait_for
from store_fault_watch import faulty_nodes, refused_naming

from qkdnet.apps.sae_client import SaeClient
from qkdnet.live.launch import start_serve

#: How long a fault or a recovery may take to show on this (loaded) machine (s).
WAIT_S = 45.0
SERVE_OPTIONS = ["--prefill-bits", "65536", "--speedup", "3", "--pool-capacity-bits",
                 str(2**22), "--no-dynamics"]

pytestmark = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                                reason="chattr +i needs root")


def _chattr(flag: str, files: list[Path]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["chattr", flag, *map(str, files)], capture_output=True, text=True,
                          check=False)


@contextmanager
def _immutable(files: list[Path]) -> Iterator[None]:
    """``files`` immutable for the block, mutable again afterwards whatever happens."""
    made = _chattr("+i", files)
    if made.returncode != 0:
        pytest.skip(f"no immutable flag here: {made.stderr.strip()}")
    try:
        yield
    finally:
        _chattr("-i", files)


def test_immutable_store_files_are_a_store_fault_not_a_crash(tmp_path: Path) -> None:
    """chattr +i on node b's store: key-store-fault for b and a 503 naming its store while
    the server lives; chattr -i: the alarm clears and Get key works again."""
    (tmp_path / "scenario.yaml").write_text(CHAIN_SCENARIO)
    folder = tmp_path / "live"
    served = start_serve(folder, str(tmp_path / "scenario.yaml"), SERVE_OPTIONS)
    om = served.manifest["om_url"]
    viewer = logged_in(folder, om, name="watch", role="viewer")

    def faulty() -> set[str]:
        return faulty_nodes(viewer, om)

    refusal: list[str] = []

    def refused(master: SaeClient) -> bool:
        return refused_naming(master, "the key store of node b cannot be written", refusal)

    try:
        with SaeClient.from_manifest(served.manifest, "sae-a") as master:
            master.enc_keys("sae-c", number=1, size=256)
            # every file of b's store there is (a -shm too, where SQLite maps one)
            with _immutable(sorted((folder / "stores").glob("b.sqlite*"))):
                assert wait_for(lambda: refused(master), WAIT_S), refusal
                assert wait_for(lambda: "b" in faulty(), WAIT_S), served.log()
                assert served.process.poll() is None, served.log()
            assert wait_for(lambda: faulty() == set(), WAIT_S), served.log()
            [key] = master.enc_keys("sae-c", number=1, size=256)
        with SaeClient.from_manifest(served.manifest, "sae-c") as slave:
            assert slave.dec_keys("sae-a", [key.key_id]) == [key]
        assert served.process.poll() is None
    finally:
        viewer.close()
        assert served.stop() == 0, served.log()
