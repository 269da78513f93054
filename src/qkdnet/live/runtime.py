"""How a live command runs: one asyncio event loop until Ctrl-C or SIGTERM, which cancel the
main task so that its ``finally`` blocks close stores and servers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Awaitable, Callable


def run_until_stopped(main: Callable[[], Awaitable[None]]) -> None:
    """Run ``main()`` on a new event loop until it returns or is stopped by Ctrl-C or
    SIGTERM (a clean stop, not an error)."""

    async def guarded() -> None:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        await main()

    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(guarded())


def log_to_stderr() -> None:
    """INFO lines with a timestamp on stderr: what a service's supervisor collects."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
