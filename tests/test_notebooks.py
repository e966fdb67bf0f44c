"""Structure of the executable chapters: papermill parameters and book membership."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import papermill
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def toc_files() -> set[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = {toc["root"]}
    for part in toc["parts"]:
        files |= {chapter["file"] for chapter in part["chapters"]}
    return files


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 6


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_cell_is_a_literal_parameters_cell(path):
    nb = nbformat.read(path, as_version=4)
    first = nb.cells[0]
    assert first.cell_type == "code"
    assert "parameters" in first.metadata.get("tags", [])
    # papermill does not recompute derived values after injection: only literal assignments
    for node in ast.parse(first.source).body:
        assert isinstance(node, ast.Assign), f"{path.name}: parameters cell may only assign literals"
        ast.literal_eval(node.value)
    assert nb.metadata["kernelspec"]["name"] == "python3"


def assigned_names(source: str) -> list[str]:
    return [target.id for node in ast.parse(source).body for target in node.targets]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_parameter_is_documented(path):
    """papermill's parser sees every assignment of the parameters cell, each with its help.

    papermill skips a line with a second '=' (e.g. '(>= 2)' in the help): that parameter would be
    missing from --help-notebook and from the book's "Rerun this chapter" list.
    """
    nb = nbformat.read(path, as_version=4)
    params = papermill.inspect_notebook(str(path))
    assert params, f"{path.name} has no parameters"
    assert list(params) == assigned_names(nb.cells[0].source), f"{path.name}: papermill does not see every parameter"
    for name, info in params.items():
        assert info["help"], f"{path.name}: parameter {name} lacks a '# type: help' comment"
        assert info["help"].split(":")[0].strip(), f"{path.name}: parameter {name} lacks its type before ':'"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_unknown_parameters_stop_the_chapter(path):
    """The cell right after the parameters cell stops on a name the chapter does not declare."""
    nb = nbformat.read(path, as_version=4)
    # the check recognises papermill's injected cell by this first line
    assert not nb.cells[0].source.lstrip().startswith("# Parameters"), path.name
    check = nb.cells[1]
    assert check.cell_type == "code" and "remove-cell" in check.metadata.get("tags", [])
    calls = [node.value for node in ast.parse(check.source).body if isinstance(node, ast.Expr)]
    assert [ast.unparse(call) for call in calls] == ["check_no_unknown_parameters(globals())"], path.name
    assert check.outputs == [] and check.execution_count is not None


def test_data_root_help_says_the_data_is_not_downloaded():
    """The image loaders never download: a missing data set raises FileNotFoundError."""
    helps = {path.name: params["data_root"]["help"] for path in NOTEBOOKS
             if "data_root" in (params := papermill.inspect_notebook(str(path)))}
    assert helps
    for name, text in helps.items():
        assert "never downloaded" in text and "FileNotFoundError" in text and "when online" not in text, name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_is_in_the_book(path):
    assert f"notebooks/{path.stem}" in toc_files()


def test_toc_entries_exist():
    for entry in toc_files():
        assert any((ROOT / f"{entry}{suffix}").exists() for suffix in (".ipynb", ".md")), entry


def test_notebooks_are_stored_executed():
    """nbval compares against stored outputs, so every code cell must have been run."""
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        counts = [c.execution_count for c in nb.cells if c.cell_type == "code"]
        assert all(c is not None for c in counts), f"{path.name} has unexecuted cells"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_execution_timestamps_are_committed(path):
    """Re-executing a chapter must change only its outputs: strip with `mmgan strip-timestamps notebooks/*.ipynb`."""
    nb = nbformat.read(path, as_version=4)
    stamped = [cell.get("id") for cell in nb.cells if "execution" in cell.get("metadata", {})]
    assert not stamped, f"{path.name}: cells {stamped} carry execution timestamps"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_cell_ids_are_unique_and_code_cells_numbered_in_order(path):
    nb = nbformat.read(path, as_version=4)
    ids = [cell.get("id") for cell in nb.cells]
    assert all(ids) and len(set(ids)) == len(ids), f"{path.name}: missing or repeated cell ids"
    counts = [cell.execution_count for cell in nb.cells if cell.cell_type == "code"]
    assert counts == list(range(1, len(counts) + 1)), f"{path.name}: not executed top to bottom once"
