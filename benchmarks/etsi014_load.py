"""The load generator of ``kme_load.py``: asyncio workers calling one ETSI GS QKD 014 KME,
whichever implementation serves it, over mutual TLS, each with an httpx client (the
default) or a :class:`~qkdnet.live.http_client.LeanClient` (a fraction of httpx's CPU per
call, so that latency shows the server rather than the client); and the CPU time of the
process that serves it, from ``/proc/<pid>/stat``.

Modes, one call asks for ``number`` keys of ``key_bits`` bits (default 1 of 256):

- ``enc``: Get key (``POST .../{slave}/enc_keys``), each worker on its own keep-alive
  connection;
- ``cold``: the same, with a new TCP connection and a full TLS handshake per call (the client
  sends ``Connection: close`` and keeps no connection alive);
- ``dec``: Get key with key IDs (``POST .../{master}/dec_keys``) at the slave's KME,
  ``number`` key IDs per call; the master fetches the keys first (those calls are not
  counted);
- ``bidi``: both SAEs of the pair act as master at once, half of the workers each way.

Every reply is checked as :mod:`qkdnet.apps.sae_client` checks it (the Key container, the
number and size of keys, the key_IDs asked for); a call that delivers less is an error.
No key material is kept or printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import platform
import ssl
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx

from qkdnet.apps.sae_client import (
    PREFIX,
    KmeError,
    KmeProtocolError,
    KmeStatus,
    KmeUnreachable,
    parse_keys,
    parse_reply,
    parse_status,
    tls_context,
)
from qkdnet.live.http_client import LeanClient, NoReply

MODES = ("enc", "cold", "dec", "bidi")
#: The HTTP clients a worker may use, the default first.
CLIENTS = ("httpx", "lean")
Client = httpx.AsyncClient | LeanClient
WARM_UP_CALLS = 3  # per worker, before the clock starts: connections made, code paths warm
CALL_TIMEOUT_S = 30.0
PREFETCH_BATCH = 64  # keys per Get key call when the master fetches keys for ``dec``


@dataclass(frozen=True)
class SaeEnd:
    """One SAE at its KME: its ID, the KME's base URL (``https://host:port``, the standard's
    ``/api/v1/keys`` is added), its client certificate and key, and the CA that signed the
    KME's certificate (PEM files). ``check_hostname`` False still verifies the KME's
    chain to ``ca`` but not that its certificate names the URL's host (simulators often
    name the KME ID instead)."""

    sae_id: str
    kme_url: str
    cert: Path
    key: Path
    ca: Path
    check_hostname: bool = True

    def tls(self) -> ssl.SSLContext:
        """A client context presenting this SAE's certificate, trusting only ``ca``."""
        context = tls_context(self.cert, self.key, self.ca)
        context.check_hostname = self.check_hostname
        return context


@dataclass(frozen=True)
class Pair:
    """A master SAE and its slave: ``slave`` holds the slave's own credentials, needed for
    ``dec`` and ``bidi`` (None: only ``enc`` and ``cold`` can run)."""

    master: SaeEnd
    slave_id: str
    slave: SaeEnd | None = None

    def needs_slave(self, mode: str) -> None:
        """Refuse a mode the pair lacks the slave's credentials for."""
        if mode in ("dec", "bidi") and self.slave is None:
            raise ValueError(f"mode {mode} needs the slave SAE's KME URL, certificate and key")


@dataclass
class Measurement:
    """One run of one mode against one server: the latencies (s) of the calls that
    delivered, the failed calls by reason, the wall time (s) and the CPU time (s) of the
    serving processes (None when no PID is known) and of this client process."""

    label: str
    server: str
    mode: str
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    wall_s: float = 0.0
    server_cpu_s: float | None = None
    client_cpu_s: float = 0.0
    keys_per_call: int = 1
    #: The serving processes' idle CPU (share of one core) measured before, if it was.
    server_idle_share: float | None = None

    @property
    def calls(self) -> int:
        """Calls that delivered."""
        return len(self.latencies)

    @property
    def error_count(self) -> int:
        """Calls that failed (refused, no reply, or a reply off the standard)."""
        return sum(self.errors.values())

    @property
    def rate(self) -> float:
        """Calls that delivered, per second."""
        return self.calls / self.wall_s if self.wall_s > 0 else 0.0

    def quantile(self, q: float) -> float:
        """The ``q`` quantile of the latencies (s, nearest rank), NaN if there are none."""
        if not self.latencies:
            return math.nan
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]

    @property
    def server_cpu_per_call(self) -> float | None:
        """Server CPU time (s) per call answered: every call made but those with no reply,
        since a refusal costs the server work too. None without a PID or a call."""
        if self.server_cpu_s is None or self.answered == 0:
            return None
        return self.server_cpu_s / self.answered

    @property
    def answered(self) -> int:
        """Calls the server answered: delivered or refused (not those with no reply)."""
        return self.calls + sum(n for why, n in self.errors.items()
                                if not why.startswith("no reply"))

    @property
    def server_cpu_net_per_call(self) -> float | None:
        """Server CPU time (s) per call answered, less what the server spends idle over the
        same wall time (its background work, which a slow run spreads over fewer calls).
        None without an idle figure."""
        if self.server_cpu_s is None or self.server_idle_share is None or self.answered == 0:
            return None
        return (self.server_cpu_s - self.server_idle_share * self.wall_s) / self.answered

    @property
    def client_cpu_per_call(self) -> float:
        """This client's CPU time (s) per call made."""
        made = self.calls + self.error_count
        return self.client_cpu_s / made if made else math.nan


