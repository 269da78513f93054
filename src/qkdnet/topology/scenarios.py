"""The built-in scenarios, by name (:func:`qkdnet.files.networks.open_network` takes a name
from here or a scenario file)."""

from __future__ import annotations

from collections.abc import Callable

from qkdnet.topology.cn_qcn import build_cn_qcn
from qkdnet.topology.model import Network

BUILT_IN: dict[str, Callable[[], Network]] = {"cn-qcn": build_cn_qcn}
