"""The chapters of Tables 2–8 rendered from one template (``resources/table_chapters.yaml``).

The seven table chapters share their structure and all but a few sentences: the title, the paper's setting, the
data a GPU rerun needs, which cells run the released code's maximum, and the run ``mmgan reproduce`` is shown on.
Those are the template's per-table values; everything else is written once. ``python -m mmgan.book.table_chapters``
(run by ``make book``) rewrites each chapter's cells from it, keeping the executed outputs of every cell whose id
and type are unchanged; ``--check`` (and ``tests/test_table_chapters.py``) lists the cells of a chapter that differ
from what the template renders, so a chapter edited by hand, or a template edited without regenerating, fails.

:func:`chapter_notebooks` is the one map from table to chapter, read by the chapter facades, the table of contents
check and the browser tests.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import nbformat
import yaml

__all__ = ["TEMPLATE", "TemplateCell", "chapter_notebooks", "main", "rendered_cells", "stale_chapters",
           "write_chapters"]

TEMPLATE = Path(__file__).with_name("resources") / "table_chapters.yaml"
#: ``{{name}}`` in a cell's source or metadata: a value of the cell's table (or a default).
PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
#: Cell metadata that execution writes, not the template.
EXECUTION_METADATA = ("execution",)


@dataclass(frozen=True)
class TemplateCell:
    """One cell of the template: its id, type (code or markdown), metadata and source, and the tables it belongs
    to (``only``; None: every table)."""

    id: str
    type: str
    metadata: dict[str, Any]
    source: str
    only: tuple[str, ...] | None = None


@cache
def _template() -> tuple[dict[str, str], dict[str, dict[str, str]], tuple[TemplateCell, ...]]:
    with TEMPLATE.open(encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    cells = []
    for entry in data["cells"]:
        if entry["type"] not in ("code", "markdown"):
            raise ValueError(f"{TEMPLATE}: cell {entry['id']!r} has type {entry['type']!r}; valid: code, markdown")
        only = entry.get("only")
        cells.append(TemplateCell(entry["id"], entry["type"], entry.get("metadata") or {}, entry["source"],
                                  None if only is None else tuple(str(t) for t in only)))
    ids = [cell.id for cell in cells]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{TEMPLATE}: cell ids repeat: {sorted({i for i in ids if ids.count(i) > 1})}")
    tables = {str(table): values for table, values in data["tables"].items()}
    return data["defaults"], tables, tuple(cells)


def chapter_notebooks() -> dict[str, str]:
    """Table number → its chapter's notebook name (without ``.ipynb``), e.g. ``{"2": "table2_cifar10", ...}``."""
    return {table: values["notebook"] for table, values in _template()[1].items()}


def _fill(text: str, table: str, seen: tuple[str, ...] = ()) -> str:
    """``text`` with every ``{{name}}`` replaced by table ``table``'s value (else the default), recursively."""
    defaults, tables, _ = _template()
    values = {**defaults, **tables[table], "table": table}

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise KeyError(f"{TEMPLATE}: placeholder {{{{{name}}}}} has no value for table {table}; "
                           f"valid names: {', '.join(sorted(values))}")
        if name in seen:
            raise ValueError(f"{TEMPLATE}: placeholder {{{{{name}}}}} refers to itself (via {' -> '.join(seen)})")
        return _fill(str(values[name]), table, (*seen, name))

    return PLACEHOLDER.sub(value, text)


def _fill_metadata(metadata: Any, table: str) -> Any:
    if isinstance(metadata, dict):
        return {key: _fill_metadata(value, table) for key, value in metadata.items()}
    if isinstance(metadata, list):
        return [_fill_metadata(value, table) for value in metadata]
    return _fill(metadata, table) if isinstance(metadata, str) else metadata


