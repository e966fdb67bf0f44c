"""Every command the README and the chapters show runs from a fresh clone (issue 35): each is found on its page
(:func:`mmgan.book.commands.shown_commands`) and run from a folder that holds only links to the chapters and the
benchmarks (no ``output/``), in the order its page gives them, and must produce what its page says it does
(:data:`PRODUCES`: the notebook, runs, measurements or table it names). Where a command would train for hours, need
a GPU, a data set or SLURM, one rule below says how it is run instead, and every command must match a rule: a new
command cannot go untested."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from mmgan.book.commands import rerun_command, shown_commands

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

#: Commands not run here, and why (CI runs the first two itself; the third downloads a browser).
NOT_RUN = {
    "make book": "the README's set-up command: CI builds the book with `make test`",
    "make test": "the README's test command: CI's .ci/run runs it",
    "python -m playwright install chromium": "downloads a browser (no network here); CI installs Chromium",
}


def _papermill(command: str, tmp: Path) -> str:
    """Reruns of chapters: prepared (parameters injected, output written where the command says), not executed
    (nbval executes every chapter); the GPU presets and paths are the command's own."""
    return re.sub(r"\bpapermill (notebooks/\S+ \S+)", r"papermill --prepare-only \1", command)


def _no_slurm(command: str, tmp: Path) -> str:
    """A SLURM submission: its plan only (no SLURM here), with every value it was given. A SLURM sweep refuses
    node-local folders such as /tmp, where tests (and perhaps this clone) live, so its log folder and runs are
    named in a folder under the home directory (nothing is written on a dry run)."""
    shared = Path.home() / ".cache" / "mmgan-shown-commands"
    command += f" --root {shared / 'runs'} --log-folder {shared / 'logs'}"
    return command if "--dry-run" in command else command + " --dry-run"


def _here(command: str, tmp: Path) -> str:
    """A local sweep or a table that would train: a few iterations of one cell into a folder of the test's own."""
    return command + f" --cells hinge-q2-hinge --iterations 2 --root {tmp / 'runs'}"


def _paper_table(command: str, tmp: Path) -> str:
    """`mmgan table` at the paper's preset needs CIFAR-10 and a GPU: the same command at the smoke preset."""
    command = command.replace("--preset paper", "--preset smoke").replace("--data-root /data", "")
    return _here(command, tmp)


def _few_images(command: str, tmp: Path) -> str:
    """Critic margins of a committed study (seconds per image, boundary and critic): the first run only, one image,
    one boundary, no FMN cross-check, thresholds from 64 images per class, along training the first snapshot listed,
    into a folder of the test's own; in a loop over tables, the first table so."""
    loop = re.match(r"^for (\w+) in (\S+)[^;]*; do (.*); done$", command)
    if loop:  # the same command for each table: the first table stands for the others
        return f"for {loop.group(1)} in {loop.group(2)}; do {_few_images(loop.group(3), tmp)}; done"
    command = re.sub(r"--images \d+", "", command)
    command = re.sub(r"--along-training (\d+)( \d+)*", r"--along-training \1", command)  # its first snapshot
    return command + (f" --runs 1 --images 1 --fmn-steps 0 --thresholds midpoint --population 64 --workers 1 "
                      f"--out {tmp / 'margins'}")


def _probe(command: str, tmp: Path) -> str:
    """The protocol search trains 35 networks for 10k iterations: the same flags, 20 iterations, one seed."""
    return command + f" --iterations 20 --seeds 0 --root {tmp / 'table1'}"


def _gpu_check(command: str, tmp: Path) -> str:
    """Without a GPU the check must refuse at once, in one sentence that offers its CPU self-test (which
    ``tests/test_gan_protocol.py`` runs); with one, it runs as shown."""
    if torch.cuda.is_available():
        return command
    return f"! {command} 2> {tmp / 'gpu.err'} && grep -q 'gpu-check --device cpu --quick' {tmp / 'gpu.err'}"


