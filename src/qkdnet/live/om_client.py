"""A client of the O&M endpoints of a running ``qkdnet serve``, found through the manifest
in its data folder: fault injection for operators (``qkdnet fault``)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from qkdnet.errors import ParameterError

#: Fault injection actions: what each acts on (the path segment of its O&M endpoint).
FAULT_ACTIONS = {"cut": "links", "blind": "links", "repair": "links", "stop": "nodes",
                 "start": "nodes"}


def om_url(folder: Path) -> str:
    """The O&M address in the manifest of the ``qkdnet serve`` whose data folder is
    ``folder``."""
    try:
        url: str = json.loads((folder / "manifest.json").read_text())["om_url"]
    except (OSError, ValueError, KeyError) as exc:
        raise ParameterError("--dir", str(folder), f"holds no manifest of a running "
                             f"`qkdnet serve` with an om_url ({exc})") from exc
    return url


def inject_fault(folder: Path, action: str, target: str) -> dict[str, Any]:
    """Apply fault ``action`` (:data:`FAULT_ACTIONS`) to ``target`` (a QKD-link or node id)
    in the ``qkdnet serve`` of ``folder``; returns the element's new state."""
    kind = FAULT_ACTIONS.get(action)
    if kind is None:
        raise ParameterError("ACTION", action, ", ".join(FAULT_ACTIONS))
    url = om_url(folder)
    request = urllib.request.Request(f"{url}/api/{kind}/{target}/{action}", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            state: dict[str, Any] = json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        raise ParameterError("TARGET", target, json.loads(exc.read()).get("message", "")
                             ) from exc
    except urllib.error.URLError as exc:
        raise ParameterError("--dir", str(folder), f"its `qkdnet serve` does not answer "
                             f"at {url} ({exc.reason})") from exc
    return state
