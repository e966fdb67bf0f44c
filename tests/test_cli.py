"""The ``mmgan`` command: every subcommand reachable, unknown ones named, the console script installed."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mmgan import cli

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _float32():
    torch.set_default_dtype(torch.float32)  # the GAN engine's dtype


def test_help_lists_every_command(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in cli.COMMANDS)
    assert cli.main([]) == 2  # no command: the usage, and a failing status


def test_an_unknown_command_names_the_valid_ones(capsys):
    assert cli.main(["tabel", "2"]) == 2
    assert "unknown command 'tabel'; valid commands: train, table" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(cli.COMMANDS))
def test_every_command_has_its_own_help(name, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main([name, "--help"])
    assert stop.value.code == 0
    assert f"usage: mmgan {name}" in capsys.readouterr().out


def test_a_table_runs_through_the_command_and_python_m(tmp_path):
    args = ["table", "2", "--preset", "smoke", "--cells", "hinge-q2-hinge", "--iterations", "2", "--root",
            str(tmp_path)]
    assert cli.main(args) == 0
    done = subprocess.run([sys.executable, "-m", "mmgan", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0 and "hinge" in done.stdout, done.stderr


def test_the_console_script_is_installed():
    script = Path(sys.executable).with_name("mmgan")
    if not script.exists() and shutil.which("mmgan") is None:
        pytest.skip("the package is not installed with its console script in this environment")
    done = subprocess.run([str(script if script.exists() else shutil.which("mmgan")), "--help"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "critic-margins" in done.stdout
