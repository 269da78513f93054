"""Root causes among active alarms: a stopped node explains its links' and KM-links' down
alarms, a down QKD-link its KM-links', a tripped detector monitor its link's; a chain is
followed to its root, and alarms nothing explains stand alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from qkdnet.files.networks import load_network
from qkdnet.management.alarms import DEFAULT_RULES, Alarm, AlarmEngine
from qkdnet.management.correlation import Correlator
from qkdnet.topology.model import Network

CHAIN = """\
qkdnet_scenario: 1
name: chain
nodes:
  - {id: a, kind: backbone_access, lat: 30, lon: 110}
  - {id: b, kind: backbone_relay, lat: 30.3, lon: 110.3}
  - {id: c, kind: backbone_access, lat: 30.6, lon: 110.6}
qkd_links:
  - {a: a, b: b, length_km: 40, device_type: I}
  - {a: b, b: c, length_km: 40, device_type: I}
km_links:
  - {id: km:a~b, a: a, b: b, kind: direct, path: [a--b]}
  - {id: km:b~c, a: b, b: c, kind: direct, path: [b--c]}
  - {id: km:a~c, a: a, b: c, kind: remote, path: [a--b, b--c]}
"""


@pytest.fixture
def chain(tmp_path: Path) -> Network:
    (tmp_path / "chain.yaml").write_text(CHAIN)
    return load_network(tmp_path / "chain.yaml")


def _raise(engine: AlarmEngine, kind: str, subject: str, metric: str, value: float) -> Alarm:
    (event,) = engine.observe(1.0, kind, subject, {metric: value})  # type: ignore[arg-type]
    return event.alarm


def test_a_stopped_node_is_the_root_of_its_links_and_km_links_alarms(chain: Network) -> None:
    engine = AlarmEngine(DEFAULT_RULES)
    node = _raise(engine, "node", "b", "ok", 0.0)
    links = [_raise(engine, "qkd_link", i, "up", 0.0) for i in ("a--b", "b--c")]
    kms = [_raise(engine, "km_link", k.id, "up", 0.0) for k in chain.km_links]
    roots = Correlator(chain).roots(engine.active())
    assert roots == {a.id: node.id for a in [*links, *kms]}


def test_a_cut_link_explains_the_km_links_over_it_and_a_blinding_the_cut(
        chain: Network) -> None:
    engine = AlarmEngine(DEFAULT_RULES)
    blinded = _raise(engine, "qkd_link", "a--b", "detector_current_alarm", 1.0)
    down = _raise(engine, "qkd_link", "a--b", "up", 0.0)
    over = [k.id for k in chain.km_links if "a--b" in k.path]
    kms = [_raise(engine, "km_link", k, "up", 0.0) for k in over]
    alone = _raise(engine, "km_link", next(k.id for k in chain.km_links
                                           if k.path == ("b--c",)), "up", 0.0)
    roots = Correlator(chain).roots(engine.active())
    assert roots[down.id] == blinded.id
    assert all(roots[k.id] == blinded.id for k in kms)  # followed to the root
    assert blinded.id not in roots and alone.id not in roots
    assert len(kms) == 2


def test_other_alarms_have_no_cause(chain: Network) -> None:
    engine = AlarmEngine(DEFAULT_RULES)
    _raise(engine, "qkd_link", "a--b", "detector_current_alarm", 1.0)
    engine.observe(0.0, "km_link", "km:a~b", {"key_bits": 0.0})
    engine.observe(400.0, "km_link", "km:a~b", {"key_bits": 0.0})  # reserve low, held
    assert {a.rule for a in engine.active()} == {"detector-current", "key-reserve-low"}
    assert Correlator(chain).roots(engine.active()) == {}
