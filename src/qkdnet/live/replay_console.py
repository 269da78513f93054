"""``qkdnet console REPORT_DIR``: the O&M web console over the replay of a finished twin
run (:mod:`qkdnet.live.replay`), served until stopped.

It has no login: it shows a finished run and can change nothing but its own replayed alarm
acknowledgements (fault injection answers 409), so it is served on loopback only, with
the Host and Origin checks of :mod:`qkdnet.live.om_access`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from qkdnet.errors import ParameterError
from qkdnet.live.om_access import OmGate, is_loopback, served_names
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
    if not is_loopback(host):
        # no login: the replay is read-only, but its console is for this machine only
        raise ParameterError("--host", host, "a replay console has no login: serve it on "
                             "loopback (127.0.0.1) and reach it through an SSH tunnel")
    # the satellites shown at the replayed time (the twin's clock counts from TWIN_EPOCH)
    om = make_om_app(replay.nms, replay.alarms, replay.updates,
                     satellite_clock=lambda: replay.nms.now or 0.0)
    app = OmGate(om, served_names(host), None)
    server = make_server(app, host, port, None)
    player = asyncio.create_task(replay.play(speed, loop))
    ready(f"console: http://{host}:{server.port}/ ({replay.recording.samples} samples of "
          f"{len(replay.recording.ids)} QKD-links at {speed:g}/s)")
    try:
        await serve_many([server])
    finally:
        player.cancel()
