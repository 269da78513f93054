"""Key supply across a process border: the border KM-link b-c gets its key only from an
emulated device pair, each end from its own device end, synchronised over KM-to-KM mutual
TLS; keys then cross the border, and the two ends always agree on what each holds."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest
from border_sides import Border, border

from qkdnet.keys.etsi014 import ApiError
from qkdnet.live.border_supply import BorderSupply, SupplyFigures, read_figures, write_figures
from qkdnet.live.qkd_device import DeviceError, EmulatedDevice, EmulatedDeviceEnd
from qkdnet.quantum.emulator import KeyEmulator

RATE_BPS = 4e6  # the device pair's key rate: a 1 KiB block every 2 ms


def _border_supply(net: Border, side: int) -> BorderSupply:
    supply = net.sides[side].keynet.border
    assert supply is not None
    return supply


async def _pump_until(net: Border, done: object, limit: int = 300) -> None:
    """Run the initiating side's border supply every 10 ms until ``done()`` holds."""
    supply = _border_supply(net, 0)
    loop = asyncio.get_running_loop()
    for _ in range(limit):
        if done():  # type: ignore[operator]
            return
        await supply.step(loop.time())
        await asyncio.sleep(0.01)
    raise AssertionError("the border KM-link did not fill in time")


def _agree(net: Border) -> bool:
    """Whether b and c hold the same blocks the two ways round (no exchange open)."""
    b = net.sides[0].keynet.stores["b"]
    c = net.sides[1].keynet.stores["c"]
    link = net.border_link
    return (b.pool_bytes(link, True) == c.pool_bytes(link, False)
            and b.pool_bytes(link, False) == c.pool_bytes(link, True))


def test_the_border_fills_from_its_device_and_keys_cross_it(tmp_path: Path) -> None:
    """No block is put at the border's ends by hand: the device pair makes them, b
    initiates, c responds; then keys go a -> d and d -> a, each end spending what the
    other holds."""
    async def run() -> None:
        async with border(tmp_path, device_rate_bps=RATE_BPS) as net:
            b = net.sides[0].keynet.stores["b"]
            c = net.sides[1].keynet.stores["c"]
            link = net.border_link
            await _pump_until(net, lambda: b.pool_bytes(link, True) >= 8192
                              and c.pool_bytes(link, True) >= 8192)
            supply = _border_supply(net, 0)
            assert supply.links == [link] and _border_supply(net, 1).links == [link]
            for _ in range(3):
                keys = await net.sides[0].keynet.enc_keys("sae-a", "sae-d", 1, 256)
                assert await net.sides[1].keynet.dec_keys(
                    "sae-d", "sae-a", [k for k, _ in keys]) == keys
                back = await net.sides[1].keynet.enc_keys("sae-d", "sae-a", 1, 256)
                assert await net.sides[0].keynet.dec_keys(
                    "sae-a", "sae-d", [k for k, _ in back]) == back
            await _pump_until(net, lambda: not supply._initiated[link].sync.busy)
            assert _agree(net)
            assert supply.lost_bits == 0
    asyncio.run(run())


class _ForgetfulEnd:
    """c's device end after a restart of the device: it holds none of the keys b took."""

    def __init__(self, end: EmulatedDeviceEnd) -> None:
        self.key_bytes = end.key_bytes

    async def available(self) -> int:
        return 0

    async def enc_keys(self, number: int) -> list[tuple[str, bytes]]:
        raise DeviceError("nothing ready")

    async def dec_keys(self, key_ids: Sequence[str]) -> list[tuple[str, bytes]]:
        raise DeviceError(f"key_ID {key_ids[0]} is not held")


def test_blocks_the_other_end_could_not_get_are_never_used(tmp_path: Path) -> None:
    """c's device no longer has the keys b took: c stores none, b keeps none to send with
    and discards what it stored to receive with; a relay over the border is refused (503),
    and nothing is spent on either side of the border link."""
    async def run() -> None:
        async with border(tmp_path, device_rate_bps=RATE_BPS) as net:
            right = _border_supply(net, 1)
            link = net.border_link
            node, end = right._responding[link]
            right._responding[link] = (node, _ForgetfulEnd(end))  # type: ignore[arg-type]
            supply = _border_supply(net, 0)
            await _pump_until(net, lambda: supply.lost_bits > 0
                              and not supply._initiated[link].sync.busy)
            b = net.sides[0].keynet.stores["b"]
            c = net.sides[1].keynet.stores["c"]
            assert [b.pool_bytes(link, out) for out in (True, False)] == [0, 0]
            assert [c.pool_bytes(link, out) for out in (True, False)] == [0, 0]
            with pytest.raises(ApiError) as refused:
                await net.sides[0].keynet.enc_keys("sae-a", "sae-d", 1, 256)
            assert refused.value.status == 503
    asyncio.run(run())


