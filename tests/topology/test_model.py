"""The network model crosses process boundaries (a sweep's workers get it pickled): it
comes back equal, its lookup tables and link fields read-only as before."""

from __future__ import annotations

import pickle
from types import MappingProxyType

import pytest

from qkdnet.topology.cn_qcn import build_cn_qcn
from qkdnet.topology.model import QKDLink


def test_a_network_pickles_back_equal_with_read_only_tables() -> None:
    """cn-qcn, its lookup tables used before pickling, unpickles equal; the tables and each
    link's field map are read-only mappings again."""
    network = build_cn_qcn()
    assert network.node["beijing"].name  # the cached tables exist before pickling
    again = pickle.loads(pickle.dumps(network))
    assert again == network
    assert again.node["beijing"] == network.node["beijing"]
    assert isinstance(again.km_link, MappingProxyType)
    with pytest.raises(TypeError):
        again.qkd_links[0].field["x"] = 1.0  # type: ignore[index]


def test_a_link_keeps_its_field_values() -> None:
    """A QKD-link with field values (fibre measurements) keeps them through pickling."""
    link = QKDLink("a--b", "a", "b", 40.0, 9.0, "I",
                   field=MappingProxyType({"extra_loss_db": 1.5}))
    again = pickle.loads(pickle.dumps(link))
    assert again == link and dict(again.field) == {"extra_loss_db": 1.5}
