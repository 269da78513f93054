"""A node process's side of the controller service (:mod:`qkdnet.live.controller_service`):
:class:`RemoteRouter`, the KMs' :class:`~qkdnet.keys.route.Router`, and
:class:`RemoteReporter`, which posts a node's KM-link states.

Routes. The KMs ask for a route inside a relay and cannot wait for the network, so
:meth:`RemoteRouter.route` answers at once from the routes the controller last gave; a
background task asks the controller again, every ``refresh_s``, for each pair asked for in
the last ``forget_s``. A pair never answered yet is asked for at once (the task is woken)
and meanwhile gets :class:`~qkdnet.errors.NoRoute` ("asking the controller"): the SAE's
Get key gets a 503 and its retry, a round trip later, finds the route. No route is made
up locally: a node knows the state of its own KM-links only, so a path it computed would
run into every failure elsewhere that the controller routes around. (:meth:`ask` waits for
a pair's route, for a node that wants its SAE pairs' routes before it serves.)

The stale-routes rule. When the controller cannot be reached (no reply, or a 5xx that is
not a NoRoute answer) the router keeps answering with the last routes it was given, never
forgets them while it is cut off, and says so: :attr:`RemoteRouter.stale` is true and
:attr:`RemoteRouter.controller_lost_since` holds when (s since the epoch) it lost the
controller, for the node's telemetry. The first answer after that clears both.

Reports. :class:`RemoteReporter` posts one node's states every ``interval_s``, reading
them when it sends: while the controller is down nothing queues (only the latest state
matters), each report is tried at most ``1 + retries`` times, and the next tick reports
afresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import time
from collections.abc import Callable, Iterable
from typing import Any

from qkdnet.errors import NoRoute
from qkdnet.keys.link_state import KMLinkState
from qkdnet.keys.route import Route
from qkdnet.live.background_caller import BackgroundCaller
from qkdnet.live.controller_service import REPORTS_PATH, ROUTES_PATH
from qkdnet.live.http_client import LeanClient, NoReply, Reply

__all__ = ["ASKING", "RemoteReporter", "RemoteRouter"]

log = logging.getLogger("qkdnet.control")

#: Why a pair the controller has not answered for yet gets NoRoute.
ASKING = "asking the controller"
#: Replies that refuse the request itself: the controller is there, asking again won't help.
_REFUSED = frozenset({400, 401, 403, 404, 405, 413})


class RemoteRouter(BackgroundCaller):
    """The KMs' Router in a node process: routes from the controller service at
    ``base_url`` (``https://host:port``), asked with TLS client context ``context`` (a
    node certificate of the network). See the module docstring; call :meth:`start` in the
    event loop and :meth:`close` at the end. Times in s."""

    def __init__(self, base_url: str, context: ssl.SSLContext, *, refresh_s: float = 1.0,
                 forget_s: float = 60.0, timeout_s: float = 2.0) -> None:
        super().__init__(LeanClient(base_url, context, timeout_s=timeout_s),
                         "controller-routes")
        self.refresh_s, self.forget_s = refresh_s, forget_s
        #: (source, destination) -> the route given, or why there is none.
        self._routes: dict[tuple[str, str], Route | str] = {}
        self._used: dict[tuple[str, str], float] = {}  # pair -> last asked (loop time)
        self._wanted: set[tuple[str, str]] = set()  # pairs never answered
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()  # one connection: one call at a time
        #: When the controller was lost (s since the epoch); None while it answers.
        self.controller_lost_since: float | None = None
        #: Answers taken from the controller, and calls that got none, since start.
        self.answers = 0
        self.failures = 0

    @property
    def stale(self) -> bool:
        """Whether the routes are the last ones given by a controller now lost."""
        return self.controller_lost_since is not None

    def route(self, source: str, destination: str) -> Route:
        """The route the controller last gave for the pair; NoRoute if it gave none, or
        (reason :data:`ASKING`) while it has not answered for this pair yet."""
        pair = (source, destination)
        self._used[pair] = _loop_time()
        known = self._routes.get(pair)
        if isinstance(known, Route):
            return known
        if known is None:
            self._wanted.add(pair)
            self._wake.set()
            raise NoRoute(source, destination, ASKING)
        raise NoRoute(source, destination, known)

    async def ask(self, source: str, destination: str) -> Route:
        """Ask the controller for the pair's route now and keep it (it is refreshed from
        then on); NoRoute if it has none, NoReply if it cannot be reached."""
        pair = (source, destination)
        self._used[pair] = _loop_time()
        if not await self._fetch(pair):
            raise NoReply(f"controller: no answer for {source} -> {destination}")
        return self.route(source, destination)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_refresh = loop.time()
        while not self._closing:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for loses a cancellation
            # that comes as the event is set, and close() would wait for ever
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, next_refresh - loop.time())):
                    await self._wake.wait()
            self._wake.clear()
            if self._wanted and not self.stale:  # while lost, only the rounds try
                await self._fetch_all(sorted(self._wanted))
            if loop.time() >= next_refresh:
                self._forget(loop.time())
                await self._fetch_all(sorted(self._used))
                next_refresh = loop.time() + self.refresh_s

    def _forget(self, now: float) -> None:
        """Drop pairs not asked for in ``forget_s``, unless cut off from the controller
        (then every route given is kept: it may be all the node has)."""
        if self.stale:
            return
        for pair, used in list(self._used.items()):
            if now - used > self.forget_s:
                del self._used[pair]
                self._routes.pop(pair, None)

    async def _fetch_all(self, pairs: Iterable[tuple[str, str]]) -> None:
        for pair in pairs:
            if not await self._fetch(pair):
                return  # the controller is lost: the next round tries again

    async def _fetch(self, pair: tuple[str, str]) -> bool:
        """Ask for one pair's route and keep the answer; whether one came."""
        body = json.dumps({"source": pair[0], "destination": pair[1]}).encode()
        try:
            async with self._lock:
                reply = await self._post_twice(body)
        except NoReply as exc:
            self._lost(f"no reply ({exc})")
            return False
        answer = _route_answer(reply)
        if answer is None:
            self._lost(f"HTTP {reply.status_code}")
            return False
        self._found()
        self._routes[pair] = answer
        self._wanted.discard(pair)
        return True

    async def _post_twice(self, body: bytes) -> Reply:
        """Post a route request; once more on a new connection if the kept-alive one
        fails (as it does once after a controller restart)."""
        try:
            return await self._client.post_bytes(ROUTES_PATH, body)
        except NoReply:
            return await self._client.post_bytes(ROUTES_PATH, body)

    def _lost(self, why: str) -> None:
        self.failures += 1
        if self.controller_lost_since is None:
            self.controller_lost_since = time.time()
            log.warning("controller lost (%s): relaying on the last routes it gave", why)

    def _found(self) -> None:
        self.answers += 1
        if self.controller_lost_since is not None:
            self.controller_lost_since = None
            log.info("controller back: routes fresh again")


