"""How a live command runs: one event loop until Ctrl-C or SIGTERM, which cancel the main
task so that its ``finally`` blocks close stores and servers.

The loop is uvloop's (libuv, TLS in Cython: less server CPU per KME call than asyncio's
Python TLS) where uvloop is installed, else asyncio's. The environment variable
:data:`LOOP_VARIABLE` chooses: ``asyncio`` forces asyncio's loop, ``uvloop`` requires
uvloop's (an error if it is not installed); unset or empty, the default as above.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable

from qkdnet.errors import QkdnetError

LOOP_VARIABLE = "QKDNET_EVENT_LOOP"
"""Environment variable naming the event loop: ``uvloop`` or ``asyncio``."""

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def loop_factory(choice: str | None = None) -> LoopFactory | None:
    """The factory of the event loop ``choice`` (default: :data:`LOOP_VARIABLE`'s value)
    names: uvloop's ``new_event_loop``, or None for asyncio's own. Raises QkdnetError
    for another name, or for ``uvloop`` where it is not installed."""
    if choice is None:
        choice = os.environ.get(LOOP_VARIABLE, "")
    choice = choice.strip().lower()
    if choice not in ("", "uvloop", "asyncio"):
        raise QkdnetError(f"{LOOP_VARIABLE}={choice!r}: expected 'uvloop' or 'asyncio'")
    if choice == "asyncio":
        return None
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        if choice == "uvloop":
            raise QkdnetError(f"{LOOP_VARIABLE}=uvloop, but uvloop is not installed "
                                 "(pip install uvloop; none for Windows)") from None
        return None
    factory: LoopFactory = uvloop.new_event_loop
    return factory


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """``uvloop`` or ``asyncio``: what runs ``loop``."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


def run_until_stopped(main: Callable[[], Awaitable[None]],
                      factory: LoopFactory | None = None) -> None:
    """Run ``main()`` on a new event loop (made by ``factory``; None: asyncio's) until it
    returns or is stopped by Ctrl-C or SIGTERM (a clean stop, not an error)."""

    async def guarded() -> None:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        await main()

    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError), \
            asyncio.Runner(loop_factory=factory) as runner:
        runner.run(guarded())


def log_to_stderr() -> None:
    """INFO lines with a timestamp on stderr: what a service's supervisor collects."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # httpx says every request at INFO (a line per ETSI 020 push or callback): the
    # services log what matters themselves
    logging.getLogger("httpx").setLevel(logging.WARNING)
