"""``qkdnet plan SCENARIO --budget K``: which new QKD-links (or, with ``--device-pairs``,
extra device pairs) most cut the hours unserved of the watched segments and services
(:mod:`qkdnet.twin.plan`), as a table or JSON, and with ``--out`` the proposal as a what-if
twin file for ``qkdnet twin --scenario``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from qkdnet.cli.guard import guard
from qkdnet.errors import ParameterError

commands = typer.Typer()


@commands.command("plan")
def plan_command(
    scenario: Annotated[str, typer.Argument(
        help="cn-qcn (built in), a twin file (qkdnet_twin: 1) or a network's scenario "
             "file.")] = "cn-qcn",
    budget: Annotated[int, typer.Option(help="New QKD-links (or device pairs) to propose, "
                                        "at most.")] = 1,
    max_km: Annotated[float, typer.Option(help="Longest new fibre (km): great circle x "
                                          "1.39.")] = 150.0,
    endpoints: Annotated[str, typer.Option(help="trusted (access, relay, BSBN and metro "
                                           "access nodes) or access.")] = "trusted",
    shortlist: Annotated[int, typer.Option(help="Candidates per round run on the twin, "
                                           "best of the pre-screen.")] = 5,
    exact: Annotated[bool, typer.Option(help="Run every set of up to --budget (1 or 2) "
                                        "shortlisted candidates, not greedy.")] = False,
    objective: Annotated[str, typer.Option(
        help="hours (hours unserved) or shortfall (key not given, in hours of the asked "
             "rate: counts what device pairs buy).")] = "hours",
    device_pairs: Annotated[bool, typer.Option(
        "--device-pairs", help="Also try one more device pair on each QKD-link of the "
                               "watched paths (the --shortlist slowest).")] = False,
    seeds: Annotated[str, typer.Option(help="Seeds of the search: A:B (both included) or "
                                       "a,b,c.")] = "1:8",
    confirm_seeds: Annotated[str, typer.Option(
        help="Fresh seeds the proposal is confirmed on: A:B, a,b,c, auto (as many as "
             "--seeds, after them) or none.")] = "auto",
    weeks: Annotated[float | None, typer.Option(help="Simulated weeks per run (default: "
                                                "the scenario's, 10 for cn-qcn).")] = None,
    watch: Annotated[list[str] | None, typer.Option(
        help="A watched segment (Harbin-Beijing) or a demand's id (a service) to protect; "
             "repeat for several; default every watched segment.")] = None,
    workers: Annotated[int | None, typer.Option(help="Twin runs at once: 1 (the default) in "
                                                "this process, more on a local Dask "
                                                "cluster of that many workers.")] = None,
    scheduler: Annotated[str | None, typer.Option(help="Run the twin runs on the Dask "
                                                  "cluster at this scheduler address "
                                                  "(tcp://HOST:8786).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Folder for the proposal: "
                                             "plan.yaml (a what-if twin file) and "
                                             "plan.json.")] = None,
) -> None:
    """Propose up to --budget new QKD-links (with --device-pairs, or device pairs) that
    most lower the expected hours unserved of the watched segments and services:
    candidates within --max-km, engineered by the span rule, pre-screened by the single
    points of failure they remove, then chosen greedily (or, with --exact, over every set
    of the shortlist) on twin runs over --seeds and confirmed on fresh seeds."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from qkdnet.twin import scenario as twin_scenario
    from qkdnet.twin.plan import plan, plan_summary, runner_for
    from qkdnet.twin.sweep import parse_seeds

    def run() -> None:
        if fmt not in ("table", "json"):
            raise ParameterError("--format", fmt, "must be one of table, json")
        if objective not in ("hours", "shortfall"):
            raise ParameterError("--objective", objective, "must be one of hours, shortfall")
        if endpoints not in ("trusted", "access"):
            raise ParameterError("--endpoints", endpoints, "must be one of trusted, access")
        search = tuple(parse_seeds(seeds))
        confirm = _confirm(confirm_seeds, search)
        base = twin_scenario(None if scenario == "cn-qcn" else Path(scenario), weeks)
        with Progress(TextColumn("[bold]plan[/] twin runs"), BarColumn(),
                      MofNCompleteColumn(), console=Console(stderr=True),
                      transient=True) as bar:
            task = bar.add_task("runs", total=None)
            runner = runner_for(workers, lambda done, total: bar.update(
                task, completed=done, total=total), scheduler)
            proposal = plan(base, budget, search, runner=runner, max_km=max_km,
                            endpoints="access" if endpoints == "access" else "trusted",
                            shortlist=shortlist, watch=watch or (), confirm_seeds=confirm,
                            exact=exact, device_pairs=device_pairs,
                            objective="shortfall" if objective == "shortfall" else "hours")
        summary = plan_summary(proposal)
        if out is not None:
            _write(out, proposal, summary, scenario, weeks)
        if fmt == "json":
            print(json.dumps(summary, indent=2, ensure_ascii=False))
        else:
            _print(summary)
        if out is not None and fmt == "table":
            print(f"what-if: {out / 'plan.yaml'}  (qkdnet twin --scenario "
                  f"{out / 'plan.yaml'})")

    guard(run)


