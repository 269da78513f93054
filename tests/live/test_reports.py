"""How the O&M event streams learn of a new NMS report: at once, even when the report came
while the stream was busy sending the previous one."""

from __future__ import annotations

import asyncio

from qkdnet.live.reports import Updates


def test_a_report_made_while_a_stream_was_busy_wakes_it_at_once() -> None:
    async def go() -> float:
        updates = Updates()
        seen = updates.generation
        updates.notify()  # the stream was sending when this came in
        loop = asyncio.get_running_loop()
        start = loop.time()
        await updates.wait(seen, timeout_s=5.0)
        return loop.time() - start

    assert asyncio.run(go()) < 1.0


def test_a_waiting_stream_wakes_on_the_next_report_and_otherwise_times_out() -> None:
    async def go() -> tuple[bool, bool]:
        updates = Updates()
        waiter = asyncio.create_task(updates.wait(updates.generation, timeout_s=30.0))
        await asyncio.sleep(0.01)
        assert not waiter.done()
        updates.notify()
        await asyncio.wait_for(waiter, 5.0)
        quiet = asyncio.create_task(updates.wait(updates.generation, timeout_s=0.05))
        await asyncio.wait_for(quiet, 5.0)
        return waiter.done(), quiet.done()

    assert asyncio.run(go()) == (True, True)