def rendered_cells(table: str) -> list[TemplateCell]:
    """The cells of table ``table``'s chapter as the template renders them (``KeyError`` naming the valid tables)."""
    table = str(table)
    if table not in chapter_notebooks():
        raise KeyError(f"no chapter template for table {table!r}; valid tables: {', '.join(chapter_notebooks())}")
    return [TemplateCell(cell.id, cell.type, _fill_metadata(cell.metadata, table), _fill(cell.source, table))
            for cell in _template()[2] if cell.only is None or table in cell.only]


def _written_metadata(cell: Any) -> dict[str, Any]:
    return {key: value for key, value in cell.get("metadata", {}).items() if key not in EXECUTION_METADATA}


def _differences(table: str, notebook: Any) -> list[str]:
    """What differs between the chapter ``notebook`` and the template's rendering of table ``table``."""
    wanted = rendered_cells(table)
    have = notebook.cells
    found = []
    if [c.id for c in wanted] != [c.get("id") for c in have]:
        found.append(f"cells {[c.get('id') for c in have]} instead of {[c.id for c in wanted]}")
    have_by_id = {c.get("id"): c for c in have}
    for cell in wanted:
        mine = have_by_id.get(cell.id)
        if mine is None:
            continue
        if mine.cell_type != cell.type:
            found.append(f"cell {cell.id}: a {mine.cell_type} cell, the template's is {cell.type}")
        if mine.source != cell.source:
            found.append(f"cell {cell.id}: its source differs from the template's")
        if _written_metadata(mine) != cell.metadata:
            found.append(f"cell {cell.id}: its metadata differ from the template's")
    return found


def stale_chapters(folder: Path | str) -> dict[str, list[str]]:
    """Chapter notebook name → its differences from the template, for every table chapter in ``folder`` that
    differs (a missing chapter is one)."""
    stale = {}
    for table, name in chapter_notebooks().items():
        path = Path(folder) / f"{name}.ipynb"
        if not path.is_file():
            stale[name] = [f"{path} does not exist"]
        elif found := _differences(table, nbformat.read(path, as_version=4)):
            stale[name] = found
    return stale


def _new_cell(cell: TemplateCell) -> Any:
    make = nbformat.v4.new_code_cell if cell.type == "code" else nbformat.v4.new_markdown_cell
    return make(source=cell.source, metadata=copy.deepcopy(cell.metadata), id=cell.id)


def write_chapters(folder: Path | str) -> list[Path]:
    """Rewrite every table chapter in ``folder`` from the template; a cell whose id and type are unchanged keeps its
    executed outputs (a new or changed code cell has none until the chapter is executed). Returns the chapters that
    changed."""
    changed = []
    for table, name in chapter_notebooks().items():
        path = Path(folder) / f"{name}.ipynb"
        notebook = nbformat.read(path, as_version=4) if path.is_file() else nbformat.v4.new_notebook()
        if path.is_file() and not _differences(table, notebook):
            continue
        old = {cell.get("id"): cell for cell in notebook.cells}
        cells = []
        for cell in rendered_cells(table):
            kept = old.get(cell.id)
            if kept is not None and kept.cell_type == cell.type:
                kept.source = cell.source
                kept.metadata = {**copy.deepcopy(cell.metadata),
                                 **{k: v for k, v in kept.metadata.items() if k in EXECUTION_METADATA}}
                cells.append(kept)
            else:
                cells.append(_new_cell(cell))
        notebook.cells = cells
        nbformat.write(notebook, path)
        changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mmgan.book.table_chapters",
                                     description="Render the chapters of Tables 2-8 from their one template.")
    parser.add_argument("--folder", type=Path, default=Path(__file__).resolve().parents[2] / "notebooks",
                        help="the chapters' folder (default: notebooks/ of this checkout)")
    parser.add_argument("--check", action="store_true", help="list the chapters that differ; write nothing")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_chapters(args.folder)
        for name, found in stale.items():
            print(f"{name}: " + "; ".join(found))
        if stale:
            print("regenerate them with `python -m mmgan.book.table_chapters` (edit the template, not the chapter)")
        return 1 if stale else 0
    for path in write_chapters(args.folder):
        print(f"rewrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