def _train(command: str, tmp: Path) -> str:
    """The README's one-run example is CIFAR-10 on a GPU: the same command with a digits configuration of a few
    iterations, into a folder of the test's own."""
    config = tmp / "run.yaml"
    config.write_text("dataset: digits\nchannels: 1\nimage_size: 16\nwidth: 4\nmetric: fdd\nmetric_samples: 64\n"
                      "metric_every: 2\niterations: 2\ncheckpoint_every: 2\nlog_every: 1\ndevice: cpu\n")
    return command.replace("--config run.yaml", f"--config {config}").replace("--out runs/x", f"--out {tmp / 'x'}")


def _as_is(command: str, tmp: Path) -> str:
    """Loads committed results, checks, lists or prepares: run exactly as shown."""
    return command


#: (pattern of a shown command, how it is run here); the first match decides.
RULES: list[tuple[str, Callable[[str, Path], str]]] = [
    (r"^mkdir -p output$", _as_is),
    (r"^papermill --help-notebook", _as_is),
    (r"^(mkdir -p output && )?papermill notebooks/", _papermill),
    (r"^mmgan sweep .*--executor slurm", _no_slurm),
    (r"^mmgan sweep .*--collect", _as_is),
    (r"^mmgan sweep .*--executor local", _here),
    (r"^mmgan table \d --preset paper", _paper_table),
    (r"^(for .*; do )?mmgan table \S+ --preset cpu", _as_is),
    (r"^(for .*; do )?mmgan critic-margins \S+ .*--export-networks", _as_is),
    (r"^(for .*; do )?mmgan critic-margins ", _few_images),
    (r"^mmgan table1 --probe", _probe),
    (r"^mmgan table1 --preset (fitted|paper|long) ", _as_is),
    (r"^mmgan gpu-check$", _gpu_check),
    (r"^(mmgan|python -m mmgan) --help$", _as_is),
    (r"^mmgan verify$", _as_is),
    (r"^mmgan train --config run\.yaml", _train),
    (r"^mmgan reproduce \S+ --iterations \d+$", _as_is),
]


def _written(where: str, pattern: str) -> Callable[[str, subprocess.CompletedProcess, Path, Path], str | None]:
    """The command wrote a file matching ``pattern`` under ``where`` ("tmp": the test's own folder, "fresh": the
    folder it ran in)."""
    def check(shown: str, result: subprocess.CompletedProcess, tmp: Path, fresh: Path) -> str | None:
        folder = tmp if where == "tmp" else fresh
        return None if any(folder.rglob(pattern)) else f"no {pattern} written under {folder}"
    return check


def _printed(*needles: str) -> Callable[[str, subprocess.CompletedProcess, Path, Path], str | None]:
    """The command printed every one of ``needles`` (standard output and error together)."""
    def check(shown: str, result: subprocess.CompletedProcess, tmp: Path, fresh: Path) -> str | None:
        missing = [needle for needle in needles if needle not in result.stdout + result.stderr]
        return f"it did not print {missing}" if missing else None
    return check


def _notebook_written(shown: str, result: subprocess.CompletedProcess, tmp: Path, fresh: Path) -> str | None:
    """papermill wrote the output notebook the command names."""
    output = re.search(r"papermill notebooks/\S+ (\S+)", shown).group(1)
    return None if (fresh / output).is_file() else f"no notebook at {output}"


#: (pattern of a shown command, what its page says it produces, checked on what it did); every command that a rule
#: runs has one (the first match decides).
def _reproduced(shown: str, result: subprocess.CompletedProcess, tmp: Path, fresh: Path) -> str | None:
    """A reproduction compared the log up to the iteration asked for; a difference (exit 1) passes only where the
    command said before training that it promises no bits (an unrecorded or other platform)."""
    until = shown.split("--iterations ")[1]
    if f"log up to iteration {until}" not in result.stdout:
        return f"did not print a comparison up to iteration {until}"
    if result.returncode == 1 and "not promised bit for bit" not in result.stdout:
        return "differs from its record on the platform that trained it"
    return None


