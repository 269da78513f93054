"""``qkdnet twin``: the digital twin's main job and its report; ``qkdnet twin diff A B``:
two reports side by side."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from qkdnet.cli.guard import guard, writable_folder
from qkdnet.errors import ParameterError

commands = typer.Typer()
group = typer.Typer(invoke_without_command=True, no_args_is_help=False)
commands.add_typer(group, name="twin")


@group.callback()
def twin_command(
    ctx: typer.Context,
    weeks: Annotated[float | None, typer.Option(help="Simulated weeks (default 10, or the "
                                                "scenario file's).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of faults and drifts (default 1, or "
                                             "the scenario file's).")] = None,
    scenario: Annotated[Path | None, typer.Option(
        help="Twin scenario file (qkdnet_twin: 1), or a network's scenario file "
             "(qkdnet_scenario: 1: run with every default); default: the built-in cn-qcn "
             "run.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Report folder.")] = Path(
        "twin-report"),
    fmt: Annotated[str, typer.Option("--format", help="Tables of the report: csv or "
                                     "parquet.")] = "csv",
) -> None:
    """Run the digital twin (default: CN-QCN for 10 weeks) and write its report folder:
    index.html with Fig. 5a/5b, Table 1, availability, pools and Fig. 3/4, plus PNG and
    CSV (or Parquet). `qkdnet twin diff A B` compares two report folders."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from qkdnet.twin import scenario as twin_scenario
    from qkdnet.twin.engine import run_twin
    from qkdnet.twin.report import TABLE_FORMATS, summary, write_report
    from qkdnet.units import WEEK_S

    def run() -> None:
        table_format = next((f for f in TABLE_FORMATS if f == fmt), None)
        if table_format is None:
            raise ParameterError("--format", fmt, "must be one of " + ", ".join(TABLE_FORMATS))
        sc = twin_scenario(scenario, weeks, seed)
        writable_folder("--out", out)  # before the run, not after it
        with Progress(TextColumn("[bold]twin[/] {task.description}"), BarColumn(),
                      TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(),
                      console=Console(stderr=True), transient=False) as bar:
            task = bar.add_task(f"{sc.network.name}, {sc.duration_s / WEEK_S:g} weeks",
                                total=sc.duration_s)
            result = run_twin(sc, lambda done, _: bar.update(task, completed=done))
        page = write_report(result, out, table_format)
        _print_summary(summary(result))
        print(f"report: {page}")

    guard(run)


