"""``qkdnet satellite passes`` and ``qkdnet satellite plot``: the satellite's passes over
the cn-qcn ground stations, with the key each leaves, and one pass drawn."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from qkdnet.cli.guard import guard
from qkdnet.cli.options import FormatOption
from qkdnet.cli.output import Row, output_format, render
from qkdnet.errors import ParameterError, ScenarioError
from qkdnet.quantum.orbit import JINAN1_TLE, GroundStation, Orbit
from qkdnet.quantum.passes import PassRules, PassTrack, pass_tracks

commands = typer.Typer(no_args_is_help=True,
                       help="The Jinan-1-like satellite: passes over the ground stations.")

#: The default scenario epoch (UTC): the built-in TLE's epoch.
DEFAULT_EPOCH = "2025-01-01T00:00:00Z"

DaysOption = Annotated[float, typer.Option("--days", help="Span to search (days).")]
StationOption = Annotated[list[str] | None, typer.Option(
    "--station", help="Ground station id (repeatable; default: all cn-qcn ground stations).")]
TleOption = Annotated[Path | None, typer.Option(
    "--tle", help="TLE file (2 lines, or 3 with a name); default: the built-in, ASSUMED "
    "Jinan-1-like set.")]
EpochOption = Annotated[str, typer.Option(
    "--epoch", help="Scenario epoch, ISO 8601 UTC; times count from it.")]
MinElevationOption = Annotated[float, typer.Option(
    "--min-elevation", help="Minimum elevation of a pass (deg).")]
SunOption = Annotated[float, typer.Option(
    "--max-sun-elevation", help="Key only while the sun is below this elevation (deg).")]


def _stations(wanted: list[str] | None) -> list[GroundStation]:
    from qkdnet.topology.cn_qcn import build_cn_qcn
    from qkdnet.topology.model import NodeKind

    known = [GroundStation(n.id, n.lat, n.lon)
             for n in build_cn_qcn().nodes_of(NodeKind.GROUND_STATION)]
    if not wanted:
        return known
    by_id = {s.id: s for s in known}
    for name in wanted:
        if name not in by_id:
            raise ParameterError("--station", name, "unknown ground station; known: "
                                 + ", ".join(by_id))
    return [by_id[name] for name in wanted]


def _orbit(tle: Path | None) -> Orbit:
    if tle is None:
        return Orbit.from_tle(JINAN1_TLE)
    try:
        text = tle.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError("tle", f"cannot be read: {exc}", str(tle)) from None
    return Orbit.from_tle(text, str(tle))


def _epoch(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ParameterError("--epoch", text, "must be an ISO 8601 time, e.g. "
                             + DEFAULT_EPOCH) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _tracks(days: float, station: list[str] | None, tle: Path | None, epoch: str,
            min_elevation: float, max_sun_elevation: float) -> tuple[datetime, list[PassTrack]]:
    if not 0 < days <= 366:
        raise ParameterError("--days", days, "must be in (0, 366]")
    start = _epoch(epoch)
    rules = PassRules(min_elevation_deg=min_elevation, max_sun_elevation_deg=max_sun_elevation)
    return start, pass_tracks(_orbit(tle), _stations(station), start, days * 86400.0, rules)


def _utc(epoch: datetime, t_s: float) -> str:
    return (epoch + timedelta(seconds=round(t_s))).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cell(column: str, value: Any) -> str:
    if column == "key_bits":
        return f"{value / 1e3:.1f} kbit"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


@commands.command("passes")
def passes_command(
    days: DaysOption = 7.0, station: StationOption = None, tle: TleOption = None,
    epoch: EpochOption = DEFAULT_EPOCH, min_elevation: MinElevationOption = 10.0,
    max_sun_elevation: SunOption = 0.0, fmt: FormatOption = "table",
) -> None:
    """List the passes over the ground stations: rise, culmination and set (UTC), the
    highest elevation, night or day, and the secure key each leaves."""
    console = Console(soft_wrap=True)

    def rows() -> None:
        out_format = output_format(fmt)
        start, tracks = _tracks(days, station, tle, epoch, min_elevation, max_sun_elevation)
        result: list[Row] = []
        for track in tracks:
            p = track.summary()
            result.append({
                "satellite": p.satellite, "station": p.station,
                "rise_utc": _utc(start, p.rise_s), "culmination_utc": _utc(start, p.culmination_s),
                "set_utc": _utc(start, p.set_s), "duration_s": round(p.duration_s, 1),
                "max_elevation_deg": round(p.max_elevation_deg, 2),
                "night": bool(track.night.any()), "key_bits": round(p.key_bits),
            })
        render(result, out_format, console, _cell)

    guard(rows)


@commands.command("plot")
def plot_command(
    folder: Annotated[Path, typer.Argument(help="Folder for the PNG and CSV.")],
    days: DaysOption = 7.0, station: StationOption = None, tle: TleOption = None,
    epoch: EpochOption = DEFAULT_EPOCH, min_elevation: MinElevationOption = 10.0,
    max_sun_elevation: SunOption = 0.0,
) -> None:
    """Draw the secure key rate and elevation of the pass with the most key."""
    from qkdnet.figures.satellite_pass import write_pass_figure

    def draw() -> None:
        start, tracks = _tracks(days, station, tle, epoch, min_elevation, max_sun_elevation)
        if not tracks:
            raise ParameterError("--days", days, "no pass in that span")
        best = max(tracks, key=lambda t: t.key_bits)
        for path in write_pass_figure(best, folder, _utc(start, float(best.t_s[0]))):
            print(path)

    guard(draw)
