"""``qkdnet console REPORT_DIR``: the O&M web console over the replay of a finished twin
run (:mod:`qkdnet.live.replay`), served until stopped.

The replay waits, paused at the run's first sample, until a console page connects (its
event stream, ``GET /api/events``), then plays; it can be driven from the page's replay bar
(``console/replay.js``) or the O&M API:

- ``GET /api/replay``: the player's state (:meth:`~qkdnet.live.replay.Replay.state`);
- ``POST /api/replay`` with a JSON object: ``{"action": "play"}``, ``{"action": "pause"}``,
  ``{"action": "speed", "speed": X}`` (simulated s per wall s), ``{"action": "seek", "t":
  S}`` (simulated s) or ``{"action": "seek", "at": "2025-01-02T06:00:00"}`` (ISO 8601, UTC
  when no zone); answers the new state, or 400 naming the field at fault.

Who may: the calls go through the same gate as every O&M call (:mod:`qkdnet.live.om_access`):
``GET`` is a read (role ``viewer``), ``POST`` a state-changing call (role ``operator``, with
the session's CSRF token). The replay console itself has no login: it shows a finished run
and can change nothing but its own player and replayed alarm acknowledgements (fault
injection answers 409), so it is served on loopback only, with the gate's Host and Origin
checks, and whoever can open it on this machine may drive it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from qkdnet.errors import ParameterError
from qkdnet.live.om_access import OmGate, OperatorAccess, is_loopback, served_names
from qkdnet.live.om_app import make_om_app
from qkdnet.live.replay import Replay, check_speed, load_recording, simulated_time
from qkdnet.live.tls_server import make_server, serve_many

#: Wall seconds between two moves of a playing replay's clock.
TICK_S = 0.1
#: Largest body of ``POST /api/replay`` read (bytes).
MAX_CONTROL_BODY = 4096
ACTIONS = ("play", "pause", "speed", "seek")


class _PageWatch:
    """Tells the replay when a page opens its event stream (a console page connected)."""

    def __init__(self, app: ASGIApp, replay: Replay) -> None:
        self.app, self.replay = app, replay

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/api/events":
            self.replay.page_connected()
        await self.app(scope, receive, send)


def _bad(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"status": status, "message": message}, status_code=status)


def control(replay: Replay, body: Any) -> dict[str, Any]:
    """Apply one control call's JSON ``body`` to ``replay``; its new state. ParameterError
    naming the field at fault."""
    if not isinstance(body, dict):
        raise ParameterError("body", body, 'a JSON object such as {"action": "play"}')
    action = body.get("action")
    if action == "play":
        replay.play()
    elif action == "pause":
        replay.pause()
    elif action == "speed":
        replay.set_speed(check_speed("speed", body.get("speed")))
    elif action == "seek":
        if ("t" in body) == ("at" in body):
            raise ParameterError("seek", sorted(body), 'one of "t" (simulated s) or "at" '
                                 "(ISO 8601 date and time)")
        if "t" in body:
            replay.seek(body["t"])
        else:
            at = body["at"]
            replay.seek(simulated_time(at if isinstance(at, str) else repr(at)))
    else:
        raise ParameterError("action", action, ", ".join(ACTIONS))
    return replay.state()


def add_replay_routes(app: FastAPI, replay: Replay) -> None:
    """``GET`` and ``POST /api/replay`` on ``app``."""

    async def replay_state() -> JSONResponse:
        return JSONResponse(replay.state())

    async def replay_control(request: Request) -> JSONResponse:
        raw = await request.body()
        if len(raw) > MAX_CONTROL_BODY:
            return _bad(f"body of {len(raw)} bytes: at most {MAX_CONTROL_BODY}", 413)
        try:
            body = json.loads(raw)
        except ValueError:
            return _bad('body: not JSON; send an object such as {"action": "play"}')
        try:
            return JSONResponse(control(replay, body))
        except ParameterError as exc:
            return _bad(str(exc))

    app.add_api_route("/api/replay", replay_state, methods=["GET"])
    app.add_api_route("/api/replay", replay_control, methods=["POST"])


def replay_app(replay: Replay, host: str, access: OperatorAccess | None = None) -> ASGIApp:
    """The O&M app over ``replay`` with ``/api/replay``, behind the O&M gate for a server on
    ``host``; ``access``: the operators who may use it (None: no login, as served)."""
    # the satellites shown at the replayed time (the twin's clock counts from TWIN_EPOCH)
    om = make_om_app(replay.nms, replay.alarms, replay.updates,
                     satellite_clock=lambda: replay.clock_s)
    add_replay_routes(om, replay)
    return OmGate(_PageWatch(om, replay), served_names(host), access)


async def run_player(replay: Replay) -> None:
    """Move the replay's clock by the wall time passed, every TICK_S, until cancelled."""
    last = time.monotonic()
    while True:
        await asyncio.sleep(TICK_S)
        now = time.monotonic()
        replay.tick(now - last)
        last = now


async def serve_replay_console(report: Path, host: str, port: int, speed: float,
                               loop: bool, ready: Callable[[str], None]) -> None:
    """Replay the run in ``report`` at ``speed`` simulated s per wall s (``loop``: start
    over at the end) behind the console on ``host:port`` (0: any free port), from the
    moment a page connects; ``ready`` gets a line with the console's address once it
    listens."""
    check_speed("--speed", speed)
    if not 0 <= port <= 65535:
        raise ParameterError("--port", port, "a TCP port, 0 to 65535")
    replay = Replay(load_recording(report), speed, loop)
    if not is_loopback(host):
        # no login: the replay is read-only, but its console is for this machine only
        raise ParameterError("--host", host, "a replay console has no login: serve it on "
                             "loopback (127.0.0.1) and reach it through an SSH tunnel")
    server = make_server(replay_app(replay, host), host, port, None)
    player = asyncio.create_task(run_player(replay))
    rec = replay.recording
    ready(f"console: http://{host}:{server.port}/ ({rec.samples} samples of "
          f"{len(rec.ids)} QKD-links and {len(rec.alarms)} alarms; plays at {speed:g}x "
          "once a page connects)")
    try:
        await serve_many([server])
    finally:
        player.cancel()
