"""What-if search: which new QKD-links (or extra device pairs) most cut the hours
unserved of the watched segments and services.

``qkdnet plan`` (docs in the README, "Planning") proposes up to ``budget`` additions. What
is watched: by default the scenario's watched segments (the paper's Table 1); ``watch``
names segments (``Harbin–Beijing``) and services (a demand's id) instead.

1. **Candidates**: every pair of trusted nodes (by default backbone access and relay nodes,
   BSBN nodes and metro access nodes; ``endpoints="access"`` keeps the access nodes only)
   not joined by a QKD-link, whose fibre (the great circle times :data:`ROUTE_FACTOR`) is at
   most ``max_km``. Each is engineered by the backbone's span rule
   (:func:`~qkdnet.topology.cn_qcn.engineered_spans`: the fewest device pairs and the
   cheapest type holding the design floor at the pessimistic field corner), on a loss of the
   network's own fibre attenuation; a span the rule cannot make key on at that corner is no
   candidate, so the reach is shorter than ``max_km`` on lossy fibre (~104 km on cn-qcn).
2. **Pre-screen** (no twin run): a candidate counts only if it takes watched QKD-links out
   of the single points of failure of their segment or service (bridges of the fibre graph
   on its shortest fibre path); its score is those links' expected outage hours per run
   under the fault model. The ``shortlist`` best go on. With ``device_pairs``, so do up to
   ``shortlist`` **extra device pairs**: one more pair (of the link's type) on a QKD-link
   of a watched fibre path, the slowest at the pessimistic corner first. A pair adds rate,
   not a route: in this fault model an equipment failure takes the whole link, so a pair
   cannot shorten an outage; what it buys is key where a service asks for more than its
   route makes, which the ``shortfall`` objective counts.
3. **Twin runs**: greedy by default. Each round runs the shortlisted candidates added to
   what was chosen so far, over the same seeds, through ``runner``, and keeps the one with
   the lowest expected objective (the mean over seeds, summed over what is watched);
   it stops at ``budget`` links or when no candidate lowers it. Greedy on a
   sampled estimate, not exact: a pair that helps only together is missed. ``exact``
   (budget 1 or 2) runs every set of up to ``budget`` shortlisted candidates instead.
   An added link fails on a random stream of its own (``TwinScenario.added_links``), so
   on one seed every other link fails as in the base: variants compare run by run.
4. **Confirmation** on fresh seeds: the base and the proposal, before/after.

Everything here is sans-I/O except the runner: a ``runner(scenarios, seeds)`` returns a
DataFrame with a row per variant (the index in ``scenarios``), seed and segment or service
of the runs, its ``hours_unserved`` and ``shortfall_h`` (h). :func:`in_process_runner` runs
the twin here, one run after another; a Dask sweep (:mod:`qkdnet.twin.sweep`) can stand in for it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from itertools import combinations, pairwise
from types import MappingProxyType
from typing import Any, Literal

import networkx as nx
import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from qkdnet.errors import ParameterError
from qkdnet.quantum.devices import device_type
from qkdnet.quantum.field import field_ranges
from qkdnet.topology.cn_qcn import (
    CONNECTOR_LOSS_DB,
    EARTH_RADIUS_KM,
    FIXED_ROUTE_FACTOR,
    engineered_spans,
    great_circle_km,
    pessimistic_span_skr_bps,
)
from qkdnet.topology.model import Network, Node, NodeKind, QKDLink
from qkdnet.topology.paths import path_links, shortest_path
from qkdnet.twin.faults import FaultModel
from qkdnet.twin.scenario import TwinScenario, with_device_pairs, with_links
from qkdnet.twin.tables import segment_name
from qkdnet.units import HOUR_S, WEEK_S, YEAR_S

#: What the search minimises, per watched segment or service and run (h): ``hours`` its
#: hours unserved (no usable route); ``shortfall`` the key it was not given, in hours of
#: its asked rate ((1 - served fraction) x run hours), or its hours unserved where more (a
#: segment asks for no rate, only a key now and then).
Objective = Literal["hours", "shortfall"]
OBJECTIVES: dict[str, str] = {
    "hours": "hours_unserved",
    "shortfall": "shortfall_h",
}

#: Each objective as the summary and the CLI name it.
OBJECTIVE_TEXT: dict[str, str] = {
    "hours": "hours unserved",
    "shortfall": "hours short (key not given, in hours of the asked rate, or hours "
                 "unserved where more)",
}

#: What a candidate adds: a new QKD-link, or one more device pair on an existing one.
CandidateKind = Literal["link", "pairs"]

#: A new fibre's length: the great circle times the backbone's published route factor.
ROUTE_FACTOR = FIXED_ROUTE_FACTOR
#: Fibre attenuation (dB/km) assumed on a network with no span of 20 km or more to learn from.
DEFAULT_ATTENUATION_DB_PER_KM = 0.2
#: Spans shorter than this (km) are metro or user fibre, left out of the attenuation.
SPAN_MIN_KM = 20.0

Endpoints = Literal["access", "trusted"]
ENDPOINT_KINDS: dict[str, frozenset[NodeKind]] = {
    "access": frozenset({NodeKind.BACKBONE_ACCESS, NodeKind.METRO_ACCESS}),
    "trusted": frozenset({NodeKind.BACKBONE_ACCESS, NodeKind.METRO_ACCESS,
                          NodeKind.BACKBONE_RELAY, NodeKind.BSBN}),
}

#: ``runner(scenarios, seeds)``: a DataFrame with columns ``variant`` (index into
#: ``scenarios``), ``seed``, ``watched`` (a segment's name, ``Harbin–Beijing``, or a
#: service's demand id), ``hours_unserved`` and ``shortfall_h`` (h; see
#: :data:`OBJECTIVES`), one row per variant, seed and segment or service of the runs.
Runner = Callable[[Sequence[TwinScenario], Sequence[int]], pd.DataFrame]
RunProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class Candidate:
    """A new QKD-link (engineered; ``kind`` "link") or an existing one with one more
    device pair (``kind`` "pairs", ``link`` as it would be), its rate at the pessimistic
    corner (bit/s), the watched QKD-links it would take out of the single points of
    failure, and their expected outage per run (h): the pre-screen's score (0 for a pair,
    which takes none away)."""

    link: QKDLink
    design_bps: float
    protects: tuple[str, ...]
    screen_h: float
    kind: CandidateKind = "link"

    @property
    def name(self) -> str:
        """``a--b`` for a new link, ``+1 pair a--b`` for a device pair."""
        return self.link.id if self.kind == "link" else f"+1 pair {self.link.id}"


@dataclass(frozen=True)
class Round:
    """One round: each option's estimate (the expected objective over what is watched,
    h) and the option kept (None: none improved on ``before_h``). A greedy
    round's options are the shortlisted candidates one by one; the exact search's single
    round has every set of up to ``budget`` of them."""

    before_h: float
    estimates: tuple[tuple[tuple[Candidate, ...], float], ...]
    chosen: tuple[Candidate, ...] | None


@dataclass(frozen=True)
class Plan:
    """The proposal: the links chosen (in order), the rounds that chose them, the rows of
    the search (variant ``base`` and ``plan``; ``hours``: the objective's, per watched
    segment or service and seed) and of the confirmation on fresh
    seeds, and the scenario with the links added."""

    chosen: tuple[Candidate, ...]
    rounds: tuple[Round, ...]
    seeds: tuple[int, ...]
    confirm_seeds: tuple[int, ...]
    search: pd.DataFrame
    confirm: pd.DataFrame
    scenario: TwinScenario
    watched: tuple[str, ...]
    exact: bool = False
    objective: Objective = "hours"


def in_process_runner(progress: RunProgress | None = None) -> Runner:
    """A runner that runs the twin in this process, each variant once per seed (the
    sweep's in-process path, so its figures are the Dask runner's to the digit);
    ``progress(done, total)`` is called after each run."""
    return sweep_runner(0, None, progress)


def sweep_runner(workers: int | None, scheduler: str | None = None,
                 progress: RunProgress | None = None) -> Runner:
    """A runner on the twin's sweep (:func:`~qkdnet.twin.sweep.run_sweep`): the scenarios
    as its variants, on a LocalCluster of ``workers`` processes (None: one per core; 0:
    in this process, no Dask) or the cluster at ``scheduler``. A run that failed has no
    rows (the plan refuses a result with runs missing)."""

    def run(scenarios: Sequence[TwinScenario], seeds: Sequence[int]) -> pd.DataFrame:
        from qkdnet.twin.sweep import run_sweep

        rows = run_sweep(scenarios[0], seeds, workers=workers, scheduler=scheduler,
                         variants={str(v): sc for v, sc in enumerate(scenarios)},
                         progress=progress)
        seg = rows[rows["kind"].isin(("segment", "service"))]
        short = (1.0 - seg["served_fraction"]) * seg["duration_h"]
        return pd.DataFrame({"variant": seg["variant"].astype(int), "seed": seg["seed"],
                             "watched": seg["name"], "hours_unserved": seg["hours_unserved"],
                             "shortfall_h": np.maximum(short.round(6), seg["hours_unserved"])}
                            ).reset_index(drop=True)

    return run


def runner_for(workers: int | None, progress: RunProgress | None = None,
               scheduler: str | None = None) -> Runner:
    """The runner for ``--workers``/``--scheduler``: None or 1 worker runs in this
    process; more, or a scheduler, run on Dask (:func:`sweep_runner`)."""
    if workers is not None and workers < 1:
        raise ParameterError("--workers", workers, "must be >= 1")
    if scheduler is None and workers in (None, 1):
        return in_process_runner(progress)
    return sweep_runner(workers, scheduler, progress)


# -- candidates and the pre-screen -------------------------------------------------------

_ROW_COLUMNS = ("variant", "seed", "watched", "hours")


def attenuation_db_per_km(network: Network) -> float:
    """The median fibre attenuation of the network's spans of at least SPAN_MIN_KM (dB/km),
    connector loss taken off."""
    spans = [(lk.loss_db - CONNECTOR_LOSS_DB) / lk.length_km for lk in network.qkd_links
             if lk.length_km >= SPAN_MIN_KM]
    return float(np.median(spans)) if spans else DEFAULT_ATTENUATION_DB_PER_KM


def engineered_link(a: str, b: str, length_km: float, loss_db: float) -> tuple[QKDLink, float]:
    """A new QKD-link of ``length_km`` (km) and ``loss_db`` (dB) equipped by the span rule,
    its field parameters at the pessimistic corner it is engineered for, and its rate
    there (bit/s)."""
    kind, pairs = engineered_spans([loss_db])[0]
    worst = {r.name: r.worst for r in field_ranges(device_type(kind))}
    link = QKDLink(f"{a}--{b}", a, b, round(length_km, 3), round(loss_db, 3), kind, pairs,
                   field=MappingProxyType(worst))
    return link, pairs * float(pessimistic_span_skr_bps(kind, loss_db))


def candidates(scenario: TwinScenario, max_km: float = 150.0,
               endpoints: Endpoints = "trusted", watch: Sequence[str] = ()
               ) -> list[Candidate]:
    """Every new QKD-link within ``max_km`` of fibre between two ``endpoints`` nodes not
    joined by a QKD-link, that the span rule can make key on; scored by the pre-screen on
    the segments and services named in ``watch`` (default: every watched segment) and best
    first (those that protect no watched link included, with score 0)."""
    if not max_km > 0:
        raise ParameterError("--max-km", max_km, "> 0 km")
    if endpoints not in ENDPOINT_KINDS:
        raise ParameterError("--endpoints", endpoints, "one of " + ", ".join(ENDPOINT_KINDS))
    net = scenario.network
    nodes = [n for n in net.nodes if n.kind in ENDPOINT_KINDS[endpoints]]
    g = net.graph()
    attenuation = attenuation_db_per_km(net)
    screen = _Screen(scenario, watch)
    out = []
    for i, j in _pairs_within(nodes, max_km / ROUTE_FACTOR):
        p, q = nodes[i], nodes[j]
        if g.has_edge(p.id, q.id):
            continue
        km = ROUTE_FACTOR * great_circle_km(p.lat, p.lon, q.lat, q.lon)
        if km > max_km or km <= 0:
            continue
        link, rate = engineered_link(p.id, q.id, km, attenuation * km + CONNECTOR_LOSS_DB)
        if rate <= 0:
            continue
        protects = screen.protected(p.id, q.id)
        out.append(Candidate(link, rate, protects, screen.hours(protects)))
    return sorted(out, key=lambda c: (-c.screen_h, c.link.length_km, c.link.id))


def pair_candidates(scenario: TwinScenario, watch: Sequence[str] = ()) -> list[Candidate]:
    """One more device pair on each QKD-link of the watched fibre paths (``watch`` as in
    :func:`candidates`), slowest at the pessimistic corner first: a pair of the link's own
    type, so the link's rate there grows by a pair's."""
    seen: dict[str, QKDLink] = {}
    for path in _watched_paths(scenario, watch):
        for lk in path:
            seen.setdefault(lk.id, lk)
    out = []
    for lk in seen.values():
        per_pair = float(pessimistic_span_skr_bps(lk.device_type, lk.loss_db))
        if per_pair <= 0:
            continue
        more = replace(lk, device_pairs=lk.device_pairs + 1)
        out.append(Candidate(more, more.device_pairs * per_pair, (), 0.0, "pairs"))
    return sorted(out, key=lambda c: (c.design_bps, c.link.id))


def _watched_paths(scenario: TwinScenario, watch: Sequence[str]) -> list[list[QKDLink]]:
    """The QKD-links of each watched segment's and service's shortest fibre path
    (``watch``: their names; empty: every watched segment)."""
    net = scenario.network
    ends = [(a, b) for a, b in pairwise(scenario.segments)
            if not watch or segment_name(net, a, b) in watch]
    ends += [(d.source, d.target) for d in scenario.demands if d.id in watch]
    return [path_links(net, shortest_path(net, a, b)) for a, b in ends]


def _pairs_within(nodes: Sequence[Node], km: float) -> list[tuple[int, int]]:
    """Index pairs of ``nodes`` at most ``km`` apart on the great circle, found with a k-d
    tree on the unit sphere (no all-pairs loop)."""
    if len(nodes) < 2:
        return []
    lat = np.radians([n.lat for n in nodes])
    lon = np.radians([n.lon for n in nodes])
    xyz = np.column_stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])
    chord = 2 * np.sin(min(km / EARTH_RADIUS_KM, np.pi) / 2) * (1 + 1e-9)
    return sorted(cKDTree(xyz).query_pairs(chord))


class _Screen:
    """The watched segments' and services' single points of failure (bridges on their
    fibre paths) and the bridge tree that says which of them a new link between two nodes
    closes a loop around."""

    def __init__(self, scenario: TwinScenario, watch: Sequence[str]) -> None:
        net = scenario.network
        g = net.graph()
        self.model = scenario.fault_model
        self.years = scenario.duration_s / YEAR_S
        bridges = {frozenset(e) for e in nx.bridges(g)}
        self.watched: dict[frozenset[str], list[QKDLink]] = {}
        for path in _watched_paths(scenario, watch):
            for lk in path:
                if frozenset(lk.ends) in bridges:
                    self.watched.setdefault(frozenset(lk.ends), []).append(lk)
        rest = nx.Graph(g)
        rest.remove_edges_from(tuple(e) for e in bridges)
        self.component = {n: k for k, part in enumerate(nx.connected_components(rest))
                          for n in part}
        self.tree = nx.Graph()
        for e in bridges:
            u, v = tuple(e)
            self.tree.add_edge(self.component[u], self.component[v], ends=e)

    def protected(self, a: str, b: str) -> tuple[str, ...]:
        """The watched single points of failure a new link ``a``-``b`` takes away: the
        bridges on the bridge-tree path between the two (sorted link ids)."""
        ca, cb = self.component[a], self.component[b]
        if ca == cb or not self.watched or ca not in self.tree or cb not in self.tree \
                or not nx.has_path(self.tree, ca, cb):
            return ()
        hops = nx.shortest_path(self.tree, ca, cb)
        ends = (self.tree.edges[u, v]["ends"] for u, v in pairwise(hops))
        return tuple(sorted({lk.id for e in ends for lk in self.watched.get(e, ())}))

    def hours(self, links: Sequence[str]) -> float:
        """Expected outage of ``links`` over the run under the fault model (h), counted
        once per segment or service a link is watched on."""
        return sum(_expected_down_h(self.model, self.years, lk.length_km)
                   for lks in self.watched.values() for lk in lks if lk.id in links)


def _expected_down_h(model: FaultModel, years: float, km: float) -> float:
    """A link's expected downtime (h) over ``years``: failures per year times the mean
    lognormal repair, fibre cuts and equipment failures (maintenance left out: windows
    are planned around)."""
    fibre = model.fibre_cuts_per_km_year * km * model.fibre_repair_median_s \
        * np.exp(model.fibre_repair_sigma ** 2 / 2)
    equipment = model.equipment_failures_per_link_year * model.equipment_repair_median_s \
        * np.exp(model.equipment_repair_sigma ** 2 / 2)
    return float(years * (fibre + equipment) / HOUR_S)


# -- the search --------------------------------------------------------------------------


def plan(base: TwinScenario, budget: int, seeds: Sequence[int], *,
         runner: Runner | None = None, max_km: float = 150.0,
         endpoints: Endpoints = "trusted", shortlist: int = 5,
         watch: Sequence[str] = (), confirm_seeds: Sequence[int] = (),
         exact: bool = False, device_pairs: bool = False,
         objective: Objective = "hours") -> Plan:
    """Propose up to ``budget`` new QKD-links for ``base`` (module docstring): greedy over
    twin runs of ``seeds``, then the base and the proposal on ``confirm_seeds``.
    ``watch`` names the segments (``Harbin–Beijing``) and services (demand ids) to
    protect (default: every watched segment). ``device_pairs``: extra device pairs on
    the watched paths are candidates too. ``objective``: what is minimised
    (:data:`OBJECTIVES`).
    ``exact`` (budget 1 or 2) runs every set of up to ``budget`` shortlisted candidates
    at once and keeps the best: exact over the shortlist, for the sampled estimate."""
    seeds, confirm_seeds = tuple(seeds), tuple(confirm_seeds)
    _check(base, budget, seeds, shortlist, confirm_seeds)
    if not max_km > 0:
        raise ParameterError("--max-km", max_km, "> 0 km")
    if exact and budget > 2:
        raise ParameterError("--budget", budget, "1 or 2 with --exact (every set of the "
                             "shortlist is run)")
    if objective not in OBJECTIVES:
        raise ParameterError("--objective", objective, "one of " + ", ".join(OBJECTIVES))
    measure = OBJECTIVES[objective]
    run = runner or in_process_runner()
    watched = _watched(base, watch)
    chosen: list[Candidate] = []
    rounds: list[Round] = []
    current = base
    frames: list[pd.DataFrame] = []
    best_rows = pd.DataFrame()
    for _ in range(1 if exact else budget):
        listed = [c for c in candidates(current, max_km, endpoints, watched)
                  if c.screen_h > 0][:shortlist]
        if device_pairs:
            listed += pair_candidates(current, watched)[:shortlist]
        if not listed:
            break
        options = [o for k in range(1, budget + 1) for o in combinations(listed, k)] \
            if exact else [(c,) for c in listed]
        variants = [_with(current, o) for o in options]
        if not frames:  # the base is run once, with the first round
            rows = _rows(run([base, *variants], seeds), seeds, 1 + len(variants), measure)
            best_rows = rows[rows["variant"] == 0]
            rows = rows[rows["variant"] > 0].assign(variant=rows["variant"] - 1)
            frames.append(best_rows.assign(variant="base"))
        else:
            rows = _rows(run(variants, seeds), seeds, len(variants), measure)
        before = _objective(best_rows, watched)
        scores = [_objective(rows[rows["variant"] == k], watched)
                  for k in range(len(options))]
        k = int(np.argmin(scores))  # the first of equals: the fewest links
        keep = options[k] if scores[k] < before else None
        rounds.append(Round(before, tuple(zip(options, scores, strict=True)), keep))
        if keep is None:
            break
        chosen.extend(keep)
        current = variants[k]
        best_rows = rows[rows["variant"] == k]
    if not frames:
        frames.append(_rows(run([base], seeds), seeds, 1, measure).assign(variant="base"))
    if chosen:
        frames.append(best_rows.assign(variant="plan"))
    confirm = pd.DataFrame(columns=list(_ROW_COLUMNS))
    if confirm_seeds:
        confirm = _rows(run([base, current], confirm_seeds), confirm_seeds, 2, measure)
        confirm = confirm.assign(variant=confirm["variant"].map({0: "base", 1: "plan"}))
    return Plan(tuple(chosen), tuple(rounds), seeds, confirm_seeds,
                pd.concat(frames, ignore_index=True), confirm, current, watched, exact,
                objective)


def _with(scenario: TwinScenario, added: Sequence[Candidate]) -> TwinScenario:
    """``scenario`` with the candidates' links (their faults on a stream of their own) and
    device pairs (the link fails as before: faults do not depend on its pairs)."""
    links = [c.link for c in added if c.kind == "link"]
    pairs = {c.link.id: 1 for c in added if c.kind == "pairs"}
    network = with_device_pairs(with_links(scenario.network, links), pairs)
    return replace(scenario, network=network,
                   added_links=(*scenario.added_links, *(lk.id for lk in links)))


def _check(base: TwinScenario, budget: int, seeds: tuple[int, ...], shortlist: int,
           confirm_seeds: tuple[int, ...]) -> None:
    if budget < 1:
        raise ParameterError("--budget", budget, "at least 1 new link")
    if not seeds:
        raise ParameterError("--seeds", "", "at least one seed")
    if shortlist < 1:
        raise ParameterError("--shortlist", shortlist, "at least 1 candidate")
    if set(seeds) & set(confirm_seeds):
        raise ParameterError("--confirm-seeds", sorted(set(seeds) & set(confirm_seeds))[:3],
                             "fresh seeds, none of --seeds")
    if len(base.segments) < 2 and not base.demands:
        raise ParameterError("SCENARIO", base.network.name, "a scenario with watched "
                             "segments (`segments:` in a twin file) or demands to protect")


def _watched(base: TwinScenario, watch: Sequence[str]) -> tuple[str, ...]:
    """The names of what is watched: ``watch`` (segments or demand ids) as the scenario
    spells them, or every watched segment."""
    segments = [segment_name(base.network, a, b) for a, b in pairwise(base.segments)]
    if not watch:
        if not segments:
            raise ParameterError("--watch", "", "a demand to protect: the scenario "
                                 "watches no segment (" + ", ".join(
                                     d.id for d in base.demands) + ")")
        return tuple(segments)
    names = [*segments, *(d.id for d in base.demands)]
    by_key = {_key(n): n for n in names}
    out = []
    for w in watch:
        if _key(w) not in by_key:
            raise ParameterError("--watch", w, "a watched segment or a demand: "
                                 + ", ".join(names))
        out.append(by_key[_key(w)])
    return tuple(out)


def _key(name: str) -> str:
    """A segment or demand name as typed: any case, a hyphen for the en dash."""
    return name.replace("–", "-").strip().lower()


def _rows(frame: pd.DataFrame, seeds: Sequence[int], variants: int,
          measure: str) -> pd.DataFrame:
    """The runner's rows, checked: every variant and seed present with its figure (a run
    lost or failed is an error, never a silently smaller sample); the objective's
    ``measure`` column as ``hours``."""
    need = {"variant", "seed", "watched", measure}
    if not need <= set(frame.columns):
        raise ParameterError("runner", sorted(frame.columns), "columns " + ", ".join(
            sorted(need)))
    got = set(zip(frame["variant"].astype(int), frame["seed"].astype(int), strict=True))
    missing = [(v, s) for v in range(variants) for s in seeds if (v, s) not in got]
    if missing:
        raise ParameterError("runner", missing[:3], "a row for every variant and seed")
    failed = frame[frame[measure].isna()]
    if not failed.empty:
        raise ParameterError("runner", sorted(set(zip(failed["variant"], failed["seed"],
                                                      strict=True)))[:3],
                             "the figures of every run (these failed)")
    return frame.rename(columns={measure: "hours"})[list(_ROW_COLUMNS)].reset_index(drop=True)


def _objective(rows: pd.DataFrame, watched: Sequence[str]) -> float:
    """The expected objective over what is watched: per segment or service the mean over
    seeds, summed (h)."""
    kept = rows[rows["watched"].isin(watched)]
    return float(kept.groupby("watched")["hours"].mean().sum())


def distribution(rows: pd.DataFrame) -> pd.DataFrame:
    """Per variant and watched segment or service: runs, mean and its standard error, 5th
    percentile, median and 95th percentile of the objective's hours (h)."""
    if rows.empty:
        return pd.DataFrame(columns=["variant", "watched", "runs", "mean_h", "sem_h",
                                     "p5_h", "median_h", "p95_h"])
    h = rows.groupby(["variant", "watched"], sort=False)["hours"]
    out = pd.DataFrame({"runs": h.size(), "mean_h": h.mean(),
                        "sem_h": h.std(ddof=1).fillna(0.0) / np.sqrt(h.size()),
                        "p5_h": h.quantile(0.05), "median_h": h.median(),
                        "p95_h": h.quantile(0.95)})
    return out.reset_index()


