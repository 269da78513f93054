"""Waiting on a running server from a test: poll a check until it holds or time runs out."""

from __future__ import annotations

import time
from collections.abc import Callable

POLL_S = 0.2


def wait_for(check: Callable[[], bool], seconds: float = 15.0) -> bool:
    """Whether ``check`` held within ``seconds`` (s), polled every POLL_S."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(POLL_S)
    return False
