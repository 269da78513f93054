"""The repository's Dockerfile, the image the manifests of `qkdnet deploy` run, checked
without docker: a pinned slim Python base, the package without its test extra, a non-root
user matching the manifests' ids, ``qkdnet`` as entry point, COPY sources that exist, and a
.dockerignore that sends no virtual environment, key or PKI to the build."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

from qkdnet.deploy.containers import DATA_DIR, DEFAULT_IMAGE, RUN_AS_GID, RUN_AS_UID

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of each Dockerfile instruction, continuation lines joined
    and comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(
        line for line in text.splitlines() if not line.lstrip().startswith("#")))
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


@pytest.fixture(scope="module")
def steps() -> list[tuple[str, str]]:
    return _instructions(DOCKERFILE.read_text())


def _all(steps: list[tuple[str, str]], word: str) -> list[str]:
    return [rest for w, rest in steps if w == word]


def test_the_base_is_python_slim_pinned_to_a_supported_minor(steps: list[tuple[str, str]]
                                                              ) -> None:
    """One FROM: python:3.X-slim (or 3.X.Y), X at least the package's requires-python."""
    (base,) = _all(steps, "FROM")
    match = re.fullmatch(r"python:3\.(\d+)(?:\.\d+)?-slim(?:-[a-z]+)?", base)
    assert match is not None, base
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert int(match.group(1)) >= int(requires.split(".")[1])  # ">=3.11"


def test_it_runs_qkdnet_as_the_manifests_non_root_user(steps: list[tuple[str, str]]) -> None:
    """The last USER is uid:gid 10001 (as the manifests say), made with DATA_DIR as its
    home; ENTRYPOINT is the qkdnet console script the package installs."""
    user = _all(steps, "USER")[-1]
    assert user == f"{RUN_AS_UID}:{RUN_AS_GID}" and user.split(":")[0] not in ("0", "root")
    run = " ".join(_all(steps, "RUN"))
    assert f"--uid {RUN_AS_UID}" in run and f"--gid {RUN_AS_GID}" in run
    assert f"--home-dir {DATA_DIR}" in run and f"chmod 0700 {DATA_DIR}" in run
    assert json.loads(_all(steps, "ENTRYPOINT")[-1]) == ["qkdnet"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "qkdnet" in scripts


def test_it_installs_the_package_without_the_test_extra(steps: list[tuple[str, str]]) -> None:
    """pip installs the copied source tree, no extra."""
    installs = [r for r in _all(steps, "RUN") if "pip install" in r]
    assert installs and all("[" not in r and "test" not in r for r in installs)


def test_every_copied_path_exists_and_is_sent_to_the_build(steps: list[tuple[str, str]]
                                                            ) -> None:
    """Each COPY source is in the repository and not excluded by .dockerignore."""
    ignore = _ignore_rules(DOCKERIGNORE.read_text())
    sources = [s for c in _all(steps, "COPY") for s in c.split()[:-1]
               if not s.startswith("--")]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not _ignored(ignore, source.rstrip("/")), source


@pytest.mark.parametrize("path", [
    ".venv/bin/python", "pki/kme/beijing.key", "pki/ca.key", "src/qkdnet/live/pki/x.key",
    "live/stores/beijing.sqlite", "deploy/k8s/secrets.yaml", "src/qkdnet/__pycache__/a.pyc",
    "tests/live/test_kme_crash.py", "test-output/console/map.png"])
def test_dockerignore_keeps_secrets_and_clutter_out(path: str) -> None:
    """Virtual environments, private keys, PKI and data folders, tests: never in the build."""
    assert _ignored(_ignore_rules(DOCKERIGNORE.read_text()), path)


@pytest.mark.parametrize("path", ["pyproject.toml", "README.md", "src/qkdnet/cli/pki.py",
                                  "src/qkdnet/topology/data/cities.csv"])
def test_dockerignore_sends_what_the_build_needs(path: str) -> None:
    """The package's source and metadata go to the build."""
    assert not _ignored(_ignore_rules(DOCKERIGNORE.read_text()), path)


def test_the_manifests_default_image_is_the_one_the_readme_builds() -> None:
    """`docker build -t qkdnet:latest .` in the README makes the image the manifests name."""
    assert DEFAULT_IMAGE == "qkdnet:latest"
    assert f"docker build -t {DEFAULT_IMAGE} ." in (ROOT / "README.md").read_text()


def _ignore_rules(text: str) -> list[tuple[bool, re.Pattern[str]]]:
    """(excludes, pattern) of each .dockerignore line, as Docker reads them: paths relative
    to the context, ``*`` within one name, ``**`` across folders, ``!`` re-includes, the
    last matching line decides."""
    rules = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keep = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        regex = ""
        for part in re.split(r"(\*\*/|\*\*|\*|\?)", pattern):
            regex += {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(
                part, re.escape(part))
        rules.append((not keep, re.compile(regex)))
    return rules


def _ignored(rules: list[tuple[bool, re.Pattern[str]]], path: str) -> bool:
    """Whether ``path`` (or a folder above it) is excluded by ``rules``."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    excluded = False
    for excludes, regex in rules:
        if any(regex.fullmatch(p) for p in prefixes):
            excluded = excludes
    return excluded