# -- what a planner reads and runs -------------------------------------------------------


def plan_summary(p: Plan) -> dict[str, Any]:
    """The proposal as plain data (what ``--format json`` prints): method, objective,
    seeds, each chosen link or device pair with its equipment and before/after estimate
    (h), the rounds' estimates, the before/after distributions of the search and of the
    confirmation, and their seed-by-seed changes."""
    weeks = p.scenario.duration_s / WEEK_S
    return {
        "method": "exact over the shortlist: every set of up to the budget run, the best "
                  "kept (on the sampled estimate)" if p.exact else
                  "greedy: each round adds the shortlisted candidate with the lowest mean "
                  "objective over the seeds (a sampled estimate, not exact)",
        "objective": OBJECTIVE_TEXT[p.objective],
        "network": p.scenario.network.name, "weeks": round(weeks, 6),
        "seeds": list(p.seeds), "confirm_seeds": list(p.confirm_seeds),
        "watched": list(p.watched),
        "chosen": [{**_link_row(c), "before_h": _r(r.before_h), "after_h": _r(h)}
                   for r in p.rounds if r.chosen is not None
                   for o, h in r.estimates if o == r.chosen for c in o],
        "rounds": [{"before_h": _r(r.before_h),
                    "chosen": None if r.chosen is None else _name(r.chosen),
                    "candidates": [{"link": _name(o), "estimate_h": _r(h),
                                    "screen_h": _r(sum(c.screen_h for c in o))}
                                   for o, h in r.estimates]}
                   for r in p.rounds],
        "search": _records(distribution(p.search)),
        "confirm": _records(distribution(p.confirm)),
        "search_change": _records(paired_change(p.search)),
        "confirm_change": _records(paired_change(p.confirm)),
    }