# --- the serving process's CPU time ----------------------------------------------------------

def process_cpu_s(pids: Sequence[int]) -> float | None:
    """utime + stime (s) of the processes ``pids``, all their threads; None if there are no
    PIDs or one has gone (the figure would be wrong)."""
    if not pids:
        return None
    ticks = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        # the command name (field 2) may hold spaces and parentheses: fields after the last ')'
        rest = text[text.rindex(")") + 2:].split()
        ticks += int(rest[11]) + int(rest[12])  # fields 14 (utime) and 15 (stime)
    return ticks / os.sysconf("SC_CLK_TCK")


async def idle_cpu_share(pids: Sequence[int], seconds: float) -> float | None:
    """The share of one core (0..1 per core) the processes use over ``seconds`` with no
    calls from here."""
    before, began = process_cpu_s(pids), time.monotonic()
    await asyncio.sleep(seconds)
    after = process_cpu_s(pids)
    if before is None or after is None:
        return None
    return (after - before) / (time.monotonic() - began)


# --- the calls -----------------------------------------------------------------------------

def _client(end: SaeEnd, context: ssl.SSLContext, cold: bool, kind: str = "httpx") -> Client:
    if kind == "lean":
        return LeanClient(end.kme_url.rstrip("/") + PREFIX, context, cold=cold,
                          timeout_s=CALL_TIMEOUT_S)
    if cold:
        return httpx.AsyncClient(
            base_url=end.kme_url.rstrip("/") + PREFIX, verify=context, trust_env=False,
            timeout=CALL_TIMEOUT_S, headers={"Connection": "close"},
            limits=httpx.Limits(max_keepalive_connections=0))
    return httpx.AsyncClient(base_url=end.kme_url.rstrip("/") + PREFIX, verify=context,
                             trust_env=False, timeout=CALL_TIMEOUT_S)


async def enc_keys(client: Client, slave_id: str, number: int,
                   key_bits: int) -> list[str]:
    """Get key: ``number`` keys of ``key_bits`` for ``slave_id``; their key_IDs."""
    reply = await client.post(f"/{quote(slave_id, safe='')}/enc_keys",
                              json={"number": number, "size": key_bits})
    keys = parse_keys(parse_reply(reply.status_code, reply.content), number, key_bits)
    return [k.key_id for k in keys]


async def dec_keys(client: Client, master_id: str, key_ids: list[str],
                   key_bits: int) -> None:
    """Get key with key IDs: exactly ``key_ids``, each of ``key_bits``."""
    reply = await client.post(f"/{quote(master_id, safe='')}/dec_keys",
                              json={"key_IDs": [{"key_ID": k} for k in key_ids]})
    keys = parse_keys(parse_reply(reply.status_code, reply.content), len(key_ids), key_bits)
    if sorted(k.key_id for k in keys) != sorted(key_ids):
        raise KmeProtocolError("the KME delivered other key_IDs than were asked for")


def _reason(exc: Exception) -> str:
    """A short, key-free reason for a failed call, to count failures by."""
    if isinstance(exc, httpx.TransportError | NoReply):
        return f"no reply ({type(exc).__name__})"
    if isinstance(exc, KmeError) and exc.status:
        return f"HTTP {exc.status}"
    return type(exc).__name__


async def get_status(client: Client, slave_id: str) -> KmeStatus:
    """Get status for ``slave_id`` on a master's ``client``."""
    reply = await client.get(f"/{quote(slave_id, safe='')}/status")
    return parse_status(parse_reply(reply.status_code, reply.content))


async def probe(pair: Pair) -> KmeStatus:
    """Get status of the pair at the master's KME: a check that URL, certificates and SAE
    IDs are right before a long run. KmeUnreachable when there is no TLS reply; the
    refusal or protocol error of the reply otherwise."""
    async with master_client(pair) as client:
        try:
            return await get_status(client, pair.slave_id)
        except httpx.TransportError as exc:
            raise KmeUnreachable(f"no reply from {pair.master.kme_url}: "
                                 f"{type(exc).__name__}: {exc}") from None


def master_client(pair: Pair) -> Client:
    """A keep-alive client of the pair's master (close it, or use it in ``async with``)."""
    return _client(pair.master, pair.master.tls(), cold=False)


async def prefetch(pair: Pair, count: int, key_bits: int) -> list[str]:
    """Key IDs of ``count`` keys the master fetched for the slave (for ``dec``), in batches
    of what the KME's Get status allows, at most :data:`PREFETCH_BATCH`."""
    async with master_client(pair) as client:
        try:
            limit = (await get_status(client, pair.slave_id)).max_key_per_request
        except KmeError:
            limit = 1  # a KME without a usable Get status: one key per call is always allowed
        batch = max(1, min(limit, PREFETCH_BATCH))
        ids: list[str] = []
        while len(ids) < count:
            ids += await enc_keys(client, pair.slave_id, min(batch, count - len(ids)),
                                  key_bits)
        return ids