def _confirm(text: str, search: tuple[int, ...]) -> tuple[int, ...]:
    if text == "none":
        return ()
    if text == "auto":
        return tuple(range(max(search) + 1, max(search) + 1 + len(search)))
    from qkdnet.twin.sweep import parse_seeds

    return tuple(parse_seeds(text, "--confirm-seeds"))


def _write(out: Path, proposal: Any, summary: dict[str, Any], scenario: str,
           weeks: float | None) -> None:
    """plan.yaml (the base's twin document with the chosen links added) and plan.json."""
    import yaml

    from qkdnet.twin.plan import whatif_document

    out.mkdir(parents=True, exist_ok=True)
    base = _base_document(scenario, out)
    if weeks is not None:
        base["weeks"] = weeks
    doc = whatif_document(proposal, base)
    head = (f"# What-if proposed by `qkdnet plan {scenario}`: the base with "
            f"{sum(c.kind == 'link' for c in proposal.chosen)} new QKD-link(s) under "
            f"add_links and {sum(c.kind == 'pairs' for c in proposal.chosen)} device "
            "pair(s) under add_device_pairs.\n"
            "# Run it: qkdnet twin --scenario plan.yaml; on the same seed every other link "
            "fails as in the base.\n")
    (out / "plan.yaml").write_text(head + yaml.safe_dump(doc, sort_keys=False,
                                                         allow_unicode=True),
                                   encoding="utf-8")
    (out / "plan.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n",
                                   encoding="utf-8")


def _base_document(scenario: str, out: Path) -> dict[str, Any]:
    """The base as a twin document whose ``network`` resolves from ``out``."""
    import yaml

    from qkdnet.topology.scenarios import BUILT_IN

    if scenario == "cn-qcn":
        return {"qkdnet_twin": 1, "network": "cn-qcn"}
    path = Path(scenario)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if isinstance(data, dict) and "qkdnet_twin" in data:
        doc = dict(data)
        network = str(doc.get("network", "cn-qcn"))
        if network not in BUILT_IN:
            doc["network"] = os.path.relpath(path.parent / network, out)
        return doc
    return {"qkdnet_twin": 1, "network": os.path.relpath(path, out)}


def _print(s: dict[str, Any]) -> None:
    console = Console(soft_wrap=True)
    console.print(f"{s['network']}, {s['weeks']:g} weeks per run; search seeds "
                  f"{_span(s['seeds'])}, confirmation seeds {_span(s['confirm_seeds'])}; "
                  f"watched: {', '.join(s['watched'])}", highlight=False)
    console.print(f"method: {s['method']}; objective: {s['objective']}", highlight=False)
    for k, r in enumerate(s["rounds"], start=1):
        table = Table(title=f"Round {k}: expected {s['objective'].split(' (')[0]}, now "
                            f"{r['before_h']:.3f} h")
        for col in ("candidate", "estimate", "pre-screen"):
            table.add_column(col, justify="left" if col == "candidate" else "right")
        for c in r["candidates"]:
            mark = "[bold]" if c["link"] == r["chosen"] else ""
            table.add_row(f"{mark}{c['link']}", f"{c['estimate_h']:.3f} h",
                          f"{c['screen_h']:.3f} h")
        console.print(table)
    if not s["chosen"]:
        console.print("no candidate lowers the expected objective on these runs")
    for c in s["chosen"]:
        if c["kind"] == "pairs":
            console.print(f"[bold]proposed[/]: {c['name']} (then {c['device_pairs']} x "
                          f"type {c['device_type']}, {c['design_kbps']:.1f} kbit/s at the "
                          f"pessimistic corner): {c['before_h']:.3f} h -> "
                          f"{c['after_h']:.3f} h", highlight=False)
            continue
        console.print(f"[bold]proposed[/]: {c['link']} ({c['length_km']:.0f} km, "
                      f"{c['loss_db']:.1f} dB, {c['device_pairs']} x type "
                      f"{c['device_type']}, {c['design_kbps']:.1f} kbit/s at the "
                      f"pessimistic corner): {c['before_h']:.3f} h -> {c['after_h']:.3f} h",
                      highlight=False)
    for title, rows in (("Search", s["search"]), ("Confirmation on fresh seeds",
                                                  s["confirm"])):
        if not rows:
            continue
        table = Table(title=f"{title}: {s['objective'].split(' (')[0]} per run")
        for col in ("variant", "watched", "runs", "mean", "± s.e.", "p5", "median", "p95"):
            table.add_column(col, justify="left" if col in ("variant", "watched") else "right")
        for r in rows:
            table.add_row(r["variant"], r["watched"], str(r["runs"]),
                          *(f"{r[k]:.3f}" for k in ("mean_h", "sem_h", "p5_h", "median_h",
                                                     "p95_h")))
        console.print(table)

    for title, rows in (("search", s["search_change"]), ("fresh seeds", s["confirm_change"])):
        for r in rows:
            if r["watched"] in s["watched"]:
                console.print(f"{r['watched']}, {title}: {r['mean_change_h']:+.3f} h a run "
                              f"on average; lower in {r['lower_runs']} of {r['runs']} runs, "
                              f"higher in {r['higher_runs']}", highlight=False)


def _span(seeds: list[int]) -> str:
    if not seeds:
        return "none"
    if seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 2:
        return f"{seeds[0]}:{seeds[-1]}"
    return ",".join(map(str, seeds))
