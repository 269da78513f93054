"""The what-if search: candidates, the pre-screen and the greedy choice on twin runs, on a
chain whose single points of failure one new link can take away."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import yaml

from qkdnet.errors import ParameterError, ScenarioError
from qkdnet.twin.engine import run_twin
from qkdnet.twin.plan import (
    candidates,
    distribution,
    in_process_runner,
    paired_change,
    plan,
    plan_summary,
    runner_for,
    whatif_document,
)
from qkdnet.twin.scenario import TwinScenario, load_twin_scenario, with_links


@pytest.fixture
def chain(plan_chain: Path) -> Path:
    """The chain's twin file (tests/conftest.py)."""
    return plan_chain


def test_budget_one_picks_the_bypass_and_hours_unserved_drop(chain: Path) -> None:
    """a-d is chosen over b-d: the segment's 5 h of cuts become 0 h, on fresh seeds too."""
    p = plan(load_twin_scenario(chain), 1, [1, 2], confirm_seeds=[3])
    assert [c.link.id for c in p.chosen] == ["a--d"]
    [round_] = p.rounds
    estimates = {o[0].link.id: h for o, h in round_.estimates}
    assert round_.before_h == pytest.approx(5.0)
    assert estimates["a--d"] == pytest.approx(0.0)
    assert estimates["b--d"] == pytest.approx(3.0)  # a-b's cut is still unprotected
    rows = distribution(p.confirm).set_index("variant")
    assert rows.loc["base", "mean_h"] == pytest.approx(5.0)
    assert rows.loc["plan", "mean_h"] == pytest.approx(0.0)
    [change] = paired_change(p.confirm).to_dict(orient="records")
    assert change["mean_change_h"] == pytest.approx(-5.0)
    assert (change["lower_runs"], change["higher_runs"], change["runs"]) == (1, 0, 1)
    assert "a--d" in p.scenario.network.link and "km:a~d" in p.scenario.network.km_link


def test_candidates_respect_max_km_and_existing_links(chain: Path) -> None:
    """At 100 km a-d (111 km) and f are out; no candidate duplicates a QKD-link."""
    scenario = load_twin_scenario(chain)
    wide = {c.link.id: c for c in candidates(scenario, max_km=150)}
    assert {"a--d", "b--d"} <= set(wide)
    near = {c.link.id for c in candidates(scenario, max_km=100)}
    assert "b--d" in near and "a--d" not in near
    existing = {frozenset(lk.ends) for lk in scenario.network.qkd_links}
    for c in wide.values():
        assert c.link.length_km <= 150 and "f" not in c.link.ends
        assert frozenset(c.link.ends) not in existing
        assert c.design_bps > 0 and c.link.device_pairs >= 1
    assert wide["a--d"].protects == ("a--b", "b--c")
    assert wide["a--d"].screen_h > wide["b--d"].screen_h > 0


def test_bad_options_are_parameter_errors(chain: Path) -> None:
    """A zero budget, a negative reach, an unknown segment, reused seeds: each named."""
    scenario = load_twin_scenario(chain)
    for kwargs, name in ((dict(budget=0), "--budget"), (dict(max_km=-5.0), "--max-km"),
                         (dict(watch=["A-Z"]), "--watch"),
                         (dict(confirm_seeds=[1]), "--confirm-seeds")):
        args = {"budget": 1, **kwargs}
        budget = int(args.pop("budget"))  # type: ignore[call-overload]
        with pytest.raises(ParameterError, match=name):
            plan(scenario, budget, [1], **args)  # type: ignore[arg-type]


def test_a_runner_that_loses_a_run_is_an_error(chain: Path) -> None:
    """A runner missing a (variant, seed) row, or with a failed run, is refused, never
    averaged over fewer runs."""
    inner = in_process_runner()

    def lossy(scenarios: Sequence[TwinScenario], seeds: Sequence[int]) -> pd.DataFrame:
        rows = inner(scenarios, seeds)
        return rows[rows["seed"] != seeds[-1]]

    def failing(scenarios: Sequence[TwinScenario], seeds: Sequence[int]) -> pd.DataFrame:
        rows = inner(scenarios, seeds)
        return rows.assign(hours_unserved=rows["hours_unserved"].where(rows["seed"] != 2))

    with pytest.raises(ParameterError, match="every variant and seed"):
        plan(load_twin_scenario(chain), 1, [1, 2], runner=lossy)
    with pytest.raises(ParameterError, match="these failed"):
        plan(load_twin_scenario(chain), 1, [1, 2], runner=failing)


def test_added_links_leave_the_other_links_faults_as_they_were(chain: Path) -> None:
    """With random faults, the variant's old links fail exactly as in the base run."""
    base = replace(load_twin_scenario(chain, weeks=20), random_faults=True, faults=())
    [cand] = [c for c in candidates(base) if c.link.id == "a--d"]
    variant = replace(base, network=with_links(base.network, [cand.link]),
                      added_links=("a--d",))
    before = run_twin(base).faults
    after = run_twin(variant).faults
    assert before and [f for f in after if f.link != "a--d"] == list(before)


