"""``qkdnet twin``: the digital twin's main job and its report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from qkdnet.cli.guard import guard
from qkdnet.cli.output import Row, render
from qkdnet.errors import ParameterError

commands = typer.Typer()


@commands.command("twin")
def twin_command(
    weeks: Annotated[float | None, typer.Option(help="Simulated weeks (default 10, or the "
                                                "scenario file's).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of faults and drifts (default 1, or "
                                             "the scenario file's).")] = None,
    scenario: Annotated[Path | None, typer.Option(help="Twin scenario file (YAML/JSON); "
                                                  "default: the built-in cn-qcn run.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Report folder.")] = Path(
        "twin-report"),
) -> None:
    """Run the digital twin (default: CN-QCN for 10 weeks) and write its report folder:
    index.html with Fig. 5a/5b, Table 1, availability, pools and Fig. 3/4, plus PNG and CSV."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from qkdnet.twin.engine import run_twin
    from qkdnet.twin.report import summary, write_report
    from qkdnet.twin.scenario import built_in_scenario, load_twin_scenario
    from qkdnet.units import WEEK_S

    def run() -> None:
        if weeks is not None and not weeks > 0:
            raise ParameterError("--weeks", weeks, "must be > 0")
        if scenario is None:
            sc = built_in_scenario(10.0 if weeks is None else weeks, 1 if seed is None else seed)
        else:
            sc = load_twin_scenario(scenario, weeks, seed)
        with Progress(TextColumn("[bold]twin[/] {task.description}"), BarColumn(),
                      TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(),
                      console=Console(stderr=True), transient=False) as bar:
            task = bar.add_task(f"{sc.network.name}, {sc.duration_s / WEEK_S:g} weeks",
                                total=sc.duration_s)
            result = run_twin(sc, lambda done, _: bar.update(task, completed=done))
        page = write_report(result, out)
        _print_summary(summary(result))
        print(f"report: {page}")

    guard(run)


def _print_summary(s: dict[str, Any]) -> None:
    rows: list[Row] = [{"segment": g["name"], "links": g["links"],
                        "mean SKR (kbit/s)": f"{g['mean_skr_kbps']:.2f}",
                        "hours unserved": f"{g['hours_unserved']:.2f}"} for g in s["segments"]]
    if rows:
        render(rows, "table", Console(), title="Segments of the watched path")
    if "watched_link_skr_kbps" in s:
        span = s["watched_link_skr_kbps"]
        print(f"per-link average SKR along the path: {span['min']:.2f} to {span['max']:.1f} "
              "kbit/s")
