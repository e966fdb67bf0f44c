"""Where the project's files are, whatever the working directory: the checkout and its results root."""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path | None:
    """The checkout this package runs from (the folder holding ``_toc.yml`` and ``mmgan/``), or None when the
    package was installed elsewhere (a wheel in site-packages)."""
    here = Path(__file__).resolve().parents[2]
    return here if (here / "_toc.yml").is_file() and (here / "mmgan").is_dir() else None


def results_root(path: str | Path | None = None) -> Path:
    """Where result files live: ``path`` if given, else ``$MMGAN_RESULTS``, else ``results/`` of the checkout
    this package runs from (:func:`project_root`), whatever the working directory; for an installed package,
    ``results/`` of the repository containing the working directory (found by its ``_toc.yml`` and
    ``mmgan/``), else ``./results``. Commands print the root they use when they start."""
    if path is not None:
        return Path(path)
    if os.environ.get("MMGAN_RESULTS"):
        return Path(os.environ["MMGAN_RESULTS"])
    project = project_root()
    if project is not None:
        return project / "results"
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").is_file() and (folder / "mmgan").is_dir():
            return folder / "results"
    return here / "results"


def shown_path(path: Path | str) -> str:
    """``path`` as a record shows it: relative to the checkout (``results/gan``) when it lies inside it, so that
    what is committed does not name the machine it was made on; else as given."""
    project = project_root()
    absolute = Path(os.path.abspath(path))
    if project is not None and absolute.is_relative_to(project):
        return absolute.relative_to(project).as_posix()
    return str(path)
