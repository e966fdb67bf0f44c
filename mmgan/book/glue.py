"""Helpers the chapters use to hand computed numbers to the book's text (myst-nb glue)."""

from __future__ import annotations

from numbers import Real
from pathlib import Path
from typing import Any

from mmgan.book.commands import rerun_command


def glue_number(name: str, value: Any) -> int | float:
    """Glue a computed scalar under ``name`` for ``{glue:text}`name:.3f``` in the prose.

    NumPy and torch scalars are converted to Python numbers first: myst-nb formats
    glued text by parsing its ``repr``, which fails for ``np.float64(...)``.
    Returns the number, so it can be asserted on in the same cell.
    """
    from myst_nb import glue

    number = value.item() if hasattr(value, "item") else value
    if isinstance(number, bool) or not isinstance(number, Real):
        raise TypeError(f"glue_number({name!r}) needs a real scalar, got {type(value).__name__}")
    number = int(number) if isinstance(number, int) else float(number)
    glue(name, number, display=False)
    return number


def glue_text(name: str, text: str) -> str:
    """Glue a piece of text (e.g. from :func:`mmgan.exact.error_text`) under ``name``."""
    from myst_nb import glue

    glue(name, text, display=False)
    return text


def glue_all(values: dict[str, Any]) -> dict[str, Any]:
    """Glue every entry of a mapping that a report function returned: numbers with
    :func:`glue_number`, strings (and enums, by their text) with :func:`glue_text`."""
    for name, value in values.items():
        if isinstance(value, str) or hasattr(value, "value") and isinstance(value.value, str):
            glue_text(name, str(value))
        else:
            glue_number(name, value)
    return values


#: LaTeX commands of the captions and the characters a table cell shows for them.
_LATEX_SYMBOLS = {"nabla": "∇", "lambda": "λ", "gamma": "γ", "infty": "∞", "delta": "δ", "alpha": "α", "le": "≤",
                  "ge": "≥", "cdot": "·", "lvert": "|", "rvert": "|"}


def plain_caption(caption: str) -> str:
    """A caption as plain text for a table cell, where MathJax does not typeset (no ``$``; ``\\|`` → ‖, common
    commands → their symbols, other backslashes dropped; whitespace collapsed)."""
    import re

    text = caption.replace("$", "").replace("\\|", "‖")
    text = re.sub(r"\\([a-zA-Z]+)", lambda m: _LATEX_SYMBOLS.get(m.group(1), m.group(1)), text)
    return re.sub(r"\s+", " ", text.replace("\\", "")).strip()


def figure_index(notebooks: str = ".") -> Any:
    """Every captioned figure of the chapters: its name, chapter, the mmgan function that draws it,
    and the command that regenerates it (read from the notebooks' cell metadata and code)."""
    import re
    from pathlib import Path

    import nbformat
    import pandas as pd

    rows = []
    for path in sorted(Path(notebooks).glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            figure = cell.get("metadata", {}).get("mystnb", {}).get("figure")
            if cell.cell_type != "code" or not figure:
                continue
            drawn_by = re.findall(r"plots\.(\w+)\(", cell.source)
            rows.append({"figure": figure.get("name", ""), "chapter": path.stem,
                         "drawn by": ", ".join(f"mmgan.book.plots.{name}" for name in drawn_by) or "—",
                         "caption": plain_caption(figure.get("caption", ""))[:110] + "…",
                         "regenerate": rerun_command(path.name)})
    return pd.DataFrame(rows)


#: How each status is written in the status table (a symbol makes the column easy to scan).
STATUS_MARKS = {"holds": "✓ holds", "holds with a correction": "✓ holds with a correction",
                "does not hold": "✗ does not hold", "cannot tell": "? cannot tell at this noise",
                "per proposition": "▤ per proposition", "not tested here": "– not tested here"}
#: How each kind of evidence is written (its strength).
EVIDENCE_MARKS = {"exact": "exact check", "toy": "toy example", "study": "study (seeds, paired)"}


def status_markdown(status: Any) -> str:
    """The reproduction-status table as Markdown: every note in full, every result a link to the chapter
    that checks it, the status in the book's one vocabulary with the strength of its evidence, and results
    beyond the paper marked as exploratory.

    ``status`` is :func:`mmgan.book.status.reproduction_status` (or a subset of its rows); the links are
    relative to the notebooks folder, where the introduction lives, and the book resolves them to pages.
    """

    def cell(text: Any) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = ["| Result (link: its chapter) | Section | Status | Evidence | Note |", "|---|---|---|---|---|"]
    for row in status.itertuples(index=False):
        result = cell(row.result)
        if isinstance(row.chapter, str) and row.chapter not in ("", "—"):
            result = f"[{result}]({row.chapter}.ipynb)"
        scope = " (beyond the paper: exploratory)" if row.scope == "beyond" else ""
        lines.append(f"| {result} | {cell(row.section)} | **{STATUS_MARKS[row.status]}**{scope} "
                     f"| {EVIDENCE_MARKS[row.evidence]} | {cell(row.note) if row.note else ''} |")
    return "\n".join(lines)


def strip_execution_metadata(paths: list[str]) -> list[str]:
    """Remove the per-cell execution timestamps (``metadata.execution``) that Jupyter and nbclient record,
    so that re-executing a chapter changes only what its cells output. Returns the files it changed.

    Run after executing chapters: ``mmgan strip-timestamps notebooks/*.ipynb``.
    """
    import nbformat

    missing = [str(path) for path in paths if not Path(path).is_file()]
    if missing:  # before any file is changed
        raise FileNotFoundError(f"no such notebook: {', '.join(missing)}; give executed chapters, e.g. "
                                "notebooks/*.ipynb")
    changed = []
    for path in paths:
        try:
            nb = nbformat.read(path, as_version=4)
        except (ValueError, UnicodeDecodeError, nbformat.reader.NotJSONError) as error:
            raise ValueError(f"{path}: not a notebook ({type(error).__name__}); nothing after it was changed") \
                from None
        stamped = [cell for cell in nb.cells if "execution" in cell.get("metadata", {})]
        for cell in stamped:
            del cell.metadata["execution"]
        if stamped:
            nbformat.write(nb, path)
            changed.append(str(path))
    return changed


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="mmgan strip-timestamps",
                                     description="Strip the execution timestamps of executed chapters (so that "
                                                 "re-executing one changes only what its cells output).")
    parser.add_argument("notebooks", nargs="+", metavar="NOTEBOOK", help="e.g. notebooks/*.ipynb")
    for name in strip_execution_metadata(parser.parse_args(argv).notebooks):
        print(f"stripped execution timestamps from {name}")
    return 0
