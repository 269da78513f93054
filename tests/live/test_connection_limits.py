"""Transport limits of a running `qkdnet serve` (the three-node chain), over real loopback
sockets: slow and idle connections are closed, a flood of idle connections to the O&M port
is refused at its caps and leaves every KME answering, and refusals are logged once per
burst."""

from __future__ import annotations

import errno
import os
import resource
import select
import socket
import ssl
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from chain_scenario import CHAIN_SCENARIO

from qkdnet.apps.sae_client import tls_context
from qkdnet.live.launch import ServeProcess, start_serve
from qkdnet.live.runtime import LOOP_VARIABLE
from qkdnet.live.serve import OM_LIMITS
from qkdnet.live.tls_server import HEADER_TIMEOUT_S

IDLE_TIMEOUT_S = 2
TRICKLE_S = 0.3
#: How long a test waits, beyond a timeout, for the server to act on it (s): generous, so a
#: loaded machine does not fail the test; a server that never closes fails it all the same.
MARGIN_S = 15.0
#: The server's file-handle limit in the flood test, below the flood: without the caps the
#: flood would take every handle.
SERVER_NOFILE = 4096
FLOOD = 10_000
REFUSAL_LOG = "refusing connections"


@contextmanager
def _serving(folder: Path, *options: str, nofile: int | None = None
             ) -> Iterator[ServeProcess]:
    """`qkdnet serve` of the chain (optionally with a lower RLIMIT_NOFILE, via prlimit)."""
    (folder / "scenario.yaml").write_text(CHAIN_SCENARIO)
    python = (sys.executable,) if nofile is None else (
        "prlimit", f"--nofile={nofile}:{nofile}", sys.executable)
    served = start_serve(folder / "live", str(folder / "scenario.yaml"),
                         ["--prefill-bits", "65536", "--no-dynamics", *options], python=python)
    try:
        yield served
    finally:
        served.stop()


def _om_address(served: ServeProcess) -> tuple[str, int]:
    parts = urlsplit(served.manifest["om_url"])
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


def _kme_address(served: ServeProcess, node: str) -> tuple[str, int]:
    return "127.0.0.1", int(served.manifest["kmes"][node]["port"])


def _tls_to_kme(served: ServeProcess, node: str, sae: str) -> ssl.SSLSocket:
    """A mutual-TLS connection to ``node``'s KME as ``sae``, handshake done."""
    (cert, key), ca = served.tls(sae)
    context = ssl.create_default_context(cafile=ca)
    context.load_cert_chain(cert, key)
    raw = socket.create_connection(_kme_address(served, node), timeout=MARGIN_S)
    return context.wrap_socket(raw, server_hostname="localhost")


def _closed_by_server(sock: socket.socket, within_s: float) -> bool:
    """Whether the server closes ``sock`` (nothing more to read) within ``within_s``;
    False if it is still open then."""
    sock.settimeout(within_s)
    try:
        while sock.recv(4096):
            pass
        return True
    except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
        return True
    except TimeoutError:
        return False


def _answers(sock: socket.socket) -> bool:
    """Whether a GET of the console's style sheet (open to all: the rest of the O&M API
    needs a login) on ``sock`` gets a 200 (False: the server closed it)."""
    sock.settimeout(MARGIN_S)
    try:
        sock.sendall(b"GET /console.css HTTP/1.1\r\nHost: localhost\r\n\r\n")
        return sock.recv(4096).startswith(b"HTTP/1.1 200")
    except (ConnectionResetError, BrokenPipeError):
        return False


@pytest.fixture(params=["uvloop", "asyncio"], autouse=True)
def loop(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test on uvloop's event loop (serve's default) and on asyncio's."""
    name = str(request.param)
    monkeypatch.setenv(LOOP_VARIABLE, name)
    return name


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ServeProcess]:
    """The chain with a short idle timeout."""
    with _serving(tmp_path, "--idle-timeout", str(IDLE_TIMEOUT_S)) as served:
        yield served


def test_a_half_sent_request_is_closed_after_the_header_timeout(served: ServeProcess) -> None:
    """Half a request line, then silence: the O&M port and a KME (TLS) both hang up."""
    om = socket.create_connection(_om_address(served))
    kme = _tls_to_kme(served, "a", "sae-a")
    with om, kme:
        om.sendall(b"GET /api/alarms HT")
        kme.sendall(b"GET /api/v1/keys/sae-c/sta")
        assert _closed_by_server(om, HEADER_TIMEOUT_S + MARGIN_S)
        assert _closed_by_server(kme, HEADER_TIMEOUT_S + MARGIN_S)


def test_a_request_trickled_a_byte_at_a_time_is_cut_before_it_is_complete(
        served: ServeProcess) -> None:
    """The header deadline runs from the first byte: later bytes do not extend it."""
    request = (b"GET /api/alarms HTTP/1.1\r\nHost: localhost\r\nX-Pad: " + b"p" * 64
               + b"\r\n\r\n")  # ~34 s at TRICKLE_S a byte, far beyond the deadline
    with socket.create_connection(_om_address(served)) as om:
        sent = 0
        for byte in request:
            try:
                om.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += 1
            if select.select([om], [], [], TRICKLE_S)[0]:  # readable: closed (or answered)
                break
        assert sent < len(request), "the whole trickled request was taken"
        assert _closed_by_server(om, MARGIN_S)