# --- the load ------------------------------------------------------------------------------

@dataclass
class _Budget:
    """What is left to do: calls (None: until the deadline), key IDs for ``dec``."""

    calls: int | None
    deadline: float = math.inf
    key_ids: deque[str] | None = None
    ids_per_call: int = 1
    stop: asyncio.Event | None = None

    def take(self) -> bool:
        if time.perf_counter() >= self.deadline or (self.stop is not None
                                                    and self.stop.is_set()):
            return False
        if self.calls is not None:
            if self.calls <= 0:
                return False
            self.calls -= 1
        return self.key_ids is None or len(self.key_ids) >= self.ids_per_call


async def measure(pair: Pair, mode: str, *, label: str, server: str, workers: int = 16,
                  seconds: float = 5.0, calls: int = 0, number: int = 1, key_bits: int = 256,
                  server_pids: Sequence[int] = (), dec_keys_max: int = 2000,
                  stop: asyncio.Event | None = None, client: str = "httpx") -> Measurement:
    """Run ``mode`` with ``workers`` asyncio workers, each with a ``client`` (one of
    :data:`CLIENTS`), for ``seconds`` or, when ``calls`` > 0, ``calls`` calls in all, or
    until ``stop`` is set; the serving processes ``server_pids`` are timed over the run.
    ``dec`` runs on at most ``dec_keys_max`` prefetched keys when timed by ``seconds``."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; the modes are {', '.join(MODES)}")
    if client not in CLIENTS:
        raise ValueError(f"unknown client {client!r}; the clients are {', '.join(CLIENTS)}")
    pair.needs_slave(mode)
    result = Measurement(label, server, mode, keys_per_call=number)
    budget = _Budget(calls if calls > 0 else None, ids_per_call=number, stop=stop)
    master_tls = pair.master.tls()
    slave_tls = pair.slave.tls() if pair.slave is not None else None
    Call = Callable[[Client], Awaitable[object]]
    jobs: list[tuple[Client, Call]] = []

    def enc(slave_id: str) -> Call:
        return lambda c: enc_keys(c, slave_id, number, key_bits)

    if mode in ("enc", "cold"):
        jobs = [(_client(pair.master, master_tls, mode == "cold", client), enc(pair.slave_id))
                for _ in range(workers)]
    elif mode == "bidi":
        assert pair.slave is not None and slave_tls is not None
        back = max(1, workers // 2)
        jobs = [(_client(pair.master, master_tls, False, client), enc(pair.slave_id))
                for _ in range(max(1, workers - back))]
        jobs += [(_client(pair.slave, slave_tls, False, client), enc(pair.master.sae_id))
                 for _ in range(back)]
    else:  # dec: one key ID per call, taken from the prefetched ones
        assert pair.slave is not None and slave_tls is not None
        wanted = (calls if calls > 0 else dec_keys_max) + workers * WARM_UP_CALLS
        budget.key_ids = deque(await prefetch(pair, wanted * number, key_bits))
        ids = budget.key_ids
        master_id = pair.master.sae_id

        def dec(worker_client: Client) -> Awaitable[None]:
            return dec_keys(worker_client, master_id, [ids.popleft() for _ in range(number)],
                            key_bits)

        jobs = [(_client(pair.slave, slave_tls, False, client), dec) for _ in range(workers)]

    start_line = asyncio.Barrier(len(jobs) + 1)

    async def worker(http: Client, call: Call) -> None:
        async with http:
            for _ in range(WARM_UP_CALLS):
                # a warm-up failure shows again, counted, in the run
                with contextlib.suppress(httpx.HTTPError, KmeError, NoReply):
                    await call(http)
            await start_line.wait()
            while budget.take():
                began = time.perf_counter()
                try:
                    await call(http)
                except (httpx.HTTPError, KmeError, NoReply) as exc:
                    result.errors[_reason(exc)] += 1
                else:
                    result.latencies.append(time.perf_counter() - began)

    tasks = [asyncio.create_task(worker(http, call)) for http, call in jobs]
    await start_line.wait()
    began, cpu_before, client_before = time.perf_counter(), process_cpu_s(server_pids), \
        time.process_time()
    if calls <= 0:
        budget.deadline = began + seconds
    await asyncio.gather(*tasks)
    result.wall_s = time.perf_counter() - began
    result.client_cpu_s = time.process_time() - client_before
    cpu_after = process_cpu_s(server_pids)
    if cpu_before is not None and cpu_after is not None:
        result.server_cpu_s = cpu_after - cpu_before
    return result


def client_name(client: str = "httpx") -> str:
    """The client, named: httpx (or the lean client), the event loop and Python versions."""
    loop = type(asyncio.get_event_loop_policy()).__module__.split(".")[0]
    name = f"httpx {httpx.__version__}" if client == "httpx" else "the lean client"
    return f"{name} on {loop} and Python {platform.python_version()}"