@group.command("diff")
def diff_command(
    a: Annotated[Path, typer.Argument(help="Baseline report folder.")],
    b: Annotated[Path, typer.Argument(help="What-if report folder.")],
    fmt: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """Two twin report folders side by side: what-if B against baseline A.

    Per segment its mean SKR and hours unserved, per service its hours unserved and key
    served, and the totals; then a line naming each change in hours unserved."""
    from qkdnet.twin.diff import diff

    def run() -> None:
        if fmt not in ("table", "json"):
            raise ParameterError("--format", fmt, "must be one of table, json")
        rows = diff(a, b)
        if fmt == "json":
            print(json.dumps(rows, indent=2, ensure_ascii=False))
            return
        console = Console()
        _diff_table(console, f"Segments: {b} (B) against {a} (A)", rows["segments"], [
            ("segment", lambda r: str(r["segment"])),
            ("SKR A", lambda r: _side(r["mean_skr_kbps_a"], _kbps)),
            ("SKR B", lambda r: _side(r["mean_skr_kbps_b"], _kbps)),
            ("SKR change", lambda r: _relative(r["mean_skr_kbps_a"], r["mean_skr_kbps_b"])),
            ("unserved A", lambda r: _side(r["hours_unserved_a"], _hours)),
            ("unserved B", lambda r: _side(r["hours_unserved_b"], _hours)),
            ("change", lambda r: _signed(r["hours_unserved_change"], _hours))])
        _diff_table(console, "Services", rows["services"], [
            ("service", lambda r: str(r["service"])),
            ("unserved A", lambda r: _side(r["hours_unserved_a"], _hours)),
            ("unserved B", lambda r: _side(r["hours_unserved_b"], _hours)),
            ("change", lambda r: _signed(r["hours_unserved_change"], _hours)),
            ("served A", lambda r: _side(r["served_fraction_a"], _share)),
            ("served B", lambda r: _side(r["served_fraction_b"], _share)),
            ("change", lambda r: _signed(r["served_fraction_change"], _share))])
        _diff_table(console, "Totals", rows["totals"], [
            ("figure", lambda r: str(r["figure"]).removesuffix("_bits").replace("_", " ")),
            ("A", lambda r: _total(r, "a")), ("B", lambda r: _total(r, "b")),
            ("change", lambda r: _total(r, "change"))])
        for r in [*rows["segments"], *rows["services"]]:
            change = r["hours_unserved_change"]
            if change:  # name what the what-if changed
                name = r.get("segment") or r["service"]
                console.print(f"{name}: {'+' if change > 0 else ''}{change:.2f} h unserved "
                              f"in B ({r['hours_unserved_b']:.2f} h against "
                              f"{r['hours_unserved_a']:.2f} h)", highlight=False)

    guard(run)


def _kbps(x: float) -> str:
    from qkdnet.twin.quantities import human

    return human(x * 1e3, "bit/s")


def _hours(x: float) -> str:
    from qkdnet.twin.quantities import hours

    return hours(x)


def _share(x: float) -> str:
    return f"{100 * x:.2f}%"


def _side(x: float | None, show: Callable[[float], str]) -> str:
    return "-" if x is None else show(x)


def _signed(change: float | None, show: Callable[[float], str]) -> str:
    """A change, signed, bold where it is not 0."""
    if change is None:
        return "-"
    text = ("+" if change > 0 else "") + show(change)
    return f"[bold]{text}[/]" if change else text


def _relative(a: float | None, b: float | None) -> str:
    if a is None or b is None or a == 0:
        return "-"
    return _signed(100 * (b / a - 1), lambda x: f"{x:.1f}%")


def _total(row: dict[str, Any], side: str) -> str:
    from qkdnet.twin.quantities import human

    def show(x: float) -> str:
        return human(x, "bit") if str(row["figure"]).endswith("_bits") else f"{x:g}"

    value = row[f"{row['figure']}_{side}"]
    return _signed(value, show) if side == "change" else _side(value, show)


def _diff_table(console: Console, title: str, rows: list[dict[str, Any]],
                columns: list[tuple[str, Callable[[dict[str, Any]], str]]]) -> None:
    """A rich table of ``rows``, one column per (header, cell of a row)."""
    if not rows:
        return
    table = Table(title=title)
    for k, (head, _) in enumerate(columns):
        table.add_column(head, justify="left" if k == 0 else "right", no_wrap=k == 0)
    for r in rows:
        table.add_row(*(cell(r) for _, cell in columns))
    console.print(table)


def _print_summary(s: dict[str, Any]) -> None:
    from qkdnet.twin.quantities import hours, human

    if s["segments"]:
        table = Table(title="Segments of the watched path")
        for column in ("segment", "links", "mean SKR", "hours unserved"):
            table.add_column(column, justify="left" if column == "segment" else "right")
        for g in s["segments"]:
            table.add_row(g["name"], str(g["links"]), human(g["mean_skr_kbps"] * 1e3, "bit/s"),
                          hours(g["hours_unserved"]))
        Console().print(table)
    if "watched_link_skr_kbps" in s:
        span = s["watched_link_skr_kbps"]
        print(f"per-link average SKR along the path: {human(span['min'] * 1e3, 'bit/s')} "
              f"to {human(span['max'] * 1e3, 'bit/s')}")
