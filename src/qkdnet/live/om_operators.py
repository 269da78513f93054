"""Operator management over the O&M API, for ``admin`` operators only (the gate of
:mod:`qkdnet.live.om_access` checks the session, CSRF token, Host, Origin and role first):

- ``GET /api/operators``: ``{"operators": [{"name", "role"}, ...]}``;
- ``POST /api/operators`` with JSON ``{"name", "role", "password"}``: 201
  ``{"name", "role"}``; 409 if the name is taken, 400 for a bad name, role or password;
- ``DELETE /api/operators/{name}``: 200 ``{"name"}``; 404 for no such operator, 409 for
  the last admin (an O&M port nobody can manage again is a lockout).

Each change is an audit line (``operator-add``, ``operator-remove``: ``who`` the admin,
``operator`` the one added or removed, ``role``, ``from`` the client, ``via`` "api"). The
password is hashed (scrypt, off the event loop) and never answered, logged or audited.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import unquote

from qkdnet.errors import ParameterError
from qkdnet.live.audit import AuditLog
from qkdnet.live.operators import Operator, OperatorFile

OPERATORS_PATH = "/api/operators"
#: Largest body of a POST /api/operators read (bytes).
MAX_BODY = 4096

Answer = tuple[int, dict[str, Any]]


def is_operators_path(path: str) -> bool:
    """Whether ``path`` is one of the operator management endpoints."""
    return path == OPERATORS_PATH or path.startswith(OPERATORS_PATH + "/")


class OperatorAdmin:
    """The operator endpoints over one data folder's ``operators`` and ``audit`` log."""

    def __init__(self, operators: OperatorFile, audit: AuditLog) -> None:
        self.operators, self.audit = operators, audit
        # one change at a time: each reads the file, hashes, and writes it whole
        self._changing = asyncio.Lock()

    async def handle(self, admin: Operator, method: str, path: str, body: bytes,
                     where: str) -> Answer:
        """The status and JSON answer of ``method`` ``path`` by ``admin`` from ``where``
        (``body``: the request's, at most MAX_BODY bytes)."""
        rest = path.removeprefix(OPERATORS_PATH).removeprefix("/")
        if not rest:
            if method == "GET":
                return 200, {"operators": [{"name": o.name, "role": o.role}
                                           for o in self.operators.list()]}
            if method == "POST":
                return await self._add(admin, body, where)
            return 405, {"message": f"{OPERATORS_PATH} takes GET and POST"}
        name = unquote(rest)
        if "/" in name:
            return 404, {"message": f"no such endpoint: {path}"}
        if method == "DELETE":
            return await self._remove(admin, name, where)
        return 405, {"message": f"{OPERATORS_PATH}/NAME takes DELETE"}

    async def _add(self, admin: Operator, body: bytes, where: str) -> Answer:
        try:
            data = json.loads(body)
            name, role, password = data["name"], data["role"], data["password"]
            if not all(isinstance(v, str) for v in (name, role, password)):
                raise TypeError("name, role and password must be strings")
        except (ValueError, KeyError, TypeError):
            return 400, {"message": "the body must be JSON {\"name\": ..., \"role\": ..., "
                                    "\"password\": ...}"}
        async with self._changing:
            if self.operators.get(name) is not None:
                return 409, {"message": f"{name!r} is already an operator (remove it first)"}
            try:
                added = await asyncio.to_thread(self.operators.add, name, role, password)
            except ParameterError as exc:  # its text shows no password: "(not shown)"
                return 400, {"message": str(exc)}
        self.audit.record("operator-add", admin.name, where, operator=added.name,
                          role=added.role, via="api")
        return 201, {"name": added.name, "role": added.role}

    async def _remove(self, admin: Operator, name: str, where: str) -> Answer:
        async with self._changing:
            target = self.operators.get(name)
            if target is None:
                return 404, {"message": f"{name!r} is no operator"}
            admins = [o for o in self.operators.list() if o.role == "admin"]
            if target.role == "admin" and len(admins) == 1:
                return 409, {"message": f"{name!r} is the last admin: add another admin "
                                        "first"}
            self.operators.remove(name)
        self.audit.record("operator-remove", admin.name, where, operator=name,
                          role=target.role, via="api")
        return 200, {"name": name}
