"""The chapters of Tables 2-8 are rendered from one template (issue 38, item 5): a chapter edited by hand, or a
template edited without regenerating, fails here; regenerating keeps the executed outputs."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
import yaml

from mmgan.book import table_chapters
from mmgan.book.table_chapters import chapter_notebooks, rendered_cells, stale_chapters, write_chapters
from mmgan.gan.tables import TABLES

ROOT = Path(__file__).resolve().parents[1]


def _copy_chapters(where: Path) -> Path:
    folder = where / "notebooks"
    folder.mkdir()
    for name in chapter_notebooks().values():
        shutil.copy(ROOT / "notebooks" / f"{name}.ipynb", folder)
    return folder


def test_the_committed_chapters_are_what_the_template_renders():
    assert stale_chapters(ROOT / "notebooks") == {}


def test_one_map_of_tables_to_chapters_covers_the_paper_tables_and_the_table_of_contents():
    assert set(chapter_notebooks()) == {t for t in TABLES if t.isdigit()}
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = {chapter["file"] for part in toc["parts"] for chapter in part["chapters"]}
    assert {f"notebooks/{name}" for name in chapter_notebooks().values()} <= files


def test_a_chapter_edited_by_hand_is_named_and_regenerating_restores_it_with_its_outputs(tmp_path):
    folder = _copy_chapters(tmp_path)
    path = folder / "table4_adam.ipynb"
    notebook = nbformat.read(path, as_version=4)
    outputs = {cell.id: cell.get("outputs") for cell in notebook.cells}
    notebook.cells[2].source += "\nA sentence added by hand."
    notebook.cells[3].metadata["tags"] = []
    del notebook.cells[-1]
    nbformat.write(notebook, path)

    stale = stale_chapters(folder)
    assert list(stale) == ["table4_adam"]
    found = " ".join(stale["table4_adam"])
    assert "cell title: its source differs" in found and "cell page: its metadata differ" in found
    assert "reproduce" in found  # the deleted cell: the list of cells differs

    assert write_chapters(folder) == [path]
    assert stale_chapters(folder) == {}
    again = nbformat.read(path, as_version=4)
    assert {cell.id: cell.get("outputs") for cell in again.cells} == outputs  # executed outputs kept by cell id
    assert write_chapters(folder) == []  # nothing left to rewrite


def test_a_placeholder_without_a_value_and_an_unknown_table_are_refused(monkeypatch):
    defaults, tables, cells = table_chapters._template()
    broken = (*cells, table_chapters.TemplateCell("x", "markdown", {}, "{{no_such_value}}"))
    monkeypatch.setattr(table_chapters, "_template", lambda: (defaults, tables, broken))
    with pytest.raises(KeyError, match=r"no_such_value.*valid names: .*notebook"):
        rendered_cells("3")
    with pytest.raises(KeyError, match="valid tables: 2, 3"):
        rendered_cells("9")


def test_every_table_chapter_renders_its_own_number_and_notebook():
    for table, name in chapter_notebooks().items():
        cells = {cell.id: cell for cell in rendered_cells(table)}
        assert f'"{table}", preset=' in cells["page"].source
        assert f"notebooks/{name}.ipynb" in cells["regenerate"].source
        assert "{{" not in "".join(cell.source for cell in cells.values())
    assert "tie-text" in {c.id for c in rendered_cells("2")} and "tie-text" not in {c.id for c in rendered_cells("3")}
