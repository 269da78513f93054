"""Linux network namespaces as hosts for multi-host tests.

:func:`netns_hosts` makes one network namespace per host, joined pairwise by veth links
(a full mesh by default, or the links given), and removes them all when its block ends,
also after a failure. Each host has one *host address* (``10.77.0.N/32`` on its loopback)
that the processes placed on it listen on, as a deployment file names one address per
host; each link is a point-to-point /31 (``10.78.K.0`` - ``10.78.K.1``) with a route to
the peer's host address over it and nowhere else, so cutting a link (``ip link set ...
down``) parts exactly those two hosts, as a cut fibre does, and a ring of hosts is a ring.
Per link, ``tc netem`` adds a one-way delay (5 µs per km of fibre: :func:`fibre_delay_s`)
and loss in each direction.

Commands run in a host with ``ip netns exec`` (:meth:`NetnsHosts.popen`,
:meth:`NetnsHosts.run`, :meth:`NetnsHosts.qkdnet`); every process started so, and any
other left in a namespace, is killed before the namespace is deleted.

Namespaces are named ``qkdnet-t<pid>-<random>-<index>``: unique per test run, so parallel
runs do not collide, and a run that crashed is recognised by its dead pid and cleaned up
by the next. A test module calls :func:`require_netns` first: where ``ip netns`` is not
permitted (not root, no CAP_NET_ADMIN, no iproute2) the module is skipped with the reason,
or, with QKDNET_REQUIRE_NETNS set (as in CI), it fails. Kernels built without the netem
qdisc (sch_netem) refuse delay and loss: :func:`require_netem` skips, or fails with
QKDNET_REQUIRE_NETEM set.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import select
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import pytest

REQUIRE_NETNS = "QKDNET_REQUIRE_NETNS"
REQUIRE_NETEM = "QKDNET_REQUIRE_NETEM"
#: Bound on each ip/tc command (s).
COMMAND_TIMEOUT_S = 10.0
#: Bound on a process's exit after SIGTERM before SIGKILL, at teardown (s).
STOP_TIMEOUT_S = 5.0
#: One-way delay of light in fibre (s per km): 5 µs/km, so Harbin-Beijing (~1,200 km) ~6 ms.
FIBRE_DELAY_S_PER_KM = 5e-6
PREFIX = "qkdnet-t"
_STALE = re.compile(rf"^{PREFIX}(\d+)-")
HOST_NET = "10.77.0"
LINK_NET = "10.78"
#: 10.77.0.0/24 and 10.78.0.0/16 give at most 254 hosts and 256 links.
MAX_HOSTS = 254
MAX_LINKS = 256


class NetnsError(RuntimeError):
    """An ``ip`` or ``tc`` command failed: the command and what it said."""


def fibre_delay_s(km: float) -> float:
    """The one-way delay (s) of ``km`` kilometres of fibre."""
    return km * FIBRE_DELAY_S_PER_KM


def _ip(*args: str, tool: str = "ip") -> str:
    """Run ``ip``/``tc`` with ``args``; its stdout, or NetnsError naming the command."""
    try:
        done = subprocess.run([tool, *args], capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NetnsError(f"{tool} {' '.join(args)}: {exc}") from None
    if done.returncode != 0:
        raise NetnsError(f"{tool} {' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


def netns_refusal() -> str | None:
    """Why network namespaces cannot be made here, or None when they can (a probe
    namespace is made and deleted)."""
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed (apt-get install iproute2)"
    probe = f"{PREFIX}{os.getpid()}-probe"
    try:
        _ip("netns", "add", probe)
    except NetnsError as exc:
        return f"ip netns is not permitted here (needs root or CAP_NET_ADMIN): {exc}"
    with contextlib.suppress(NetnsError):
        _ip("netns", "del", probe)
    return None


def netem_refusal() -> str | None:
    """Why ``tc netem`` cannot be used here, or None when it can (a netem qdisc is put on
    the loopback of a probe namespace)."""
    if shutil.which("tc") is None:
        return "the tc command (iproute2) is not installed (apt-get install iproute2)"
    probe = f"{PREFIX}{os.getpid()}-netem"
    try:
        _ip("netns", "add", probe)
    except NetnsError as exc:
        return f"ip netns is not permitted here: {exc}"
    try:
        _ip("-n", probe, "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms",
            tool="tc")
    except NetnsError as exc:
        return f"this kernel has no netem qdisc (sch_netem): {exc}"
    finally:
        with contextlib.suppress(NetnsError):
            _ip("netns", "del", probe)
    return None


def _require(reason: str | None, variable: str) -> None:
    if reason is None:
        return
    if os.environ.get(variable):
        raise RuntimeError(f"{variable} is set but {reason}")
    pytest.skip(reason, allow_module_level=True)


def require_netns() -> None:
    """Skip the calling test (module, when called at import) when network namespaces
    cannot be made here; raise instead when QKDNET_REQUIRE_NETNS says they must."""
    _require(netns_refusal(), REQUIRE_NETNS)


def require_netem() -> None:
    """Skip the calling test when the kernel has no netem qdisc; raise instead when
    QKDNET_REQUIRE_NETEM says delay and loss must be tested."""
    _require(netem_refusal(), REQUIRE_NETEM)


@dataclass(frozen=True)
class Link:
    """A veth link between hosts ``a`` and ``b``: each end's device (in its host's
    namespace) and its /31 address."""

    a: str
    b: str
    a_dev: str
    b_dev: str
    a_address: str
    b_address: str

    def end(self, host: str) -> tuple[str, str]:
        """(device, address) of ``host``'s end."""
        return (self.a_dev, self.a_address) if host == self.a else (self.b_dev, self.b_address)


