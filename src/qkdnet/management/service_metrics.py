"""Prometheus exposition of the services (SAE pairs) and their ITU-T Y.3807 QoS.

A collector of its own, read at scrape time from a
:class:`~qkdnet.management.services.ServiceView`, in a fresh registry (as
:mod:`qkdnet.management.metrics` does for the NMS); ``/metrics`` serves the NMS's families
then these. Every family has the labels ``service`` (``master->slave``), ``master`` and
``slave``; the help string names the Y.3807 parameter and how it is measured here (see
:mod:`qkdnet.management.services`). A parameter not measured yet (no request) is NaN.

=================================================  =========================================
name                                               value
=================================================  =========================================
qkdnet_service_state                               1 for the service's state (label state)
qkdnet_service_key_delivered_bits_total            counter: key delivered, bits (Y.3807 8.1)
qkdnet_service_throughput_bits_per_second          Y.3807 8.1 throughput, bit/s
qkdnet_service_key_response_delay_seconds          Y.3807 8.2 KKRD, s
qkdnet_service_key_response_delay_variation_seconds  Y.3807 8.3 KKRDV, s
qkdnet_service_key_delivery_error_ratio            Y.3807 8.4 KKDER
qkdnet_service_key_delivery_loss_ratio             Y.3807 8.5 KKDLR
qkdnet_service_availability_ratio                  Y.3807 8.6 availability
qkdnet_service_restoration_seconds                 Y.3807 8.6.1 last service restoration time
qkdnet_service_requests_total                      counter: key requests taken
qkdnet_service_requests_refused_total              counter: key requests refused (503)
=================================================  =========================================
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from qkdnet.management.services import STATES, ServiceView

_LABELS = ["service", "master", "slave"]

# (name, ServiceQoS field, help) of the gauges
_QOS: tuple[tuple[str, str, str], ...] = (
    ("qkdnet_service_throughput_bits_per_second", "throughput_bps",
     "ITU-T Y.3807 8.1 throughput: key bits delivered to the master SAE over the last "
     "report interval, per second (bit/s)."),
    ("qkdnet_service_key_response_delay_seconds", "kkrd_s",
     "ITU-T Y.3807 8.2 KSA-key response delay (KKRD): mean time from the KME taking a "
     "key request to the keys being ready, over the last 256 served requests (s)."),
    ("qkdnet_service_key_response_delay_variation_seconds", "kkrdv_s",
     "ITU-T Y.3807 8.3 KSA-key response delay variation (KKRDV): 0.99-quantile less "
     "minimum of the last 256 served requests' response delays (s)."),
    ("qkdnet_service_key_delivery_error_ratio", "kkder",
     "ITU-T Y.3807 8.4 KSA-key delivery error ratio (KKDER): keys the slave SAE asked for "
     "by key_ID that its KME could not hand over, over all it asked for (ratio)."),
    ("qkdnet_service_key_delivery_loss_ratio", "kkdlr",
     "ITU-T Y.3807 8.5 KSA-key delivery loss ratio (KKDLR): keys asked for in requests "
     "refused with 503, over all keys asked for (ratio)."),
    ("qkdnet_service_availability_ratio", "availability",
     "ITU-T Y.3807 8.6 availability: fraction of the time since the service's first "
     "request during which it was not unserved (ratio)."),
    ("qkdnet_service_restoration_seconds", "restoration_s",
     "ITU-T Y.3807 8.6.1 service restoration time: length of the service's last unserved "
     "spell, from the report that found it unserved to the one that found it served (s)."),
)


class ServiceCollector(Collector):
    """Reads ``view``'s services on every scrape."""

    def __init__(self, view: ServiceView) -> None:
        self.view = view

    def collect(self) -> Iterator[Metric]:
        """The metric families of the services now."""
        records = self.view.records()
        state = GaugeMetricFamily(
            "qkdnet_service_state", "Whether the service (SAE pair) is in the state the "
            "label names (1): served, degraded (rerouted, or requests refused since the "
            "last report) or unserved (no route).", labels=[*_LABELS, "state"])
        delivered = CounterMetricFamily(
            "qkdnet_service_key_delivered_bits",
            "Key delivered to the master SAE (bits since the server started); its rate() is "
            "the ITU-T Y.3807 8.1 throughput over any window.", labels=_LABELS)
        requests = CounterMetricFamily(
            "qkdnet_service_requests", "Key requests the network took for the service "
            "(count since the server started).", labels=_LABELS)
        refused = CounterMetricFamily(
            "qkdnet_service_requests_refused", "Key requests refused with 503 (no route, a "
            "stopped KM, key short; count since the server started).", labels=_LABELS)
        gauges = [(GaugeMetricFamily(name, text, labels=_LABELS), field)
                  for name, field, text in _QOS]
        for r in records:
            labels = [r["id"], r["master"], r["slave"]]
            for name in STATES:
                state.add_metric([*labels, name], float(r["state"] == name))
            delivered.add_metric(labels, float(r["key_delivered_bits"]))
            requests.add_metric(labels, float(r["requests"]))
            refused.add_metric(labels, float(r["requests_refused"]))
            qos = r["qos"]  # None: not measured
            for family, field in gauges:
                value = qos[field]
                family.add_metric(labels, math.nan if value is None else float(value))
        yield from (state, delivered, requests, refused)
        yield from (family for family, _ in gauges)


def service_exposition(view: ServiceView) -> bytes:
    """The Prometheus text exposition of ``view``'s services (a fresh registry, never the
    global one)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServiceCollector(view))
    return generate_latest(registry)
