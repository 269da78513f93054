"""Networks from and to files: a built-in scenario by name or a scenario file, and a
network saved as YAML or JSON (the format is :mod:`qkdnet.topology.scenario_file`)."""

from __future__ import annotations

from pathlib import Path

from qkdnet.errors import ScenarioError
from qkdnet.files.documents import document_format, read_document
from qkdnet.topology.model import Network
from qkdnet.topology.scenario_file import DocumentFormat, format_network, parse_network
from qkdnet.topology.scenarios import BUILT_IN


def open_network(spec: str) -> Network:
    """The built-in scenario named ``spec``, else the scenario file at that path."""
    if spec in BUILT_IN:
        return BUILT_IN[spec]()
    path = Path(spec)
    if not path.is_file():
        raise ScenarioError("--scenario", f"{spec!r} is neither a built-in scenario ("
                            + ", ".join(BUILT_IN) + ") nor a file")
    return load_network(path)


def load_network(path: Path) -> Network:
    """Read and validate a scenario file; every problem is a ScenarioError naming
    the file, the line and the path in the document."""
    return parse_network(read_document(path), str(path), document_format(path))


def save_network(network: Network, path: Path, fmt: DocumentFormat | None = None) -> Path:
    """Write ``network`` as ``fmt``, by default JSON for a ``.json`` file and YAML for any
    other suffix; returns ``path``."""
    path.write_text(format_network(network, fmt or document_format(path)), encoding="utf-8")
    return path
