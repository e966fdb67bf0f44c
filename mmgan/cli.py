"""The ``mmgan`` command: one entry point for everything the book's experiments run.

    mmgan train --config run.yaml --out runs/x          one GAN run (--resume, --overwrite)
    mmgan table 2 --preset paper --data-root /data       every cell of a GAN table, in this process
    mmgan sweep 2 --preset paper --executor slurm ...    the cells of a GAN table as cluster jobs
    mmgan table1 --preset fitted                         Table 1 on the swiss roll
    mmgan critic-margins 3                               margins of the critics of a committed study
    mmgan gpu-check                                      the GAN engine on a GPU, end to end
    mmgan manifest results/gan/table2/cpu-...            the SHA-256 manifest of a finished study
    mmgan convert RUN_FOLDER                             an old pickled checkpoint to weights-only
    mmgan strip-timestamps notebooks/*.ipynb             executed chapters without execution timestamps

``python -m mmgan`` is the same command. Every subcommand takes ``--help``; the flags they share are spelled
alike (``--preset``, ``--root``, ``--seeds``, ``--cells``, ``--iterations``, ``--data-root``, ``--device``,
``--workers``, ``--out``).
"""

from __future__ import annotations

import importlib
import sys

#: name: (module whose ``main(argv)`` runs it, arguments put before the user's, one line of help)
COMMANDS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "train": ("mmgan.gan.train", (), "train (or resume) one GAN run in a run folder"),
    "table": ("mmgan.gan.tables", (), "run or load every cell of one of Tables 2-8 in this process"),
    "sweep": ("mmgan.gan.sweep", (), "run the cells of a GAN table as jobs (SLURM, local) and collect them"),
    "table1": ("mmgan.table1.study", (), "Table 1: margins of classifiers on the swiss roll"),
    "critic-margins": ("mmgan.critics.measure", (), "measure the margins of the critics of a committed study"),
    "gpu-check": ("mmgan.gan.gpu_check", (), "check the GAN engine on a GPU and estimate each table's hours"),
    "manifest": ("mmgan.base.results", ("manifest",), "write the SHA-256 manifest of finished study folders"),
    "verify": ("mmgan.base.results", ("verify",), "check study folders against their manifests"),
    "convert": ("mmgan.base.run_folder", ("convert",),
                "rewrite old pickled checkpoints as weights-only files (runs their pickle: trusted files only)"),
    "strip-timestamps": ("mmgan.book.glue", (), "remove execution timestamps from executed chapters"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: mmgan COMMAND [ARGS...]   (mmgan COMMAND --help for its options)", "", "commands:"]
    lines += [f"  {name:{width}s}  {text}" for name, (_, _, text) in COMMANDS.items()]
    return "\n".join(lines)


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
    module, before, _ = COMMANDS[name]
    program = sys.argv[0]
    sys.argv[0] = f"mmgan {name}"  # what argparse shows as the program in usage and errors
    try:
        return importlib.import_module(module).main([*before, *rest]) or 0
    finally:
        sys.argv[0] = program


if __name__ == "__main__":
    sys.exit(main())
