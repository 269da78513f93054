"""A periodic step of a driver's background task (the key supply pump, reports, expiry)
that must never end the task: its exceptions are logged once while they repeat."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("qkdnet.live")


class StepGuard:
    """Runs one step of the pump, logging an exception the first time it comes (with its
    traceback) and not again until the step has succeeded once."""

    def __init__(self, step: str) -> None:
        self.step = step
        self.failing: str | None = None

    def run(self, step: Callable[[], object]) -> None:
        """Run ``step()``."""
        try:
            step()
        except Exception as exc:  # no fault may end the pump task
            self._failed(exc)
            return
        self._worked()

    async def run_async(self, step: Awaitable[object]) -> None:
        """Await ``step``."""
        try:
            await step
        except Exception as exc:  # no fault may end the pump task
            self._failed(exc)
            return
        self._worked()

    def _failed(self, exc: Exception) -> None:
        what = f"{type(exc).__name__}: {exc}"
        if what != self.failing:
            log.exception("%s failed, retried every pump: %s", self.step, what)
            self.failing = what

    def _worked(self) -> None:
        if self.failing is not None:
            log.warning("%s works again", self.step)
            self.failing = None
