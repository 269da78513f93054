"""``qkdnet twin sweep SCENARIO --seeds 1:1000``: the twin once per seed, on Dask, and the
availability statistics of the runs (:mod:`qkdnet.twin.sweep`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qkdnet.cli.guard import guard
from qkdnet.cli.twin import group

BUILT_IN = "cn-qcn"


@group.command("sweep")
def sweep_command(
    scenario: Annotated[str, typer.Argument(
        help=f"Twin scenario file (qkdnet_twin: 1), a network's scenario file, or "
             f"{BUILT_IN} (the built-in run).")],
    seeds: Annotated[str, typer.Option(help="Seeds: FIRST:LAST (both included) or a comma "
                                       "list.")] = "1:100",
    workers: Annotated[int | None, typer.Option(
        help="Local Dask worker processes (default: one per core; 0: in this process, "
             "no Dask).")] = None,
    scheduler: Annotated[str | None, typer.Option(
        help="An existing Dask scheduler's address (tcp://HOST:8786) instead of local "
             "workers.")] = None,
    weeks: Annotated[float | None, typer.Option(help="Simulated weeks a run (default 10, "
                                                "or the scenario file's).")] = None,
    retries: Annotated[int, typer.Option(help="Tries after a run's first failure.")] = 2,
    out: Annotated[Path, typer.Option("--out", "-o", help="Sweep folder.")] = Path(
        "twin-sweep"),
) -> None:
    """Run the twin once per seed (on a Dask LocalCluster, or a cluster's scheduler) and
    write runs.parquet, availability.parquet, report.md and PNG distributions of hours
    unserved and SKR (the paper's Table 1 drawn for cn-qcn)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from qkdnet.twin import scenario as twin_scenario
    from qkdnet.twin.sweep import parse_seeds, run_sweep
    from qkdnet.twin.sweep_report import write_sweep_report

    def run() -> None:
        chosen = parse_seeds(seeds)
        sc = twin_scenario(None if scenario == BUILT_IN else Path(scenario), weeks)
        where = scheduler or (f"{workers} local workers" if workers else
                              "in process" if workers == 0 else "local workers")
        with Progress(TextColumn("[bold]sweep[/] {task.description}"), BarColumn(),
                      MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                      console=Console(stderr=True)) as bar:
            task = bar.add_task(f"{sc.network.name}, {len(chosen)} seeds, {where}",
                                total=len(chosen))
            runs = run_sweep(sc, chosen, workers=workers, scheduler=scheduler,
                             progress=lambda done, _: bar.update(task, completed=done),
                             retries=retries)
        page = write_sweep_report(runs, out)
        failed = runs[runs["kind"] == "failed"]
        if len(failed):
            print(f"{len(failed)} run(s) failed (seeds "
                  f"{', '.join(map(str, failed['seed']))}): see {page}")
        print(f"report: {page}")

    guard(run)