class NetnsHosts:
    """Hosts as network namespaces; build with :func:`netns_hosts`."""

    def __init__(self, hosts: Sequence[str], links: Sequence[tuple[str, str]]) -> None:
        if len(set(hosts)) != len(hosts) or not 0 < len(hosts) <= MAX_HOSTS:
            raise ValueError(f"hosts {list(hosts)}: 1..{MAX_HOSTS} distinct names expected")
        if len(links) > MAX_LINKS:
            raise ValueError(f"{len(links)} links: at most {MAX_LINKS}")
        self.hosts = tuple(hosts)
        self._run_id = f"{PREFIX}{os.getpid()}-{secrets.token_hex(3)}"
        self._namespaces: dict[str, str] = {}
        self._links: dict[frozenset[str], Link] = {}
        self._processes: list[subprocess.Popen[Any]] = []
        for a, b in links:
            if a == b or a not in hosts or b not in hosts:
                raise ValueError(f"link {a!r}-{b!r}: two different hosts of {list(hosts)}")
            if frozenset((a, b)) in self._links:
                raise ValueError(f"link {a!r}-{b!r} given twice")
            self._links[frozenset((a, b))] = self._planned(a, b, len(self._links))

    def _planned(self, a: str, b: str, k: int) -> Link:
        # device names are per namespace, so a peer's index is unique there (<= 15 chars)
        return Link(a, b, f"to{self.hosts.index(b)}", f"to{self.hosts.index(a)}",
                    f"{LINK_NET}.{k}.0", f"{LINK_NET}.{k}.1")

    # -- building and tearing down

    def build(self) -> None:
        """Make the namespaces, loopbacks, host addresses, links and routes."""
        for i, host in enumerate(self.hosts):
            ns = f"{self._run_id}-{i}"
            _ip("netns", "add", ns)
            self._namespaces[host] = ns
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "addr", "add", f"{self.address(host)}/32", "dev", "lo")
        for link in self._links.values():
            _ip("link", "add", link.a_dev, "netns", self.namespace(link.a), "type", "veth",
                "peer", "name", link.b_dev, "netns", self.namespace(link.b))
            for host in (link.a, link.b):
                dev, address = link.end(host)
                _ip("-n", self.namespace(host), "addr", "add", f"{address}/31", "dev", dev)
            self._up(link)

    def _up(self, link: Link) -> None:
        for host in (link.a, link.b):
            _ip("-n", self.namespace(host), "link", "set", link.end(host)[0], "up")
        # a link going down takes its routes with it: (re)made on every up
        for host, peer in ((link.a, link.b), (link.b, link.a)):
            _ip("-n", self.namespace(host), "route", "replace", f"{self.address(peer)}/32",
                "via", link.end(peer)[1], "dev", link.end(host)[0],
                "src", self.address(host))

    def close(self) -> None:
        """Stop every process in the namespaces, then delete them (their veths go too)."""
        for process in self._processes:
            _stop(process)
        for ns in self._namespaces.values():
            _kill_all_in(ns)
            with contextlib.suppress(NetnsError):
                _ip("netns", "del", ns)
        self._namespaces.clear()

    # -- looking up

    def namespace(self, host: str) -> str:
        """The namespace name of ``host``."""
        try:
            return self._namespaces[host]
        except KeyError:
            raise KeyError(f"no host {host!r} (hosts: {', '.join(self.hosts)})") from None

    def address(self, host: str) -> str:
        """``host``'s address: on its loopback, reachable from every host linked to it."""
        if host not in self.hosts:
            raise KeyError(f"no host {host!r} (hosts: {', '.join(self.hosts)})")
        return f"{HOST_NET}.{self.hosts.index(host) + 1}"

    @property
    def links(self) -> list[Link]:
        """Every link, in the order given."""
        return list(self._links.values())

    def link(self, a: str, b: str) -> Link:
        """The link between ``a`` and ``b`` (either order)."""
        try:
            return self._links[frozenset((a, b))]
        except KeyError:
            raise KeyError(f"no link between {a!r} and {b!r}") from None

    def qdisc(self, host: str, peer: str) -> str:
        """``tc qdisc show`` of ``host``'s end of the link to ``peer``."""
        return _ip("-n", self.namespace(host), "qdisc", "show", "dev",
                   self.link(host, peer).end(host)[0], tool="tc")

    # -- shaping, cutting

    def shape(self, a: str, b: str, delay_s: float = 0.0, loss: float = 0.0) -> None:
        """Delay (s, one way) and lose (fraction 0..1) packets in each direction of the
        link ``a``-``b`` (tc netem on both ends); zero for both removes the shaping."""
        if delay_s < 0 or not 0 <= loss <= 1:
            raise ValueError(f"delay_s {delay_s} must be >= 0 s, loss {loss} within 0..1")
        link = self.link(a, b)
        for host in (a, b):
            ns, dev = self.namespace(host), link.end(host)[0]
            if delay_s == 0 and loss == 0:
                with contextlib.suppress(NetnsError):  # nothing to remove is fine
                    _ip("-n", ns, "qdisc", "del", "dev", dev, "root", tool="tc")
                continue
            lose = ("loss", f"{loss * 100:g}%") if loss else ()
            _ip("-n", ns, "qdisc", "replace", "dev", dev, "root", "netem",
                "delay", f"{round(delay_s * 1e6)}us", *lose, tool="tc")

    def cut(self, a: str, b: str) -> None:
        """Cut the link ``a``-``b`` (both ends down): the two hosts no longer reach each
        other (new connections fail as unreachable; open ones hear nothing)."""
        link = self.link(a, b)
        for host in (a, b):
            _ip("-n", self.namespace(host), "link", "set", link.end(host)[0], "down")

    def restore(self, a: str, b: str) -> None:
        """Bring the link ``a``-``b`` up again, with its routes."""
        self._up(self.link(a, b))

    # -- running

    def popen(self, host: str, args: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start ``args`` in ``host``'s namespace (``ip netns exec``); ``kwargs`` go to
        Popen. The process is stopped when the hosts are closed, if not before."""
        process = subprocess.Popen(["ip", "netns", "exec", self.namespace(host), *args],
                                   **kwargs)
        self._processes.append(process)
        return process

    def run(self, host: str, args: Sequence[str], timeout_s: float = COMMAND_TIMEOUT_S
            ) -> subprocess.CompletedProcess[str]:
        """Run ``args`` in ``host``'s namespace to its end (at most ``timeout_s``, s: then
        killed and TimeoutExpired); its output as text."""
        return subprocess.run(["ip", "netns", "exec", self.namespace(host), *args],
                              capture_output=True, text=True, timeout=timeout_s, check=False)

    def python(self, host: str, code: str, *args: str, **kwargs: Any
               ) -> subprocess.Popen[Any]:
        """``python -c code args...`` (this interpreter) in ``host``'s namespace."""
        return self.popen(host, [sys.executable, "-c", code, *args], **kwargs)

    def qkdnet(self, host: str, *args: str, **kwargs: Any) -> subprocess.Popen[Any]:
        """``python -m qkdnet args...`` (this interpreter) in ``host``'s namespace."""
        return self.popen(host, [sys.executable, "-m", "qkdnet", *args], **kwargs)


