"""The ``mmgan`` command: one entry point for everything the book's experiments run.

    mmgan train --config run.yaml --out runs/x          one GAN run (--resume, --overwrite)
    mmgan table 2 --preset paper --data-root /data       every cell of a GAN table, in this process
    mmgan sweep 2 --preset paper --executor slurm ...    the cells of a GAN table as cluster jobs
    mmgan reproduce RUN_FOLDER --iterations 50          a finished run trained again in its pack, log compared
    mmgan table1 --preset fitted                         Table 1 on the swiss roll
    mmgan critic-margins 3                               margins of the critics of a committed study
    mmgan gpu-check                                      the GAN engine on a GPU, end to end
    mmgan manifest results/gan/table2/cpu-...            the SHA-256 manifest of a results folder
    mmgan verify                                         every committed results file against its manifest
    mmgan convert RUN_FOLDER                             an old checkpoint to weights-only (plain values only)
    mmgan strip-timestamps notebooks/*.ipynb             executed chapters without execution timestamps

``python -m mmgan`` is the same command. Every subcommand takes ``--help``; the flags they share are spelled
alike (``--preset``, ``--root``, ``--seeds``, ``--cells``, ``--iterations``, ``--data-root``, ``--device``,
``--workers``, ``--out``).
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback

#: name: (module, the function of it that runs the command with ``argv``, one line of help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "train": ("mmgan.gan.train", "main", "train (or resume) one GAN run in a run folder"),
    "table": ("mmgan.gan.tables", "main", "run or load every cell of one of Tables 2-8 in this process"),
    "sweep": ("mmgan.gan.sweep", "main", "run the cells of a GAN table as jobs (SLURM, local) and collect them"),
    "reproduce": ("mmgan.gan.reproduce", "main",
                  "train a finished GAN run again as it trained (its pack, threads) and compare its log line by line"),
    "table1": ("mmgan.table1.study", "main", "Table 1: margins of classifiers on the swiss roll"),
    "critic-margins": ("mmgan.critics.measure", "main", "measure the margins of the critics of a committed study"),
    "gpu-check": ("mmgan.gan.gpu_check", "main", "check the GAN engine on a GPU and estimate each table's hours"),
    "manifest": ("mmgan.base.manifest", "main_manifest",
                 "write the SHA-256 manifest of results folders (after changing committed results on purpose)"),
    "verify": ("mmgan.base.manifest", "main_verify",
               "check results files against their manifests (default: every committed folder)"),
    "convert": ("mmgan.gan.convert", "main",
                "rewrite old checkpoints as weights-only files (refuses anything but plain values)"),
    "strip-timestamps": ("mmgan.book.glue", "main", "remove execution timestamps from executed chapters"),
}

#: Set to 1 to see the traceback behind an error message.
DEBUG_VARIABLE = "MMGAN_DEBUG"
#: What a command's user errors are (a bad value, a missing or refused file, a busy folder, no GPU): one
#: sentence, exit 2. Anything else is a bug and keeps its traceback.
USER_ERRORS = (ValueError, OSError, RuntimeError)


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: mmgan COMMAND [ARGS...]   (mmgan COMMAND --help for its options)", "", "commands:"]
    lines += [f"  {name:{width}s}  {text}" for name, (_, _, text) in COMMANDS.items()]
    lines += ["", f"Errors are one sentence (exit 2); {DEBUG_VARIABLE}=1 shows the traceback behind one."]
    return "\n".join(lines)


def error_sentence(error: BaseException) -> str:
    """The user-facing text of an error: its message on one line (an OSError's file name included)."""
    if isinstance(error, OSError) and error.strerror and error.filename is not None:
        return f"{error.filename}: {error.strerror}"
    text = " ".join(str(error).split()) or type(error).__name__
    return text


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"mmgan: unknown command {name!r}; valid commands: {', '.join(COMMANDS)}\n\n{usage()}",
              file=sys.stderr)
        return 2
    module, function, _ = COMMANDS[name]
    program = sys.argv[0]
    sys.argv[0] = f"mmgan {name}"  # what argparse shows as the program in usage and errors
    try:
        return getattr(importlib.import_module(module), function)(rest) or 0
    except USER_ERRORS as error:
        if os.environ.get(DEBUG_VARIABLE, "") not in ("", "0"):
            traceback.print_exc()
        print(f"mmgan {name}: error: {error_sentence(error)}", file=sys.stderr)
        return 2
    finally:
        sys.argv[0] = program


if __name__ == "__main__":
    sys.exit(main())
