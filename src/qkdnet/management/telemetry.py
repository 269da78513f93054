"""Telemetry batches: what an EMS collects from its nodes and reports north to the NMS.

A batch is columnar, one sample time ``t`` (seconds; simulated time from the digital twin,
wall-clock seconds from ``qkdnet serve``) and one row per element: numpy columns rather than
one object per record, because the NMS must ingest at least 100,000 records per second.

* :class:`LinkTelemetry`: per QKD-link secure key rate (bit/s), QBER (ratio), up/down and
  the detector-current monitor alarm.
* :class:`KMLinkTelemetry`: per KM-link key amount held (bits), refill rate (bit/s), up/down.
* :class:`NodeHealth`: per node, whether its Key Manager reports healthy and whether its key
  store can be written.

Construction validates the shapes and ranges and raises
:class:`~qkdnet.errors.ParameterError` naming the offending field; the columns are stored
read-only so that a batch can be handed on (EMS to NMS) without copying.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Generic, TypeAlias, TypeVar

import numpy as np
from numpy.typing import NDArray

from qkdnet.errors import ParameterError

FloatArray: TypeAlias = NDArray[np.float64]
BoolArray: TypeAlias = NDArray[np.bool_]
IndexArray: TypeAlias = NDArray[np.intp]

V = TypeVar("V")


class IdsCache(Generic[V]):
    """Values worked out from tuples of ids, such as row positions, kept for the next
    batch with the same ids (at most ``limit`` tuples). A driver sends the very same tuple
    every step, which is found by identity first: hashing a thousand ids at each of the
    EMSs and tables a step passes through would cost more than the work it saves."""

    _SAME_LIMIT = 64

    def __init__(self, limit: int = 1024) -> None:
        self.limit = limit
        self._equal: dict[tuple[str, ...], V] = {}
        # id(tuple) -> (the tuple itself, kept so that its id is not reused; the value)
        self._same: dict[int, tuple[tuple[str, ...], V]] = {}

    def get(self, ids: tuple[str, ...]) -> V | None:
        """The value kept for ``ids``, None if there is none."""
        hit = self._same.get(id(ids))
        if hit is not None and hit[0] is ids:
            return hit[1]
        value = self._equal.get(ids)
        if value is not None:
            self._remember(ids, value)
        return value

    def put(self, ids: tuple[str, ...], value: V) -> V:
        """Keep ``value`` for ``ids``; returns it."""
        if len(self._equal) >= self.limit:
            self._equal.clear()
            self._same.clear()
        self._equal[ids] = value
        self._remember(ids, value)
        return value

    def _remember(self, ids: tuple[str, ...], value: V) -> None:
        if len(self._same) >= self._SAME_LIMIT:
            self._same.clear()
        self._same[id(ids)] = (ids, value)


_CHECKED_IDS = IdsCache[bool](limit=64)  # id tuples known to hold each id once


def _ids(name: str, ids: Iterable[str]) -> tuple[str, ...]:
    found = tuple(ids)
    if _CHECKED_IDS.get(found):
        return found
    if len(set(found)) != len(found):
        seen: set[str] = set()
        for item in found:
            if item in seen:
                raise ParameterError(name, item, "each id may appear once per batch")
            seen.add(item)
    _CHECKED_IDS.put(found, True)
    return found


def _column(name: str, values: Any, dtype: type[np.generic], rows: int) -> NDArray[Any]:
    arr = np.array(values, dtype=dtype)  # a copy: the caller may reuse its buffer
    if arr.shape != (rows,):
        raise ParameterError(name, f"shape {arr.shape}", f"must be one value per id ({rows},)")
    arr.flags.writeable = False
    return arr


def _check_t(t: float) -> float:
    t = float(t)
    if not math.isfinite(t):
        raise ParameterError("t", t, "must be a finite time in seconds")
    return t


def _non_negative(name: str, arr: FloatArray) -> None:
    ok = np.isfinite(arr) & (arr >= 0.0)
    if not bool(np.all(ok)):
        raise ParameterError(name, _first_bad(arr, ok), "must be finite and >= 0")


def _first_bad(arr: FloatArray, ok: BoolArray) -> float:
    bad = np.flatnonzero(~(ok & np.isfinite(arr)))
    return float(arr[bad[0]]) if bad.size else math.nan


def _set(obj: object, **values: object) -> None:
    # frozen dataclasses: normalised columns replace what the caller passed
    for key, value in values.items():
        object.__setattr__(obj, key, value)


@dataclass(frozen=True, eq=False)
class LinkTelemetry:
    """One sample of a set of QKD-links at time ``t`` (s).

    ``skr_bps`` is the secure key rate in bit/s (>= 0), ``qber`` the quantum bit error rate
    as a ratio in [0, 1], or NaN where nothing was measured (a link that is down);
    ``up`` whether the link distils key; ``detector_current_alarm`` whether the single-photon
    detector's bias-current monitor is out of range (a blinding-attack indicator).
    """

    t: float
    ids: tuple[str, ...]
    skr_bps: FloatArray
    qber: FloatArray
    up: BoolArray
    detector_current_alarm: BoolArray

    def __post_init__(self) -> None:
        ids = _ids("ids", self.ids)
        n = len(ids)
        skr = _column("skr_bps", self.skr_bps, np.float64, n)
        qber = _column("qber", self.qber, np.float64, n)
        _non_negative("skr_bps", skr)
        bad = np.flatnonzero((qber < 0.0) | (qber > 1.0))  # NaN compares False: allowed
        if bad.size:
            raise ParameterError("qber", float(qber[bad[0]]), "must be a ratio in [0, 1] or NaN")
        _set(self, t=_check_t(self.t), ids=ids, skr_bps=skr, qber=qber,
             up=_column("up", self.up, np.bool_, n),
             detector_current_alarm=_column("detector_current_alarm",
                                            self.detector_current_alarm, np.bool_, n))

    @property
    def rows(self) -> int:
        """Number of records (one per QKD-link)."""
        return len(self.ids)

    def take(self, rows: IndexArray, ids: tuple[str, ...] | None = None) -> LinkTelemetry:
        """The batch restricted to the given row positions, in that order; ``ids``: the
        ids of those rows, where the caller has them already."""
        return _take(self, rows, ids)


@dataclass(frozen=True, eq=False)
class KMLinkTelemetry:
    """One sample of a set of KM-links at time ``t`` (s).

    ``key_bits`` is the key held in the link's pool (bits, >= 0), ``rate_bps`` the refill
    rate (bit/s, >= 0), ``up`` whether the KM-link can serve key.
    """

    t: float
    ids: tuple[str, ...]
    key_bits: FloatArray
    rate_bps: FloatArray
    up: BoolArray

    def __post_init__(self) -> None:
        ids = _ids("ids", self.ids)
        n = len(ids)
        key = _column("key_bits", self.key_bits, np.float64, n)
        rate = _column("rate_bps", self.rate_bps, np.float64, n)
        _non_negative("key_bits", key)
        _non_negative("rate_bps", rate)
        _set(self, t=_check_t(self.t), ids=ids, key_bits=key, rate_bps=rate,
             up=_column("up", self.up, np.bool_, n))

    @property
    def rows(self) -> int:
        """Number of records (one per KM-link)."""
        return len(self.ids)

    def take(self, rows: IndexArray, ids: tuple[str, ...] | None = None) -> KMLinkTelemetry:
        """The batch restricted to the given row positions, in that order; ``ids``: the
        ids of those rows, where the caller has them already."""
        return _take(self, rows, ids)


#: The default of NodeHealth.store_ok, told apart by identity: every store can be written.
_EVERY_STORE_OK: BoolArray = np.ones(0, dtype=np.bool_)


def _every_store_ok() -> BoolArray:
    return _EVERY_STORE_OK


@dataclass(frozen=True, eq=False)
class NodeHealth:
    """One sample of the Key Managers of a set of nodes at time ``t`` (s): ``ok`` is True
    where the KM reports healthy, ``store_ok`` where its key store can be written (False:
    disk full, read-only, I/O error; not given: every one can)."""

    t: float
    ids: tuple[str, ...]
    ok: BoolArray
    store_ok: BoolArray = field(default_factory=_every_store_ok)

    def __post_init__(self) -> None:
        ids = _ids("ids", self.ids)
        n = len(ids)
        store_ok = (np.ones(n, dtype=np.bool_) if self.store_ok is _EVERY_STORE_OK
                    else self.store_ok)
        _set(self, t=_check_t(self.t), ids=ids, ok=_column("ok", self.ok, np.bool_, n),
             store_ok=_column("store_ok", store_ok, np.bool_, n))

    @property
    def rows(self) -> int:
        """Number of records (one per node)."""
        return len(self.ids)

    def take(self, rows: IndexArray, ids: tuple[str, ...] | None = None) -> NodeHealth:
        """The batch restricted to the given row positions, in that order; ``ids``: the
        ids of those rows, where the caller has them already."""
        return _take(self, rows, ids)


Batch: TypeAlias = LinkTelemetry | KMLinkTelemetry | NodeHealth
"""Any telemetry batch."""

B = TypeVar("B", LinkTelemetry, KMLinkTelemetry, NodeHealth)
AnyBatch = TypeVar("AnyBatch", bound=Batch)

_COLUMNS: dict[type, tuple[str, ...]] = {
    kind: tuple(f.name for f in fields(kind) if f.name not in ("t", "ids"))
    for kind in (LinkTelemetry, KMLinkTelemetry, NodeHealth)}


def _unchecked(kind: type[AnyBatch], t: float, ids: tuple[str, ...],
               columns: dict[str, NDArray[Any]]) -> AnyBatch:
    """A batch made of rows of checked batches: they pass every check, so none is run
    again (an EMS splits every report, the NMS joins the EMSs' reports, and the twin
    reports every step)."""
    batch = object.__new__(kind)
    for column in columns.values():
        column.flags.writeable = False
    batch.__dict__.update(t=t, ids=ids, **columns)
    return batch


def _take(batch: B, rows: IndexArray, ids: tuple[str, ...] | None) -> B:
    """``batch`` restricted to ``rows`` (whose ids are ``ids`` when given)."""
    if ids is None:
        ids = tuple(batch.ids[i] for i in rows.tolist())
    return _unchecked(type(batch), batch.t, ids,
                      {name: getattr(batch, name)[rows] for name in _COLUMNS[type(batch)]})


def join(batches: Sequence[Batch], ids: tuple[str, ...]) -> Batch:
    """The rows of ``batches``, which must be of one kind and one time with no id in two
    of them, as one batch in order; ``ids`` is their ids, joined (the caller keeps that
    tuple, so that its caches find it again)."""
    first = batches[0]
    kind = type(first)
    if any(type(b) is not kind or b.t != first.t for b in batches):
        raise ParameterError("batches", f"<{len(batches)} batches>", "one kind, one time")
    if len(ids) != sum(b.rows for b in batches):
        raise ParameterError("ids", f"<{len(ids)} ids>", "one per row of the batches")
    return _unchecked(kind, first.t, ids, {
        name: np.concatenate([getattr(b, name) for b in batches]) for name in _COLUMNS[kind]})
