"""Alarm rules and the alarm engine: hold-off, clear hold, acknowledgement, severity order,
and the bulk path agreeing with the per-subject one."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qkdnet.errors import ParameterError
from qkdnet.management.alarms import (
    DEFAULT_RULES,
    AlarmEngine,
    AlarmEvent,
    AlarmRule,
    Severity,
)
from qkdnet.management.telemetry import NodeHealth

SKR_LOW = AlarmRule("skr-low", "qkd_link", "skr_bps", "<", 1000.0, 300.0, Severity.MAJOR,
                    "secure key rate low")


def _kinds(events: list[AlarmEvent]) -> list[tuple[str, str, str]]:
    return [(e.kind, e.alarm.rule, e.alarm.subject) for e in events]


def test_an_alarm_is_raised_once_the_condition_has_held_for_the_hold_off() -> None:
    engine = AlarmEngine([SKR_LOW])
    assert engine.observe(0.0, "qkd_link", "A-B", {"skr_bps": 500.0}) == []
    assert engine.observe(299.0, "qkd_link", "A-B", {"skr_bps": 400.0}) == []
    events = engine.observe(300.0, "qkd_link", "A-B", {"skr_bps": 300.0})
    assert _kinds(events) == [("raised", "skr-low", "A-B")]
    alarm = events[0].alarm
    assert (alarm.id, alarm.raised_at, alarm.value) == ("skr-low:A-B:1", 300.0, 300.0)
    assert alarm.severity is Severity.MAJOR and alarm.active
    # an active alarm is not raised again while the condition goes on
    assert engine.observe(600.0, "qkd_link", "A-B", {"skr_bps": 0.0}) == []
    assert [a.id for a in engine.active()] == ["skr-low:A-B:1"]


def test_a_condition_that_goes_away_before_the_hold_off_raises_nothing() -> None:
    engine = AlarmEngine([SKR_LOW])
    engine.observe(0.0, "qkd_link", "A-B", {"skr_bps": 500.0})
    engine.observe(200.0, "qkd_link", "A-B", {"skr_bps": 5000.0})
    # low again: the hold-off starts over from t=250, not from t=0
    engine.observe(250.0, "qkd_link", "A-B", {"skr_bps": 500.0})
    assert engine.observe(400.0, "qkd_link", "A-B", {"skr_bps": 500.0}) == []
    assert engine.history() == []
    assert _kinds(engine.observe(550.0, "qkd_link", "A-B", {"skr_bps": 500.0})) == [
        ("raised", "skr-low", "A-B")]


def test_a_missing_or_nan_metric_leaves_the_rule_state_untouched() -> None:
    engine = AlarmEngine([SKR_LOW])
    engine.observe(0.0, "qkd_link", "A-B", {"skr_bps": 500.0})
    assert engine.observe(100.0, "qkd_link", "A-B", {"qber": 0.01}) == []
    assert engine.observe(200.0, "qkd_link", "A-B", {"skr_bps": math.nan}) == []
    # the low rate seen at t=0 still counts: 300 s later the alarm is due
    assert len(engine.observe(300.0, "qkd_link", "A-B", {"skr_bps": 500.0})) == 1


def test_an_alarm_clears_at_once_without_a_clear_hold() -> None:
    engine = AlarmEngine([SKR_LOW])
    engine.observe(0.0, "qkd_link", "A-B", {"skr_bps": 0.0})
    engine.observe(300.0, "qkd_link", "A-B", {"skr_bps": 0.0})
    events = engine.observe(301.0, "qkd_link", "A-B", {"skr_bps": 2000.0})
    assert _kinds(events) == [("cleared", "skr-low", "A-B")]
    assert events[0].alarm.cleared_at == 301.0
    assert engine.active() == []
    assert engine.history()[0].cleared_at == 301.0


def test_with_a_clear_hold_the_condition_must_stay_false_that_long() -> None:
    rule = AlarmRule("qber-high", "qkd_link", "qber", ">", 0.06, 0.0, Severity.MAJOR,
                     "QBER high", clear_hold_s=60.0)
    engine = AlarmEngine([rule])
    assert len(engine.observe(0.0, "qkd_link", "A-B", {"qber": 0.08})) == 1
    assert engine.observe(10.0, "qkd_link", "A-B", {"qber": 0.03}) == []
    # back above the ceiling before 60 s: still the same alarm, and the clear timer restarts
    assert engine.observe(50.0, "qkd_link", "A-B", {"qber": 0.07}) == []
    assert engine.observe(60.0, "qkd_link", "A-B", {"qber": 0.03}) == []
    assert engine.observe(119.0, "qkd_link", "A-B", {"qber": 0.03}) == []
    events = engine.observe(120.0, "qkd_link", "A-B", {"qber": 0.03})
    assert _kinds(events) == [("cleared", "qber-high", "A-B")]
    assert [a.id for a in engine.history()] == ["qber-high:A-B:1"]


def test_a_raise_after_a_clear_is_a_new_alarm_with_a_new_id() -> None:
    rule = AlarmRule("down", "km_link", "up", "==", 0.0, 0.0, Severity.CRITICAL, "down")
    engine = AlarmEngine([rule])
    for t, up in enumerate([0, 0, 1, 0, 1]):
        engine.observe(float(t), "km_link", "K1", {"up": up})
    history = engine.history()
    assert [a.id for a in history] == ["down:K1:1", "down:K1:2"]
    assert [(a.raised_at, a.cleared_at) for a in history] == [(0.0, 2.0), (3.0, 4.0)]


def test_acknowledging_keeps_time_and_user_and_the_alarm_stays_active() -> None:
    engine = AlarmEngine(DEFAULT_RULES)
    engine.observe(10.0, "km_link", "K1", {"up": 0.0})
    (alarm,) = engine.active()
    acked = engine.acknowledge(alarm.id, 25.0, "alice")
    assert (acked.acknowledged_at, acked.acknowledged_by) == (25.0, "alice")
    assert engine.active() == [acked] and acked.cleared_at is None
    # a second acknowledgement does not overwrite the first
    again = engine.acknowledge(alarm.id, 40.0, "bob")
    assert (again.acknowledged_at, again.acknowledged_by) == (25.0, "alice")
    # clearing keeps the acknowledgement
    (cleared,) = engine.observe(50.0, "km_link", "K1", {"up": 1.0})
    assert cleared.alarm.acknowledged_by == "alice" and cleared.alarm.cleared_at == 50.0


def test_acknowledging_an_unknown_alarm_is_refused() -> None:
    engine = AlarmEngine()
    with pytest.raises(ParameterError, match="alarm_id=nope"):
        engine.acknowledge("nope", 1.0, "alice")


def test_active_lists_the_most_severe_first_then_the_oldest() -> None:
    rules = [AlarmRule(f"r{s.name.lower()}", "node", s.name.lower(), ">", 0.0, 0.0, s, "")
             for s in Severity]
    engine = AlarmEngine(rules)
    engine.observe(1.0, "node", "N1", {"warning": 1.0, "major": 1.0})
    engine.observe(2.0, "node", "N2", {"critical": 1.0, "minor": 1.0})
    engine.observe(3.0, "node", "N3", {"major": 1.0})
    got = [(a.severity, a.subject) for a in engine.active()]
    assert got == [(Severity.CRITICAL, "N2"), (Severity.MAJOR, "N1"), (Severity.MAJOR, "N3"),
                   (Severity.MINOR, "N2"), (Severity.WARNING, "N1")]
    assert Severity.CRITICAL > Severity.MAJOR > Severity.MINOR > Severity.WARNING
    assert [a.rule for a in engine.active_for("N1")] == ["rmajor", "rwarning"]


def test_a_tripped_detector_current_monitor_raises_a_critical_alarm_at_once() -> None:
    engine = AlarmEngine(DEFAULT_RULES)
    healthy = {"up": 1.0, "skr_bps": 5000.0, "qber": 0.02, "detector_current_alarm": 0.0}
    assert engine.observe(0.0, "qkd_link", "A-B", healthy) == []
    events = engine.observe(1.0, "qkd_link", "A-B", {**healthy, "detector_current_alarm": 1.0})
    assert [(e.kind, e.alarm.severity) for e in events] == [("raised", Severity.CRITICAL)]
    assert "blinding" in events[0].alarm.text
    assert events[0].alarm.raised_at == 1.0


def test_the_default_rules_cover_the_nms_watch_list() -> None:
    watched = {(r.subject_kind, r.metric) for r in DEFAULT_RULES}
    assert watched == {("qkd_link", "up"), ("qkd_link", "skr_bps"), ("qkd_link", "qber"),
                       ("qkd_link", "detector_current_alarm"), ("km_link", "up"),
                       ("km_link", "key_bits"), ("node", "ok"), ("node", "store_ok"),
                       ("node", "pass_key_bits"), ("service", "served")}
    down = [r for r in DEFAULT_RULES if r.metric in ("up", "ok", "store_ok")]
    assert all(r.hold_s == 0 and r.severity is Severity.CRITICAL for r in down)


@pytest.mark.parametrize(("change", "name"), [
    ({"hold_s": -1.0}, "hold_s"),
    ({"clear_hold_s": -0.5}, "clear_hold_s"),
    ({"hold_s": math.inf}, "hold_s"),
    ({"op": "<>"}, "op"),
    ({"subject_kind": "router"}, "subject_kind"),
    ({"threshold": math.nan}, "threshold"),
    ({"name": "a:b"}, "name"),
])
def test_a_bad_rule_is_refused(change: dict[str, object], name: str) -> None:
    fields: dict[str, object] = {
        "name": "r", "subject_kind": "qkd_link", "metric": "qber", "op": ">",
        "threshold": 0.1, "hold_s": 0.0, "severity": Severity.MINOR, "text": ""}
    with pytest.raises(ParameterError) as refused:
        AlarmRule(**{**fields, **change})  # type: ignore[arg-type]
    assert refused.value.name == name


def test_duplicate_rule_names_are_refused() -> None:
    with pytest.raises(ParameterError, match="unique"):
        AlarmEngine([SKR_LOW, SKR_LOW])


def test_observe_many_refuses_a_column_of_the_wrong_length() -> None:
    engine = AlarmEngine([SKR_LOW])
    with pytest.raises(ParameterError, match="skr_bps"):
        engine.observe_many(0.0, "qkd_link", ["a", "b"], {"skr_bps": np.zeros(3)})


_RANDOM_RULES = [
    AlarmRule("low", "qkd_link", "skr_bps", "<", 0.4, 2.0, Severity.MAJOR, "low"),
    AlarmRule("high", "qkd_link", "qber", ">", 0.6, 0.0, Severity.MINOR, "high",
              clear_hold_s=1.5),
    AlarmRule("down", "qkd_link", "up", "==", 0.0, 0.0, Severity.CRITICAL, "down",
              clear_hold_s=3.0),
    AlarmRule("odd", "qkd_link", "up", "!=", 1.0, 1.0, Severity.WARNING, "odd"),
]


@pytest.mark.parametrize("seed", range(8))
def test_observe_many_gives_the_events_of_per_subject_observe(seed: int) -> None:
    rng = np.random.default_rng(seed)
    subjects = [f"L{i}" for i in range(40)]
    bulk, single = AlarmEngine(_RANDOM_RULES), AlarmEngine(_RANDOM_RULES)
    t = 0.0
    for _step in range(60):
        t += float(rng.choice([0.5, 1.0, 1.25]))
        # a random subset each step, in a random order: subjects come and go
        chosen = [subjects[i] for i in rng.permutation(len(subjects))[:rng.integers(1, 41)]]
        n = len(chosen)
        columns = {"skr_bps": rng.random(n), "qber": rng.random(n),
                   "up": rng.integers(0, 3, n).astype(float)}
        for column in columns.values():
            column[rng.random(n) < 0.1] = np.nan  # samples lost
        if rng.random() < 0.2:
            del columns["qber"]
        got = bulk.observe_many(t, "qkd_link", chosen, columns)
        want = [event for i, subject in enumerate(chosen)
                for event in single.observe(t, "qkd_link", subject,
                                            {m: float(c[i]) for m, c in columns.items()})]
        assert got == want
    assert bulk.history() == single.history()
    assert bulk.active() == single.active()
    assert len(bulk.history()) > 20  # the data did exercise the rules


def test_a_replay_of_an_engines_events_gives_its_history_and_a_later_pass_new_ids() -> None:
    """Another engine fed the events (not the observations) holds the same alarms; replayed
    again one period later, they come as new alarms at the later times."""
    run = AlarmEngine()
    events = []
    for t, up in ((0.0, 0.0), (60.0, 1.0), (120.0, 0.0), (180.0, 1.0)):
        events += run.observe(t, "qkd_link", "A-B", {"up": up})
    replay = AlarmEngine()
    for event in events:
        replay.replay(event)
    assert replay.history() == run.history()
    for event in events:
        replay.replay(event, offset_s=1000.0)
    later = replay.history()[2:]
    assert [(a.id, a.raised_at, a.cleared_at) for a in later] == [
        ("qkd-link-down:A-B:3", 1000.0, 1060.0), ("qkd-link-down:A-B:4", 1120.0, 1180.0)]


def test_a_replayed_raise_of_an_active_alarm_changes_nothing() -> None:
    """Raising what is active, or clearing what is not, is no event."""
    run = AlarmEngine()
    [raised] = run.observe(0.0, "node", "N1", {"ok": 0.0})
    [cleared] = run.observe(5.0, "node", "N1", {"ok": 1.0})
    replay = AlarmEngine()
    assert replay.replay(cleared) is None
    assert replay.replay(raised) is not None and replay.replay(raised) is None
    assert len(replay.history()) == 1


def test_a_replay_needs_a_rule_of_the_engine() -> None:
    """An event of a rule this engine lacks is refused, naming the rule."""
    [raised] = AlarmEngine().observe(0.0, "node", "N1", {"ok": 0.0})
    with pytest.raises(ParameterError, match="node-down"):
        AlarmEngine(rules=(SKR_LOW,)).replay(raised)


def test_a_cleared_event_carries_its_clear_time() -> None:
    """An event says when it happened: a cleared one without a clear time is refused."""
    [raised] = AlarmEngine().observe(3.0, "node", "N1", {"ok": 0.0})
    assert raised.t == 3.0
    with pytest.raises(ParameterError, match="clear time"):
        AlarmEvent("cleared", raised.alarm)


def test_a_store_that_cannot_be_written_raises_a_critical_key_store_fault_at_once() -> None:
    """NodeHealth.store_ok False raises key-store-fault for that node only; True clears it."""
    engine = AlarmEngine(DEFAULT_RULES)
    ids = ("a", "b")
    assert engine.observe_batch(NodeHealth(0.0, ids, [True, True])) == []
    raised = engine.observe_batch(NodeHealth(1.0, ids, [True, True], [True, False]))
    assert [(e.kind, e.alarm.rule, e.alarm.subject, e.alarm.severity) for e in raised] == [
        ("raised", "key-store-fault", "b", Severity.CRITICAL)]
    cleared = engine.observe_batch(NodeHealth(2.0, ids, [True, True], [True, True]))
    assert [(e.kind, e.alarm.subject) for e in cleared] == [("cleared", "b")]
