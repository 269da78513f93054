"""Random failures of fibres and equipment, with repair times, for the simulated-time twin.

Faults are drawn up front from a seed (no clock): :func:`draw_faults` returns every outage of
a run as :class:`Fault` records, the twin replays them in simulated time. Times are seconds
from the start of the run; rates are per year (365.25 days).

Calibration of :class:`FaultModel`'s defaults, against Chen et al. (npj Quantum Inf. 2025,
Table 1): over 10 weeks the Harbin-Beijing chain (about 23 fibre links of about 75 km,
1,731 km in ``cn-qcn``) lost 5.13 h in outages of 0.09-1.69 h each, Wuhan-Guangzhou
(~17 links) 2.88 h in 3 outages of about 1 h. Expected faults = rate x exposure x time:

- fibre cuts: 0.004 per km per year x 1,731 km x 0.19 year (10 weeks) = 1.3 cuts, each a
  lognormal repair of median 1.2 h and spread (sigma of the log) 0.5, mean 1.36 h: 1.8 h;
- equipment (QKD device or KM node): 1.2 per link per year x 23 links x 0.19 year = 5.3
  failures, each a lognormal reset of median 0.4 h and spread 0.8, mean 0.55 h: 2.9 h;
- together about 6.6 outages and 4.7 h of downtime on the chain (Wuhan-Guangzhou: about
  3.3 h), most single outages between 0.1 and 2 h (94% of equipment resets, 85% of fibre
  repairs): the paper's orders of magnitude. Measured over 200 seeds: 6.7 outages, 4.8 h
  mean downtime, median single outage 0.51 h, 93% of outages within 0.1-2 h. Real fibre
  repairs often take longer; the short median stands for the operator's switch to spare
  fibre in the same cable.

Maintenance windows (off by default) take each link down for ``maintenance_duration_s``
once every ``maintenance_period_s``, at a phase drawn per link.

A link is never failed twice at once: a fault that starts while its link is already down
(from any cause) is skipped, so per-link intervals never overlap and each outage keeps the
kind of the fault that opened it. Outages still running at the end of the run are cut at
``duration_s``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

from qkdnet.errors import ParameterError
from qkdnet.topology.model import Network
from qkdnet.units import HOUR_S, YEAR_S

FaultKind = Literal["fibre", "equipment", "maintenance", "scripted"]
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)


def _at_least_zero(name: str, value: float) -> None:
    if not value >= 0:
        raise ParameterError(name, value, ">= 0")


@dataclass(frozen=True)
class FaultModel:
    """Failure rates and repair-time distributions; defaults calibrated in the module docstring.

    Repair times are lognormal: ``median`` in seconds, ``sigma`` the standard deviation of
    the natural log (0 gives the median every time). ``maintenance_period_s`` None turns
    maintenance windows off.
    """

    fibre_cuts_per_km_year: float = 0.004
    equipment_failures_per_link_year: float = 1.2
    fibre_repair_median_s: float = 1.2 * HOUR_S
    fibre_repair_sigma: float = 0.5
    equipment_repair_median_s: float = 0.4 * HOUR_S
    equipment_repair_sigma: float = 0.8
    maintenance_period_s: float | None = None
    maintenance_duration_s: float = 2 * HOUR_S

    def __post_init__(self) -> None:
        for name in ("fibre_cuts_per_km_year", "equipment_failures_per_link_year",
                     "fibre_repair_sigma", "equipment_repair_sigma"):
            _at_least_zero(name, getattr(self, name))
        for name in ("fibre_repair_median_s", "equipment_repair_median_s",
                     "maintenance_duration_s"):
            if not getattr(self, name) > 0:
                raise ParameterError(name, getattr(self, name), "a time > 0 s")
        period = self.maintenance_period_s
        if period is not None and not period > self.maintenance_duration_s:
            raise ParameterError("maintenance_period_s", period,
                                 "None or longer than maintenance_duration_s")


@dataclass(frozen=True)
class Fault:
    """One outage of one QKD-link from ``start_s`` to ``end_s`` (seconds of simulated time)."""

    link: str
    kind: FaultKind
    start_s: float
    end_s: float

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ParameterError("kind", self.kind, f"one of {', '.join(FAULT_KINDS)}")
        _at_least_zero("start_s", self.start_s)
        if not self.end_s >= self.start_s:
            raise ParameterError("end_s", self.end_s, f"at least start_s={self.start_s:g}")

    @property
    def duration_s(self) -> float:
        """How long the link is down, in seconds."""
        return self.end_s - self.start_s


#: The calibrated defaults (module docstring).
DEFAULT_MODEL = FaultModel()


def scripted_fault(link: str, start_s: float, duration_s: float) -> Fault:
    """A fault a scenario asks for: ``link`` down from ``start_s`` for ``duration_s`` seconds."""
    _at_least_zero("start_s", start_s)
    _at_least_zero("duration_s", duration_s)
    return Fault(link, "scripted", float(start_s), float(start_s + duration_s))


def draw_faults(network: Network, duration_s: float, seed: int,
                model: FaultModel = DEFAULT_MODEL,
                links: Collection[str] | None = None) -> list[Fault]:
    """Random faults of the QKD-links (all, or those in ``links``) over ``duration_s``
    seconds, sorted by start.

    Poisson arrivals: per link, the count of fibre cuts (rate x length) and of equipment
    failures is drawn in one vectorised call each, arrival times uniform over the run,
    repair times lognormal. Same seed, model and link set give the same faults. A fault
    starting while its link is down is skipped (module docstring).
    """
    _at_least_zero("duration_s", duration_s)
    ids = _selected(network, links)
    rng = np.random.default_rng(seed)
    years = duration_s / YEAR_S
    km = np.array([network.link[i].length_km for i in ids], dtype=float)
    drawn = [
        _poisson_faults(rng, model.fibre_cuts_per_km_year * km * years, duration_s,
                        model.fibre_repair_median_s, model.fibre_repair_sigma),
        _poisson_faults(rng, np.full(len(ids), model.equipment_failures_per_link_year * years),
                        duration_s, model.equipment_repair_median_s,
                        model.equipment_repair_sigma),
        _maintenance(rng, len(ids), duration_s, model),
    ]
    kinds: tuple[FaultKind, ...] = ("fibre", "equipment", "maintenance")
    which = np.concatenate([np.full(len(d[0]), k) for k, d in enumerate(drawn)])
    link_ix, start, end = (np.concatenate([d[j] for d in drawn]) for j in range(3))
    order = np.lexsort((which, start, link_ix))
    faults = list(_without_overlaps(
        Fault(ids[link_ix[n]], kinds[which[n]], float(start[n]), float(end[n])) for n in order))
    return sorted(faults, key=lambda f: (f.start_s, f.link))


def link_outages(faults: Iterable[Fault]) -> dict[str, list[tuple[float, float]]]:
    """Each link's down intervals ``(start_s, end_s)``, sorted, overlapping or touching
    ones merged; links without faults are absent."""
    by_link: dict[str, list[tuple[float, float]]] = {}
    for f in faults:
        by_link.setdefault(f.link, []).append((f.start_s, f.end_s))
    return {link: _merged(spans) for link, spans in by_link.items()}


_Arrays = tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64]]


def _poisson_faults(rng: np.random.Generator, expected: npt.NDArray[np.float64],
                    duration_s: float, median_s: float, sigma: float) -> _Arrays:
    """Link indexes, starts and (clipped) ends of Poisson arrivals, all links at once."""
    counts = rng.poisson(expected)
    link_ix = np.repeat(np.arange(len(expected), dtype=np.int64), counts)
    start = rng.uniform(0.0, duration_s, link_ix.size)
    repair = rng.lognormal(np.log(median_s), sigma, link_ix.size)
    return link_ix, start, np.minimum(start + repair, duration_s)


def _maintenance(rng: np.random.Generator, n_links: int, duration_s: float,
                 model: FaultModel) -> _Arrays:
    """Periodic windows per link at a random phase; empty when maintenance is off."""
    period = model.maintenance_period_s
    if period is None or n_links == 0:
        return np.zeros(0, np.int64), np.zeros(0), np.zeros(0)
    phase = rng.uniform(0.0, period, n_links)
    cycles = np.arange(int(np.ceil(duration_s / period)) + 1) * period
    starts = phase[:, None] + cycles[None, :]
    link_ix = np.broadcast_to(np.arange(n_links, dtype=np.int64)[:, None], starts.shape)
    keep = starts < duration_s
    start = starts[keep]
    return link_ix[keep], start, np.minimum(start + model.maintenance_duration_s, duration_s)


def _without_overlaps(faults: Iterable[Fault]) -> Iterable[Fault]:
    """Drop each fault that starts while its link is still down (input sorted by link, start)."""
    link, free_at = None, 0.0
    for f in faults:
        if f.link != link:
            link, free_at = f.link, 0.0
        elif f.start_s < free_at:
            continue
        free_at = f.end_s
        yield f


def _merged(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _selected(network: Network, links: Collection[str] | None) -> list[str]:
    if links is None:
        return [lk.id for lk in network.qkd_links]
    wanted = set(links)
    unknown = sorted(wanted - set(network.link))
    if unknown:
        raise ParameterError("links", unknown[:3], "ids of QKD-links in the network")
    return [lk.id for lk in network.qkd_links if lk.id in wanted]
