"""Options several command groups share."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

#: The data folder of `qkdnet serve`, and where `fault`, `operator` and `app` look for it,
#: unless --dir (or --manifest) names another: one default, so copied commands agree.
DATA_FOLDER = Path("qkdnet-live")

FormatOption = Annotated[str, typer.Option("--format", "-f", help="table, csv or json.")]
ScenarioOption = Annotated[
    str, typer.Option("--scenario", "-s", help="Built-in scenario name (cn-qcn) or a "
                      "scenario file (YAML/JSON).")
]
SatellitePrefillOption = Annotated[float, typer.Option(
    help="Key (bits) each satellite pool with a ground station starts with (a new satellite "
    "segment: one resumed from its state file keeps its pools), so that satellite KM-links "
    "serve before the first pass.")]
SatellitePoolOption = Annotated[float, typer.Option(
    help="Key a satellite pool with a ground station holds at most (bits).")]
SatelliteStartOption = Annotated[str, typer.Option(
    help="UTC time the satellite clock starts at (ISO 8601); it runs --speedup times the "
    "wall clock, and resumes where it stopped after a restart.")]
SatelliteCloudOption = Annotated[list[str] | None, typer.Option(
    help="A ground station whose passes yield no key (clouds, an outage); repeat for "
    "several.")]
#: The satellite clock's default start: 20:00 China Standard Time on the built-in TLE's
#: epoch day (live/satellite_supply.py's DEFAULT_START).
SATELLITE_START = "2025-01-01T12:00:00Z"
