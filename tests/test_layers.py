"""Architecture rules that hold for every module: imports flow downwards only, and the
layer packages do no I/O of their own."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "qkdnet"
# Lower layers first (DESIGN.md): a package may import only from those before it.
LAYERS = ["topology", "quantum", "keys", "control", "management", "apps"]
DRIVERS = {"twin", "live", "cli"}
# Modules every layer may use: the error tree.
SHARED = {"errors"}
IO_MODULES = {"socket", "asyncio", "time", "subprocess", "threading"}


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py"))


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _package(path: Path) -> str:
    return path.relative_to(SRC).parts[0].removesuffix(".py")


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_layers_import_only_lower_layers(path: Path) -> None:
    """topology <- quantum <- keys <- control <- management <- apps; drivers on top."""
    own = _package(path)
    if own not in LAYERS:
        return
    allowed = set(LAYERS[: LAYERS.index(own) + 1]) | SHARED
    for name in _imports(path):
        parts = name.split(".")
        if parts[0] == "qkdnet" and len(parts) > 1:
            assert parts[1] in allowed, f"{path.name} imports {name}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_layers_do_no_io_of_their_own(path: Path) -> None:
    """Clocks, sockets and processes belong to the drivers, not to the layer logic."""
    if _package(path) not in LAYERS:
        return
    assert not {n.split(".")[0] for n in _imports(path)} & IO_MODULES


def test_the_rules_see_every_package() -> None:
    """A new package has to be placed in the layer order (or be a driver) to be checked."""
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and not p.name.startswith("_")}
    assert packages <= set(LAYERS) | DRIVERS
