"""Alarms: threshold rules with hold-off over the telemetry the NMS gathers (ITU-T Y.3802
fault management), sans-I/O.

An :class:`AlarmRule` names a metric of one kind of subject (a QKD-link, a KM-link, a
node), a comparison with a threshold, and how long the comparison must hold before the
alarm is raised (``hold_s``) and how long it must fail before the alarm clears
(``clear_hold_s``). :class:`AlarmEngine` is fed observations with their time in seconds
(there is no clock here) and answers with the alarms raised and cleared.

Why hold-off: a secure key rate dips for seconds whenever a fibre is touched; paging the
O&M centre for each dip would bury the real faults. Why a clear hold: a link whose QBER
hovers around the ceiling would otherwise raise and clear an alarm at every sample.

:meth:`AlarmEngine.observe_many` takes one time step of a whole network as columns and
does the bookkeeping with numpy, so that only subjects whose alarm is raised or cleared cost
Python time; it gives exactly the events of calling :meth:`AlarmEngine.observe` for each
subject in turn. :meth:`AlarmEngine.observe_batch` takes a typed telemetry record
(:mod:`qkdnet.management.telemetry`): each rule reads the field of the record its ``metric``
names (``RECORD_METRICS``), so drivers pass records, never metric names. The mapping from a
record's fields to metrics is :func:`record_metrics`, here and nowhere else.

:meth:`AlarmEngine.replay` re-enacts the events of another engine (a recorded twin run), so
that a replay holds exactly the alarms the run raised.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt

from qkdnet.errors import ParameterError
from qkdnet.management.telemetry import Batch, KMLinkTelemetry, LinkTelemetry

SubjectKind: TypeAlias = Literal["qkd_link", "km_link", "node", "service"]
Op: TypeAlias = Literal["<", ">", "==", "!="]
EventKind: TypeAlias = Literal["raised", "cleared"]

SUBJECT_KINDS: tuple[SubjectKind, ...] = ("qkd_link", "km_link", "node", "service")
"""The kinds of managed object a rule can watch."""

# operator functions work alike on floats and on numpy arrays, so the per-subject and the
# bulk path compare with the very same function.
_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt, ">": operator.gt, "==": operator.eq, "!=": operator.ne}


RECORD_METRICS: dict[SubjectKind, tuple[str, ...]] = {
    "qkd_link": ("skr_bps", "qber", "up", "detector_current_alarm"),
    "km_link": ("key_bits", "rate_bps", "up"),
    "node": ("ok", "store_ok", "pass_key_bits"),
    "service": ("served",),
}
"""The metrics a rule of each subject kind can watch in :meth:`AlarmEngine.observe_batch`:
the fields of that kind's record (:class:`LinkTelemetry`, :class:`KMLinkTelemetry`,
:class:`NodeHealth`); flags read as 0/1. A ground station's ``pass_key_bits`` (the key a
satellite pass scheduled at night left, bits) is no field of a record: it is observed once
per such pass, as it ends (:meth:`~qkdnet.management.monitor.NetworkMonitor.report_satellite`).
A service's ``served`` (1 while served or degraded, 0 while unserved) is no record's field
either: the service view observes it at each report (:mod:`qkdnet.management.services`)."""


def record_metrics(batch: Batch) -> tuple[SubjectKind, dict[str, npt.NDArray[np.float64]]]:
    """The subject kind of ``batch`` and its metric columns, by the names of
    ``RECORD_METRICS``. A QKD-link that is down measures nothing: its SKR and QBER are NaN
    (no sample), so only its down alarm is raised, not a low-rate one as well."""
    if isinstance(batch, LinkTelemetry):
        down = ~batch.up
        return "qkd_link", {"skr_bps": np.where(down, np.nan, batch.skr_bps),
                            "qber": np.where(down, np.nan, batch.qber),
                            "up": batch.up.astype(np.float64),
                            "detector_current_alarm":
                                batch.detector_current_alarm.astype(np.float64)}
    if isinstance(batch, KMLinkTelemetry):
        return "km_link", {"key_bits": batch.key_bits, "rate_bps": batch.rate_bps,
                           "up": batch.up.astype(np.float64)}
    return "node", {"ok": batch.ok.astype(np.float64),
                    "store_ok": batch.store_ok.astype(np.float64)}


class Severity(IntEnum):
    """Perceived severity (ITU-T X.733); a greater value is more severe."""

    WARNING = 1
    MINOR = 2
    MAJOR = 3
    CRITICAL = 4

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class AlarmRule:
    """Raise ``severity`` for a subject of ``subject_kind`` once ``metric op threshold`` has
    held for ``hold_s`` seconds (0: at the first observation); clear it once the comparison
    has failed for ``clear_hold_s`` seconds. ``threshold`` is in the metric's unit (bit/s
    for ``skr_bps``, a fraction for ``qber``, bits for ``key_bits``, 0/1 for flags)."""

    name: str
    subject_kind: SubjectKind
    metric: str
    op: Op
    threshold: float
    hold_s: float
    severity: Severity
    text: str
    clear_hold_s: float = 0.0

    def __post_init__(self) -> None:
        if not self.name or ":" in self.name:
            # alarm ids are rule:subject:n, which a ':' in the rule name would make ambiguous
            raise ParameterError("name", self.name, "a non-empty rule name without ':'")
        if self.subject_kind not in SUBJECT_KINDS:
            raise ParameterError("subject_kind", self.subject_kind,
                                 f"one of {', '.join(SUBJECT_KINDS)}")
        if not self.metric:
            raise ParameterError("metric", self.metric, "a non-empty metric name")
        if self.op not in _OPS:
            raise ParameterError("op", self.op, f"one of {' '.join(_OPS)}")
        if not math.isfinite(self.threshold):
            raise ParameterError("threshold", self.threshold, "a finite number")
        for name, hold in (("hold_s", self.hold_s), ("clear_hold_s", self.clear_hold_s)):
            if not (math.isfinite(hold) and hold >= 0):
                raise ParameterError(name, hold, "a finite number of seconds >= 0")
        if not isinstance(self.severity, Severity):
            raise ParameterError("severity", self.severity,
                                 "a Severity: critical, major, minor or warning")

    def holds(self, value: float) -> bool:
        """Whether the alarm condition is true for ``value`` (in the metric's unit)."""
        return bool(_OPS[self.op](value, self.threshold))


DEFAULT_RULES: tuple[AlarmRule, ...] = (
    AlarmRule("qkd-link-down", "qkd_link", "up", "==", 0.0, 0.0, Severity.CRITICAL,
              "QKD-link down: no key is being distilled"),
    # A tripped detector current monitor is the signature of a bright-light blinding attack
    # on the single-photon detectors: key from that link can no longer be trusted.
    AlarmRule("detector-current", "qkd_link", "detector_current_alarm", "==", 1.0, 0.0,
              Severity.CRITICAL,
              "detector current monitor tripped: possible detector blinding attack"),
    AlarmRule("skr-low", "qkd_link", "skr_bps", "<", 1000.0, 300.0, Severity.MAJOR,
              "secure key rate below 1 kbit/s for 5 min"),
    AlarmRule("qber-high", "qkd_link", "qber", ">", 0.06, 60.0, Severity.MAJOR,
              "QBER above 6 % for 1 min"),
    AlarmRule("km-link-down", "km_link", "up", "==", 0.0, 0.0, Severity.CRITICAL,
              "KM-link down: no key can be relayed over it"),
    AlarmRule("key-reserve-low", "km_link", "key_bits", "<", 65536.0, 300.0, Severity.MINOR,
              "KM-link key below the 64 kbit reserve for 5 min"),
    AlarmRule("node-down", "node", "ok", "==", 0.0, 0.0, Severity.CRITICAL,
              "Key Manager down: the node neither relays nor delivers key"),
    # A key store that cannot be written (disk full, read-only, I/O error) takes no new key
    # and hands out none: the node's KM-links and its SAEs are starved until it can.
    AlarmRule("key-store-fault", "node", "store_ok", "==", 0.0, 0.0, Severity.CRITICAL,
              "key store cannot be written (disk full, read-only or I/O error)"),
    # A night pass the orbit model scheduled with key that left none (clouds, a ground
    # station's telescope or tracking fault): the stations behind it wait for the next one.
    AlarmRule("satellite-pass-no-key", "node", "pass_key_bits", "==", 0.0, 0.0,
              Severity.MAJOR, "a satellite pass scheduled at night yielded no key"),
    # An SAE pair whose nodes no route joins: its applications get 503 for every key they
    # ask. Correlated to the stopped node or cut link on its routes (correlation.py).
    AlarmRule("service-unserved", "service", "served", "==", 0.0, 0.0, Severity.MAJOR,
              "service unserved: no route between the SAEs' nodes"),
)
"""The NMS's standard rules: link down, detector blinding, low SKR, high QBER, key reserve,
node down, key store fault, a night satellite pass without key, a service unserved."""


@dataclass(frozen=True, slots=True)
class Alarm:
    """One alarm from raise to clear. Times are seconds; ``value`` is the metric's value at
    the observation that raised it. ``cleared_at`` is None while the alarm is active,
    ``acknowledged_at``/``acknowledged_by`` None until an operator acknowledges it."""

    id: str
    rule: str
    subject: str
    severity: Severity
    text: str
    raised_at: float
    value: float
    cleared_at: float | None = None
    acknowledged_at: float | None = None
    acknowledged_by: str | None = None

    @property
    def active(self) -> bool:
        """Whether the alarm has not been cleared."""
        return self.cleared_at is None


@dataclass(frozen=True, slots=True)
class AlarmEvent:
    """An alarm was ``raised`` or ``cleared``; ``alarm`` is as it stood at that moment."""

    kind: EventKind
    alarm: Alarm

    def __post_init__(self) -> None:
        if self.kind == "cleared" and self.alarm.cleared_at is None:
            raise ParameterError("alarm", self.alarm.id, "a cleared alarm, with its clear time")

    @property
    def t(self) -> float:
        """When the alarm was raised or cleared (s)."""
        cleared = self.alarm.cleared_at
        return cleared if self.kind == "cleared" and cleared is not None else self.alarm.raised_at


class _Track:
    """One rule's state for every subject of its kind, by subject position: the condition
    last seen, since when (s) it has had that value, and whether an alarm is active."""

    __slots__ = ("active", "alarm_ids", "cond", "raised", "since")

    def __init__(self) -> None:
        self.cond = np.zeros(0, dtype=bool)
        self.since = np.zeros(0, dtype=np.float64)
        self.active = np.zeros(0, dtype=bool)
        self.alarm_ids: dict[int, str] = {}  # position -> id of its active alarm
        self.raised: dict[int, int] = {}  # position -> alarms raised so far

    def grow(self, size: int) -> None:
        extra = size - self.cond.size
        # since = -inf: a new subject counts as "false forever", which clears nothing
        # because it has no alarm
        self.cond = np.concatenate([self.cond, np.zeros(extra, dtype=bool)])
        self.since = np.concatenate([self.since, np.full(extra, -np.inf)])
        self.active = np.concatenate([self.active, np.zeros(extra, dtype=bool)])


class _Kind:
    """The rules of one subject kind, their tracks, and the subjects seen so far."""

    def __init__(self, rules: Sequence[AlarmRule]) -> None:
        self.rules = tuple(rules)
        self.tracks = [_Track() for _ in self.rules]
        self.index: dict[str, int] = {}
        self.names: list[str] = []
        # observe_many is usually called with the same subject list every step: keep its
        # positions rather than look up every name again
        self._last: tuple[str, ...] = ()
        self._last_positions = np.zeros(0, dtype=np.intp)
        self._checked = self._last_positions
        self._in_order = True

    def position(self, subject: str) -> int:
        at = self.index.get(subject)
        if at is None:
            at = self.index[subject] = len(self.names)
            self.names.append(subject)
            if self.tracks and at >= self.tracks[0].cond.size:
                for track in self.tracks:
                    track.grow(max(16, 2 * (at + 1)))
        return at

    def in_order(self, at: npt.NDArray[np.intp]) -> bool:
        """Whether ``at`` (the positions :meth:`positions` gave) is 0, 1, ... in order."""
        if at is not self._checked:
            self._checked = at
            self._in_order = bool(np.array_equal(at, np.arange(at.size)))
        return self._in_order

    def positions(self, subjects: Sequence[str]) -> npt.NDArray[np.intp]:
        if subjects is self._last:  # the very tuple of the last call (telemetry ids)
            return self._last_positions
        key = tuple(str(s) for s in subjects)
        if key != self._last:
            if len(set(key)) != len(key):
                raise ParameterError("subjects", f"<{len(key)} names>",
                                     "each subject at most once per call")
            self._last_positions = np.fromiter((self.position(s) for s in key),
                                               dtype=np.intp, count=len(key))
        # a tuple is immutable: keep the caller's own, so that its next call matches at once
        self._last = subjects if type(subjects) is tuple and subjects == key else key
        return self._last_positions


def _check_time(t: float) -> None:
    if not math.isfinite(t):
        raise ParameterError("t", t, "a finite time in seconds")


class AlarmEngine:
    """Evaluates alarm rules over observations and keeps the alarm list (sans-I/O).

    Observations of one subject must come in non-decreasing time. A metric absent from an
    observation, or NaN (no sample), leaves its rules' state for that subject untouched.
    """

    def __init__(self, rules: Iterable[AlarmRule] = DEFAULT_RULES) -> None:
        self.rules = tuple(rules)
        names = [rule.name for rule in self.rules]
        if len(set(names)) != len(names):
            raise ParameterError("rules", ", ".join(names), "rule names must be unique")
        self._kinds: dict[str, _Kind] = {
            kind: _Kind([r for r in self.rules if r.subject_kind == kind])
            for kind in SUBJECT_KINDS}
        self._alarms: dict[str, Alarm] = {}  # every alarm, latest version, in raise order
        self._active: dict[str, None] = {}  # ids of the active ones, in raise order

    def _kind(self, subject_kind: str) -> _Kind:
        kind = self._kinds.get(subject_kind)
        if kind is None:
            raise ParameterError("subject_kind", subject_kind,
                                 f"one of {', '.join(SUBJECT_KINDS)}")
        return kind

    def observe(self, t: float, subject_kind: SubjectKind, subject: str,
                values: Mapping[str, float]) -> list[AlarmEvent]:
        """Take one subject's metrics at time ``t`` (s); return the alarms raised and
        cleared by it, in rule order."""
        _check_time(t)
        kind = self._kind(subject_kind)
        at = kind.position(subject)
        events = []
        for r, (rule, track) in enumerate(zip(kind.rules, kind.tracks, strict=True)):
            if rule.metric not in values:
                continue
            value = float(values[rule.metric])
            if math.isnan(value):
                continue
            cond = rule.holds(value)
            if cond != track.cond[at]:
                track.cond[at] = cond
                track.since[at] = t
            elapsed = t - float(track.since[at])
            if cond and not track.active[at] and elapsed >= rule.hold_s:
                events.append(self._raise(kind, r, at, t, value))
            elif not cond and track.active[at] and elapsed >= rule.clear_hold_s:
                events.append(self._clear(kind, r, at, t))
        return events

    def observe_many(self, t: float, subject_kind: SubjectKind, subjects: Sequence[str],
                     columns: Mapping[str, npt.ArrayLike]) -> list[AlarmEvent]:
        """Take one time step ``t`` (s) for many subjects: ``columns[metric][i]`` is the
        value for ``subjects[i]`` (NaN: no sample). Returns the same events, in the same
        order, as :meth:`observe` called for each subject in turn."""
        _check_time(t)
        kind = self._kind(subject_kind)
        at = kind.positions(subjects)
        fired: list[tuple[int, int]] = []  # (index in subjects, rule) of raises and clears
        values: dict[int, npt.NDArray[np.float64]] = {}
        for r, (rule, track) in enumerate(zip(kind.rules, kind.tracks, strict=True)):
            if rule.metric not in columns:
                continue
            x = np.asarray(columns[rule.metric], dtype=np.float64)
            if x.shape != at.shape:
                raise ParameterError(f"columns[{rule.metric!r}]", f"shape {x.shape}",
                                     f"one value per subject, shape ({at.size},)")
            present = ~np.isnan(x)
            cond = _OPS[rule.op](x, rule.threshold) & present
            # subjects 0..n-1 in order (a network's every step): views, not gathers
            rows = slice(0, at.size) if kind.in_order(at) else at
            changed = present & (cond != track.cond[rows])
            if changed.any():
                moved = at[changed]
                track.cond[moved] = cond[changed]
                track.since[moved] = t
            elapsed = t - track.since[rows]
            # a raise where cond holds and the alarm is not active, a clear where it fails
            # and the alarm is: either way cond != active, held for that side's time
            hold = np.where(cond, rule.hold_s, rule.clear_hold_s)
            fire = present & (cond != track.active[rows]) & (elapsed >= hold)
            hits = fire.nonzero()[0]
            if hits.size:
                values[r] = x
                fired.extend((int(i), r) for i in hits)
        # subject-major, then rule order: the order per-subject observe() would give, so
        # that alarm histories do not depend on which path fed the engine
        fired.sort()
        events = []
        for i, r in fired:
            position = int(at[i])
            if kind.tracks[r].active[position]:
                events.append(self._clear(kind, r, position, t))
            else:
                events.append(self._raise(kind, r, position, t, float(values[r][i])))
        return events

    def observe_batch(self, batch: Batch) -> list[AlarmEvent]:
        """Take one telemetry record batch (at its time ``batch.t``, s): each rule of the
        batch's subject kind reads the record field its metric names. Returns the events
        :meth:`observe_many` would."""
        kind, columns = record_metrics(batch)
        return self.observe_many(batch.t, kind, batch.ids, columns)

    def replay(self, event: AlarmEvent, offset_s: float = 0.0) -> AlarmEvent | None:
        """Raise or clear, ``offset_s`` (s) later, what ``event`` of another engine with the
        same rules raised or cleared; returns this engine's event, None when there is
        nothing to do (a raise of an alarm already active, a clear of one that is not).
        The alarm gets this engine's id, so replaying a whole history gives the same ids."""
        alarm = event.alarm
        t = event.t + offset_s
        _check_time(t)
        kind, r = self._rule(alarm.rule)
        at = kind.position(alarm.subject)
        track = kind.tracks[r]
        # the condition as the recorded events imply it, so that observations that follow
        # a replay start from it
        track.cond[at], track.since[at] = event.kind == "raised", t
        if event.kind == "raised" and not track.active[at]:
            return self._raise(kind, r, at, t, alarm.value)
        if event.kind == "cleared" and track.active[at]:
            return self._clear(kind, r, at, t)
        return None

    def _rule(self, name: str) -> tuple[_Kind, int]:
        for kind in self._kinds.values():
            for r, rule in enumerate(kind.rules):
                if rule.name == name:
                    return kind, r
        raise ParameterError("rule", name, "the name of one of this engine's rules")

    def _raise(self, kind: _Kind, r: int, at: int, t: float, value: float) -> AlarmEvent:
        rule, track = kind.rules[r], kind.tracks[r]
        subject = kind.names[at]
        n = track.raised[at] = track.raised.get(at, 0) + 1
        alarm = Alarm(f"{rule.name}:{subject}:{n}", rule.name, subject, rule.severity,
                      rule.text, t, value)
        track.active[at] = True
        track.alarm_ids[at] = alarm.id
        self._alarms[alarm.id] = alarm
        self._active[alarm.id] = None
        return AlarmEvent("raised", alarm)

    def _clear(self, kind: _Kind, r: int, at: int, t: float) -> AlarmEvent:
        track = kind.tracks[r]
        alarm_id = track.alarm_ids.pop(at)
        track.active[at] = False
        alarm = self._alarms[alarm_id] = replace(self._alarms[alarm_id], cleared_at=t)
        del self._active[alarm_id]
        return AlarmEvent("cleared", alarm)

    def active(self) -> list[Alarm]:
        """The alarms not yet cleared, acknowledged or not: most severe first, then oldest
        first (ties in raise order)."""
        alarms = [self._alarms[alarm_id] for alarm_id in self._active]
        return sorted(alarms, key=lambda a: (-a.severity, a.raised_at))

    def active_for(self, subject: str) -> list[Alarm]:
        """The active alarms of one subject, ordered as :meth:`active`."""
        return [alarm for alarm in self.active() if alarm.subject == subject]

    def history(self) -> list[Alarm]:
        """Every alarm raised so far, cleared or not, in raise order."""
        return list(self._alarms.values())

    def acknowledge(self, alarm_id: str, t: float, by: str) -> Alarm:
        """Record that operator ``by`` took alarm ``alarm_id`` on at time ``t`` (s); return
        the alarm. An alarm already acknowledged keeps its first acknowledgement, which says
        who answered it and how quickly."""
        alarm = self._alarms.get(alarm_id)
        if alarm is None:
            raise ParameterError("alarm_id", alarm_id, "the id of an alarm this engine raised")
        if alarm.acknowledged_at is not None:
            return alarm
        _check_time(t)
        if t < alarm.raised_at:
            raise ParameterError("t", t, f"not before the alarm was raised ({alarm.raised_at:g})")
        if not by:
            raise ParameterError("by", by, "the name of the acknowledging operator")
        alarm = self._alarms[alarm_id] = replace(alarm, acknowledged_at=t, acknowledged_by=by)
        return alarm
