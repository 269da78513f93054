"""A full disk under a real ``qkdnet serve``: the chain's data folder on an 8 MiB tmpfs, filled
once with a file until ENOSPC, then freed. The node raises ``key-store-fault`` and keeps it
while the disk is full (the probe asks for new room, so pages SQLite frees do not end it),
Get key answers 503 naming the cause, and once the file is removed the supply and the NMS
resume by themselves, with the keys delivered before the fault released once and both ends
of every KM-link alike.

Mounting needs root (CAP_SYS_ADMIN); where the mount is refused the test is skipped."""

from __future__ import annotations

import errno
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
from chain_scenario import CHAIN_SCENARIO
from om_login import logged_in
from polling import wait_for
from store_fault_watch import faulty_nodes, refused_naming
from store_files import unused_units

from qkdnet.apps.sae_client import BadRequest, SaeClient
from qkdnet.live.launch import start_serve
from qkdnet.live.store_faults import MAX_BACKOFF_S

#: Size of the tmpfs the data folder lives on: room for the stores, PKI and manifest.
TMPFS = "8m"
#: How long a fault or a recovery may take to show on this (loaded) machine (s).
WAIT_S = 45.0
FULL = "cannot be written (database or disk is full)"
#: A small speed-up and large pools: key still flows into pools that are far from full
#: when the disk fills, so the supply's resumption shows as pools growing again.
SERVE_OPTIONS = ["--prefill-bits", "65536", "--speedup", "3", "--pool-capacity-bits",
                 str(2**22), "--no-dynamics"]


@contextmanager
def _tmpfs(folder: Path) -> Iterator[Path]:
    """``folder`` as a fresh tmpfs of TMPFS bytes, mode 0700 (serve refuses an open folder),
    unmounted on exit."""
    folder.mkdir(mode=0o700)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS},mode=0700",
                              "tmpfs", str(folder)], capture_output=True, text=True,
                             check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _fill(path: Path) -> None:
    """Append to ``path`` until the file system has no block left (ENOSPC), in ever smaller
    writes, so whatever the stores free meanwhile is taken too."""
    with path.open("ab", buffering=0) as f:
        for chunk in (1 << 20, 1 << 16, 1 << 12, 1 << 9):
            while True:
                try:
                    f.write(b"\0" * chunk)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break


def test_a_full_disk_raises_the_alarm_gives_503_and_recovers_when_freed(tmp_path: Path) -> None:
    """Fill the tmpfs: key-store-fault and a 503 naming the cause; free it: the alarm clears,
    Get key works, pools and the NMS clock move on, earlier keys are released once."""
    (tmp_path / "scenario.yaml").write_text(CHAIN_SCENARIO)
    with _tmpfs(tmp_path / "live") as folder:
        served = start_serve(folder, str(tmp_path / "scenario.yaml"), SERVE_OPTIONS,
                             logs=tmp_path / "serve")  # the logs off the full disk
        om = served.manifest["om_url"]
        viewer = logged_in(folder, om, name="watch", role="viewer")  # before the disk fills

        def state() -> dict[str, Any]:
            return dict(viewer.get(f"{om}/api/state", timeout=10).json())

        def faulty() -> set[str]:
            return faulty_nodes(viewer, om)

        def key_bits() -> float:
            return float(sum(k["key_bits"] for k in state()["km_links"].values()))

        filler = folder / "filler"
        refusal: list[str] = []

        def refused(master: SaeClient) -> bool:
            """Get key is refused naming a faulty node's store."""
            return refused_naming(master, FULL, refusal)

        try:
            assert wait_for(lambda: state()["km_links"] != {}, WAIT_S)
            with SaeClient.from_manifest(served.manifest, "sae-a") as master, \
                    SaeClient.from_manifest(served.manifest, "sae-c") as slave:
                before = master.enc_keys("sae-c", number=3, size=256)
                assert faulty() == set()

                _fill(filler)  # once: the stores' probe asks for new room, not freed pages
                assert wait_for(lambda: refused(master), WAIT_S), refusal
                assert wait_for(lambda: bool(faulty()), WAIT_S), served.log()
                at_fault = faulty()
                time.sleep(3 * MAX_BACKOFF_S)  # several probes: none may end the fault
                assert faulty() == at_fault, served.log()
                assert "writes again" not in served.log()
                assert any(f"the key store of node {node} {FULL}" in refusal[0]
                           for node in at_fault), (refusal, at_fault)
                assert served.process.poll() is None
                frozen_bits, clock = key_bits(), state()["t"]

                filler.unlink()
                assert wait_for(lambda: faulty() == set(), WAIT_S), served.log()
                [after] = master.enc_keys("sae-c", number=1, size=256)
                assert wait_for(lambda: key_bits() > frozen_bits, WAIT_S)  # supply resumes
                assert wait_for(lambda: state()["t"] > clock, WAIT_S)  # the NMS too
                released = slave.dec_keys("sae-a", [k.key_id for k in before])
                assert released == before
                assert slave.dec_keys("sae-a", [after.key_id]) == [after]
                with pytest.raises(BadRequest):  # each key is released once only
                    slave.dec_keys("sae-a", [before[0].key_id])
            assert served.stop() == 0
            pools = unused_units(folder / "stores")
            for (node, link, outbound), units in pools.items():
                other = next(n for n in link.removeprefix("km:").split("~") if n != node)
                # a's outbound pool is b's inbound one: no block reached one end alone
                assert pools[(other, link, 1 - outbound)] == units, (node, link, outbound)
        finally:
            viewer.close()
            with suppress(FileNotFoundError):
                filler.unlink()
            served.stop()
