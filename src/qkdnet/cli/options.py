"""Options several command groups share."""

from __future__ import annotations

from typing import Annotated

import typer

FormatOption = Annotated[str, typer.Option("--format", "-f", help="table, csv or json.")]
ScenarioOption = Annotated[
    str, typer.Option("--scenario", "-s", help="Built-in scenario name (cn-qcn) or a "
                      "scenario file (YAML/JSON).")
]
