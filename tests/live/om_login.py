"""What the O&M tests share: operators added to a data folder (as `qkdnet operator add`
does) and an httpx client logged in to a served O&M port, sending its CSRF token."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from qkdnet.live.operators import OperatorFile

#: The password every test operator gets (at least 8 characters).
PASSWORD = "correct horse battery"


def add_operator(folder: Path, name: str, role: str) -> None:
    """Operator ``name`` with ``role`` and PASSWORD in data folder ``folder``."""
    OperatorFile(folder).add(name, role, PASSWORD, replace=True)


def logged_in(folder: Path, url: str, name: str = "ops", role: str = "operator"
              ) -> httpx.Client:
    """A client of the O&M port at ``url`` logged in as ``name`` (added with ``role`` to
    ``folder``): its cookie and CSRF header go with every request."""
    add_operator(folder, name, role)
    client = httpx.Client(timeout=5)
    answer = client.post(f"{url}/api/login", json={"name": name, "password": PASSWORD})
    answer.raise_for_status()
    client.headers["X-CSRF-Token"] = answer.json()["csrf"]
    return client


@contextmanager
def session(folder: Path, url: str, name: str = "ops", role: str = "operator"
            ) -> Iterator[httpx.Client]:
    """:func:`logged_in` for the length of the block."""
    client = logged_in(folder, url, name, role)
    try:
        yield client
    finally:
        client.close()
