"""Key material at rest in a running ``qkdnet serve``: the data folder is 0700 and every store
(with its WAL and SHM) and private key 0600, so another local user reads none of it; serve
refuses a folder or store that others may access; and a key held for a slave SAE that is
not fetched within ``--held-key-ttl`` is erased and counted."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from chain_scenario import CHAIN_SCENARIO
from polling import wait_for
from prometheus_client.parser import text_string_to_metric_families

from qkdnet.apps.sae_client import BadRequest, SaeClient
from qkdnet.live.launch import ServeFailed, ServeProcess, start_serve

MASTER, SLAVE = "sae-a", "sae-c"
TTL_S = 3  # short, so a test sees a key expire; long enough to fetch one in time


@contextmanager
def _serving(root: Path, *options: str) -> Iterator[ServeProcess]:
    """`qkdnet serve` of the chain on root/live, with key in every pool."""
    (root / "scenario.yaml").write_text(CHAIN_SCENARIO)
    served = start_serve(root / "live", str(root / "scenario.yaml"),
                         ["--prefill-bits", "65536", "--no-dynamics", *options])
    try:
        yield served
    finally:
        served.stop()


def _client(served: ServeProcess, sae: str) -> SaeClient:
    (cert, key), ca = served.tls(sae)
    return SaeClient(served.kme_url(sae), cert, key, ca, timeout_s=30.0)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _start_fails(root: Path) -> str:
    """The log of a `qkdnet serve` on root/live that must refuse to start."""
    with pytest.raises(ServeFailed) as refused:
        start_serve(root / "live", str(root / "scenario.yaml"), ["--no-dynamics"])
    return str(refused.value)


def test_the_folder_is_0700_and_every_store_and_key_file_0600(tmp_path: Path) -> None:
    """While serving, the data folder and its sub-folders are 0700, every store with its
    -wal and every private key 0600 (there is no -shm: the WAL index is in memory)."""
    with _serving(tmp_path) as served:
        with _client(served, MASTER) as master:
            master.enc_keys(SLAVE, 1)  # a key held at c: the stores have written
        live = tmp_path / "live"
        stores = sorted((live / "stores").iterdir())
        assert {p.name for p in stores} >= {"a.sqlite", "a.sqlite-wal"}
        assert not any(p.name.endswith("-shm") for p in stores)
        for folder in (live, live / "stores", live / "pki"):
            assert _mode(folder) == 0o700, folder
        for file in [*stores, *(live / "pki").rglob("*.key")]:
            assert _mode(file) == 0o600, file


@pytest.mark.parametrize(("target", "mode", "fix"), [
    ("stores/a.sqlite", 0o644, "chmod 600"),
    ("stores/c.sqlite-wal", 0o640, "chmod 600"),
    ("stores", 0o755, "chmod 700"),
    ("", 0o755, "chmod 700"),
])
def test_serve_refuses_a_store_or_folder_others_may_read(tmp_path: Path, target: str,
                                                         mode: int, fix: str) -> None:
    """A store, WAL or folder open to group or others: one error line naming it and the
    fix, and serve does not start."""
    with _serving(tmp_path):
        pass
    path = tmp_path / "live" / target
    if not path.exists():
        path.touch()  # a WAL left by a crash
    path.chmod(mode)
    log = _start_fails(tmp_path)
    assert f"qkdnet: error: {str(path).rstrip('/')} is open to other users" in log
    assert fix in log
    assert "Traceback" not in log


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="needs root to run code as user nobody")
def test_another_user_cannot_read_a_store() -> None:
    """User nobody cannot open a store read-only even where it may enter the folders
    above the data folder: permission denied."""
    # as /srv or a home folder: others may pass through (pytest's tmp_path is private)
    with tempfile.TemporaryDirectory(prefix="qkdnet-at-rest-") as name:
        root = Path(name)
        root.chmod(0o755)
        read = _read_as_nobody(root)
    assert read.returncode != 0, read.stdout
    assert "unable to open database file" in read.stderr


def _read_as_nobody(root: Path) -> subprocess.CompletedProcess[str]:
    """Serve on root/live, have a key held at c, and try to read c's store as nobody."""
    with _serving(root) as served:
        with _client(served, MASTER) as master:
            master.enc_keys(SLAVE, 1)
        store = root / "live" / "stores" / "c.sqlite"
        probe = textwrap.dedent(f"""
            import os, sqlite3
            os.setgid(65534); os.setuid(65534)
            db = sqlite3.connect("file:{store}?mode=ro", uri=True)
            print(db.execute("SELECT COUNT(*) FROM held_keys").fetchone())
        """)
        return subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                              timeout=30, check=False)


