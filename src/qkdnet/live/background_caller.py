"""A task that calls one service over one keep-alive connection until it is closed: what
the node processes' route refresher and reporter (:mod:`qkdnet.live.controller_client`),
telemetry pusher (:mod:`qkdnet.live.telemetry_pusher`) and the EMS's forwarder
(:mod:`qkdnet.live.ems_service`) share."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from qkdnet.live.http_client import LeanClient


class BackgroundCaller:
    """Runs :meth:`_run` (a subclass's loop, which ends once ``_closing`` is set) as a task
    named ``task_name``, calling over ``client``."""

    def __init__(self, client: LeanClient, task_name: str) -> None:
        self._client = client
        self._task_name = task_name
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        """Start the task in the running event loop (its first call at once)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self._task_name)

    async def close(self) -> None:
        """Stop the task and close the connection."""
        self._closing = True  # ends the loop should a cancellation be lost on the way
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._client.aclose()

    async def _run(self) -> None:
        raise NotImplementedError

    async def _every(self, interval_s: float, call: Callable[[], Awaitable[object]]) -> None:
        """Await ``call()`` every ``interval_s`` (s, from one start to the next; at once
        again if a call took longer) until the caller is closing."""
        loop = asyncio.get_running_loop()
        while not self._closing:
            started = loop.time()
            await call()
            await asyncio.sleep(max(0.0, interval_s - (loop.time() - started)))