def test_an_exchange_nobody_answers_is_abandoned_and_counted(tmp_path: Path) -> None:
    """With c's process not listening, b's exchange gets no acknowledgement: after the
    timeout it is abandoned, what b would have sent with is dropped (counted), and b holds
    nothing it could send with."""
    async def run() -> None:
        async with border(tmp_path, device_rate_bps=RATE_BPS) as net:
            right = net.sides[1]
            supply = _border_supply(net, 0)
            link = net.border_link
            await _pump_until(net, lambda: supply._initiated[link].sync.synced)
            right.server.request_stop()
            await right.task
            supply.ack_timeout_s = 0.3
            loop = asyncio.get_running_loop()
            await _pump_until(net, lambda: supply._initiated[link].sync.busy)
            await asyncio.sleep(0.4)
            await supply.step(loop.time())  # past the timeout: abandoned
            assert supply.lost_bits > 0
            assert net.sides[0].keynet.stores["b"].pool_bytes(link, True) == 0
    asyncio.run(run())


def test_after_a_restart_the_ends_discard_what_only_one_of_them_holds(tmp_path: Path
                                                                      ) -> None:
    """c holds a block b never got (b died before storing what it sent with). b's supply
    starts again from its store: before any exchange the pool synchronisation has c
    discard that block (counted), b numbers new blocks past it, and the ends agree."""
    async def run() -> None:
        async with border(tmp_path, device_rate_bps=RATE_BPS) as net:
            left = net.sides[0]
            b, c = left.keynet.stores["b"], net.sides[1].keynet.stores["c"]
            link = net.border_link
            supply = _border_supply(net, 0)
            await _pump_until(net, lambda: b.pool_bytes(link, True) >= 4096)
            await _pump_until(net, lambda: not supply._initiated[link].sync.busy)
            orphan = b.next_block(link) + 5
            c.deposit(link, orphan, bytes(1024), outbound=False)
            device = supply._initiated[link].device
            restarted = left.keynet.border = BorderSupply(
                net.network, {"b": b}, left.remote, {link: device})
            await _pump_until(net, lambda: restarted._initiated[link].sync.synced
                              and not restarted._initiated[link].sync.busy
                              and b.next_block(link) > orphan)
            assert orphan not in c.live_blocks(link)
            assert _border_supply(net, 1).discarded_bits == 8 * 1024
            assert restarted.discarded_bits == 0
            assert b.live_blocks(link) == c.live_blocks(link) and _agree(net)
    asyncio.run(run())


def test_a_block_only_one_end_received_is_counted_where_status_reads_it(tmp_path: Path
                                                                        ) -> None:
    """The device pair restarts after b took its keys: c's end (a real emulated device,
    fresh) holds none of them, so each block of the exchange reached b only. Every one is
    discarded and counted in lost bits, and the figures file `qkdnet status` reads says
    so; nothing of it is left in either pool."""
    async def run() -> None:
        async with border(tmp_path, device_rate_bps=RATE_BPS) as net:
            right = _border_supply(net, 1)
            link = net.border_link
            node, _ = right._responding[link]
            loop = asyncio.get_running_loop()
            restarted = EmulatedDevice(link, ("b", "c"), KeyEmulator(
                link, RATE_BPS, random_bytes=lambda n: bytes(n), start=loop.time()),
                loop.time)
            right._responding[link] = (node, restarted.end("c"))
            supply = _border_supply(net, 0)
            await _pump_until(net, lambda: supply._initiated[link].sync.synced)
            await asyncio.sleep(0.05)  # the first device makes some key
            offered = await supply.step(loop.time())
            assert offered > 0
            await _pump_until(net, lambda: not supply._initiated[link].sync.busy)
            block_bits = 8 * net.devices[0].key_bytes
            assert supply.figures() == {link: SupplyFigures(0, offered * block_bits)}
            for side, node in ((0, "b"), (1, "c")):
                store = net.sides[side].keynet.stores[node]
                assert [store.pool_bytes(link, out) for out in (True, False)] == [0, 0]
            write_figures(tmp_path / "supply.json", supply)
            assert read_figures(tmp_path / "supply.json") == {
                link: SupplyFigures(0, offered * block_bits)}
    asyncio.run(run())
