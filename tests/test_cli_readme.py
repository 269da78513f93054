"""The README keeps to the command line: every ``qkdnet ...`` in its bash blocks names a real
command and real options, its links stay inside the repository, and its data folder is the
one the commands default to."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer.main

from qkdnet.cli import app
from qkdnet.cli.options import DATA_FOLDER

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
#: Separators between the commands of one shell line.
_SEPARATORS = re.compile(r"\|\||&&|[|;&]|\$\(|`")


def bash_blocks(text: str) -> list[tuple[int, str]]:
    """Each ```bash block of ``text`` with the line it starts on, continuation lines
    joined."""
    blocks = []
    for match in re.finditer(r"^```bash\n(.*?)^```", text, flags=re.S | re.M):
        line = text.count("\n", 0, match.start()) + 2
        blocks.append((line, match.group(1).replace("\\\n", " ")))
    return blocks


def qkdnet_invocations(text: str) -> list[tuple[int, list[str]]]:
    """(line, words after ``qkdnet``) of each qkdnet command in the README's bash blocks;
    comments dropped, ``[--opt]`` read as ``--opt``."""
    found = []
    for start, block in bash_blocks(text):
        for offset, line in enumerate(block.splitlines()):
            code = line.split(" #", 1)[0]
            for command in _SEPARATORS.split(code):
                try:
                    words = shlex.split(command)
                except ValueError:  # a quote split by a separator: not a qkdnet command
                    continue
                while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):  # VAR=x qkdnet
                    words = words[1:]
                if words and words[0] == "qkdnet":
                    found.append((start + offset, [w.strip("[]") for w in words[1:]]))
    return found


def resolve(words: list[str]) -> tuple[list[str], Any, set[str]]:
    """The subcommand path ``words`` names, its command, and the options it and the groups
    along the path take (typer's own click: a group is a command with ``commands``)."""
    command: Any = typer.main.get_command(app)
    path: list[str] = []
    options: set[str] = set()
    for word in words:
        options |= {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
        if word in getattr(command, "commands", {}):
            command = command.commands[word]
            path.append(word)
        elif not word.startswith("-"):
            break
    options |= {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
    return path, command, options


INVOCATIONS = qkdnet_invocations(README.read_text(encoding="utf-8"))


def test_the_readme_has_qkdnet_commands_in_bash_blocks() -> None:
    """The parser finds the README's commands (a broken parser would pass everything)."""
    paths = {" ".join(resolve(words)[0]) for _, words in INVOCATIONS}
    assert len(INVOCATIONS) > 40
    assert {"twin", "serve", "fault", "topology export", "skr", "app send"} <= paths


@pytest.mark.parametrize(("line", "words"), INVOCATIONS,
                         ids=[f"README.md:{n}" for n, _ in INVOCATIONS])
def test_each_readme_command_names_a_real_command_and_options(line: int,
                                                              words: list[str]) -> None:
    """Every ``qkdnet ...`` of a README bash block reaches a command (not a bare group) and
    each option it gives is one that command (or a group on its path) takes."""
    path, command, options = resolve(words)
    shown = f"README.md:{line}: qkdnet {' '.join(words)}"
    if hasattr(command, "commands"):
        assert command.invoke_without_command or words == ["--version"], \
            f"{shown}: {' '.join(path) or 'qkdnet'} needs a subcommand"
    given = {w.split("=", 1)[0] for w in words if re.fullmatch(r"--?[a-z][\w-]*(=.*)?", w)}
    unknown = given - options
    assert not unknown, f"{shown}: no option {sorted(unknown)} on `qkdnet {' '.join(path)}`"


def test_the_checker_catches_a_wrong_command_and_a_wrong_option() -> None:
    """A misspelt subcommand stops at its group; a made-up option is not among the
    options."""
    path, command, _ = resolve(["topology", "exprot", "-o", "x"])
    assert path == ["topology"] and hasattr(command, "commands")
    _, _, options = resolve(["skr", "--kms", "100"])
    assert "--km" in options and "--kms" not in options


def test_readme_links_stay_inside_the_repository() -> None:
    """Every relative link of the README names a file of the repository (a clone has no
    ../shared)."""
    text = README.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [t for t in targets if not re.match(r"[a-z]+:", t)]
    assert local, "the README links docs/ pages"
    for target in local:
        path = (ROOT / target).resolve()
        assert path.is_relative_to(ROOT) and path.exists(), f"README links {target}"


def test_the_readme_uses_the_commands_default_data_folder() -> None:
    """The README's data folder is the default of serve, fault, operator and app (one
    name), and no bash block serves or reads another folder by a relative name."""
    groups: Any = typer.main.get_command(app).commands  # type: ignore[attr-defined]

    def default(command: Any, name: str) -> object:
        return next(p.default for p in command.params if p.name == name)

    operator, app_group = groups["operator"], groups["app"]
    assert default(groups["serve"], "folder") == DATA_FOLDER
    assert default(groups["fault"], "folder") == DATA_FOLDER
    assert {default(c, "folder") for c in operator.commands.values()} == {DATA_FOLDER}
    assert {default(c, "manifest") for c in app_group.commands.values()} == {
        DATA_FOLDER / "manifest.json"}
    text = README.read_text(encoding="utf-8")
    assert f"{DATA_FOLDER}/manifest.json" in text
    for line, words in INVOCATIONS:
        if words[:1] in (["serve"], ["fault"], ["operator"]) and "--dir" in words:
            folder = words[words.index("--dir") + 1]
            assert folder.startswith("/") or folder.rstrip("/") == str(DATA_FOLDER), \
                f"README.md:{line}: --dir {folder}, not {DATA_FOLDER}"