PRODUCES: list[tuple[str, Callable[[str, subprocess.CompletedProcess, Path, Path], str | None]]] = [
    (r"^mkdir -p output$", lambda shown, result, tmp, fresh: None if (fresh / "output").is_dir() else "no output/"),
    (r"^papermill --help-notebook", _printed("Parameters inferred")),
    (r"^(mkdir -p output && )?papermill notebooks/", _notebook_written),
    (r"^mmgan sweep .*--executor slurm", _printed("dry run: nothing submitted", "job 0:")),
    (r"^mmgan sweep .*--collect", _printed("runs finished")),
    (r"^mmgan sweep .*--executor local", _written("tmp", "summary.json")),
    (r"^mmgan table \d --preset paper", _written("tmp", "summary.json")),
    (r"^(for .*; do )?mmgan table \S+ --preset cpu", _printed("results root:", " final ", " lowest")),
    (r"^(for .*; do )?mmgan critic-margins \S+ .*--export-networks", _printed("networks.pt")),
    (r"^(for .*; do )?mmgan critic-margins ", _written("tmp", "*.csv")),
    (r"^mmgan table1 --probe", _written("tmp", "protocol-search.csv")),
    (r"^mmgan table1 --preset (fitted|paper|long) ", _printed('"margins":')),
    (r"^mmgan gpu-check$", lambda shown, result, tmp, fresh: None),  # its rule checks the refusal's sentence
    (r"^(mmgan|python -m mmgan) --help$", _printed("usage:")),
    (r"^mmgan verify$", _printed("files match")),
    (r"^mmgan train --config run\.yaml", _written("tmp", "summary.json")),
    (r"^mmgan reproduce \S+ --iterations \d+$", _reproduced),
]


def _produces(command: str) -> Callable[[str, subprocess.CompletedProcess, Path, Path], str | None]:
    for pattern, check in PRODUCES:
        if re.search(pattern, command):
            return check
    raise AssertionError(f"nothing says what the shown command {command!r} produces: add it to PRODUCES")


def _rule(command: str) -> Callable[[str, Path], str]:
    for pattern, rule in RULES:
        if re.search(pattern, command):
            return rule
    raise AssertionError(f"no rule says how to run the shown command {command!r}: add one to RULES")


SHOWN = shown_commands(ROOT)
SOURCES = sorted({shown.source for shown in SHOWN})


def _first_showing() -> set[tuple[str, str]]:
    """(source, command) of the first page showing each command: a command shown on several pages runs once."""
    first: dict[str, str] = {}
    for shown in SHOWN:
        first.setdefault(shown.command, shown.source)
    return {(source, command) for command, source in first.items()}


FIRST = _first_showing()


def make_fresh_folder(where: Path) -> Path:
    """A working folder like a fresh clone's root for these commands: the chapters and benchmarks, no output/."""
    work = where / "clone"
    work.mkdir(parents=True)
    for name in ("notebooks", "benchmarks", "mmgan", "results"):  # results/: read only by these commands
        (work / name).symlink_to(ROOT / name)
    return work


@pytest.fixture
def fresh_folder(tmp_path):
    return make_fresh_folder(tmp_path)


def run_page(source: str, where: Path) -> list[tuple[str, str, subprocess.CompletedProcess]]:
    """Run the commands of one page in order, from a fresh folder of its own under ``where``, up to the first that
    fails: (command as shown, command as run, its result) each."""
    fresh = make_fresh_folder(where)
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", OMP_NUM_THREADS="1",
               MMGAN_CACHE=os.environ.get("MMGAN_CACHE", str(where / "cache")))
    env.pop("MMGAN_RESULTS", None)
    done = []
    for shown in (s for s in SHOWN if s.source == source):
        if shown.command in NOT_RUN or ((source, shown.command) not in FIRST and not shown.command.startswith("mkdir")):
            continue
        command = _rule(shown.command)(shown.command, where)
        result = subprocess.run(["bash", "-c", f"set -eo pipefail; {command}"], cwd=fresh, env=env,
                                capture_output=True, text=True, timeout=600)
        if _succeeded(command, result) and (missing := _produces(shown.command)(shown.command, result, where, fresh)):
            result.returncode, result.stderr = 99, f"{result.stderr}\nran, but {missing}"
        done.append((shown.command, command, result))
        if not _succeeded(command, result):
            break
    return done


