"""The KMEs' answer counts: calls by node, endpoint, SAE and status; latency buckets; 503s
by the cause their message names."""

from __future__ import annotations

import pytest

from qkdnet.keys.etsi014 import NOT_ENOUGH_KEY
from qkdnet.management.kme_counts import CAUSES, LATENCY_BUCKETS_S, KmeCounts, refusal_cause


@pytest.mark.parametrize(("message", "cause"), [
    ("no route between the SAEs' nodes: b is stopped", "no_route"),
    (NOT_ENOUGH_KEY, "not_enough_key"),
    ("the key store of node a cannot be written (disk full); key delivery resumes", "key_store"),
    ("key store: database is locked", "key_store"),
    ("the Key Manager of node b is stopped", "node_stopped"),
    ("keys not relayed across the domain border at node g: timeout", "domain_border"),
    ("keys not found at gateway g: gone", "domain_border"),
    ("the relay did not carry the keys handed to it", "relay_failed"),
    ("2 of 3 messages could not be delivered", "relay_failed"),
    ("something new", "other"),
])
def test_a_refusal_is_counted_under_the_cause_its_message_names(message: str,
                                                                  cause: str) -> None:
    """Each 503 text the keys and live layers write maps to its cause label."""
    assert refusal_cause(message) == cause
    assert cause in CAUSES


def test_calls_latency_and_refusals_add_up() -> None:
    """Calls count per (node, endpoint, SAE, status); a latency lands in the first bucket
    whose bound is not below it (le), past the last in +Inf; 503s count by cause."""
    counts = KmeCounts()
    counts.record("a", "enc_keys", "sae-a", 200, 0.0004)
    counts.record("a", "enc_keys", "sae-a", 200, 0.001)  # on a bound: that bucket (le)
    counts.record("a", "enc_keys", "sae-a", 503, 99.0)
    counts.refuse("a", "enc_keys", "no route between the SAEs' nodes")
    assert counts.calls == {("a", "enc_keys", "sae-a", 200): 2,
                            ("a", "enc_keys", "sae-a", 503): 1}
    buckets = counts.latency["a", "enc_keys"].buckets
    assert len(buckets) == len(LATENCY_BUCKETS_S) + 1
    assert buckets[0] == 1 and buckets[1] == 1 and buckets[-1] == 1 and sum(buckets) == 3
    assert counts.latency["a", "enc_keys"].sum_s == pytest.approx(99.0014)
    assert counts.refused == {("a", "enc_keys", "no_route"): 1}
