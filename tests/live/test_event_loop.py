"""Which event loop `qkdnet serve` runs on: uvloop's by default, asyncio's on request."""

from __future__ import annotations

import asyncio

import pytest

from qkdnet.errors import QkdnetError
from qkdnet.live.runtime import LOOP_VARIABLE, loop_factory, loop_name, run_until_stopped

uvloop = pytest.importorskip("uvloop")  # no Windows wheels: pyproject installs it elsewhere


def test_the_default_loop_is_uvloop_and_asyncio_can_be_forced(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset or 'uvloop': uvloop's factory; 'asyncio' (any case): None, asyncio's own."""
    monkeypatch.delenv(LOOP_VARIABLE, raising=False)
    assert loop_factory() is uvloop.new_event_loop
    assert loop_factory("uvloop") is uvloop.new_event_loop
    monkeypatch.setenv(LOOP_VARIABLE, " AsyncIO ")
    assert loop_factory() is None


def test_an_unknown_loop_name_is_a_clear_error() -> None:
    """A name other than uvloop or asyncio is refused, naming the variable and the value."""
    with pytest.raises(QkdnetError, match=f"{LOOP_VARIABLE}='trio'"):
        loop_factory("trio")


@pytest.mark.parametrize(("choice", "expected"), [("uvloop", "uvloop"), ("asyncio", "asyncio")])
def test_run_until_stopped_runs_on_the_chosen_loop(choice: str, expected: str) -> None:
    """The main coroutine runs on the loop the factory makes."""
    seen: list[str] = []

    async def main() -> None:
        seen.append(loop_name(asyncio.get_running_loop()))

    run_until_stopped(main, loop_factory(choice))
    assert seen == [expected]
