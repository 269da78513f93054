"""Architecture rules that hold for every module: imports flow downwards only, and the
layer packages do no I/O of their own, draw no plots and take no unseeded randomness
(a driver injects what they need)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "qkdnet"
# Lower layers first: a package may import only from those before it. Physics needs no
# network, so quantum is the lowest; the network records each link's device by its
# catalogue name and draws its field parameters from the catalogue's spread.
LAYERS = ["quantum", "topology", "keys", "control", "management", "apps"]
DRIVERS = {"twin", "live", "cli", "figures", "files", "deploy"}
# Leaf modules every layer may use: the error tree and the units of time.
SHARED = {"errors", "units"}
# Modules held to the I/O and randomness rules: the layers and the shared leaves. Not apps:
# an application is an end system (an SAE) that talks to its KME over the network, reads
# and writes its users' files and makes its own nonces, as any client of a library would.
SANS_IO = (set(LAYERS) - {"apps"}) | SHARED
FORBIDDEN_IMPORTS = {
    # clocks, sockets, processes
    "socket", "asyncio", "time", "subprocess", "threading",
    # files and drawing
    "shutil", "zipfile", "tempfile", "glob", "matplotlib",
    # randomness from the machine, not from a seed
    "secrets", "random", "uuid",
}
# Methods that touch the file system, on Path objects mostly (Path.read_text, ...).
FILE_METHODS = {"open", "read_text", "write_text", "read_bytes", "write_bytes", "mkdir",
                "iterdir", "glob", "rglob", "unlink", "touch", "rmdir", "exists", "is_file",
                "is_dir"}
OS_CALLS = {"urandom", "replace", "rename", "remove", "unlink", "mkdir", "makedirs",
            "listdir", "scandir", "walk", "open", "getrandom"}
# numpy's seedable generators; any other call on np.random uses the global, unseeded state.
NUMPY_SEEDABLE = {"default_rng", "Generator", "SeedSequence", "PCG64", "PCG64DXSM",
                  "Philox", "SFC64", "MT19937", "BitGenerator"}


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py"))


def _imports(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _package(path: Path) -> str:
    return path.relative_to(SRC).parts[0].removesuffix(".py")


def _name(path: Path) -> str:
    return path.relative_to(SRC).as_posix()


def _dotted(node: ast.expr) -> str:
    """``np.random.default_rng`` for that attribute chain; '' for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else ""
    return ""


def _reads_package_data(node: ast.expr) -> bool:
    """Whether ``node`` is built on ``resources.files(...)``: the package's own data files
    ship with the code (like a module), so reading them reaches nothing outside it."""
    return any(isinstance(n, ast.Call) and _dotted(n.func).endswith("resources.files")
               for n in ast.walk(node))


def _call_violation(call: ast.Call) -> str | None:
    func = call.func
    dotted = _dotted(func)
    if dotted == "open":
        return "open()"
    if dotted.startswith("os.") and dotted.removeprefix("os.") in OS_CALLS:
        return f"{dotted}()"
    if dotted.endswith("default_rng") and (not call.args or _is_none(call.args[0])):
        return "default_rng() without a seed"
    parts = dotted.split(".")
    if len(parts) >= 3 and parts[-3] in {"np", "numpy"} and parts[-2] == "random" \
            and parts[-1] not in NUMPY_SEEDABLE:
        return f"{dotted}() on numpy's global random state"
    if isinstance(func, ast.Attribute) and func.attr in FILE_METHODS \
            and not _reads_package_data(func.value):
        return f".{func.attr}()"
    return None


def _is_none(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def _violations(tree: ast.Module) -> list[str]:
    """What a module does that a sans-I/O layer may not: forbidden imports, file-system
    calls and unseeded randomness, each named."""
    found = [f"imports {n}" for n in sorted(_imports(tree))
             if n.split(".")[0] in FORBIDDEN_IMPORTS]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "os":
            found += [f"from os import {a.name}" for a in node.names if a.name in OS_CALLS]
        elif isinstance(node, ast.Call) and (problem := _call_violation(node)):
            found.append(f"line {node.lineno}: {problem}")
    return found


def _sans_io_modules() -> list[Path]:
    return [p for p in _modules() if _package(p) in SANS_IO]


@pytest.mark.parametrize("path", _modules(), ids=_name)
def test_layers_import_only_lower_layers(path: Path) -> None:
    """quantum <- topology <- keys <- control <- management <- apps; drivers on top."""
    own = _package(path)
    if own in SHARED:
        allowed = set()
    elif own in LAYERS:
        allowed = set(LAYERS[: LAYERS.index(own) + 1]) | SHARED
    else:
        return
    for name in _imports(_tree(path)):
        parts = name.split(".")
        if parts[0] == "qkdnet" and len(parts) > 1:
            assert parts[1] in allowed, f"{path.name} imports {name}"


@pytest.mark.parametrize("path", _sans_io_modules(), ids=_name)
def test_layers_do_no_io_and_take_no_unseeded_randomness(path: Path) -> None:
    """Clocks, sockets, processes, files, plots and fresh randomness belong to the drivers,
    not to the layer logic."""
    assert _violations(_tree(path)) == []


def test_the_rules_see_what_they_are_meant_to() -> None:
    """The checker finds each kind of violation in a sample and passes clean code."""
    bad = ("import secrets\nimport matplotlib.pyplot as plt\nfrom os import urandom\n"
           "open('f')\nPath('x').write_text('y')\nos.replace('a', 'b')\n"
           "np.random.default_rng()\nnp.random.random(3)\n")
    good = ("import numpy as np\nrng = np.random.default_rng(seed)\n"
            "params = device.params.replace(e_d=0.01)\n"
            "text = (resources.files('qkdnet.topology') / 'd.csv').read_text()\n")
    assert len(_violations(ast.parse(bad))) == 8
    assert _violations(ast.parse(good)) == []


def test_the_rules_see_every_package() -> None:
    """A new package has to be placed in the layer order (or be a driver) to be checked."""
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and not p.name.startswith("_")}
    assert packages <= set(LAYERS) | DRIVERS
