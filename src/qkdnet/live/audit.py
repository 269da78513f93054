"""The audit log of a data folder: ``DIR/audit.log``, one JSON object a line, appended
(O_APPEND, mode 0600), never rewritten by qkdnet.

Each line: ``t`` (UTC, ISO 8601), ``event`` (``login``, ``login-failed``,
``login-throttled``, ``logout``, ``request``: a state-changing call, ``refused``: a call
refused for access, ``operator-add``, ``operator-remove``), ``who`` (the operator, or the
name tried; null if none), ``from`` (the client's address and port, or ``cli:<user>``) and
what was asked (``method``, ``path``, ``status``, ``role``...). No password, session
token or CSRF token is ever written.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger(__name__)


def audit_file(folder: Path) -> Path:
    """Where the audit log of data folder ``folder`` is kept."""
    return folder / "audit.log"


class AuditLog:
    """Appends audit records to one file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def record(self, event: str, who: str | None, where: str, **what: object) -> None:
        """Append one line; a write that fails is logged, never raised (the call it
        records has happened)."""
        line = json.dumps({"t": datetime.now(UTC).isoformat(timespec="milliseconds"),
                           "event": event, "who": who, "from": where, **what},
                          separators=(",", ":"), default=str) + "\n"
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode("utf-8"))  # one write: lines never interleave
            finally:
                os.close(fd)
        except OSError as exc:
            log.error("cannot append to the audit log %s: %s", self.path, exc)
