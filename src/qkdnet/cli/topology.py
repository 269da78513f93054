"""``qkdnet topology ...``: the network as data (summary, exports, map, generator)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from qkdnet.cli.guard import guard, writable_file
from qkdnet.cli.options import FormatOption, ScenarioOption
from qkdnet.cli.output import output_format, render
from qkdnet.errors import ParameterError

commands = typer.Typer(help="The network as data: summary, exports, map, generator.",
                       no_args_is_help=True)


@commands.command("summary")
def topology_summary(scenario: ScenarioOption = "cn-qcn", fmt: FormatOption = "table") -> None:
    """Headline figures: nodes, links, fibre km and mean loss per part of the network."""
    from qkdnet.files.networks import open_network
    from qkdnet.topology.summary import summary

    console = Console(soft_wrap=True)

    def show() -> None:
        out_format = output_format(fmt)
        figures = summary(open_network(scenario))
        if out_format == "json":
            console.file.write(json.dumps(figures, indent=2) + "\n")
        else:
            render([{"figure": k, "value": v} for k, v in figures.items()], out_format, console)

    guard(show)


#: Export formats and the file suffixes that name them when --format is not given.
EXPORT_SUFFIXES = {".graphml": "graphml", ".geojson": "geojson", ".yaml": "yaml",
                   ".yml": "yaml", ".json": "json"}


def export_format(fmt: str | None, output: Path) -> str:
    """The export format: ``--format`` when given (it wins over the file's suffix), else the
    one the suffix names, else GraphML."""
    if fmt is None:
        return EXPORT_SUFFIXES.get(output.suffix.lower(), "graphml")
    if fmt not in EXPORT_SUFFIXES.values():
        raise ParameterError("--format", fmt, "must be graphml, geojson, yaml or json")
    return fmt


@commands.command("export")
def topology_export(
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write, named as "
                                         "given.")],
    fmt: Annotated[str | None, typer.Option(
        "--format", "-f", help="graphml, geojson, yaml or json; wins over the file's suffix "
        "(default: the suffix's format, else graphml).")] = None,
    scenario: ScenarioOption = "cn-qcn",
) -> None:
    """Write the network as GraphML, GeoJSON or a scenario file (YAML/JSON)."""
    from qkdnet.files.exports import write_geojson, write_graphml
    from qkdnet.files.networks import open_network, save_network

    def export() -> None:
        chosen = export_format(fmt, output)
        writable_file("--output", output)
        network = open_network(scenario)
        if chosen == "graphml":
            write_graphml(network, output)
        elif chosen == "geojson":
            write_geojson(network, output)
        else:
            save_network(network, output, "json" if chosen == "json" else "yaml")
        print(f"{output} ({chosen})")

    guard(export)


@commands.command("map")
def topology_map(
    output: Annotated[Path, typer.Option("--output", "-o", help="PNG file to write.")],
    scenario: ScenarioOption = "cn-qcn",
) -> None:
    """Draw the network on longitude/latitude like the paper's Fig. 1."""
    from qkdnet.figures.network_map import draw_map
    from qkdnet.files.networks import open_network

    def run() -> None:
        writable_file("--output", output)
        print(draw_map(open_network(scenario), output))

    guard(run)


@commands.command("generate")
def topology_generate(
    nodes: Annotated[int, typer.Option("--nodes", "-n", help="How many nodes.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Scenario file to write "
                                         "(.yaml or .json).")],
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 1,
) -> None:
    """A synthetic carrier-like network of any size (backbone chains and rings, metro
    trees), reproducible from the seed, written as a scenario file."""
    from qkdnet.files.networks import save_network
    from qkdnet.topology.generator import generate_network

    def run() -> None:
        writable_file("--output", output)
        print(save_network(generate_network(nodes, seed), output))

    guard(run)
