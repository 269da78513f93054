"""Who may use the O&M port, and from where: an ASGI gate in front of the O&M app.

Every request:

1. its ``Host`` header must name this server: one of the names it is served under (the
   ``--host`` address, ``--advertise``, ``localhost`` on loopback) or the literal local
   address the connection came in on, with the served port; else 400 (DNS rebinding);
2. an ``Origin`` header, when present, must be this server's own origin, and
   ``Sec-Fetch-Site``, when present, ``same-origin`` or ``none``; else 403 (cross-site
   requests);
3. with operators (``qkdnet serve``; not a read-only replay), it must be authenticated:
   a session cookie from ``POST /api/login`` or HTTP Basic (for scripts and Prometheus);
   else 401. The console's page and static files (no data in them) are open, and
   ``/metrics`` is open on a loopback address only;
4. reads need the ``viewer`` role, state-changing calls (POST, DELETE) ``operator``, and
   every call of ``/api/operators`` (:mod:`qkdnet.live.om_operators`) ``admin``; else 403;
   a state-changing call authenticated by the session cookie must carry the session's CSRF
   token in ``X-CSRF-Token``, else 403.

Basic credentials are never asked for by the server (no ``WWW-Authenticate: Basic``), so
a browser never holds them to send along with a forged request; the cookie is
``SameSite=Strict`` and HttpOnly on top of the CSRF token and the Origin check.

Every state-changing call (the ones let through with their status, the refused ones),
every operator added or removed, every login and every failed login is a line of the audit
log (:mod:`qkdnet.live.audit`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import ipaddress
import json
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qkdnet.errors import ParameterError
from qkdnet.live.audit import AuditLog, audit_file
from qkdnet.live.om_operators import MAX_BODY, OperatorAdmin, is_operators_path
from qkdnet.live.operators import Operator, OperatorFile, check_name, role_allows

SESSION_COOKIE = "qkdnet_om"
#: Seconds a session lasts after its login.
SESSION_TTL_S = 8 * 3600
#: Most sessions held at once; the oldest go first.
MAX_SESSIONS = 1024
CSRF_HEADER = "x-csrf-token"
#: Largest login body read (bytes).
MAX_LOGIN_BODY = 4096
#: Failed logins one client address may make for one name in FAILURE_WINDOW_S before
#: further tries for that name are refused (429) until the window has passed.
MAX_FAILURES, FAILURE_WINDOW_S = 5, 60.0
#: The scope key the gate names the authenticated operator under, for the handlers.
OPERATOR_KEY = "qkdnet.operator"
#: Files served to anyone: the console's page and code, which hold no data.
OPEN_FILES = frozenset({"/", "/console.js", "/console.css", "/services.js", "/services.css",
                        "/replay.js"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is a loopback address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def served_names(host: str, advertise: str | None = None) -> frozenset[str]:
    """The host names a server bound to ``host`` answers to (besides the literal local
    address of each connection)."""
    names = {host.lower()}
    if advertise:
        names.add(advertise.lower())
    if is_loopback(host):
        names.update({"localhost", "127.0.0.1", "::1"})
    return frozenset(names)


@dataclass
class Session:
    """A logged-in browser: the operator, the CSRF token its POSTs carry, its end (s,
    time.time())."""

    name: str
    csrf: str
    expires: float


class OperatorAccess:
    """The operators, their sessions and the audit log of one data folder."""

    def __init__(self, folder: Path) -> None:
        self.operators = OperatorFile(folder)
        self.audit = AuditLog(audit_file(folder))
        self.admin = OperatorAdmin(self.operators, self.audit)
        self.sessions: dict[str, Session] = {}
        self.failures: dict[tuple[str, str], list[float]] = {}

    def throttled(self, host: str, name: str) -> bool:
        """Whether ``host`` has failed MAX_FAILURES logins as ``name`` within the window."""
        now = time.monotonic()
        recent = [t for t in self.failures.get((host, name), []) if now - t < FAILURE_WINDOW_S]
        if recent:
            self.failures[(host, name)] = recent
        else:
            self.failures.pop((host, name), None)
        return len(recent) >= MAX_FAILURES

    def failed(self, host: str, name: str) -> None:
        """Count a failed login of ``host`` as ``name``."""
        if len(self.failures) > 100_000:  # a flood of names: forget the oldest counts
            self.failures.clear()
        self.failures.setdefault((host, name), []).append(time.monotonic())

    def open_session(self, name: str) -> tuple[str, Session]:
        """A new session for ``name``: its token (the cookie) and the session."""
        now = time.time()
        for token in [t for t, s in self.sessions.items() if s.expires <= now]:
            del self.sessions[token]
        while len(self.sessions) >= MAX_SESSIONS:
            del self.sessions[next(iter(self.sessions))]  # dicts keep login order
        token = secrets.token_urlsafe(32)
        session = Session(name, secrets.token_urlsafe(32), now + SESSION_TTL_S)
        self.sessions[token] = session
        return token, session

    def session(self, headers: Headers) -> tuple[str, Session] | None:
        """The live session the request's cookie names, if any."""
        token = _cookie(headers, SESSION_COOKIE)
        session = self.sessions.get(token) if token else None
        if token is None or session is None:
            return None
        if session.expires <= time.time():
            del self.sessions[token]
            return None
        return token, session

    async def basic(self, headers: Headers, host: str) -> tuple[Operator | None, str | None]:
        """The operator HTTP Basic credentials name, if right, and the name tried (from
        client address ``host``; refused without a hash while it is throttled)."""
        value = headers.get("authorization", "")
        scheme, _, encoded = value.partition(" ")
        if scheme.lower() != "basic":
            return None, None
        try:
            name, sep, password = base64.b64decode(encoded, validate=True).decode(
                "utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None, "(unreadable)"
        if not sep:
            return None, "(unreadable)"
        if self.throttled(host, name):
            return None, name
        # scrypt takes tens of ms: off the event loop that serves the KMEs
        operator = await asyncio.to_thread(self.operators.verify, name, password)
        if operator is None:
            self.failed(host, name)
        return operator, name


def _cookie(headers: Headers, name: str) -> str | None:
    for header in headers.getlist("cookie"):
        for part in header.split(";"):
            key, _, value = part.strip().partition("=")
            if key == name and value:
                return value
    return None


def _host(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "unknown"


async def _answer(send: Send, status: int, body: dict[str, Any],
                  headers: Iterable[tuple[str, str]] = ()) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(data)).encode()),
                            (b"cache-control", b"no-store"),
                            *((k.encode(), v.encode()) for k, v in headers)]})
    await send({"type": "http.response.body", "body": data})


