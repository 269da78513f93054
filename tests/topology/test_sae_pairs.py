"""The SAE pair policy of a scenario (``sae_pairs:``): parsed into the network model,
written back, every bad pair refused with file, line and path, and absent meaning every
pair as before."""

from __future__ import annotations

import pytest

from qkdnet.errors import ScenarioError
from qkdnet.topology.scenario_file import format_network, parse_network

SOURCE = "net.yaml"
MARK = "# <-"
BASE = """\
qkdnet_scenario: 1
name: pairs
nodes:
  - {id: a, kind: backbone_access, lat: 39.9, lon: 116.4}
  - {id: b, kind: backbone_access, lat: 38.0, lon: 117.0}
qkd_links:
  - {a: a, b: b, length_km: 70, device_type: I}
saes:
  - {id: sae-a, node: a}
  - {id: sae-b, node: b}
  - {id: sae-b2, node: b}
"""


def test_listed_pairs_share_keys_either_way_and_no_others() -> None:
    """A listed pair may share keys with either SAE as master; an unlisted pair may not."""
    network = parse_network(BASE + "sae_pairs:\n  - [sae-a, sae-b]\n", SOURCE, "yaml")
    assert network.sae_pairs == (("sae-a", "sae-b"),)
    assert network.may_share_keys("sae-a", "sae-b")
    assert network.may_share_keys("sae-b", "sae-a")
    assert not network.may_share_keys("sae-a", "sae-b2")
    assert not network.may_share_keys("sae-b2", "sae-b")


def test_without_sae_pairs_every_two_saes_share_keys() -> None:
    """No ``sae_pairs:``: the default policy lets any two of the scenario's SAEs share keys."""
    network = parse_network(BASE, SOURCE, "yaml")
    assert network.sae_pairs is None
    assert network.may_share_keys("sae-a", "sae-b2")
    assert not network.may_share_keys("sae-a", "sae-nowhere")


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_the_policy_survives_a_round_trip(fmt: str) -> None:
    """A formatted network keeps its pairs; one without a policy stays without."""
    with_pairs = parse_network(BASE + "sae_pairs: [[sae-b2, sae-a]]\n", SOURCE, "yaml")
    again = parse_network(format_network(with_pairs, fmt), SOURCE, fmt)  # type: ignore[arg-type]
    assert again.sae_pairs == (("sae-b2", "sae-a"),)
    bare = parse_network(BASE, SOURCE, "yaml")
    assert "sae_pairs" not in format_network(bare, fmt)  # type: ignore[arg-type]


@pytest.mark.parametrize(("tail", "where", "problem"), [
    pytest.param("sae_pairs:\n  - [sae-a, sae-b]\n  - [sae-a, sae-x]  # <-\n",
                 "sae_pairs[1][1]", "unknown SAE 'sae-x'", id="unknown SAE"),
    pytest.param("sae_pairs:\n  - - sae-q  # <-\n    - sae-a\n",
                 "sae_pairs[0][0]", "unknown SAE 'sae-q'", id="unknown SAE, block style"),
    pytest.param("sae_pairs:\n  - [sae-b, sae-b]  # <-\n",
                 "sae_pairs[0]", "pairs SAE 'sae-b' with itself", id="SAE with itself"),
    pytest.param("sae_pairs:\n  - [sae-a, sae-b]\n  - [sae-b, sae-a]  # <-\n",
                 "sae_pairs[1]", "duplicate pair", id="same pair twice"),
    pytest.param("sae_pairs:\n  - [sae-a, sae-b, sae-b2]  # <-\n",
                 "sae_pairs[0]", "at most 2 items", id="three SAEs"),
])
def test_a_bad_pair_is_refused_naming_file_line_and_path(tail: str, where: str,
                                                         problem: str) -> None:
    """Each bad pair is one ScenarioError with the source, the marked line and the path."""
    text = BASE + tail
    [line] = [i for i, row in enumerate(text.splitlines(), 1) if row.rstrip().endswith(MARK)]
    with pytest.raises(ScenarioError) as caught:
        parse_network(text, SOURCE, "yaml")
    err = caught.value
    assert (err.source, err.line, err.path) == (SOURCE, line, where)
    assert problem in err.problem
    assert str(err).startswith(f"{SOURCE}:{line}: {where}: ")
