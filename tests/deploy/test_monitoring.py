"""The monitoring kit under deploy/monitoring/: the Grafana dashboard queries only series
/metrics exports, and the Prometheus alert rules are the NMS's alarm rules, as generated,
accepted by promtool (schema checks where promtool is not installed) and firing as the
NMS's rules do (promtool's rule unit tests)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from qkdnet.cli import app
from qkdnet.deploy.alert_rules import alert_rules
from qkdnet.errors import ParameterError
from qkdnet.management.alarms import DEFAULT_RULES, AlarmEngine
from qkdnet.management.kme_counts import KmeCounts
from qkdnet.management.metrics import exposition
from qkdnet.management.nms import Nms
from qkdnet.management.satellite import SatelliteStatus
from qkdnet.management.service_metrics import service_exposition
from qkdnet.management.services import ServiceView
from qkdnet.topology.cn_qcn import build_cn_qcn

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
DASHBOARD = MONITORING / "qkdnet-dashboard.json"
RULES = MONITORING / "qkdnet-alerts.yml"

#: Words of PromQL that are not series: functions, aggregations, operators, modifiers.
_PROMQL_WORDS = frozenset(str.split("""
    sum avg min max count stddev stdvar topk bottomk quantile count_values group by without
    on ignoring group_left group_right and or unless bool offset rate irate increase delta
    idelta deriv histogram_quantile label_values label_replace abs ceil floor round clamp
    clamp_min clamp_max absent absent_over_time avg_over_time max_over_time min_over_time
    sum_over_time count_over_time last_over_time changes resets time vector scalar sort
    sort_desc inf nan
"""))
#: Series Prometheus itself makes from the alert rules of qkdnet-alerts.yml.
_PROMETHEUS_OWN = frozenset({"ALERTS"})


def exported_series() -> set[str]:
    """Every sample name /metrics can carry: the families of the collectors with every
    input given (a network with a satellite segment, the alarm engine, the KME counts)
    and the service view's,
    as prometheus-client's parser reads the exposition, with each type's sample
    suffixes (empty families included)."""
    nms = Nms(build_cn_qcn(), history_points=2)
    nms.satellite = SatelliteStatus(["sat"], ["gs"])
    alarms = AlarmEngine()
    text = (exposition(nms, {}, {}, lambda: (0, 0), alarms=alarms, kme=KmeCounts())
            + service_exposition(ServiceView(nms, alarms))).decode()
    suffixes = {"gauge": ("",), "counter": ("_total",),
                "histogram": ("_bucket", "_sum", "_count")}
    return {f.name + s for f in text_string_to_metric_families(text)
            for s in suffixes[f.type]}


def series_in(expr: str) -> set[str]:
    """The series names a PromQL expression (or a Grafana ``label_values(...)`` query)
    reads: what is left once strings, label matchers, ranges, grouping label lists and
    PromQL's own words are taken out."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r" \1 ",
                  text)
    text = re.sub(r"label_values\(([^,()]*),[^)]*\)", r" \1 ", text)  # (series, label)
    words = re.findall(r"(?<![\w.])[A-Za-z_:][\w:]*", text)
    return {w for w in words if w not in _PROMQL_WORDS}


def _queries(dashboard: dict[str, Any]) -> list[str]:
    found = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", ())]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            found.append(var["query"]["query"])
    return found


def test_series_in_reads_names_not_labels_or_functions() -> None:
    """The extractor itself: labels, strings, ranges and functions are not series."""
    assert series_in('histogram_quantile(0.99, sum by (le, endpoint) (rate('
                     'qkdnet_kme_request_duration_seconds_bucket{node=~"$n"}[5m])))') == {
        "qkdnet_kme_request_duration_seconds_bucket"}
    assert series_in("a_b > 1e3 and on (link) c_d == 1") == {"a_b", "c_d"}
    assert series_in("label_values(qkdnet_link_up{x=\"y\"}, region)") == {"qkdnet_link_up"}


