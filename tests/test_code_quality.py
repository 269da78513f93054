"""The code base stays ruff- and mypy-clean (strict), and the quantum layer's public
surface is what its ``__all__`` says."""

from __future__ import annotations

import doctest
import subprocess
import sys
from pathlib import Path

import qkdnet.quantum

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True,
                          text=True, check=False)


def test_ruff_finds_nothing() -> None:
    """Lint and import order across src, tests and benchmarks."""
    done = _run("ruff", "check", "src", "tests", "benchmarks")
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_strict_finds_nothing() -> None:
    """Every function typed; no type errors."""
    done = _run("mypy")
    assert done.returncode == 0, done.stdout + done.stderr


def test_quantum_exports_resolve_once_each() -> None:
    """Each name in __all__ resolves and appears once (ruff keeps the list sorted)."""
    names = qkdnet.quantum.__all__
    assert all(hasattr(qkdnet.quantum, n) for n in names)
    assert len(set(names)) == len(names)


def test_the_quantum_layer_docstring_example_runs() -> None:
    """The example at the top of qkdnet.quantum prints what it says."""
    failed, attempted = doctest.testmod(qkdnet.quantum)
    assert attempted > 0 and failed == 0