async def _unauthorised(send: Send, message: str) -> None:
    # a scheme browsers do not prompt for: they never cache Basic credentials for us
    await _answer(send, 401, {"message": message},
                  [("www-authenticate", 'qkdnet-session realm="qkdnet O&M"')])


class OmGate:
    """The ASGI gate: Host and Origin checks for every request; with ``access``, login,
    logout, sessions and roles (without: a read-only replay, no login)."""

    def __init__(self, app: ASGIApp, names: frozenset[str],
                 access: OperatorAccess | None) -> None:
        self.app, self.names, self.access = app, names, access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        if not self._host_ok(host, scope):
            await _answer(send, 400, {"message": f"Host {host!r} is not an address this "
                                      "O&M port is served on"})
            return
        if not self._same_origin(headers, scope, host):
            await self._refuse(scope, send, 403, "cross-site request refused (Origin or "
                               "Sec-Fetch-Site names another site)", None)
            return
        if self.access is None:
            if scope["path"] == "/api/session":
                await _answer(send, 200, {"name": None, "role": "viewer", "csrf": None,
                                          "open": True})
                return
            await self.app(scope, receive, send)
            return
        await self._guarded(self.access, scope, receive, send, headers)

    def _host_ok(self, host: str, scope: Scope) -> bool:
        server = scope.get("server")
        if not host or server is None:
            return False
        name, port = host.lower(), None
        if name.startswith("["):
            name, _, rest = name[1:].partition("]")
            port = rest.removeprefix(":") or None
        elif name.count(":") == 1:
            name, port = name.split(":")
        # no port: a hand-written client; a browser names the port unless it is 80/443
        if port is not None and not (port.isdigit() and int(port) == server[1]):
            return False
        return name in self.names or name == str(server[0]).lower()

    @staticmethod
    def _same_origin(headers: Headers, scope: Scope, host: str) -> bool:
        origin = headers.get("origin")
        if origin is not None and origin.lower() != f"{scope['scheme']}://{host}".lower():
            return False
        return headers.get("sec-fetch-site", "same-origin") in ("same-origin", "none")

    async def _refuse(self, scope: Scope, send: Send, status: int, message: str,
                      who: str | None) -> None:
        if self.access is not None and scope["method"] not in ("GET", "HEAD"):
            self.access.audit.record("refused", who, _client(scope), method=scope["method"],
                                     path=scope["path"], status=status, reason=message)
        if status == 401:
            await _unauthorised(send, message)
        else:
            await _answer(send, status, {"message": message})

    async def _guarded(self, access: OperatorAccess, scope: Scope, receive: Receive,
                       send: Send, headers: Headers) -> None:
        method, path = scope["method"], scope["path"]
        if path == "/api/login":
            await self._login(access, scope, receive, send, headers)
            return
        reading = method in ("GET", "HEAD")
        if reading and (path in OPEN_FILES or (path == "/metrics"
                                               and is_loopback(str(scope["server"][0])))):
            await self.app(scope, receive, send)
            return
        found = access.session(headers)
        operator: Operator | None
        if found is not None:
            token, session = found
            operator = access.operators.get(session.name)  # removed: the session ends
            if operator is None:
                access.sessions.pop(token, None)
            elif not reading and not hmac.compare_digest(
                    headers.get(CSRF_HEADER, "").encode(), session.csrf.encode()):
                await self._refuse(scope, send, 403, f"missing or wrong {CSRF_HEADER} "
                                   "header (the csrf of POST /api/login)", session.name)
                return
            tried: str | None = session.name
        else:
            operator, tried = await access.basic(headers, _host(scope))
            if tried is not None and operator is None:
                access.audit.record("login-failed", tried, _client(scope), via="basic",
                                    method=method, path=path)
        if operator is None:
            await self._refuse(scope, send, 401, "log in first: POST /api/login with "
                               "{\"name\", \"password\"}, or HTTP Basic", tried)
            return
        managing = is_operators_path(path)
        needed = "admin" if managing else "viewer" if reading else "operator"
        if not role_allows(operator.role, needed):
            await self._refuse(scope, send, 403, f"operator {operator.name!r} has role "
                               f"{operator.role!r}; this needs {needed!r}", operator.name)
            return
        if path == "/api/session":
            await _answer(send, 200, {"name": operator.name, "role": operator.role,
                                      "csrf": found[1].csrf if found else None})
            return
        if path == "/api/logout" and method == "POST":
            if found is not None:
                access.sessions.pop(found[0], None)
            access.audit.record("logout", operator.name, _client(scope))
            await _answer(send, 200, {"name": operator.name}, [("set-cookie", _cookie_header(
                scope, "", 0))])
            return
        if managing:
            await self._manage(access, operator, scope, receive, send, headers)
            return
        scope[OPERATOR_KEY] = operator.name
        if reading:
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_noting(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting)
        finally:
            access.audit.record("request", operator.name, _client(scope), method=method,
                                path=path, role=operator.role, status=status)

    @staticmethod
    async def _manage(access: OperatorAccess, operator: Operator, scope: Scope,
                      receive: Receive, send: Send, headers: Headers) -> None:
        """An /api/operators call by admin ``operator``, audited when it changes state."""
        method = scope["method"]
        body = await _read_body(receive, MAX_BODY)
        if body is None:
            status, answer = 413, {"message": f"body over {MAX_BODY} bytes"}
        elif method == "POST" and not _is_json(headers):
            status, answer = 415, {"message": "the body must be JSON (Content-Type: "
                                              "application/json)"}
        else:
            status, answer = await access.admin.handle(operator, method, scope["path"],
                                                       body, _client(scope))
        if method not in ("GET", "HEAD"):
            access.audit.record("request", operator.name, _client(scope), method=method,
                                path=scope["path"], role=operator.role, status=status)
        await _answer(send, status, answer)

    async def _login(self, access: OperatorAccess, scope: Scope, receive: Receive,
                     send: Send, headers: Headers) -> None:
        where = _client(scope)
        if scope["method"] != "POST":
            await _answer(send, 405, {"message": "POST /api/login with {\"name\", "
                                      "\"password\"}"})
            return
        if not _is_json(headers):
            await _answer(send, 415, {"message": "the login body must be JSON "
                                      "(Content-Type: application/json)"})
            return
        body = await _read_body(receive, MAX_LOGIN_BODY)
        if body is None:
            await _answer(send, 413, {"message": f"login body over {MAX_LOGIN_BODY} bytes"})
            return
        try:
            data = json.loads(body)
            name, password = data["name"], data["password"]
            if not isinstance(name, str) or not isinstance(password, str):
                raise TypeError("name and password must be strings")
        except (ValueError, KeyError, TypeError):
            await _answer(send, 400, {"message": "the login body must be JSON "
                                      "{\"name\": ..., \"password\": ...}"})
            return
        try:
            check_name(name)
            tried = name
        except ParameterError:
            tried = "(not a valid name)"  # it might be a password typed in the wrong box
        if access.throttled(_host(scope), name):
            access.audit.record("login-throttled", tried, where)
            await _answer(send, 429, {"message": f"{MAX_FAILURES} failed logins as this "
                                      f"name from {_host(scope)}: wait a minute"},
                          [("retry-after", str(int(FAILURE_WINDOW_S)))])
            return
        operator = await asyncio.to_thread(access.operators.verify, name, password)
        if operator is None:
            access.failed(_host(scope), name)
            access.audit.record("login-failed", tried, where, via="session")
            await _unauthorised(send, "wrong name or password")
            return
        token, session = access.open_session(operator.name)
        access.audit.record("login", operator.name, where, role=operator.role)
        await _answer(send, 200, {"name": operator.name, "role": operator.role,
                                  "csrf": session.csrf, "expires": session.expires},
                      [("set-cookie", _cookie_header(scope, token, SESSION_TTL_S))])


def _is_json(headers: Headers) -> bool:
    return headers.get("content-type", "").split(";")[0].strip() == "application/json"


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The request body, or None once it is over ``limit`` bytes (the rest unread)."""
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
        if len(body) > limit:
            return None
    return body


def _cookie_header(scope: Scope, token: str, max_age: int) -> str:
    secure = "; Secure" if scope["scheme"] == "https" else ""
    return (f"{SESSION_COOKIE}={token}; Path=/; Max-Age={max_age}; HttpOnly; "
            f"SameSite=Strict{secure}")