def whatif_document(p: Plan, base: dict[str, Any]) -> dict[str, Any]:
    """The twin file (``qkdnet_twin: 1``) of the proposal: ``base``'s document with the
    chosen links under ``add_links`` (each with its engineered equipment and field) and
    the chosen device pairs under ``add_device_pairs``."""
    doc = dict(base)
    links = [c.link for c in p.chosen if c.kind == "link"]
    if links:
        doc["add_links"] = [*doc.get("add_links", []), *(
            {"a": lk.a, "b": lk.b, "length_km": lk.length_km, "loss_db": lk.loss_db,
             "device_type": lk.device_type, "device_pairs": lk.device_pairs,
             "field": {k: _r(v) for k, v in lk.field.items()}} for lk in links)]
    pairs = dict(doc.get("add_device_pairs") or {})
    for c in p.chosen:
        if c.kind == "pairs":
            pairs[c.link.id] = pairs.get(c.link.id, 0) + 1
    if pairs:
        doc["add_device_pairs"] = pairs
    return doc


def paired_change(rows: pd.DataFrame) -> pd.DataFrame:
    """Per segment or service, the plan against the base seed by seed (the same faults on every old
    link, so a difference is the new links' doing): runs, mean change (h), and the runs
    where the plan is lower and higher. Empty without a ``plan`` variant."""
    columns = ["watched", "runs", "mean_change_h", "lower_runs", "higher_runs"]
    if rows.empty or "plan" not in set(rows["variant"]):
        return pd.DataFrame(columns=columns)
    wide = rows.pivot_table(index=["watched", "seed"], columns="variant",
                            values="hours", sort=False)
    change = (wide["plan"] - wide["base"]).groupby(level="watched", sort=False)
    out = pd.DataFrame({"runs": change.size(), "mean_change_h": change.mean(),
                        "lower_runs": change.apply(lambda x: int((x < -1e-9).sum())),
                        "higher_runs": change.apply(lambda x: int((x > 1e-9).sum()))})
    return out.reset_index()[columns]


def _name(option: Sequence[Candidate]) -> str:
    return " + ".join(c.name for c in option)


def _link_row(c: Candidate) -> dict[str, Any]:
    lk = c.link
    return {"kind": c.kind, "link": lk.id, "name": c.name, "a": lk.a, "b": lk.b,
            "length_km": lk.length_km,
            "loss_db": lk.loss_db, "device_type": lk.device_type,
            "device_pairs": lk.device_pairs, "design_kbps": _r(c.design_bps / 1e3),
            "protects": list(c.protects), "screen_h": _r(c.screen_h)}


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): (_r(v) if isinstance(v, float) else v) for k, v in row.items()}
            for row in frame.to_dict(orient="records")]


def _r(x: float) -> float:
    """6 significant digits: readable, and the same on every platform."""
    return float(f"{float(x):.6g}")


__all__ = ["Candidate", "Plan", "Round", "Runner", "attenuation_db_per_km", "candidates",
           "distribution", "engineered_link", "in_process_runner", "pair_candidates",
           "paired_change", "plan", "plan_summary", "runner_for", "whatif_document"]