def test_every_dashboard_query_names_only_exported_series() -> None:
    """Each PromQL query of every panel and variable reads series /metrics exports (or
    ALERTS, from the shipped rules); the rows the kit promises are there; the panels fit
    Grafana's 24 columns without overlapping."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exported = exported_series()
    queries = _queries(dashboard)
    assert len(queries) > 30
    read: set[str] = set()
    for query in queries:
        names = series_in(query)
        assert names, query
        assert names <= exported | _PROMETHEUS_OWN, (query, names - exported)
        read |= names
    # the kit shows the link, pool, KME, alarm and satellite families, not a few of them
    assert {"qkdnet_link_skr_bits_per_second", "qkdnet_link_qber_ratio",
            "qkdnet_kmlink_key_bits", "qkdnet_kme_requests_total",
            "qkdnet_kme_refusals_total", "qkdnet_kme_request_duration_seconds_bucket",
            "qkdnet_alarms_active", "qkdnet_satellite_pool_key_bits",
            "qkdnet_service_state", "qkdnet_service_availability_ratio"} <= read
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    for word in ("overview", "QBER", "pools", "Services", "Alarms"):
        assert any(word in row for row in rows), word
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    cells = [{(x, y) for x in range(g["x"], g["x"] + g["w"])
              for y in range(g["y"], g["y"] + g["h"])}
             for g in (p["gridPos"] for p in dashboard["panels"])]
    assert all(x < 24 for panel in cells for x, _ in panel)
    assert sum(map(len, cells)) == len(set().union(*cells))  # no two panels overlap


def test_shipped_alert_rules_are_the_generated_ones() -> None:
    """deploy/monitoring/qkdnet-alerts.yml is what `qkdnet deploy alert-rules` writes."""
    assert RULES.read_text(encoding="utf-8") == alert_rules(), \
        "regenerate: qkdnet deploy alert-rules -o deploy/monitoring/qkdnet-alerts.yml"


def test_the_cli_writes_the_rules_file_and_names_a_folder_it_cannot_write(
        tmp_path: Path) -> None:
    """`qkdnet deploy alert-rules -o FILE` writes the generated rules; an output in a
    missing folder is one line on stderr and exit code 2."""
    written = CliRunner().invoke(app, ["deploy", "alert-rules", "-o",
                                       str(tmp_path / "alerts.yml")])
    assert written.exit_code == 0, written.output
    assert (tmp_path / "alerts.yml").read_text(encoding="utf-8") == alert_rules()
    missing = CliRunner().invoke(app, ["deploy", "alert-rules", "-o",
                                       str(tmp_path / "no" / "alerts.yml")])
    assert missing.exit_code == 2
    assert "cannot write the rules file" in missing.output
    assert "Traceback" not in missing.output


def test_a_rule_read_from_another_series_must_keep_its_comparison() -> None:
    """A rule the file reads from a state or counter series is refused, naming it, when
    its comparison is not the one that series stands for."""
    unserved = next(r for r in DEFAULT_RULES if r.name == "service-unserved")
    with pytest.raises(ParameterError, match="service-unserved"):
        alert_rules([dataclasses.replace(unserved, threshold=1.0)])


def test_each_alarm_rule_has_an_alert_with_its_threshold_hold_and_severity() -> None:
    """One alert per built-in rule, over an exported series, with the rule's hold-off as
    `for`, its severity and its threshold."""
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"][0]["rules"]
    by_rule = {r["labels"]["rule"]: r for r in rules}
    assert set(by_rule) == {r.name for r in DEFAULT_RULES}
    exported = exported_series()
    durations = {"qkd-link-down": None, "skr-low": "5m", "qber-high": "1m",
                 "key-reserve-low": "5m"}
    for rule in DEFAULT_RULES:
        alert = by_rule[rule.name]
        assert alert["labels"]["severity"] == str(rule.severity)
        assert series_in(alert["expr"]) <= exported, alert["expr"]
        if rule.name in durations:
            assert alert.get("for") == durations[rule.name]
            assert f"{rule.op} {rule.threshold:g}" in alert["expr"]


_DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")


def _schema_errors(document: Any) -> list[str]:
    """What Prometheus's rule file format refuses that a look at the structure finds."""
    errors = []
    groups = document.get("groups") if isinstance(document, dict) else None
    if not isinstance(groups, list) or not groups:
        return ["no groups"]
    for group in groups:
        if set(group) - {"name", "interval", "limit", "rules"} or not group.get("name"):
            errors.append(f"group {group.get('name')}: bad keys")
        for rule in group.get("rules", ()):
            if set(rule) - {"alert", "expr", "for", "keep_firing_for", "labels",
                            "annotations"}:
                errors.append(f"{rule.get('alert')}: unknown keys")
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(rule.get("alert", ""))):
                errors.append(f"{rule.get('alert')}: not an alert name")
            if not isinstance(rule.get("expr"), str) or not rule["expr"].strip():
                errors.append(f"{rule.get('alert')}: no expr")
            for key in ("for", "keep_firing_for"):
                if key in rule and not _DURATION.match(str(rule[key])):
                    errors.append(f"{rule['alert']}: {key} is not a duration")
            for key in ("labels", "annotations"):
                if not all(isinstance(v, str) for v in rule.get(key, {}).values()):
                    errors.append(f"{rule['alert']}: {key} values are not strings")
    return errors


