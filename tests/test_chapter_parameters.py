"""Chapter parameters: the coercions of what users type, and the stop on unknown names (real papermill runs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import papermill
import pytest
from papermill.exceptions import PapermillExecutionError

from mmgan.base.user_lists import as_int_list, as_str_list
from mmgan.book.parameters import check_no_unknown_parameters

ROOT = Path(__file__).resolve().parents[1]
CHECK_CELL = ("from mmgan.book.parameters import check_no_unknown_parameters\n\n"
              "check_no_unknown_parameters(globals())")


# --- as_int_list ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "expected"), [
    (None, None),
    (0, [0]),                      # papermill -p seeds 0
    (7, [7]),
    ([0, 1], [0, 1]),              # the parameters cell, papermill -y 'seeds: [0, 1]'
    ((2, 3), [2, 3]),
    ("[0, 1]", [0, 1]),            # papermill -p seeds '[0, 1]'
    ("[0,1,2]", [0, 1, 2]),
    ("(4,)", [4]),
    ("0,1", [0, 1]),               # papermill -p seeds 0,1
    (" 0, 1 ", [0, 1]),
    ("3", [3]),                    # papermill -r seeds 3
    ("-1", [-1]),
    (np.int64(5), [5]),
    ([np.int64(1), 2], [1, 2]),
])
def test_as_int_list_accepts(value, expected):
    result = as_int_list(value, "seeds")
    assert result == expected
    assert result is None or all(type(v) is int for v in result)


@pytest.mark.parametrize(("value", "message"), [
    (True, "seeds must be an integer or a list of integers, got True"),
    ([0, True], "seeds must hold integers only, got True"),
    ("[True]", "seeds must hold integers only, got True"),
    (1.0, "seeds must be an integer or a list of integers, got 1.0"),
    ([0, 1.5], "seeds must hold integers only, got 1.5"),
    ("1.5", "seeds must hold integers only, got '1.5'"),
    ("x", "seeds must hold integers only, got 'x'"),
    ("0 1", "seeds must hold integers only, got '0 1'"),
    ("0,,1", "seeds must hold integers only, got ''"),
    (["0"], "seeds must hold integers only, got '0'"),
    ("['0']", "seeds must hold integers only, got '0'"),
    ("[0,", r"seeds must be an integer or a list of integers; cannot read '\[0,'"),
    ("{'a': 0}", "seeds must hold integers only"),
    ({0, 1}, "seeds must be an integer or a list of integers, got {0, 1}"),
    ([], "seeds must name at least one value"),
    ("[]", "seeds must name at least one value"),
    ("", "seeds must name at least one value"),
    ([0, 1, 0], r"seeds repeats \[0\]"),
    ("[3, 1, 3, 1]", r"seeds repeats \[1, 3\]"),
    ("2,2", r"seeds repeats \[2\]"),
])
def test_as_int_list_refuses(value, message):
    with pytest.raises(ValueError, match=message):
        as_int_list(value, "seeds")


# --- as_str_list ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "expected"), [
    (None, None),
    ("hinge-qinf-hinge", ["hinge-qinf-hinge"]),                       # papermill -p cells hinge-qinf-hinge
    ('["hinge-qinf-hinge"]', ["hinge-qinf-hinge"]),                   # papermill -p cells '["hinge-qinf-hinge"]'
    ("['hinge-qinf-hinge', 'ls-q2-ls']", ["hinge-qinf-hinge", "ls-q2-ls"]),
    ('"hinge-qinf-hinge"', ["hinge-qinf-hinge"]),
    ('["a,b"]', ["a,b"]),
    ("hinge-qinf-hinge, ls-q2-ls", ["hinge-qinf-hinge", "ls-q2-ls"]),  # papermill -p cells a,b
    (["hinge-qinf-hinge"], ["hinge-qinf-hinge"]),
    (("a", "b"), ["a", "b"]),
])
def test_as_str_list_accepts(value, expected):
    assert as_str_list(value, "cells") == expected


@pytest.mark.parametrize(("value", "message"), [
    (1, "cells must be a string or a list of strings, got 1"),
    ([1], "cells must hold non-empty strings only, got 1"),
    ("[1]", "cells must hold non-empty strings only, got 1"),
    ("[None]", "cells must hold non-empty strings only, got None"),
    (["a", ""], "cells must hold non-empty strings only, got ''"),
    ("a,", "cells must hold non-empty strings only, got ''"),
    ("['a'", "cells must be a string or a list of strings; cannot read"),
    ([], "cells must name at least one value"),
    ("", "cells must name at least one value"),
    (["a", "b", "a"], r"cells repeats \['a'\]"),
    ("a,a", r"cells repeats \['a'\]"),
])
def test_as_str_list_refuses(value, message):
    with pytest.raises(ValueError, match=message):
        as_str_list(value, "cells")


# --- check_no_unknown_parameters on a given input history -----------------------------------------

DECLARED = "alpha = 1  # int: first\nbeta = 'b'  # str: second"
CALL = "check_no_unknown_parameters(globals())"


def test_injected_known_names_pass():
    assert check_no_unknown_parameters({"In": ["", DECLARED, "# Parameters\nalpha = 5\n", CALL]}) is None


def test_injected_unknown_name_stops_with_valid_and_unknown_names():
    history = ["", DECLARED, '# Parameters\nalpha = 5\nnoise_level = 1\nbetta = "x"\n', CALL]
    with pytest.raises(ValueError) as info:
        check_no_unknown_parameters({"In": history})
    message = str(info.value)
    assert "unknown parameter(s) ['betta', 'noise_level']" in message
    assert "this chapter's parameters are ['alpha', 'beta']" in message
    assert "(did you mean 'beta' for 'betta'?)" in message


def test_papermill_path_names_are_not_unknown():
    history = ["", DECLARED, "# Parameters\nPAPERMILL_INPUT_PATH = 'a.ipynb'\nPAPERMILL_OUTPUT_PATH = 'b'\n", CALL]
    check_no_unknown_parameters({"In": history})


@pytest.mark.parametrize("namespace", [
    {},                                                                  # plain Python: no In
    {"In": [""]},                                                        # store_history=False (nbval)
    {"In": ["", DECLARED, "# Parameters\nzeta = 1\n"]},                  # In does not hold the current cell
    {"In": ["", DECLARED, CALL]},                                        # nothing injected
    {"In": ["", "# Parameters\nzeta = 1\n", "print(1)", CALL]},          # the injection is not right before
], ids=["no-In", "empty-history", "not-recorded", "no-injection", "not-adjacent"])
def test_nothing_to_check_is_silent(namespace):
    assert check_no_unknown_parameters(namespace) is None


# --- real papermill runs of a tiny chapter ----------------------------------------------------------

@pytest.fixture
def tiny_chapter(tmp_path: Path) -> Path:
    """A chapter shaped like the book's: parameters cell, hidden check cell, a cell that uses them."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell("iterations = 3  # int: steps\nseeds = None  # list[int] | None: seeds",
                                  metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(CHECK_CELL, metadata={"tags": ["remove-cell"]}),
        nbformat.v4.new_code_cell("from mmgan.base.user_lists import as_int_list\n"
                                  "print(iterations, as_int_list(seeds, 'seeds'))"),
    ]
    path = tmp_path / "tiny.ipynb"
    nbformat.write(nb, path)
    return path