def _route_answer(reply: Reply) -> Route | str | None:
    """A route reply as the route, the reason there is none, or None (no answer: the
    controller failed)."""
    try:
        document: Any = json.loads(reply.content)
    except ValueError:
        return None
    if not isinstance(document, dict):
        return None
    if reply.status_code == 200:
        try:
            return Route(tuple(document["nodes"]), tuple(document["km_links"]),
                         float(document["cost"]))
        except (KeyError, TypeError, ValueError):
            return None
    if (reply.status_code == 503 and "reason" in document) or reply.status_code in _REFUSED:
        return str(document.get("message", f"HTTP {reply.status_code}"))
    return None


def _loop_time() -> float:
    """The running loop's clock (s); a monotonic clock outside one (a sync caller)."""
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()


class RemoteReporter(BackgroundCaller):
    """Posts node ``node``'s KM-link states (``states()``, read at each send) to the
    controller service at ``base_url`` every ``interval_s``, with TLS client context
    ``context`` (the node's certificate). A report that gets no answer is tried again
    ``retries`` times, ``retry_s`` apart, then left to the next tick. Times in s."""

    def __init__(self, base_url: str, node: str, context: ssl.SSLContext,
                 states: Callable[[], Iterable[KMLinkState]], *, interval_s: float = 1.0,
                 retries: int = 2, retry_s: float = 0.1, timeout_s: float = 2.0) -> None:
        super().__init__(LeanClient(base_url, context, timeout_s=timeout_s),
                         f"controller-reports:{node}")
        self.node = node
        self._states = states
        self.interval_s, self.retries, self.retry_s = interval_s, retries, retry_s
        self._lock = asyncio.Lock()  # one connection: one post at a time
        #: Reports the controller took, and reports given up on, since start.
        self.sent = 0
        self.failed = 0
        #: When the controller stopped taking reports (s since the epoch); None while it does.
        self.controller_lost_since: float | None = None

    async def report_now(self) -> bool:
        """Post the current states now (after a fault is detected, say); whether the
        controller took them."""
        async with self._lock:
            for attempt in range(1 + self.retries):
                if attempt:
                    await asyncio.sleep(self.retry_s)
                status = await self._post()
                if status == 200:
                    self.sent += 1
                    self.controller_lost_since = None
                    return True
                if status in _REFUSED:
                    break  # the report itself is refused: the same one would be again
            self.failed += 1
            if self.controller_lost_since is None:
                self.controller_lost_since = time.time()
            return False

    async def _post(self) -> int | None:
        states = [{"km_link": s.km_link, "key_bits": s.key_bits, "rate_bps": s.rate_bps,
                   "up": s.up} for s in self._states()]
        body = json.dumps({"node": self.node, "states": states}).encode()
        try:
            reply = await self._client.post_bytes(REPORTS_PATH, body)
        except NoReply:
            return None
        if reply.status_code in _REFUSED:
            log.error("controller refused the report of node %s: HTTP %d %s", self.node,
                      reply.status_code, reply.content[:200].decode(errors="replace"))
        return reply.status_code

    async def _run(self) -> None:
        await self._every(self.interval_s, self.report_now)
