"""The commands the book and the README show: built in one place, and found again for the tests that run them.

Every page prints the same runnable form of a chapter's rerun (:func:`rerun_command`: the output folder is made
first, since papermill does not make it), and :func:`shown_commands` lists every command a reader can copy — from
the README's code blocks and the chapters' markdown (code blocks and inline code) — so that
``tests/test_shown_commands.py`` runs each of them from the repository root.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Where reruns write their executed notebooks (ignored by git).
OUTPUT = "output"
#: The programs whose command lines the tests run (with ``.venv/bin/`` in front or not).
PROGRAMS = ("mmgan", "papermill", "python", "make", "mkdir", "for")


def rerun_command(notebook: str, parameters: Sequence[tuple[str, Any]] = (), suffix: str = "") -> str:
    """``mkdir -p output && papermill notebooks/NAME.ipynb output/NAME<suffix>.ipynb -p NAME VALUE ...``: the
    command, run from the repository root, that executes a chapter with ``parameters``."""
    name = Path(notebook).stem
    words = ["papermill", f"notebooks/{name}.ipynb", f"{OUTPUT}/{name}{suffix}.ipynb"]
    for key, value in parameters:
        words += ["-p", key, value if isinstance(value, str) else repr(value)]
    return f"mkdir -p {OUTPUT} && {shlex.join(words)}"


@dataclass(frozen=True)
class Shown:
    """A command as a page shows it: where (``source``) and the command line (continuations joined, the trailing
    comment and the ``.venv/bin/`` prefix removed)."""

    source: str
    command: str


_INLINE = re.compile(r"`([^`\n]+)`")
#: Code blocks whose lines are shell commands (a fence without a language counts: the README's and chapters' are).
SHELL_FENCES = ("", "bash", "sh", "shell", "console")


def _command(text: str) -> str | None:
    text = text.strip()
    if text.startswith("#"):
        return None
    text = re.sub(r"\s+#\s.*$", "", text)  # a trailing comment
    text = re.sub(r"(^|\s|&&\s*)\.venv/bin/", r"\1", text)
    program = text.split(" ", 1)[0]
    return " ".join(text.split()) if program in PROGRAMS and " " in text else None


def _split(text: str) -> tuple[list[str], str]:
    """The shell code blocks of a markdown text, fenced or indented by four spaces after a blank line
    (continuations joined), and the text outside every code block."""
    blocks, prose, fence, language, lines, indented = [], [], None, "", [], []
    for line in [*text.splitlines(), ""]:
        marker = re.match(r"^\s*(```+|~~~+)\s*\{?([\w-]*)\}?", line)
        if fence is not None:
            if line.strip().startswith(fence):
                if language in SHELL_FENCES:
                    blocks.append("\n".join(lines).replace("\\\n", " "))
                fence = None
            else:
                lines.append(line)
        elif marker:
            fence, language, lines = marker.group(1), marker.group(2), []
        elif line.startswith("    ") and (indented or not prose or not prose[-1].strip()):
            indented.append(line[4:])
        else:
            if indented:
                blocks.append("\n".join(indented).replace("\\\n", " "))
                indented = []
            prose.append(line)
    return blocks, "\n".join(prose)


def commands_in_markdown(text: str, source: str) -> list[Shown]:
    """The commands of a markdown text: every line of its shell code blocks (backslash continuations joined) and
    every inline code span that starts with one of :data:`PROGRAMS`, has arguments (two words such as
    ``mmgan table`` name a command) and is not a pattern (no placeholder in capitals such as ``TABLE``, no
    ``...``)."""
    blocks, prose = _split(text)
    found = [Shown(source, command) for block in blocks for command in map(_command, block.splitlines())
             if command]
    for span in _INLINE.findall(prose):
        command = _command(span)
        if command and len(command.split()) >= 3 and not re.search(r"\b[A-Z][A-Z_]+\b|\.\.\.|…", command):
            found.append(Shown(source, command))
    return found


def shown_commands(root: Path | str) -> list[Shown]:
    """Every command of the README and of the chapters' markdown cells (each once per source, in order)."""
    root = Path(root)
    shown = commands_in_markdown((root / "README.md").read_text(encoding="utf-8"), "README.md")
    for path in sorted((root / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        text = "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
        shown += commands_in_markdown(text, path.name)
    return list(dict.fromkeys(shown))
