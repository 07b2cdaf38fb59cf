"""Every `tito` command the README and docs/ show exists, with the options they show."""

from __future__ import annotations

import re

import typer
from typer.testing import CliRunner

from tests.conftest import REPO
from tito.main import app

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# `tito` and its words: a code block's line, or inline code
SHOWN = re.compile(r"(?:^\s*(?:\$ )?|`|&& )(tito(?: [^\s`#|&;]+)+)(?=`|\s*(?:#|$|&&|\|))", re.M)


def shown_commands() -> dict[str, set[str]]:
    """Command line -> the pages that show it."""
    found: dict[str, set[str]] = {}
    for page in PAGES:
        for line in SHOWN.findall(page.read_text(encoding="utf-8")):
            found.setdefault(line, set()).add(page.name)
    return found


def resolve(words: list[str]) -> tuple[list[str], object]:
    """The longest run of `words` that names a command, and that command."""
    command, path = typer.main.get_command(app), []
    for word in words:
        sub = (
            command.get_command(command.context_class(command), word)
            if hasattr(command, "get_command")
            else None
        )
        if sub is None:
            break
        command, path = sub, path + [word]
    return path, command


def test_the_docs_show_commands():
    pages = {p for pages in shown_commands().values() for p in pages}
    assert {"README.md", "student.md", "instructor.md", "grading.md"} <= pages
    assert len(shown_commands()) >= 30


def test_every_command_the_docs_show_exists_with_its_options():
    runner, problems = CliRunner(), []
    for line, pages in sorted(shown_commands().items()):
        words = (
            line.replace("[", "").replace("]", "").split()[1:]
        )  # [--port 8888]: an option that may be left out
        path, command = resolve(words)
        if not path or hasattr(command, "get_command") and len(path) < len(words):
            problems.append(f"{line!r} ({', '.join(sorted(pages))}): no such command")
            continue
        result = runner.invoke(app, [*path, "--help"])
        if result.exit_code != 0:
            problems.append(f"{line!r}: `tito {' '.join(path)} --help` exits {result.exit_code}")
            continue
        options = {
            o
            for p in command.params
            for o in getattr(p, "opts", []) + getattr(p, "secondary_opts", [])
        }
        unknown = [
            w.split("=")[0]
            for w in words[len(path) :]
            if w.startswith("-") and w.split("=")[0] not in options
        ]
        if unknown:
            problems.append(
                f"{line!r} ({', '.join(sorted(pages))}): no option {', '.join(unknown)}"
            )
    assert problems == []
