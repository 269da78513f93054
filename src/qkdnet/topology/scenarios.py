"""Where a network comes from: a built-in scenario by name, or a scenario file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from qkdnet.errors import ScenarioError
from qkdnet.topology.cn_qcn import build_cn_qcn
from qkdnet.topology.model import Network
from qkdnet.topology.scenario_file import load_network

BUILT_IN: dict[str, Callable[[], Network]] = {"cn-qcn": build_cn_qcn}


def open_network(spec: str) -> Network:
    """The built-in scenario named ``spec``, else the scenario file at that path."""
    if spec in BUILT_IN:
        return BUILT_IN[spec]()
    path = Path(spec)
    if not path.is_file():
        raise ScenarioError("--scenario", f"{spec!r} is neither a built-in scenario ("
                            + ", ".join(BUILT_IN) + ") nor a file")
    return load_network(path)