def _succeeded(command: str, result: subprocess.CompletedProcess) -> bool:
    # exit 1: --collect with runs still missing; reproduce naming a difference (rounding on an unrecorded platform)
    ok = result.returncode == 0 or (result.returncode == 1 and ("--collect" in command or
                                                                command.startswith("mmgan reproduce ")))
    return ok and "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def page_runs(tmp_path_factory) -> dict[str, list[tuple[str, str, subprocess.CompletedProcess]]]:
    """Every page's commands, two pages at a time (the machine's two cores; each page's own commands in order), the
    pages with the most commands first, so that the two workers finish together."""
    busiest = sorted(SOURCES, key=lambda source: -sum(shown.source == source for shown in SHOWN))
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {source: pool.submit(run_page, source, tmp_path_factory.mktemp(Path(source).stem))
                   for source in busiest}
        return {source: future.result() for source, future in futures.items()}


def test_every_shown_command_has_a_rule_and_the_list_is_not_empty():
    assert len(SHOWN) > 30 and {"README.md", "intro.ipynb", "table2_cifar10.ipynb"} <= set(SOURCES)
    for shown in SHOWN:
        if shown.command not in NOT_RUN:
            _rule(shown.command)
            _produces(shown.command)


def test_the_rerun_command_makes_its_output_folder():
    assert rerun_command("table2_cifar10.ipynb", [("preset", "paper"), ("as_released", False)]) == (
        "mkdir -p output && papermill notebooks/table2_cifar10.ipynb output/table2_cifar10.ipynb -p preset paper "
        "-p as_released False")


@pytest.mark.parametrize("source", SOURCES)
def test_every_command_of_a_page_runs_from_a_fresh_clone(source, page_runs):
    done = page_runs[source]
    for shown, command, result in done:
        assert _succeeded(command, result), (f"{source}: `{shown}` (run as `{command}`) exited {result.returncode}:"
                                             f"\n{result.stderr[-2000:]}")
    assert done or all((source, s.command) not in FIRST or s.command in NOT_RUN for s in SHOWN if s.source == source)


def test_the_check_fails_on_a_command_as_it_was_printed_before(fresh_folder):
    """papermill does not make the output folder: the rerun command the pages printed before failed from a fresh
    clone, and the way this test runs a command sees it."""
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    old = _rule("papermill notebooks/x")("papermill notebooks/intro.ipynb out/intro.ipynb", fresh_folder)
    done = subprocess.run(["bash", "-c", f"set -eo pipefail; {old}"], cwd=fresh_folder, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode != 0 and "out" in done.stderr


def test_a_command_that_runs_but_does_not_produce_what_its_page_says_fails(tmp_path):
    """Exit 0 is not enough: a prepared rerun that wrote no notebook, a sweep that wrote no run, a table that printed
    nothing are each reported."""
    done = subprocess.CompletedProcess([], 0, stdout="", stderr="")
    fresh = make_fresh_folder(tmp_path)
    rerun = "mkdir -p output && papermill notebooks/intro.ipynb output/intro.ipynb"
    assert "no notebook at output/intro.ipynb" in _produces(rerun)(rerun, done, tmp_path, fresh)
    sweep = "mmgan sweep 2 --preset smoke --executor local"
    assert "summary.json" in _produces(sweep)(sweep, done, tmp_path, fresh)
    table = "mmgan table 3 --preset cpu"
    assert "did not print" in _produces(table)(table, done, tmp_path, fresh)
    (fresh / "output").mkdir()
    (fresh / "output" / "intro.ipynb").write_text("{}")
    assert _produces(rerun)(rerun, done, tmp_path, fresh) is None
