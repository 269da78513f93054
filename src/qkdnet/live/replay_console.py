"""``qkdnet console REPORT_DIR``: the O&M web console over the replay of a finished twin
run (:mod:`qkdnet.live.replay`), served until stopped."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from qkdnet.errors import ParameterError
from qkdnet.live.om_app import make_om_app
from qkdnet.live.replay import Replay, load_recording
from qkdnet.live.tls_server import make_server, serve_many


async def serve_replay_console(report: Path, host: str, port: int, speed: float,
                               loop: bool, ready: Callable[[str], None]) -> None:
    """Replay the run in ``report`` at ``speed`` samples/s (``loop``: start over at the
    end) behind the console on ``host:port`` (0: any free port); ``ready`` gets a line
    with the console's address once it listens."""
    if not speed > 0:
        raise ParameterError("--speed", speed, "must be > 0")
    if not 0 <= port <= 65535:
        raise ParameterError("--port", port, "a TCP port, 0 to 65535")
    replay = Replay(load_recording(report))
    server = make_server(make_om_app(replay.nms, replay.alarms, replay.updates), host, port,
                         None)
    player = asyncio.create_task(replay.play(speed, loop))
    ready(f"console: http://{host}:{server.port}/ ({replay.recording.samples} samples of "
          f"{len(replay.recording.ids)} QKD-links at {speed:g}/s)")
    try:
        await serve_many([server])
    finally:
        player.cancel()
