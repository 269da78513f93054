"""A client of the O&M endpoints of a running ``qkdnet serve``, found through the manifest
in its data folder: fault injection for operators (``qkdnet fault``).

It authenticates with HTTP Basic (one request, no session to keep): the operator's name
and password come from the caller, or from the environment variables
:data:`USER_VARIABLE` and :data:`PASSWORD_VARIABLE`. An ``https`` O&M port (one not on
loopback) is verified against the network CA of the manifest."""

from __future__ import annotations

import base64
import json
import os
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from qkdnet.errors import ParameterError

#: Fault injection actions: what each acts on (the path segment of its O&M endpoint).
FAULT_ACTIONS = {"cut": "links", "blind": "links", "repair": "links", "stop": "nodes",
                 "start": "nodes"}

#: Environment variables with the operator's name and password, when not given otherwise.
USER_VARIABLE, PASSWORD_VARIABLE = "QKDNET_OPERATOR", "QKDNET_PASSWORD"


def credentials(name: str | None, password: str | None) -> tuple[str, str]:
    """``name`` and ``password``, each from its environment variable when not given;
    ParameterError naming what is missing."""
    name = name or os.environ.get(USER_VARIABLE)
    password = password if password is not None else os.environ.get(PASSWORD_VARIABLE)
    if not name:
        raise ParameterError("--operator", "(none)", f"the O&M port needs an operator: "
                             f"--operator NAME or {USER_VARIABLE}")
    if not password:
        raise ParameterError("--password-file", "(none)", f"operator {name!r} needs a "
                             f"password: --password-file FILE or {PASSWORD_VARIABLE}")
    return name, password


def om_url(folder: Path) -> str:
    """The O&M address in the manifest of the ``qkdnet serve`` whose data folder is
    ``folder``."""
    try:
        url: str = json.loads((folder / "manifest.json").read_text())["om_url"]
    except (OSError, ValueError, KeyError) as exc:
        raise ParameterError("--dir", str(folder), f"holds no manifest of a running "
                             f"`qkdnet serve` with an om_url ({exc})") from exc
    return url


def inject_fault(folder: Path, action: str, target: str, operator: str | None = None,
                 password: str | None = None) -> dict[str, Any]:
    """Apply fault ``action`` (:data:`FAULT_ACTIONS`) to ``target`` (a QKD-link or node id)
    in the ``qkdnet serve`` of ``folder`` as ``operator`` (see :func:`credentials`);
    returns the element's new state."""
    kind = FAULT_ACTIONS.get(action)
    if kind is None:
        raise ParameterError("ACTION", action, ", ".join([*FAULT_ACTIONS, "list"]))
    state: dict[str, Any] = _call(folder, "POST", f"/api/{kind}/{target}/{action}",
                                  operator, password, ("TARGET", target))
    return state


def active_faults(folder: Path, operator: str | None = None,
                  password: str | None = None) -> dict[str, list[str]]:
    """The faults injected now into the ``qkdnet serve`` of ``folder``: ``cut_links``,
    ``blinded_links`` and ``stopped_nodes``, each sorted."""
    faults: dict[str, list[str]] = _call(folder, "GET", "/api/faults", operator, password,
                                         ("--dir", str(folder)))
    return faults


def _call(folder: Path, method: str, path: str, operator: str | None, password: str | None,
          blame: tuple[str, str]) -> Any:
    """``method path`` on the O&M port of ``folder``'s ``qkdnet serve`` as ``operator``: the
    answer's JSON; a refusal is a ParameterError naming the operator (401, 403) or
    ``blame`` (the parameter at fault for any other refusal)."""
    name, secret = credentials(operator, password)
    url = om_url(folder)
    basic = base64.b64encode(f"{name}:{secret}".encode()).decode()
    request = urllib.request.Request(f"{url}{path}", method=method,
                                     headers={"Authorization": f"Basic {basic}"})
    context = None
    if url.startswith("https:"):
        manifest = json.loads((folder / "manifest.json").read_text())
        context = ssl.create_default_context(cafile=manifest["ca"])
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as answer:
            return json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        message = json.loads(exc.read()).get("message", "")
        if exc.code in (401, 403):
            raise ParameterError("--operator", name, message) from exc
        raise ParameterError(*blame, message) from exc
    except urllib.error.URLError as exc:
        raise ParameterError("--dir", str(folder), f"its `qkdnet serve` does not answer "
                             f"at {url} ({exc.reason})") from exc
