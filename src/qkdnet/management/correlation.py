"""Root causes among active alarms: which alarm explains which (sans-I/O).

One fault raises several alarms: a stopped node takes down every QKD-link it terminates and
every KM-link it is an end of; a cut QKD-link takes down the KM-links that draw key from it;
a blinded link's detector-current alarm comes with its link-down alarm. An operator should
see the one alarm to act on, with the others filed under it. The rules, by topology:

* ``node-down`` of node *n* explains ``qkd-link-down`` of a QKD-link ending at *n* and
  ``km-link-down`` of a KM-link ending at *n*;
* ``detector-current`` of a QKD-link explains that link's ``qkd-link-down``;
* ``qkd-link-down`` of a QKD-link explains ``km-link-down`` of each KM-link whose path
  uses it;
* a ``service-unserved`` alarm of an SAE pair is explained by the first of the alarms its
  service view names (``service_causes``: the stopped nodes, cut links and down KM-links
  on the service's working, backup and last routes; :mod:`qkdnet.management.services`).

An explained alarm's root is followed up the chain to an alarm nothing explains.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from qkdnet.management.alarms import Alarm
from qkdnet.topology.model import Network


class Correlator:
    """Finds each active alarm's root cause in ``network``; ``service_causes`` (read at
    each call, so the caller may keep it up to date) names, by service, the (rule, subject)
    pairs that would explain its ``service-unserved`` alarm, most basic first."""

    def __init__(self, network: Network,
                 service_causes: Mapping[str, Sequence[tuple[str, str]]] | None = None
                 ) -> None:
        self._service_causes: Mapping[str, Sequence[tuple[str, str]]] = \
            service_causes if service_causes is not None else {}
        self._link_ends = {lk.id: (lk.a, lk.b) for lk in network.qkd_links}
        self._km_ends = {k.id: (k.a, k.b) for k in network.km_links}
        self._km_path = {k.id: k.path for k in network.km_links}

    def _causes(self, alarm: Alarm) -> list[tuple[str, str]]:
        """The (rule, subject) pairs that would explain ``alarm``, most basic first."""
        if alarm.rule == "qkd-link-down" and alarm.subject in self._link_ends:
            a, b = self._link_ends[alarm.subject]
            return [("node-down", a), ("node-down", b), ("detector-current", alarm.subject)]
        if alarm.rule == "km-link-down" and alarm.subject in self._km_ends:
            a, b = self._km_ends[alarm.subject]
            return [("node-down", a), ("node-down", b),
                    *(("qkd-link-down", link) for link in self._km_path[alarm.subject])]
        if alarm.rule == "service-unserved":
            return list(self._service_causes.get(alarm.subject, ()))
        return []

    def roots(self, active: Iterable[Alarm]) -> dict[str, str]:
        """For each alarm of ``active`` that another of them explains, the id of its root
        cause; alarms nothing explains are not keys."""
        alarms = list(active)
        by_key = {(a.rule, a.subject): a.id for a in alarms}
        parent: dict[str, str] = {}
        for alarm in alarms:
            for cause in self._causes(alarm):
                found = by_key.get(cause)
                if found is not None and found != alarm.id:
                    parent[alarm.id] = found
                    break
        roots: dict[str, str] = {}
        for alarm_id in parent:
            root, seen = parent[alarm_id], {alarm_id}
            while root in parent and root not in seen:  # the rules make no cycles; be safe
                seen.add(root)
                root = parent[root]
            roots[alarm_id] = root
        return roots