def test_the_proposal_is_a_twin_file_that_runs(chain: Path) -> None:
    """whatif_document + the loader: the chosen link is back with its equipment."""
    p = plan(load_twin_scenario(chain), 1, [1])
    doc = whatif_document(p, yaml.safe_load(chain.read_text()))
    path = chain.parent / "plan.yaml"
    path.write_text(yaml.safe_dump(doc))
    loaded = load_twin_scenario(path)
    link = loaded.network.link["a--d"]
    assert (link.device_type, link.device_pairs) == (p.chosen[0].link.device_type,
                                                    p.chosen[0].link.device_pairs)
    assert loaded.added_links == ("a--d",)
    summary = plan_summary(p)
    assert summary["chosen"][0]["link"] == "a--d" and summary["chosen"][0]["after_h"] == 0


def test_add_links_errors_name_file_line_and_field(chain: Path) -> None:
    """An unknown end and a duplicate of a QKD-link are refused with their place."""
    twin = chain.read_text()
    bad = twin + "add_links:\n  - {a: a, b: zz, length_km: 50, loss_db: 11, device_type: I}\n"
    chain.write_text(bad)
    with pytest.raises(ScenarioError, match=r"twin.yaml:\d+: add_links\[0\].b: unknown"):
        load_twin_scenario(chain)
    chain.write_text(twin + "add_links:\n  - {a: b, b: a, length_km: 50, loss_db: 11, "
                     "device_type: I}\n")
    with pytest.raises(ScenarioError, match=r"add_links\[0\]: .* already"):
        load_twin_scenario(chain)


def test_exact_budget_two_runs_every_pair_and_keeps_the_fewest_links(chain: Path) -> None:
    """--exact, budget 2: singles and pairs run; a--d alone already reaches 0 h."""
    p = plan(load_twin_scenario(chain), 2, [1], exact=True)
    [round_] = p.rounds
    sizes = sorted(len(o) for o, _ in round_.estimates)
    assert sizes.count(1) >= 2 and sizes.count(2) >= 1
    assert [c.link.id for c in p.chosen] == ["a--d"]
    with pytest.raises(ParameterError, match="--budget"):
        plan(load_twin_scenario(chain), 3, [1], exact=True)


def test_the_plan_on_two_dask_workers_is_the_plan_in_process(chain: Path) -> None:
    """`--workers 2`: the runs go to a Dask LocalCluster (the sweep's), and the search
    rounds, the choice and the confirmation are those of the runs in this process."""
    base = load_twin_scenario(chain)
    local = plan(base, 1, [1, 2], confirm_seeds=[3])
    dask = plan(base, 1, [1, 2], confirm_seeds=[3], runner=runner_for(2))
    assert [c.link.id for c in dask.chosen] == [c.link.id for c in local.chosen]
    assert dask.rounds == local.rounds
    pd.testing.assert_frame_equal(dask.confirm, local.confirm)


BULK = "demands:\n  - {id: bulk, source: a, target: c, rate_bps: 120000, key_bits: 4096}\n"


def test_device_pairs_buy_key_not_hours(chain: Path) -> None:
    """A service asking 120 kbit/s over a-b-c (~69 kbit/s a link): one more pair on each
    link is the best pair of additions for its shortfall (exact, budget 2), and the
    proposal is a twin file with them; against hours unserved a pair changes nothing (an
    equipment failure takes the whole link in this fault model)."""
    chain.write_text(chain.read_text() + BULK)
    base = load_twin_scenario(chain)
    pairs = plan(base, 2, [1], exact=True, device_pairs=True, objective="shortfall",
                 watch=["bulk"])
    assert sorted(c.name for c in pairs.chosen) == ["+1 pair a--b", "+1 pair b--c"]
    [round_] = pairs.rounds
    after = dict((tuple(c.name for c in o), h) for o, h in round_.estimates)
    assert after[("+1 pair a--b", "+1 pair b--c")] < round_.before_h - 30  # ~38 h less
    assert all(c.kind == "pairs" and c.screen_h == 0 for c in pairs.chosen)
    doc = whatif_document(pairs, yaml.safe_load(chain.read_text()))
    assert doc["add_device_pairs"] == {"a--b": 1, "b--c": 1} and "add_links" not in doc
    path = chain.parent / "pairs.yaml"
    path.write_text(yaml.safe_dump(doc))
    loaded = load_twin_scenario(path).network.link
    assert (loaded["a--b"].device_pairs, loaded["b--c"].device_pairs) == (
        base.network.link["a--b"].device_pairs + 1, base.network.link["b--c"].device_pairs + 1)

    hours = plan(base, 1, [1], device_pairs=True, watch=["bulk"])
    [round_] = hours.rounds
    for option, estimate in round_.estimates:
        if option[0].kind == "pairs":
            assert estimate == pytest.approx(round_.before_h)  # 5 h: the cuts, as before
    assert [c.link.id for c in hours.chosen] == ["a--d"]


def test_a_service_can_be_watched_by_its_demand_id(chain: Path) -> None:
    """--watch takes a demand id (any case) as well as a segment; the rows of the search
    name it, and an unknown name lists both kinds."""
    chain.write_text(chain.read_text() + BULK)
    base = load_twin_scenario(chain)
    p = plan(base, 1, [1], watch=["BULK"])
    assert p.watched == ("bulk",)
    assert set(p.search["watched"]) == {"A–C", "bulk"}
    with pytest.raises(ParameterError, match=r"--watch.*A–C, bulk"):
        plan(base, 1, [1], watch=["nothing"])
    with pytest.raises(ParameterError, match="--objective"):
        plan(base, 1, [1], objective="cost")  # type: ignore[arg-type]