def test_a_held_key_not_fetched_within_the_ttl_is_erased_and_counted(tmp_path: Path) -> None:
    """A key fetched at once is delivered; one left past the TTL is gone (400 at dec_keys)
    and the Status extension counts it, with the TTL."""
    with (_serving(tmp_path, "--held-key-ttl", str(TTL_S)) as served,
          _client(served, MASTER) as master, _client(served, SLAVE) as slave):
        status = master.status(SLAVE)
        assert status.status_extension == {"held_key_ttl_s": TTL_S, "expired_held_keys": 0}
        fresh = master.enc_keys(SLAVE, 1)[0]
        assert slave.dec_keys(MASTER, [fresh.key_id])[0].material == fresh.material
        left = master.enc_keys(SLAVE, 2)
        assert wait_for(lambda: (master.status(SLAVE).status_extension or {})
                        .get("expired_held_keys") == 2, seconds=30)
        for key in left:
            with pytest.raises(BadRequest, match="not found"):
                slave.dec_keys(MASTER, [key.key_id])
    assert "erased 2 held keys" in served.log()


def _expired_counter(served: ServeProcess) -> dict[str, float]:
    """The samples of qkdnet_node_expired_held_keys_total on the O&M /metrics (open on
    loopback), by node; the family's help text under the key "help"."""
    text = httpx.get(f"{served.manifest['om_url']}/metrics", timeout=10).text
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "qkdnet_node_expired_held_keys":
            assert family.type == "counter"
            found["help"] = 0.0 if "erased" in family.documentation else -1.0
            found.update({s.labels["node"]: s.value for s in family.samples
                          if s.name.endswith("_total")})
    return found


def test_expired_held_keys_are_a_prometheus_counter_per_node(tmp_path: Path) -> None:
    """/metrics counts, per node, the held keys erased past the TTL, as a counter."""
    with (_serving(tmp_path, "--held-key-ttl", str(TTL_S)) as served,
          _client(served, MASTER) as master):
        assert _expired_counter(served) == {"help": 0.0, "a": 0.0, "b": 0.0, "c": 0.0}
        master.enc_keys(SLAVE, 2)  # held at c, never fetched
        assert wait_for(lambda: _expired_counter(served).get("c") == 2.0, seconds=30)
        assert _expired_counter(served) == {"help": 0.0, "a": 0.0, "b": 0.0, "c": 2.0}


def _commit_counters(served: ServeProcess) -> tuple[float, float]:
    """(group commit rounds, store commits) from the O&M /metrics."""
    text = httpx.get(f"{served.manifest['om_url']}/metrics", timeout=10).text
    found = {f.name: s.value for f in text_string_to_metric_families(text)
             for s in f.samples if f.name.startswith("qkdnet_key_store_")}
    return found["qkdnet_key_store_commit_rounds"], found["qkdnet_key_store_commits"]


def test_get_key_calls_show_as_group_commit_rounds_on_metrics(tmp_path: Path) -> None:
    """A relay a -> c over b is one round that commits the three stores it wrote; the
    slave's release one more round of one commit."""
    with (_serving(tmp_path) as served, _client(served, MASTER) as master):
        rounds, commits = _commit_counters(served)
        [key] = master.enc_keys(SLAVE, 1)
        assert _commit_counters(served) == (rounds + 1, commits + 3)
        with _client(served, SLAVE) as slave:
            assert slave.dec_keys(MASTER, [key.key_id]) == [key]
        assert _commit_counters(served) == (rounds + 2, commits + 4)