def run_tiny(path: Path, **parameters) -> nbformat.NotebookNode:
    return papermill.execute_notebook(str(path), str(path.with_name("out.ipynb")), parameters=parameters,
                                      kernel_name="python3", progress_bar=False, cwd=str(path.parent))


def test_papermill_typo_stops_the_chapter(tiny_chapter):
    with pytest.raises(PapermillExecutionError) as info:
        run_tiny(tiny_chapter, iteration=5)
    error = info.value
    assert error.ename == "ValueError"
    assert "unknown parameter(s) ['iteration']" in error.evalue
    assert "['iterations', 'seeds']" in error.evalue
    out = nbformat.read(tiny_chapter.with_name("out.ipynb"), as_version=4)
    assert out.cells[-1].outputs == []  # the chapter stopped before its first real cell


@pytest.mark.parametrize(("parameters", "printed"), [
    ({}, "3 None\n"),                                                   # nothing injected
    ({"iterations": 5, "seeds": "[0, 1]"}, "5 [0, 1]\n"),                # what -p seeds '[0, 1]' delivers
    ({"seeds": 0, "PAPERMILL_INPUT_PATH": "tiny.ipynb"}, "3 [0]\n"),     # -p seeds 0, --inject-input-path
])
def test_papermill_known_parameters_run(tiny_chapter, parameters, printed):
    out = run_tiny(tiny_chapter, **parameters)
    assert out.cells[-1].outputs[0]["text"] == printed
    if parameters:
        assert "injected-parameters" in out.cells[1].metadata.tags


def test_papermill_command_line_exits_non_zero_on_a_typo(tiny_chapter):
    command = [sys.executable, "-m", "papermill", str(tiny_chapter), str(tiny_chapter.with_name("cli.ipynb")),
               "--kernel", "python3", "--no-progress-bar"]
    typo = subprocess.run([*command, "-p", "iteration", "5"], capture_output=True, text=True, cwd=tiny_chapter.parent)
    assert typo.returncode != 0
    assert "unknown parameter(s) ['iteration']" in typo.stderr + typo.stdout
    good = subprocess.run([*command, "-p", "seeds", "0,1"], capture_output=True, text=True, cwd=tiny_chapter.parent)
    assert good.returncode == 0, good.stderr
    out = nbformat.read(tiny_chapter.with_name("cli.ipynb"), as_version=4)
    assert out.cells[-1].outputs[0]["text"] == "3 [0, 1]\n"


def test_the_check_cell_stays_silent_under_nbval(tiny_chapter):
    """nbval runs cells with store_history=False and compares every output: the check must print nothing."""
    run_tiny(tiny_chapter)
    executed = tiny_chapter.with_name("out.ipynb")  # stored outputs for nbval to compare with
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval",
                             "--rootdir", str(tiny_chapter.parent), str(executed)],
                            capture_output=True, text=True, cwd=tiny_chapter.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


def test_a_real_chapter_stops_on_a_typo(tmp_path):
    """The motivating case: `-p iteration 5` on a GAN table chapter stops before any training."""
    with pytest.raises(PapermillExecutionError) as info:
        papermill.execute_notebook(str(ROOT / "notebooks" / "table2_cifar10.ipynb"), str(tmp_path / "out.ipynb"),
                                   parameters={"iteration": 5}, kernel_name="python3", progress_bar=False,
                                   cwd=str(ROOT / "notebooks"))
    assert "unknown parameter(s) ['iteration'] (did you mean 'iterations' for 'iteration'?)" in info.value.evalue
    assert info.value.cell_index == 2  # parameters, injected parameters, then the check cell