def read_line(process: subprocess.Popen[str], timeout_s: float) -> str:
    """The next line ``process`` writes on its stdout (a pipe, text mode), waiting at
    most ``timeout_s`` (s); TimeoutError naming the process when none comes."""
    assert process.stdout is not None, "start the process with stdout=subprocess.PIPE"
    ready, _, _ = select.select([process.stdout], [], [], timeout_s)
    if not ready:
        raise TimeoutError(f"no line from {process.args} within {timeout_s} s")
    return process.stdout.readline()


def _stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(STOP_TIMEOUT_S)


def _kill_all_in(ns: str) -> None:
    """SIGKILL every process left in namespace ``ns`` (all started there by a test)."""
    with contextlib.suppress(NetnsError):
        for pid in _ip("netns", "pids", ns).split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)


def namespaces() -> list[str]:
    """Every named network namespace on this machine."""
    return [line.split()[0] for line in _ip("netns", "list").splitlines() if line.strip()]


def remove_stale() -> list[str]:
    """Delete the namespaces of test runs whose process is gone (a crashed run); their
    names."""
    removed = []
    for ns in namespaces():
        match = _STALE.match(ns)
        if match is None or _alive(int(match.group(1))):
            continue
        _kill_all_in(ns)
        with contextlib.suppress(NetnsError):
            _ip("netns", "del", ns)
            removed.append(ns)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def full_mesh(hosts: Sequence[str]) -> list[tuple[str, str]]:
    """A link between every two hosts."""
    return list(combinations(hosts, 2))


def ring(hosts: Sequence[str]) -> list[tuple[str, str]]:
    """Links joining ``hosts`` in a ring, in order (two hosts: one link)."""
    pairs = list(zip(hosts, [*hosts[1:], hosts[0]], strict=True))
    return pairs[:1] if len(hosts) == 2 else pairs


@contextmanager
def netns_hosts(hosts: Sequence[str], links: Sequence[tuple[str, str]] | None = None
                ) -> Iterator[NetnsHosts]:
    """Namespaces for ``hosts`` joined by ``links`` (pairs of host names; default: every
    two), for the length of the block; all removed at its end, also when it raised.
    Namespaces left by crashed runs are removed first."""
    remove_stale()
    net = NetnsHosts(hosts, full_mesh(hosts) if links is None else links)
    try:
        net.build()
        yield net
    finally:
        net.close()