def test_a_connection_that_never_sends_a_request_is_closed_when_idle(
        served: ServeProcess) -> None:
    """Connected and silent (no request at all): closed after the idle timeout."""
    om = socket.create_connection(_om_address(served))
    kme = _tls_to_kme(served, "c", "sae-c")
    with om, kme:
        assert _closed_by_server(om, IDLE_TIMEOUT_S + MARGIN_S)
        assert _closed_by_server(kme, IDLE_TIMEOUT_S + MARGIN_S)


def test_the_per_address_cap_refuses_the_extra_connections_and_logs_once(
        tmp_path: Path, loop: str) -> None:
    """Cap + 16 connections from one address: the cap are served, 16 closed, one log line."""
    extra = 16
    with _serving(tmp_path) as served:
        address = _om_address(served)
        socks = [socket.create_connection(address) for _ in range(
            OM_LIMITS.max_per_address + extra)]
        try:
            answered = [_answers(s) for s in socks]
        finally:
            for s in socks:
                s.close()
        log = served.log()
    assert answered.count(True) == OM_LIMITS.max_per_address
    assert answered.count(False) == extra
    assert log.count(REFUSAL_LOG) == 1, log
    assert f"event loop: {loop}" in log


def _flood_size() -> int:
    """FLOOD, or as many as this process's file handles allow with 1024 to spare."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return min(FLOOD, soft - 1024)


def test_ten_thousand_idle_connections_to_the_om_port_leave_every_kme_answering(
        tmp_path: Path) -> None:
    """A flood of idle O&M connections (more than the server's file handles) is refused at
    the O&M caps; every KME still answers Get status."""
    count = _flood_size()
    assert count > SERVER_NOFILE, "too few file handles here for a meaningful flood"
    with _serving(tmp_path, nofile=SERVER_NOFILE) as served:
        address = _om_address(served)
        flood: list[socket.socket] = []
        try:
            for _ in range(count):  # non-blocking: a full backlog does not stall the loop
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                flood.append(sock)
                sock.setblocking(False)
                assert sock.connect_ex(address) in (0, errno.EINPROGRESS)
            answers = {}  # node: status of Get status there, as sae-a and as sae-c
            for node, kme in served.manifest["kmes"].items():
                for sae, slave in (("sae-a", "sae-c"), ("sae-c", "sae-a")):
                    (cert, key), ca = served.tls(sae)
                    with httpx.Client(verify=tls_context(cert, key, ca), trust_env=False,
                                      timeout=MARGIN_S) as client:
                        url = f"{kme['url']}/api/v1/keys/{slave}/status"
                        answers[node, sae] = client.get(url).status_code
        finally:
            for sock in flood:
                sock.close()
        log = served.log()
    assert answers["a", "sae-a"] == answers["c", "sae-c"] == 200, answers
    assert all(status < 500 for status in answers.values()), answers
    # One line per burst (SYNs the full backlog dropped come back in waves), no tracebacks.
    assert 1 <= log.count(REFUSAL_LOG) <= 5 and "Traceback" not in log, log[-3000:]


def test_running_out_of_file_handles_drains_the_backlog_and_serving_goes_on(
        tmp_path: Path, loop: str) -> None:
    """With a file limit a few handles above what serve holds at start, 40 connections to
    a KME run it out of handles: the process lives on and answers Get status once they are
    closed; on asyncio's loop the drain is logged once (uvloop's libuv drains silently)."""
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    with _serving(tmp_path / "first") as served:
        at_start = len(os.listdir(f"/proc/{served.process.pid}/fd"))
    with _serving(tmp_path / "second", nofile=at_start + 6) as served:
        address = _kme_address(served, "a")
        flood = []
        try:
            for _ in range(40):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                flood.append(sock)
                sock.setblocking(False)
                assert sock.connect_ex(address) in (0, errno.EINPROGRESS)
            # the server has taken every handle it may: its limit is reached
            deadline = time.monotonic() + MARGIN_S
            while len(os.listdir(f"/proc/{served.process.pid}/fd")) < at_start + 6:
                assert time.monotonic() < deadline, "the server never ran out of handles"
                time.sleep(0.1)
        finally:
            for sock in flood:
                sock.close()
        while len(os.listdir(f"/proc/{served.process.pid}/fd")) >= at_start + 6:
            assert time.monotonic() < deadline + MARGIN_S, "the server kept its handles"
            time.sleep(0.1)
        (cert, key), ca = served.tls("sae-a")
        status = None
        for _ in range(5):  # flood connections still queued may take the handles once more
            with httpx.Client(verify=tls_context(cert, key, ca), trust_env=False,
                              timeout=MARGIN_S) as client:
                try:
                    status = client.get(f"{served.manifest['kmes']['a']['url']}"
                                        "/api/v1/keys/sae-c/status").status_code
                    break
                except httpx.ConnectError:
                    time.sleep(1.0)
        assert served.process.poll() is None
        log = served.log()
    assert status == 200
    assert "Traceback" not in log, log[-3000:]
    if loop == "asyncio":
        assert log.count("the process is out of file handles") == 1, log[-3000:]