def _promtool() -> str | None:
    tool = shutil.which("promtool")
    if tool is None and os.environ.get("QKDNET_REQUIRE_PROMTOOL") == "1":
        pytest.fail("promtool is required (QKDNET_REQUIRE_PROMTOOL=1) but not installed: "
                    "apt-get install prometheus")
    return tool


def test_promtool_checks_the_alert_rules() -> None:
    """`promtool check rules` accepts the file (schema checks where promtool is absent)."""
    assert _schema_errors(yaml.safe_load(RULES.read_text(encoding="utf-8"))) == []
    assert _schema_errors({"groups": [{"name": "g", "rules": [
        {"alert": "a-b", "expr": "x", "for": "5 min"}]}]}) == [
        "a-b: not an alert name", "a-b: for is not a duration"]
    tool = _promtool()
    if tool is None:
        return
    done = subprocess.run([tool, "check", "rules", str(RULES)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(DEFAULT_RULES)} rules found" in done.stdout + done.stderr


_UNIT_TESTS = """\
rule_files: [{rules}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'qkdnet_link_up{{link="a--b"}}'
        values: '1 0 0 0 1 1'
      - series: 'qkdnet_link_up{{link="b--c"}}'
        values: '1x10'
      - series: 'qkdnet_link_skr_bits_per_second{{link="b--c"}}'
        values: '500x10'
      - series: 'qkdnet_link_skr_bits_per_second{{link="a--b"}}'
        values: '500x10'
      - series: 'qkdnet_kmlink_key_bits{{km_link="km:a~b", kind="direct"}}'
        values: '1000000 1000x10'
      - series: 'qkdnet_kmlink_key_bits{{km_link="sat:gs1~gs2", kind="satellite"}}'
        values: '0x10'
      - series: 'qkdnet_service_state{{service="sae-a->sae-c", state="unserved"}}'
        values: '0 1 0'
      - series: 'qkdnet_service_state{{service="sae-a->sae-c", state="served"}}'
        values: '1 0 1'
    alert_rule_test:
      - eval_time: 2m
        alertname: QkdnetQkdLinkDown
        exp_alerts:
          - exp_labels: {{severity: critical, rule: qkd-link-down, link: a--b}}
            exp_annotations:
              summary: 'QKD-link down: no key is being distilled'
              description: >-
                qkd-link-down on a--b: QKD-link down: no key is being distilled (value 0).
      - eval_time: 5m
        alertname: QkdnetQkdLinkDown
        exp_alerts: []
      - eval_time: 4m
        alertname: QkdnetSkrLow
        exp_alerts: []
      - eval_time: 6m
        alertname: QkdnetSkrLow
        exp_alerts:
          - exp_labels: {{severity: major, rule: skr-low, link: b--c}}
            exp_annotations:
              summary: secure key rate below 1 kbit/s for 5 min
              description: >-
                skr-low on b--c: secure key rate below 1 kbit/s for 5 min (value 500).
      - eval_time: 3m
        alertname: QkdnetKeyReserveLow
        exp_alerts: []
      - eval_time: 7m
        alertname: QkdnetKeyReserveLow
        exp_alerts:
          - exp_labels: {{severity: minor, rule: key-reserve-low, km_link: "km:a~b",
                          kind: direct}}
            exp_annotations:
              summary: KM-link key below the 64 kbit reserve for 5 min
              description: >-
                key-reserve-low on km:a~b: KM-link key below the 64 kbit reserve for 5 min
                (value 1000).
      - eval_time: 1m
        alertname: QkdnetServiceUnserved
        exp_alerts:
          - exp_labels: {{severity: major, rule: service-unserved, service: "sae-a->sae-c",
                          state: unserved}}
            exp_annotations:
              summary: "service unserved: no route between the SAEs' nodes"
              description: >-
                service-unserved on sae-a->sae-c: service unserved: no route between the
                SAEs' nodes (value 1).
      - eval_time: 2m
        alertname: QkdnetServiceUnserved
        exp_alerts: []
"""


def test_the_alert_rules_fire_as_the_nms_rules_do(tmp_path: Path) -> None:
    """promtool's rule unit tests: a link down alerts at once and clears when up again; a
    low SKR alerts after its 5 min hold, not for a link that is down (its down alarm
    only); a low pool waits for its hold, a satellite KM-link's empty pool never alerts;
    an unserved service alerts while unserved."""
    tool = _promtool()
    if tool is None:
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    tests = tmp_path / "alerts_test.yml"
    tests.write_text(_UNIT_TESTS.format(rules=json.dumps(str(RULES))), encoding="utf-8")
    done = subprocess.run([tool, "test", "rules", str(tests)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
